"""deploy/: the speaker's RBAC allows exactly what it does; its DaemonSet runs it on the
host's network with NET_RAW alone and a command line the CLI accepts."""

from __future__ import annotations

from typing import Any

import yaml

from announcers.kubernetes.__main__ import _parser
from announcers.kubernetes.liveness import DEFAULT_PROBE_PORT
from tests.support.emulator import ApiServerEmulator

from .controller_kit import NS, REPO
from .speaker_kit import (
    advertisement,
    basics,
    endpoints,
    events_of,
    fleet,
    holding,
    l2statuses,
)
from .test_controller_deploy import _allowed

DEPLOY = REPO / "deploy"


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _container() -> dict[str, Any]:
    (daemonset,) = _documents("speaker.yaml")
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    return dict(container)


async def test_rbac_allows_every_request_the_speakers_make(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(*basics(), advertisement(interfaces=["eth0"]))
    async with fleet(apiserver, nodes=("n1", "n2")) as group:
        apiserver.seed(holding("web", "192.0.2.10"), endpoints("web", "n1"))
        apiserver.seed(holding("api", "192.0.2.11"), endpoints("api", "n2"))
        await group.wait_for(lambda: len(events_of(apiserver, "nodeAssigned")) == 2)
        await group.wait_for(lambda: len(l2statuses(apiserver)) == 2)
        await group["n1"].crash()  # n2 takes "web" over and deletes n1's ServiceL2Status
        await group.wait_for(
            lambda: {(s.get("status") or {}).get("node") for s in l2statuses(apiserver)} == {"n2"}
        )
        await group.settled()
    rbac = _documents("speaker-rbac.yaml")
    made = list(apiserver.request_log)
    refused = sorted(
        {(r.verb, r.group, r.resource, r.subresource) for r in made if not _allowed(r, rbac)}
    )
    assert refused == []
    kinds = {(r.verb, r.resource) for r in made}
    assert {
        ("create", "leases"),
        ("patch", "leases"),
        ("watch", "leases"),
        ("list", "endpointslices"),
        ("watch", "nodes"),
        ("create", "events"),
        ("list", "servicel2statuses"),
        ("watch", "servicel2statuses"),
        ("create", "servicel2statuses"),
        ("patch", "servicel2statuses"),
        ("delete", "servicel2statuses"),
    } <= kinds


async def test_rbac_allows_the_release_and_the_cleanup_on_graceful_stop(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(*basics(), advertisement())
    async with fleet(apiserver, nodes=("n1",)) as group:
        apiserver.seed(holding("web", "192.0.2.10"), endpoints("web", "n1"))
        await group.wait_for(lambda: len(l2statuses(apiserver)) == 1)
        await group["n1"].halt()  # withdraws, releases its Lease, deletes its status
    assert l2statuses(apiserver) == []
    rbac = _documents("speaker-rbac.yaml")
    made = list(apiserver.request_log)
    assert [(r.verb, r.resource) for r in made if not _allowed(r, rbac)] == []


def test_rbac_binds_its_roles_to_the_speaker_service_account() -> None:
    docs = _documents("speaker-rbac.yaml")
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert {b["roleRef"]["kind"] for b in bindings} == {"Role", "ClusterRole"}
    assert all(
        b["subjects"]
        == [{"kind": "ServiceAccount", "name": "metallb-core-speaker", "namespace": NS}]
        for b in bindings
    )


def test_rbac_grants_no_write_beyond_leases_events_and_servicel2statuses() -> None:
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    granted = {
        (group, resource)
        for role in _documents("speaker-rbac.yaml")
        if role["kind"] in ("Role", "ClusterRole")
        for rule in role["rules"]
        if writes & set(rule["verbs"])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted == {
        ("coordination.k8s.io", "leases"),
        ("events.k8s.io", "events"),
        ("metallb.io", "servicel2statuses"),
        ("metallb.io", "servicel2statuses/status"),
    }


def test_daemonset_uses_the_host_network_and_adds_net_raw_alone() -> None:
    (daemonset,) = _documents("speaker.yaml")
    pod = daemonset["spec"]["template"]["spec"]
    capabilities = _container()["securityContext"]["capabilities"]
    assert daemonset["kind"] == "DaemonSet"
    assert pod["hostNetwork"] is True
    assert (capabilities["drop"], capabilities["add"]) == (["ALL"], ["NET_RAW"])
    assert _container()["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["serviceAccountName"] == "metallb-core-speaker"
    assert pod["terminationGracePeriodSeconds"] > 10


def test_daemonset_runs_the_speaker_with_flags_the_cli_accepts() -> None:
    container = _container()
    args = _parser().parse_args(container["args"])
    assert (args.command, args.node, args.namespace, args.metrics_port) == (
        "speaker",
        "$(NODE_NAME)",
        NS,
        7472,
    )
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {
        "NODE_NAME": "spec.nodeName",
        "POD_NAME": "metadata.name",
        "POD_UID": "metadata.uid",
        "POD_IP": "status.podIP",
    }


def test_daemonset_probes_from_the_node_ip_on_the_default_udp_port() -> None:
    container = _container()
    args = _parser().parse_args(container["args"])
    # The downward API's status.podIP is the node IP under hostNetwork.
    assert args.probe_address == "$(POD_IP)"
    assert args.liveness == "probe"
    # Explicit, so that it never falls back to an ephemeral port (only 7946 is open).
    assert args.probe_port == DEFAULT_PROBE_PORT == 7946
    (daemonset,) = _documents("speaker.yaml")
    assert daemonset["spec"]["template"]["spec"]["hostNetwork"] is True
    ports = {p["name"]: (p["containerPort"], p.get("protocol", "TCP")) for p in container["ports"]}
    assert ports["probes"] == (DEFAULT_PROBE_PORT, "UDP")


def test_udp_7946_is_documented_as_open_between_nodes() -> None:
    header = (DEPLOY / "speaker.yaml").read_text()
    install = (REPO / "docs" / "speaker.md").read_text().split("## Install", 1)[1]
    install = install.split("\n## ", 1)[0]
    for text in (header, install):
        assert "UDP 7946" in text
        assert "between" in text
        assert "--probe-address" in text


def test_kustomization_installs_the_speaker() -> None:
    (kustomization,) = _documents("kustomization.yaml")
    assert {"speaker-rbac.yaml", "speaker.yaml"} <= set(kustomization["resources"])
