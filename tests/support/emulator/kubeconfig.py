"""Kubeconfigs for an emulator's URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from lightkube import KubeConfig

from .common import JsonDict

# --------------------------------------------------------------------------------------------
# Kubeconfig
# --------------------------------------------------------------------------------------------


def kubeconfig_dict(
    url: str, *, namespace: str = "default", token: str = "emulator-token", name: str = "emulator"
) -> JsonDict:
    """A kubeconfig (as a dict) for ``url`` with a dummy bearer token (any token is accepted)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
    }


def kube_config(url: str, *, namespace: str = "default") -> KubeConfig:
    """A lightkube ``KubeConfig`` for ``url`` (``from_server`` is broken in lightkube 1.0.1)."""
    from lightkube import KubeConfig

    return KubeConfig.from_dict(kubeconfig_dict(url, namespace=namespace))


def write_kubeconfig(path: str | os.PathLike[str], url: str, *, namespace: str = "default") -> Path:
    """Write a kubeconfig file for ``url`` (for ``--kubeconfig`` of subprocesses)."""
    target = Path(path)
    target.write_text(yaml.safe_dump(kubeconfig_dict(url, namespace=namespace)))
    return target
