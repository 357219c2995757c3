"""deploy/: the RBAC allows exactly what the controller does, the CRDs are MetalLB's shape,
and the Deployment's command line is one the CLI accepts."""

from __future__ import annotations

from typing import Any

import yaml

from announcers.kubernetes.__main__ import _parser
from announcers.kubernetes.client import CONFIG_MAP, SERVICE
from tests.support.emulator import ApiServerEmulator, RequestRecord, metallb_crds

from .controller_kit import (
    NS,
    REPO,
    client_for,
    configmap,
    ips_of,
    layer2,
    namespace,
    pool,
    quiet,
    running,
    service,
)

DEPLOY = REPO / "deploy"


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _allowed(record: RequestRecord, rbac: list[dict[str, Any]]) -> bool:
    """Whether one of the Roles or ClusterRoles bound in ``rbac`` allows the request."""
    resource = record.resource or ""
    if record.subresource:
        resource += "/" + record.subresource
    for role in rbac:
        if role["kind"] not in ("Role", "ClusterRole"):
            continue
        if role["kind"] == "Role" and role["metadata"]["namespace"] != record.namespace:
            continue
        for rule in role["rules"]:
            names = rule.get("resourceNames")
            if (
                (record.group or "") in rule["apiGroups"]
                and resource in rule["resources"]
                and record.verb in rule["verbs"]
                and (names is None or (record.verb != "create" and record.name in names))
            ):
                return True
    return False


async def test_rbac_allows_every_request_the_controller_makes(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(
        namespace(NS),
        configmap({"address-pools": [layer2("old", "198.51.100.0/30")]}),
        pool("p", "192.0.2.0/31"),
        service("a", annotations={"metallb.universe.tf/allow-shared-ip": "k"}),
    )
    apiserver.conflict_on_first_status_write()  # rereads too
    async with running(apiserver) as ctl:
        api = client_for(apiserver)
        for name in ("b", "c"):
            await api.create(SERVICE, service(name))
        await api.patch(CONFIG_MAP, "config", configmap({"address-pools": []}), namespace=NS)
        await apiserver.wait_for(lambda: ips_of(apiserver, "b"))
        await quiet(apiserver, ctl.replica)
        await api.close()
        own = len(apiserver.request_log)
    rbac = _documents("rbac.yaml")
    test_requests = {("create", "services"), ("patch", "configmaps")}
    made = [r for r in apiserver.request_log if (r.verb, r.resource) not in test_requests]
    assert own > 0
    refused = sorted(
        {(r.verb, r.group, r.resource, r.subresource) for r in made if not _allowed(r, rbac)}
    )
    assert refused == []
    kinds = {(r.verb, r.resource, r.subresource) for r in made}
    assert {
        ("update", "leases", None),
        ("patch", "services", "status"),
        ("get", "services", None),
        ("create", "events", None),
        ("patch", "ipaddresspools", "status"),
    } <= kinds


def test_rbac_binds_its_roles_to_the_service_account() -> None:
    docs = _documents("rbac.yaml")
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert {b["roleRef"]["kind"] for b in bindings} == {"Role", "ClusterRole"}
    assert all(
        b["subjects"]
        == [{"kind": "ServiceAccount", "name": "metallb-core-controller", "namespace": NS}]
        for b in bindings
    )


def test_crds_have_metallbs_names_scope_and_status_subresource() -> None:
    ours = {d["metadata"]["name"]: d for d in _documents("crds.yaml")}
    for reference in metallb_crds():
        crd = ours[reference["metadata"]["name"]]
        (version,) = crd["spec"]["versions"]
        assert crd["spec"]["group"] == "metallb.io"
        assert crd["spec"]["scope"] == "Namespaced"
        assert {k: crd["spec"]["names"][k] for k in ("kind", "plural", "singular")} == {
            k: reference["spec"]["names"][k] for k in ("kind", "plural", "singular")
        }
        assert (version["name"], version["served"], version["storage"]) == ("v1beta1", True, True)
        assert version["subresources"] == {"status": {}}


def test_crd_schemas_have_every_field_the_core_reads() -> None:
    crds = {d["spec"]["names"]["kind"]: d for d in _documents("crds.yaml")}

    def spec_fields(kind: str) -> set[str]:
        schema = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        return set(schema["properties"]["spec"]["properties"])

    pool_schema = crds["IPAddressPool"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert spec_fields("IPAddressPool") == {
        "addresses",
        "autoAssign",
        "avoidBuggyIPs",
        "serviceAllocation",
    }
    assert set(pool_schema["properties"]["status"]["properties"]) == {
        "assignedIPv4",
        "assignedIPv6",
        "availableIPv4",
        "availableIPv6",
    }
    assert spec_fields("L2Advertisement") == {
        "ipAddressPools",
        "ipAddressPoolSelectors",
        "nodeSelectors",
        "interfaces",
        "serviceSelectors",
        "preferredNodeSelectors",
    }


async def test_deploy_crds_are_served_by_the_emulator() -> None:
    async with ApiServerEmulator(install_metallb_crds=False) as apiserver:
        await apiserver.start()
        apiserver.seed(*_documents("crds.yaml"), namespace(NS), pool("p", "192.0.2.0/30"))
        apiserver.seed(service("web"))
        async with running(apiserver):
            await apiserver.wait_for(lambda: ips_of(apiserver, "web"))
        assert ips_of(apiserver, "web") == ("192.0.2.0",)


def test_deployment_runs_the_controller_with_flags_the_cli_accepts() -> None:
    (deployment,) = _documents("controller.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = _parser().parse_args(container["args"])
    assert (args.command, args.namespace, args.metrics_port) == ("controller", NS, 7472)
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "metallb-core-controller"
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 10
