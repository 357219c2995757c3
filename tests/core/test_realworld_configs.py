"""MetalLB's own configuration examples, each against MetalLB's verdict (issue 12).

The corpus lives beside the repository, in ``../shared/realworld/metallb-configs/`` (CI keeps
a copy of ``shared/`` next to the clone): 256 examples written by MetalLB's authors (docs,
samples, Helm values, the ConfigMap-to-CRD converter's test data, MetalLB's parser tests),
with MetalLB's verdict in ``manifest.tsv``. Every example goes through the API
(``parse_configmap`` / ``parse_resources``, after reading the YAML as Go does) and through
``metallb-core validate``; both must agree with MetalLB. ``unknown`` examples depend on
objects they do not include: either verdict agrees, but neither path may crash.

Run ``python tests/core/test_realworld_configs.py`` for one line per example and the count.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import metallb_core as core
from metallb_core._cli import run
from metallb_core._yaml import YAMLError, load_all

REPO = Path(__file__).resolve().parents[2]
CORPUS = next(
    (
        d / "shared" / "realworld" / "metallb-configs"
        for d in REPO.parents
        if (d / "shared" / "realworld" / "metallb-configs").is_dir()
    ),
    REPO.parent / "shared" / "realworld" / "metallb-configs",
)
"""``../shared/...`` beside the clone (or beside an ancestor, for a git worktree)."""
CONFIGMAP_KEYS = {"address-pools", "peers", "bgp-communities", "bfd-profiles"}


def manifest() -> list[dict[str, str]]:
    """The manifest's rows, or a failure under CI / a visible skip elsewhere if it is missing."""
    path = CORPUS / "manifest.tsv"
    if not path.is_file():
        message = f"the real-world corpus is missing: {path}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def api_verdict(path: Path) -> tuple[str, str]:
    """``("valid", summary)`` or ``("invalid", MetalLB's message)`` through the API."""
    try:
        docs = load_all(path.read_text(encoding="utf-8"))
    except YAMLError as err:
        return "invalid", f"yaml: {err}"
    try:
        config = _api_config(docs)
    except core.ConfigError as err:
        return "invalid", str(err)
    except YAMLError as err:
        return "invalid", f"could not parse config: yaml: {err}"
    return "valid", f"{len(config.pools)} pools"


def _api_config(docs: list[Any]) -> core.Config:
    for doc in docs:
        if isinstance(doc, Mapping) and doc.get("kind") == "ConfigMap":
            inner = load_all((doc.get("data") or {}).get("config") or "")
            return core.parse_configmap(inner[0] if inner else None)
    if len(docs) == 1 and isinstance(docs[0], Mapping) and "configInline" in docs[0]:
        return core.parse_configmap(docs[0]["configInline"])
    if not docs:
        return core.parse_configmap(None)
    if len(docs) == 1 and not (isinstance(docs[0], Mapping) and "kind" in docs[0]):
        return core.parse_configmap(docs[0])
    return core.parse_resources(docs)


def cli_verdict(path: Path) -> tuple[str, str]:
    """The verdict of ``metallb-core validate`` (exit 0 valid, 1 invalid, else an error)."""
    out, err = io.StringIO(), io.StringIO()
    code = run(["validate", str(path)], out, err)
    text = (out.getvalue() + err.getvalue()).strip()
    return {0: "valid", 1: "invalid"}.get(code, f"exit {code}"), text


OPERATOR_SAMPLE_MESSAGE = (
    "parsing address pool addresspool-sample4: invalid aggregation length 24: prefix 25 in "
    "this pool is more specific than the aggregation length for addresses "
    "172.30.0.100-172.30.0.255"
)
MANIFEST_CONTRADICTS_METALLB = {
    "operator-v0.12.0/samples-addresspool-v1beta1.yaml": OPERATOR_SAMPLE_MESSAGE,
    "operator-v0.12.0/samples-addresspool-v1alpha1.yaml": OPERATOR_SAMPLE_MESSAGE,
}
"""Examples whose manifest verdict (``valid``: "a sample presents it as working") is not what
MetalLB's code does; we follow the code, with the exact message (docs/concepts.md). The
operator v0.12.0 sample aggregates ``172.30.0.100-172.30.0.255`` (a /30, /29, /28 and /25)
with ``aggregationLength: 24``: every MetalLB from v0.12 (ConfigMap test "aggregation
length by range, too wide") to main refuses an aggregation shorter than the widest CIDR of
an ``addresses`` entry, and v0.13's legacy ``AddressPool`` path runs the same check."""


