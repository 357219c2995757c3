"""The shared Kubernetes vocabulary (metallb_core.vocabulary): one key per Service, one
reading of its ingress IPs, used by the core and the adapters alike."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import metallb_core as core
from metallb_core import vocabulary
from metallb_core.vocabulary import ALLOCATED_FROM_POOL, ingress_ips, object_key, service_key

NAMES = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(namespace=NAMES, name=NAMES)
def test_a_service_from_the_api_server_has_one_key(namespace: str, name: str) -> None:
    """The API server always fills in the namespace: the informer's key (object_key) and
    the core's key (service_key, the key of every allocation and outcome) are the same."""
    service = {"metadata": {"namespace": namespace, "name": name}}
    assert object_key(service) == service_key(service) == f"{namespace}/{name}"


@given(name=NAMES)
def test_a_service_written_without_a_namespace_is_in_default(name: str) -> None:
    service = {
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1"},
    }
    assert service_key(service) == f"default/{name}"
    assert core.request_from_service(service).key == service_key(service)
    assert object_key({"metadata": {"name": name}}) == name  # a cluster-scoped object


def test_the_core_keys_its_outcomes_by_service_key() -> None:
    config = core.Config(pools=[core.Pool(name="p", cidrs=["192.0.2.0/30"])])
    service = {
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1"},
    }
    _, outcomes = core.converge_all(core.State.empty(config), [service])
    assert list(outcomes) == [service_key(service)]


def test_ingress_ips_skips_what_is_not_an_ip_entry() -> None:
    entries: list[Any] = [{"ip": "192.0.2.1"}, {"hostname": "lb"}, "192.0.2.9", None, {"ip": ""}]
    assert ingress_ips({"status": {"loadBalancer": {"ingress": entries}}}) == ["192.0.2.1"]
    statuses: list[Any] = [
        None,
        [],
        "x",
        {"loadBalancer": None},
        {"loadBalancer": {"ingress": "x"}},
    ]
    for status in statuses:
        assert ingress_ips({"status": status}) == []


def test_the_core_writes_the_pool_annotation_under_the_shared_name() -> None:
    config = core.Config(pools=[core.Pool(name="p", cidrs=["192.0.2.0/30"])])
    service = {
        "metadata": {"namespace": "web", "name": "nginx"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1"},
    }
    conv = core.converge(core.State.empty(config), service)[1]
    assert conv.pool == "p"
    assert ALLOCATED_FROM_POOL == "metallb.io/ip-allocated-from-pool"
    assert vocabulary.JsonDict == dict[str, Any]


def test_the_vocabulary_is_defined_once() -> None:
    """No other module of the core or the adapters defines these words again."""
    root = Path(__file__).resolve().parents[2]
    definition = re.compile(
        r"^(JsonDict\s*(:\s*TypeAlias\s*)?=|ALLOCATED_FROM_POOL\s*=|"
        r"\s*def (service_key|object_key|ingress_ips)\()",
        re.M,
    )
    found = [
        f"{path.relative_to(root)}: {match.group(0).strip()}"
        for package in ("metallb_core", "announcers")
        for path in sorted((root / package).rglob("*.py"))
        if path.name != "vocabulary.py"
        for match in definition.finditer(path.read_text())
    ]
    assert found == []