def expected_verdict(row: Mapping[str, str]) -> str:
    return "invalid" if row["file"] in MANIFEST_CONTRADICTS_METALLB else row["expected"]


def agrees(expected: str, verdict: str) -> bool:
    if expected == "unknown":
        return verdict in ("valid", "invalid")
    return verdict == expected


ROWS = manifest() if (CORPUS / "manifest.tsv").is_file() else []


@pytest.mark.parametrize("row", ROWS or [None], ids=lambda r: r["file"] if r else "missing")
def test_example_agrees_with_metallb(row: dict[str, str] | None) -> None:
    if row is None:
        manifest()  # fails under CI, skips visibly elsewhere
        return
    path = CORPUS / row["file"]
    expected = expected_verdict(row)
    verdict, message = api_verdict(path)
    assert agrees(expected, verdict), f"API: {verdict}: {message} ({row['why']})"
    if row["file"] in MANIFEST_CONTRADICTS_METALLB:
        assert message == MANIFEST_CONTRADICTS_METALLB[row["file"]]
    verdict, message = cli_verdict(path)
    assert agrees(expected, verdict), f"validate: {verdict}: {message} ({row['why']})"


def test_corpus_is_whole() -> None:
    rows = manifest()
    assert len(rows) == 256
    assert all((CORPUS / r["file"]).is_file() for r in rows)


def main() -> int:
    good = bad = overridden = 0
    for row in manifest():
        path = CORPUS / row["file"]
        api, api_msg = api_verdict(path)
        cli, cli_msg = cli_verdict(path)
        ok = agrees(row["expected"], api) and agrees(row["expected"], cli)
        good, bad = good + ok, bad + (not ok)
        mark = "ok  " if ok else "FAIL"
        if not ok and agrees(expected_verdict(row), api) and agrees(expected_verdict(row), cli):
            mark, overridden = "DOC ", overridden + 1
        print(f"{mark} {row['expected']:8} api={api:8} cli={cli:8} {row['file']}")
        if not ok or "-v" in sys.argv:
            print(f"       api: {api_msg.splitlines()[0] if api_msg else ''}")
            print(f"       cli: {cli_msg.splitlines()[0] if cli_msg else ''}")
    print(f"real-world configs: {good} agree, {bad} disagree")
    print(f"  of which {overridden} follow MetalLB's code where the manifest contradicts it")
    return 0 if bad == overridden else 1


if __name__ == "__main__":
    sys.exit(main())


PLAN_CHECKS = [
    ("v0.10.3/manifests-example-config.yaml", "bgp-example.yaml"),
    ("main/website-advanced-pool-cheap-expensive.yaml", "cheap-expensive.yaml"),
    ("v0.10.3/manifests-example-layer2-config.yaml", "layer2-range.yaml"),
    ("operator-main/samples-ipaddresspool.yaml", "operator-pools.yaml"),
    ("main/website-advanced-pool-service-allocation.yaml", "service-allocation.yaml"),
    ("v0.10.3/website-configuration-layer2.yaml", "tutorial-2.yaml"),
    ("v0.10.3/website-usage-example.yaml", "usage-example.yaml"),
]
"""MetalLB's example configurations planned on the corpus's Services (``services/``)."""


@pytest.mark.parametrize(("config", "services"), PLAN_CHECKS, ids=[c for c, _ in PLAN_CHECKS])
def test_plan_gives_annotated_services_their_pool(config: str, services: str) -> None:
    manifest()  # fails under CI=true when the corpus is missing
    out, err = io.StringIO(), io.StringIO()
    argv = ["plan", str(CORPUS / config), str(CORPUS / "services" / services), "--output", "json"]
    assert run(argv, out, err) == 0, err.getvalue()
    rows = json.loads(out.getvalue())["steps"][0]["services"]
    assert any(r["externalIPs"] for r in rows)
    asked = {
        f"{d['metadata'].get('namespace', 'default')}/{d['metadata']['name']}": pool
        for d in load_all((CORPUS / "services" / services).read_text())
        for key, pool in ((d.get("metadata") or {}).get("annotations") or {}).items()
        if key.endswith("/address-pool")
    }
    for row in rows:
        wanted = asked.get(f"{row['namespace']}/{row['name']}")
        if wanted is not None:
            assert (row["pool"], bool(row["externalIPs"])) == (wanted, True), row
