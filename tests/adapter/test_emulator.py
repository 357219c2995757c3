"""The API server emulator's own behaviour, observed through lightkube (the adapter's client)."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx2
import jsonpatch
import jsonpointer
import pytest
import pytest_asyncio
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.core.dictmixin import DictMixin
from lightkube.core.selector import build_selector
from lightkube.generic_resource import async_load_in_cluster_generic_resources, get_generic_resource
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.events_v1 import EventSeries
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.operators import exists, in_, not_equal, not_exists, not_in
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Service
from lightkube.resources.events_v1 import Event
from lightkube.types import PatchType

from tests.support.emulator import (
    ApiServerEmulator,
    EmulatorProcess,
    JsonPatchError,
    LabelSelector,
    OutageMode,
    api_error,
    apply_json_patch,
    kube_config,
    merge_patch,
    service_manifest,
)

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
M = TypeVar("M", bound=DictMixin)


def model(cls: type[M], data: dict[str, Any]) -> M:
    """A lightkube model from a dict (``from_dict`` is typed as returning ``DictMixin``)."""
    return cast(M, cls.from_dict(data))


def d(obj: Any) -> dict[str, Any]:
    """A lightkube object as a plain dict, for assertions without Optional-chasing."""
    return cast(dict[str, Any], obj.to_dict())


def service(name: str, namespace: str = "default", **kwargs: Any) -> Service:
    """A LoadBalancer Service model (see ``service_manifest`` for the keywords)."""
    return model(Service, service_manifest(name, namespace, **kwargs))


def meta(obj: Any, key: str) -> Any:
    """A ``metadata`` field of a lightkube object (None when unset)."""
    return d(obj)["metadata"].get(key)


def spec(obj: Any, key: str) -> Any:
    """A ``spec`` field of a lightkube object (None when unset)."""
    return d(obj).get("spec", {}).get(key)


def ips(obj: Any) -> list[str]:
    """The ingress IPs in a Service's status."""
    return [entry["ip"] for entry in d(obj)["status"]["loadBalancer"].get("ingress", [])]


def ingress(*ips: str) -> dict[str, Any]:
    """A merge patch setting ``status.loadBalancer.ingress``."""
    return {"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}}}


def pool(name: str, *addresses: str) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": {"addresses": list(addresses)},
    }


def event(name: str, **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "metadata": ObjectMeta(name=name, namespace="default"),
        "eventTime": NOW,
        "reportingController": "metallb-core/controller",
        "reportingInstance": "controller-0",
        "action": "Allocate",
        "reason": "IPAllocated",
        "note": 'Assigned IP ["192.0.2.1"]',
        "type": "Normal",
        "regarding": ObjectReference(kind="Service", name="web", namespace="default"),
    }
    fields.update(overrides)
    return Event(**fields)


@pytest_asyncio.fixture
async def raw(apiserver: ApiServerEmulator) -> AsyncIterator[httpx2.AsyncClient]:
    """Plain HTTP to the emulator, to see what lightkube hides (headers, bodies)."""
    async with httpx2.AsyncClient(base_url=apiserver.base_url, trust_env=False) as client:
        yield client


# ---- resourceVersion, uid, creationTimestamp, generation ----------------------------------


async def test_create_stamps_uid_timestamp_generation_and_resource_version(
    async_client: AsyncClient,
) -> None:
    created = await async_client.create(service("web"))
    assert len(meta(created, "uid")) == 36
    assert meta(created, "creationTimestamp") is not None
    assert meta(created, "generation") == 1
    assert isinstance(meta(created, "resourceVersion"), str)
    assert int(meta(created, "resourceVersion")) > 0


async def test_resource_versions_come_from_one_counter_across_resources(
    async_client: AsyncClient,
) -> None:
    first = await async_client.create(service("a"))
    middle = await async_client.create(ConfigMap(metadata=ObjectMeta(name="c"), data={"k": "v"}))
    last = await async_client.patch(Service, "a", {"metadata": {"labels": {"x": "y"}}})
    versions = [int(meta(o, "resourceVersion")) for o in (first, middle, last)]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


async def test_list_carries_the_current_resource_version(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    await async_client.create(service("a"))
    await async_client.create(service("b"))
    listing = async_client.list(Service)
    names = [meta(item, "name") async for item in listing]
    assert names == ["a", "b"]
    assert listing.resourceVersion == apiserver.resource_version


async def test_spec_change_bumps_generation(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    patched = await async_client.patch(Service, "web", {"spec": {"loadBalancerIP": "192.0.2.7"}})
    assert meta(patched, "generation") == 2


async def test_metadata_change_keeps_generation(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    patched = await async_client.patch(Service, "web", {"metadata": {"annotations": {"a": "b"}}})
    assert meta(patched, "generation") == 1


async def test_status_write_keeps_generation(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    patched = await async_client.patch(Service.Status, "web", ingress("192.0.2.1"))
    assert meta(patched, "generation") == 1


async def test_noop_write_keeps_resource_version_and_history(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    created = await async_client.create(service("web", labels={"app": "web"}))
    again = await async_client.patch(Service, "web", {"metadata": {"labels": {"app": "web"}}})
    assert meta(again, "resourceVersion") == meta(created, "resourceVersion")
    assert len(apiserver.history("v1/services", "default", "web")) == 1


# ---- optimistic concurrency ------------------------------------------------------------------


async def test_patch_with_stale_resource_version_is_conflict(async_client: AsyncClient) -> None:
    created = await async_client.create(service("web"))
    await async_client.patch(Service, "web", {"metadata": {"labels": {"a": "1"}}})
    stale = {
        "metadata": {
            "resourceVersion": meta(created, "resourceVersion"),
            "labels": {"a": "2"},
        }
    }
    with pytest.raises(ApiError) as info:
        await async_client.patch(Service, "web", stale, patch_type=PatchType.MERGE)
    assert (info.value.status.code, info.value.status.reason) == (409, "Conflict")


async def test_status_patch_with_stale_resource_version_is_conflict(
    async_client: AsyncClient,
) -> None:
    created = await async_client.create(service("web"))
    await async_client.patch(Service, "web", {"metadata": {"labels": {"a": "1"}}})
    stale = ingress("192.0.2.1") | {
        "metadata": {"resourceVersion": meta(created, "resourceVersion")}
    }
    with pytest.raises(ApiError) as info:
        await async_client.patch(Service.Status, "web", stale, patch_type=PatchType.MERGE)
    assert info.value.status.code == 409


async def test_put_with_stale_resource_version_is_conflict(async_client: AsyncClient) -> None:
    body = d(await async_client.create(service("web")))
    await async_client.patch(Service, "web", {"metadata": {"labels": {"a": "1"}}})
    body["metadata"]["labels"] = {"a": "2"}
    with pytest.raises(ApiError) as info:
        await async_client.replace(model(Service, body))
    assert (info.value.status.code, info.value.status.reason) == (409, "Conflict")


async def test_write_with_current_resource_version_succeeds(async_client: AsyncClient) -> None:
    created = await async_client.create(service("web"))
    current = {"metadata": {"resourceVersion": meta(created, "resourceVersion")}}
    patched = await async_client.patch(
        Service.Status, "web", ingress("192.0.2.1") | current, patch_type=PatchType.MERGE
    )
    assert ips(patched)[0] == "192.0.2.1"


async def test_write_without_resource_version_is_unconditional(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    await async_client.patch(Service, "web", {"metadata": {"labels": {"a": "1"}}})
    patched = await async_client.patch(Service, "web", {"metadata": {"labels": {"a": "2"}}})
    assert meta(patched, "labels") == {"a": "2"}


async def test_json_patch_setting_a_stale_resource_version_is_conflict(
    async_client: AsyncClient,
) -> None:
    await async_client.create(service("web"))
    patch = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
    ]
    with pytest.raises(ApiError) as info:
        await async_client.patch(Service, "web", patch, patch_type=PatchType.JSON)
    assert info.value.status.code == 409


async def test_conflict_is_a_status_object_with_exact_json_content_type(
    raw: httpx2.AsyncClient, async_client: AsyncClient
) -> None:
    await async_client.create(service("web"))
    response = await raw.patch(
        "/api/v1/namespaces/default/services/web",
        content=json.dumps({"metadata": {"resourceVersion": "1"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 409
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["kind"] == "Status"
    assert body["reason"] == "Conflict"
    assert body["details"] == {"kind": "services", "name": "web"}
    assert "the object has been modified" in body["message"]


# ---- status subresource ----------------------------------------------------------------------


async def test_status_patch_changes_neither_spec_nor_metadata(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    sneaky = ingress("192.0.2.1") | {
        "spec": {"type": "ClusterIP"},
        "metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "p"}},
    }
    patched = await async_client.patch(Service.Status, "web", sneaky, patch_type=PatchType.MERGE)
    assert spec(patched, "type") == "LoadBalancer"
    assert meta(patched, "annotations") is None
    assert ips(patched)[0] == "192.0.2.1"


async def test_main_resource_patch_leaves_status_alone(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    await async_client.patch(Service.Status, "web", ingress("192.0.2.1"))
    patched = await async_client.patch(
        Service, "web", {"status": {"loadBalancer": {}}, "metadata": {"labels": {"a": "b"}}}
    )
    assert ips(patched)[0] == "192.0.2.1"
    assert meta(patched, "labels") == {"a": "b"}


async def test_put_leaves_status_alone(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    body = d(await async_client.patch(Service.Status, "web", ingress("192.0.2.1")))
    body["status"]["loadBalancer"]["ingress"] = []
    body["spec"]["loadBalancerIP"] = "192.0.2.9"
    replaced = await async_client.replace(model(Service, body))
    assert spec(replaced, "loadBalancerIP") == "192.0.2.9"
    assert ips(replaced)[0] == "192.0.2.1"


async def test_put_on_status_changes_only_status(async_client: AsyncClient) -> None:
    body = d(await async_client.create(service("web")))
    body["spec"]["type"] = "ClusterIP"
    body["status"] = ingress("192.0.2.4")["status"]
    replaced = await async_client.replace(model(Service.Status, body), "web")
    assert spec(replaced, "type") == "LoadBalancer"
    assert ips(replaced)[0] == "192.0.2.4"


async def test_create_drops_the_status_of_a_service(async_client: AsyncClient) -> None:
    body = service_manifest("web") | ingress("192.0.2.1")
    created = await async_client.create(model(Service, body))
    assert ips(created) == []


async def test_node_create_keeps_its_status(async_client: AsyncClient) -> None:
    conditions = [{"type": "NetworkUnavailable", "status": "True"}]
    node = model(Node, {"metadata": {"name": "n1"}, "status": {"conditions": conditions}})
    created = await async_client.create(node)
    assert d(created)["status"]["conditions"] == conditions


async def test_resources_without_status_subresource_answer_404_on_status(
    raw: httpx2.AsyncClient,
) -> None:
    for path in (
        "/api/v1/namespaces/default/configmaps/c/status",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases/l/status",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/e/status",
        "/apis/events.k8s.io/v1/namespaces/default/events/e/status",
    ):
        response = await raw.get(path)
        assert response.status_code == 404, path


async def test_configmap_status_is_plain_data(async_client: AsyncClient) -> None:
    created = await async_client.create(
        model(ConfigMap, {"metadata": {"name": "c"}, "data": {"config": "x"}})
    )
    patched = await async_client.patch(ConfigMap, "c", {"data": {"config": "y"}})
    assert (created.data, patched.data) == ({"config": "x"}, {"config": "y"})


# ---- PUT -------------------------------------------------------------------------------------


async def test_replace_drops_what_the_body_lacks(async_client: AsyncClient) -> None:
    body = d(await async_client.create(service("web", labels={"a": "b"}, annotations={"c": "d"})))
    del body["metadata"]["labels"]
    replaced = await async_client.replace(model(Service, body))
    assert meta(replaced, "labels") is None
    assert meta(replaced, "annotations") == {"c": "d"}


async def test_replace_keeps_uid_and_creation_timestamp(async_client: AsyncClient) -> None:
    created = await async_client.create(service("web"))
    body = service_manifest("web")
    body["metadata"]["uid"] = meta(created, "uid")
    body["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    replaced = await async_client.replace(model(Service, body))
    assert meta(replaced, "uid") == meta(created, "uid")
    assert meta(replaced, "creationTimestamp") == meta(created, "creationTimestamp")


async def test_replace_of_a_missing_object_is_not_found(async_client: AsyncClient) -> None:
    with pytest.raises(ApiError) as info:
        await async_client.replace(service("ghost"))
    assert (info.value.status.code, info.value.status.reason) == (404, "NotFound")


async def test_replace_keeps_allocated_cluster_ips(async_client: AsyncClient) -> None:
    created = await async_client.create(service("web"))
    replaced = await async_client.replace(service("web", loadBalancerIP="192.0.2.1"))
    assert spec(replaced, "clusterIPs") == spec(created, "clusterIPs")
    assert spec(replaced, "ports")[0]["nodePort"] == spec(created, "ports")[0]["nodePort"]


# ---- patch flavours --------------------------------------------------------------------------


async def test_merge_patch_null_removes_a_key(async_client: AsyncClient) -> None:
    await async_client.create(service("web", labels={"a": "1", "b": "2"}))
    patched = await async_client.patch(
        Service, "web", {"metadata": {"labels": {"a": None}}}, patch_type=PatchType.MERGE
    )
    assert meta(patched, "labels") == {"b": "2"}


async def test_strategic_merge_patch_replaces_lists(async_client: AsyncClient) -> None:
    await async_client.create(service("web", ports=(80, 443)))
    patched = await async_client.patch(
        Service, "web", {"spec": {"ports": [{"name": "p8080", "port": 8080}]}}
    )
    assert [port["port"] for port in spec(patched, "ports")] == [8080]


async def test_json_patch_through_lightkube(async_client: AsyncClient) -> None:
    await async_client.create(service("web", labels={"a": "1"}))
    patch = [
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "remove", "path": "/metadata/labels/a"},
    ]
    patched = await async_client.patch(Service, "web", patch, patch_type=PatchType.JSON)
    assert meta(patched, "labels") == {"b": "2"}


async def test_failed_json_patch_test_is_invalid(async_client: AsyncClient) -> None:
    await async_client.create(service("web", labels={"a": "1"}))
    patch = [{"op": "test", "path": "/metadata/labels/a", "value": "2"}]
    with pytest.raises(ApiError) as info:
        await async_client.patch(Service, "web", patch, patch_type=PatchType.JSON)
    assert (info.value.status.code, info.value.status.reason) == (422, "Invalid")


async def test_server_side_apply_creates_then_merges(async_client: AsyncClient) -> None:
    created = await async_client.apply(service("web", labels={"a": "1"}), field_manager="t")
    applied = await async_client.apply(
        model(Service, {"metadata": {"name": "web", "labels": {"b": "2"}}}), field_manager="t"
    )
    assert meta(created, "uid") == meta(applied, "uid")
    assert meta(applied, "labels") == {"a": "1", "b": "2"}


async def test_server_side_apply_on_status_writes_only_status(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    body = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "NodePort"}}
    applied = await async_client.apply(
        model(Service.Status, body | ingress("192.0.2.5")), "web", field_manager="metallb-core"
    )
    assert ips(applied)[0] == "192.0.2.5"
    assert spec(applied, "type") == "LoadBalancer"


async def test_apply_without_field_manager_is_invalid(
    raw: httpx2.AsyncClient, async_client: AsyncClient
) -> None:
    await async_client.create(service("web"))
    response = await raw.patch(
        "/api/v1/namespaces/default/services/web",
        content=b'{"metadata": {"labels": {"a": "b"}}}',
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert response.status_code == 422


async def test_apply_accepts_yaml(raw: httpx2.AsyncClient, async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    response = await raw.patch(
        "/api/v1/namespaces/default/services/web?fieldManager=t",
        content=b"metadata:\n  labels:\n    a: b\n",
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert response.json()["metadata"]["labels"] == {"a": "b"}


async def test_unknown_patch_type_is_unsupported_media_type(
    raw: httpx2.AsyncClient, async_client: AsyncClient
) -> None:
    await async_client.create(service("web"))
    response = await raw.patch(
        "/api/v1/namespaces/default/services/web",
        content=b"{}",
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 415


async def test_dry_run_stores_nothing(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    dry = AsyncClient(kube_config(apiserver.base_url), dry_run=True, trust_env=False)
    created = await dry.create(service("web"))
    await dry.close()
    assert meta(created, "name") == "web"
    assert apiserver.read("v1/services", "default", "web") is None


async def test_generate_name_makes_a_unique_name(async_client: AsyncClient) -> None:
    body = service_manifest("x")
    body["metadata"] = {"generateName": "web-"}
    first = await async_client.create(model(Service, body))
    second = await async_client.create(model(Service, body))
    names = {meta(first, "name"), meta(second, "name")}
    assert len(names) == 2
    assert all(name.startswith("web-") and len(name) == 9 for name in names)


@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=3),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=3), children, max_size=3)
        ),
        max_leaves=8,
    ),
    target=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=3),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=3), children, max_size=3)
        ),
        max_leaves=8,
    ),
)
@settings(max_examples=150, deadline=None)
def test_json_patch_agrees_with_the_jsonpatch_library(doc: Any, target: Any) -> None:
    patch = jsonpatch.make_patch(doc, target).patch
    # jsonpatch sometimes generates moves into a child, which RFC 6902 section 4.4 forbids
    # (the emulator refuses them), and patches it cannot apply itself: not comparable.
    assume(not any(op["op"] == "move" and op["path"].startswith(op["from"] + "/") for op in patch))
    try:
        expected = jsonpatch.apply_patch(doc, patch)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
        assume(False)
    assert apply_json_patch(doc, patch) == expected


def test_json_patch_refuses_a_move_into_a_child() -> None:
    with pytest.raises(JsonPatchError):
        apply_json_patch({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/c"}])


def test_merge_patch_follows_rfc_7386_examples() -> None:
    # The examples of RFC 7386 appendix A (a selection).
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


# ---- selectors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"app": "a"}, ["a1", "a2"]),
        ({"app": not_equal("a")}, ["b", "none"]),
        ({"app": in_(["a", "b"])}, ["a1", "a2", "b"]),
        ({"app": not_in(["a"])}, ["b", "none"]),
        ({"app": exists()}, ["a1", "a2", "b"]),
        ({"app": not_exists()}, ["none"]),
        ({"app": "a", "tier": "db"}, ["a2"]),
    ],
)
async def test_label_selectors_on_list(
    apiserver: ApiServerEmulator,
    async_client: AsyncClient,
    labels: dict[str, Any],
    expected: list[str],
) -> None:
    apiserver.seed(
        service_manifest("a1", labels={"app": "a"}),
        service_manifest("a2", labels={"app": "a", "tier": "db"}),
        service_manifest("b", labels={"app": "b"}),
        service_manifest("none"),
    )
    names = [meta(s, "name") async for s in async_client.list(Service, labels=labels)]
    assert names == expected


async def test_field_selector_on_name_and_namespace(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    apiserver.seed(service_manifest("a"), service_manifest("b"), service_manifest("a", "other"))
    by_name = [
        (meta(s, "namespace"), meta(s, "name"))
        async for s in async_client.list(Service, namespace="*", fields={"metadata.name": "a"})
    ]
    by_namespace = [
        meta(s, "name")
        async for s in async_client.list(
            Service, namespace="*", fields={"metadata.namespace": not_equal("other")}
        )
    ]
    assert by_name == [("default", "a"), ("other", "a")]
    assert by_namespace == ["a", "b"]


async def test_unsupported_field_selector_is_bad_request(async_client: AsyncClient) -> None:
    with pytest.raises(ApiError) as info:
        _ = [s async for s in async_client.list(Service, fields={"spec.type": "LoadBalancer"})]
    assert (info.value.status.code, info.value.status.reason) == (400, "BadRequest")


async def test_malformed_label_selector_is_bad_request(raw: httpx2.AsyncClient) -> None:
    response = await raw.get("/api/v1/services", params={"labelSelector": "app in (a"})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"


_KEYS = st.sampled_from(["app", "tier", "example.com/role"])
_VALUES = st.sampled_from(["a", "b", "c"])


@given(
    labels=st.dictionaries(_KEYS, _VALUES, max_size=3),
    key=_KEYS,
    operator=st.sampled_from(["=", "!=", "in", "notin", "exists", "!"]),
    values=st.sets(_VALUES, min_size=1, max_size=3),
)
@settings(max_examples=200, deadline=None)
def test_label_selector_parses_what_lightkube_encodes(
    labels: dict[str, str], key: str, operator: str, values: set[str]
) -> None:
    value = sorted(values)[0]
    cases: dict[str, tuple[Any, bool]] = {
        "=": (value, labels.get(key) == value),
        "!=": (not_equal(value), labels.get(key) != value),
        "in": (in_(values), labels.get(key) in values),
        "notin": (not_in(values), labels.get(key) not in values),
        "exists": (exists(), key in labels),
        "!": (not_exists(), key not in labels),
    }
    selector, expected = cases[operator]
    text = build_selector({key: selector})
    assert LabelSelector.parse(text).matches(labels) == expected


def test_label_selector_numeric_comparisons() -> None:
    assert LabelSelector.parse("n>5").matches({"n": "7"})
    assert not LabelSelector.parse("n<5").matches({"n": "7"})
    assert not LabelSelector.parse("n>5").matches({})


# ---- errors reach lightkube as ApiError --------------------------------------------------------


async def test_not_found_is_api_error_with_exact_json(
    raw: httpx2.AsyncClient, async_client: AsyncClient
) -> None:
    with pytest.raises(ApiError) as info:
        await async_client.get(Service, "ghost")
    response = await raw.get("/api/v1/namespaces/default/services/ghost")
    assert (info.value.status.code, info.value.status.reason) == (404, "NotFound")
    assert info.value.status.message == 'services "ghost" not found'
    assert response.headers["Content-Type"] == "application/json"


async def test_not_found_is_api_error_for_the_sync_client(sync_client: Client) -> None:
    with pytest.raises(ApiError) as info:
        await asyncio.to_thread(sync_client.get, Service, "ghost")
    assert info.value.status.code == 404


async def test_duplicate_create_is_already_exists(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    with pytest.raises(ApiError) as info:
        await async_client.create(service("web"))
    assert (info.value.status.code, info.value.status.reason) == (409, "AlreadyExists")


async def test_unknown_resource_is_not_found_json(raw: httpx2.AsyncClient) -> None:
    for path in ("/api/v1/secrets", "/apis/example.com/v1/widgets", "/nonsense"):
        response = await raw.get(path)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == "application/json", path
        assert response.json()["kind"] == "Status", path


async def test_invalid_name_is_invalid(async_client: AsyncClient) -> None:
    with pytest.raises(ApiError) as info:
        await async_client.create(service("Not_Valid"))
    assert (info.value.status.code, info.value.status.reason) == (422, "Invalid")


async def test_create_with_a_resource_version_is_refused(async_client: AsyncClient) -> None:
    body = service_manifest("web")
    body["metadata"]["resourceVersion"] = "5"
    with pytest.raises(ApiError) as info:
        await async_client.create(model(Service, body))
    assert "resourceVersion should not be set" in str(info.value.status.message)


# ---- watch -----------------------------------------------------------------------------------


async def collect(events: Any, count: int) -> list[tuple[str, str, str]]:
    """The first ``count`` watch events as (type, name, resourceVersion)."""
    result: list[tuple[str, str, str]] = []
    async for kind, obj in events:
        result.append((kind, meta(obj, "name"), meta(obj, "resourceVersion")))
        if len(result) == count:
            break
    return result


async def test_watch_replays_existing_objects_as_added(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    stored = apiserver.seed(service_manifest("a"), service_manifest("b"))
    events = await asyncio.wait_for(collect(async_client.watch(Service), 2), 5)
    assert events == [
        ("ADDED", o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in stored
    ]


async def test_watch_streams_live_changes_with_resource_versions(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    watching = asyncio.create_task(collect(async_client.watch(Service), 3))
    await apiserver.wait_for(lambda: apiserver.request_log.count(verb="watch") == 1)
    created = await async_client.create(service("web"))
    patched = await async_client.patch(Service.Status, "web", ingress("192.0.2.1"))
    await async_client.delete(Service, "web")
    events = await asyncio.wait_for(watching, 5)
    assert [kind for kind, _, _ in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[0][2] == meta(created, "resourceVersion")
    assert events[1][2] == meta(patched, "resourceVersion")
    assert int(events[2][2]) > int(events[1][2])


async def test_watch_resumes_after_a_resource_version(async_client: AsyncClient) -> None:
    first = await async_client.create(service("a"))
    await async_client.create(service("b"))
    await async_client.delete(Service, "a")
    since = meta(first, "resourceVersion")
    events = await asyncio.wait_for(
        collect(async_client.watch(Service, resource_version=since), 2), 5
    )
    assert [(kind, name) for kind, name, _ in events] == [("ADDED", "b"), ("DELETED", "a")]


async def test_watch_from_a_compacted_resource_version_is_expired(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    created = await async_client.create(service("a"))
    await async_client.create(service("b"))
    apiserver.compact()
    since = meta(created, "resourceVersion")
    with pytest.raises(ApiError) as info:
        await asyncio.wait_for(collect(async_client.watch(Service, resource_version=since), 1), 5)
    assert (info.value.status.code, info.value.status.reason) == (410, "Expired")


async def test_watch_history_is_bounded(async_client: AsyncClient) -> None:
    async with ApiServerEmulator(watch_cache_size=2) as small:
        await small.start()
        client = AsyncClient(kube_config(small.base_url), trust_env=False)
        first = await client.create(service("a"))
        for name in ("b", "c", "d"):
            await client.create(service(name))
        since = meta(first, "resourceVersion")
        with pytest.raises(ApiError) as info:
            await asyncio.wait_for(collect(client.watch(Service, resource_version=since), 1), 5)
        await client.close()
    assert info.value.status.code == 410


async def test_watch_label_selector_turns_leaving_into_deleted(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    apiserver.seed(service_manifest("a", labels={"app": "x"}), service_manifest("b"))
    watching = asyncio.create_task(collect(async_client.watch(Service, labels={"app": "x"}), 3))
    await apiserver.wait_for(lambda: apiserver.request_log.count(verb="watch") == 1)
    await async_client.patch(Service, "b", {"metadata": {"labels": {"app": "x"}}})
    await async_client.patch(Service, "a", {"metadata": {"labels": {"app": "y"}}})
    events = await asyncio.wait_for(watching, 5)
    assert [(kind, name) for kind, name, _ in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]


async def test_watch_in_a_namespace_sees_only_it(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    apiserver.seed(service_manifest("a", "one"), service_manifest("b", "two"))
    events = await asyncio.wait_for(collect(async_client.watch(Service, namespace="two"), 1), 5)
    await async_client.create(service("c", "one"))
    await async_client.create(service("d", "two"))
    more = await asyncio.wait_for(
        collect(async_client.watch(Service, namespace="two", resource_version=events[0][2]), 1), 5
    )
    assert [name for _, name, _ in events + more] == ["b", "d"]


async def test_watch_timeout_seconds_ends_the_stream(
    apiserver: ApiServerEmulator, raw: httpx2.AsyncClient
) -> None:
    apiserver.seed(service_manifest("a"))
    lines = []
    async with raw.stream(
        "GET", "/api/v1/services", params={"watch": "true", "timeoutSeconds": "0.2"}
    ) as response:
        async for line in response.aiter_lines():
            lines.append(json.loads(line)["type"])
    assert lines == ["ADDED"]


async def test_sync_watch_works_from_a_thread(
    apiserver: ApiServerEmulator, sync_client: Client
) -> None:
    apiserver.seed(service_manifest("a"), service_manifest("b"))

    def first_two() -> list[tuple[str, str]]:
        stream = sync_client.watch(Service, namespace="default")
        return [(kind, meta(obj, "name")) for kind, obj in itertools.islice(stream, 2)]

    assert await asyncio.to_thread(first_two) == [("ADDED", "a"), ("ADDED", "b")]


# ---- CRDs, Events, Leases --------------------------------------------------------------------


async def test_metallb_crds_are_discoverable(raw: httpx2.AsyncClient) -> None:
    groups = (await raw.get("/apis")).json()["groups"]
    resources = (await raw.get("/apis/metallb.io/v1beta1")).json()["resources"]
    assert "metallb.io" in [group["name"] for group in groups]
    assert {r["name"] for r in resources} == {
        "ipaddresspools",
        "ipaddresspools/status",
        "l2advertisements",
        "l2advertisements/status",
        "servicel2statuses",
        "servicel2statuses/status",
    }
    assert {r["kind"] for r in resources} == {"IPAddressPool", "L2Advertisement", "ServiceL2Status"}


async def test_generic_resources_work_from_the_crds(async_client: AsyncClient) -> None:
    await async_load_in_cluster_generic_resources(async_client)
    ip_address_pool = get_generic_resource("metallb.io/v1beta1", "IPAddressPool")  # type: ignore[no-untyped-call]
    assert ip_address_pool is not None
    await async_client.create(ip_address_pool.from_dict(pool("p", "192.0.2.0/28")))
    counters = {"status": {"assignedIPv4": 1, "availableIPv4": 15}}
    patched = await async_client.patch(
        ip_address_pool.Status, "p", counters, namespace="metallb-system"
    )
    assert patched.status == counters["status"]
    assert patched["spec"] == {"addresses": ["192.0.2.0/28"]}


async def test_ip_address_pool_spec_write_leaves_status(
    apiserver: ApiServerEmulator, raw: httpx2.AsyncClient
) -> None:
    apiserver.seed(pool("p", "192.0.2.0/28") | {"status": {"assignedIPv4": 3}})
    response = await raw.patch(
        "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/p",
        content=json.dumps({"spec": {"addresses": ["192.0.2.0/29"]}, "status": {}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.json()["status"] == {"assignedIPv4": 3}
    assert response.json()["spec"]["addresses"] == ["192.0.2.0/29"]


async def test_ip_address_pool_without_addresses_is_invalid(raw: httpx2.AsyncClient) -> None:
    body = pool("p")
    del body["spec"]["addresses"]
    response = await raw.post(
        "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools", json=body
    )
    assert response.status_code == 422


async def test_l2advertisement_is_served(
    apiserver: ApiServerEmulator, raw: httpx2.AsyncClient
) -> None:
    body = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "l2"},
        "spec": {"ipAddressPools": ["p"], "interfaces": ["eth0"]},
    }
    response = await raw.post(
        "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements", json=body
    )
    assert response.status_code == 201
    stored = apiserver.read("metallb.io/v1beta1/l2advertisements", "metallb-system", "l2")
    assert stored is not None
    assert stored["spec"]["interfaces"] == ["eth0"]


async def test_version_is_the_emulated_release(raw: httpx2.AsyncClient) -> None:
    version = (await raw.get("/version")).json()
    assert (version["major"], version["minor"]) == ("1", "33")


async def test_a_created_crd_is_served_at_once(raw: httpx2.AsyncClient) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Cluster",
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    assert (
        await raw.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    ).status_code == 201
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    response = await raw.post("/apis/example.com/v1/widgets", json=widget)
    assert response.status_code == 201


async def test_event_series_update(async_client: AsyncClient) -> None:
    await async_client.create(event("web.1"))
    series = EventSeries(count=2, lastObservedTime=NOW)
    updated = await async_client.patch(
        Event, "web.1", {"series": series.to_dict()}, patch_type=PatchType.MERGE
    )
    assert d(updated)["series"]["count"] == 2
    assert d(updated)["reason"] == "IPAllocated"


@pytest.mark.parametrize(
    "overrides",
    [
        {"eventTime": None},
        {"reportingController": None},
        {"reportingInstance": None},
        {"action": None},
        {"type": "Bad"},
        {"note": "x" * 1025},
        {"series": EventSeries(count=1, lastObservedTime=NOW)},
    ],
    ids=["eventTime", "controller", "instance", "action", "type", "note", "series"],
)
async def test_invalid_event_is_refused(
    async_client: AsyncClient, overrides: dict[str, Any]
) -> None:
    with pytest.raises(ApiError) as info:
        await async_client.create(event("web.1", **overrides))
    assert info.value.status.code == 422


async def test_lease_renewal_race_has_one_winner(async_client: AsyncClient) -> None:
    held = LeaseSpec(holderIdentity="a", leaseDurationSeconds=2, renewTime=NOW)
    created = await async_client.create(Lease(metadata=ObjectMeta(name="l"), spec=held))
    rv = meta(created, "resourceVersion")
    take = {"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "b"}}
    steal = {"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "c"}}
    won = await async_client.patch(Lease, "l", take, patch_type=PatchType.MERGE)
    with pytest.raises(ApiError) as info:
        await async_client.patch(Lease, "l", steal, patch_type=PatchType.MERGE)
    assert spec(won, "holderIdentity") == "b"
    assert info.value.status.code == 409


# ---- Services, Namespaces, deletion -----------------------------------------------------------


async def test_service_gets_a_single_stack_cluster_ip_by_default(async_client: AsyncClient) -> None:
    created = await async_client.create(service("web"))
    assert spec(created, "ipFamilies") == ["IPv4"]
    assert spec(created, "ipFamilyPolicy") == "SingleStack"
    assert spec(created, "clusterIP") == spec(created, "clusterIPs")[0]
    assert spec(created, "externalTrafficPolicy") == "Cluster"


async def test_require_dual_stack_gets_two_cluster_ips(async_client: AsyncClient) -> None:
    created = await async_client.create(service("web", ipFamilyPolicy="RequireDualStack"))
    assert spec(created, "ipFamilies") == ["IPv4", "IPv6"]
    assert [":" in ip for ip in spec(created, "clusterIPs")] == [False, True]


async def test_cluster_ips_are_unique(async_client: AsyncClient) -> None:
    first = await async_client.create(service("a"))
    second = await async_client.create(service("b"))
    assert spec(first, "clusterIP") != spec(second, "clusterIP")


async def test_taken_cluster_ip_is_invalid(async_client: AsyncClient) -> None:
    first = await async_client.create(service("a"))
    with pytest.raises(ApiError) as info:
        await async_client.create(service("b", clusterIP=spec(first, "clusterIP")))
    assert info.value.status.code == 422


async def test_ingress_ip_mode_defaults_to_vip(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    patched = await async_client.patch(Service.Status, "web", status)
    assert d(patched)["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1", "ipMode": "VIP"}]


async def test_invalid_ingress_ip_is_refused(async_client: AsyncClient) -> None:
    await async_client.create(service("web"))
    with pytest.raises(ApiError) as info:
        await async_client.patch(Service.Status, "web", ingress("192.0.2.300"))
    assert info.value.status.code == 422


async def test_service_without_ports_is_refused(async_client: AsyncClient) -> None:
    with pytest.raises(ApiError) as info:
        await async_client.create(service("web", ports=()))
    assert info.value.status.code == 422


async def test_namespace_gets_its_name_label_and_active_phase(async_client: AsyncClient) -> None:
    created = await async_client.create(Namespace(metadata=ObjectMeta(name="team")))
    assert meta(created, "labels") == {"kubernetes.io/metadata.name": "team"}
    assert d(created)["status"] == {"phase": "Active"}


async def test_deleting_a_namespace_deletes_its_objects(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    await async_client.create(Namespace(metadata=ObjectMeta(name="team")))
    apiserver.seed(service_manifest("a", "team"), service_manifest("b", "default"))
    await async_client.delete(Namespace, "team")
    names = [meta(s, "name") async for s in async_client.list(Service, namespace="*")]
    assert names == ["b"]


async def test_finalizers_hold_deletion_until_cleared(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    apiserver.seed(
        service_manifest("web")
        | {"metadata": {"name": "web", "namespace": "default", "finalizers": ["x/y"]}}
    )
    await async_client.delete(Service, "web")
    held = await async_client.get(Service, "web")
    await async_client.patch(Service, "web", {"metadata": {"finalizers": None}})
    assert meta(held, "deletionTimestamp") is not None
    assert apiserver.read("v1/services", "default", "web") is None


async def test_delete_with_stale_precondition_is_conflict(
    apiserver: ApiServerEmulator, raw: httpx2.AsyncClient
) -> None:
    apiserver.seed(service_manifest("web"))
    response = await raw.request(
        "DELETE",
        "/api/v1/namespaces/default/services/web",
        json={"preconditions": {"resourceVersion": "1"}},
    )
    assert response.status_code == 409


async def test_deletecollection_follows_the_label_selector(
    apiserver: ApiServerEmulator, raw: httpx2.AsyncClient
) -> None:
    apiserver.seed(
        service_manifest("a", labels={"app": "x"}),
        service_manifest("b", labels={"app": "y"}),
    )
    # lightkube's deletecollection takes no selector: plain HTTP.
    response = await raw.delete("/api/v1/namespaces/default/services?labelSelector=app%3Dx")
    assert response.status_code == 200
    assert [o["metadata"]["name"] for o in apiserver.list_stored("v1/services")] == ["b"]


async def test_list_pages_with_limit_and_continue(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    apiserver.seed(*(service_manifest(f"s{i:02}") for i in range(7)))
    names = [meta(s, "name") async for s in async_client.list(Service, chunk_size=3)]
    assert names == [f"s{i:02}" for i in range(7)]
    assert apiserver.request_log.count(verb="list") == 3


# ---- faults and the request log ---------------------------------------------------------------


async def test_refusing_outage_refuses_connections_until_it_ends(
    apiserver: ApiServerEmulator, raw: httpx2.AsyncClient
) -> None:
    await apiserver.go_away("refuse")
    with pytest.raises(httpx2.ConnectError):
        await raw.get("/api/v1/services")
    await apiserver.come_back()
    assert (await raw.get("/api/v1/services")).status_code == 200


async def test_503_outage_answers_service_unavailable(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    async with apiserver.unavailable("503"):
        with pytest.raises(ApiError) as info:
            await async_client.get(Service, "web")
    assert (info.value.status.code, info.value.status.reason) == (503, "ServiceUnavailable")


@pytest.mark.parametrize("mode", ["refuse", "503"])
async def test_outage_cuts_open_watches(
    apiserver: ApiServerEmulator, async_client: AsyncClient, mode: OutageMode
) -> None:
    watching = asyncio.create_task(collect(async_client.watch(Service), 1))
    await apiserver.wait_for(lambda: apiserver.request_log.count(verb="watch") == 1)
    await apiserver.go_away(mode)
    with pytest.raises(httpx2.HTTPError):
        await asyncio.wait_for(watching, 5)


async def test_timed_outage_ends_by_itself(
    apiserver: ApiServerEmulator, raw: httpx2.AsyncClient
) -> None:
    await apiserver.go_away("refuse", seconds=0.1)
    await apiserver.wait_for(lambda: apiserver.available, timeout=5)
    assert (await raw.get("/api/v1/services")).status_code == 200


async def test_first_status_write_of_each_object_conflicts_once(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    apiserver.seed(service_manifest("a"), service_manifest("b"))
    apiserver.conflict_on_first_status_write()
    outcomes = []
    for name in ("a", "b", "a", "b"):
        try:
            await async_client.patch(Service.Status, name, ingress("192.0.2.1"))
            outcomes.append("ok")
        except ApiError as error:
            outcomes.append(str(error.status.code))
    assert outcomes == ["409", "409", "ok", "ok"]


async def test_injected_conflict_moves_the_resource_version(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    (stored,) = apiserver.seed(service_manifest("a"))
    apiserver.conflict_on_first_status_write()
    with pytest.raises(ApiError):
        await async_client.patch(Service.Status, "a", ingress("192.0.2.1"))
    current = apiserver.read("v1/services", "default", "a")
    assert current is not None
    assert current["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]


async def test_injected_conflict_without_touch_keeps_the_resource_version(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    (stored,) = apiserver.seed(service_manifest("a"))
    apiserver.conflict_on_first_status_write(touch=False)
    with pytest.raises(ApiError):
        await async_client.patch(Service.Status, "a", ingress("192.0.2.1"))
    assert apiserver.read("v1/services", "default", "a") == stored


async def test_request_log_counts_per_verb_and_path(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    await async_client.create(service("web"))
    await async_client.patch(Service.Status, "web", ingress("192.0.2.1"))
    await async_client.patch(Service.Status, "web", ingress("192.0.2.2"))
    with pytest.raises(ApiError):
        await async_client.get(Service, "ghost")
    log = apiserver.request_log
    assert log.by_verb() == {
        ("create", "services"): 1,
        ("patch", "services/status"): 2,
        ("get", "services"): 1,
    }
    assert log.by_path()["PATCH", "/api/v1/namespaces/default/services/web/status"] == 2
    assert log.count(status=404) == 1
    assert log.count(verb="patch", subresource=None) == 0


async def test_kmock_reaction_answers_instead_and_changes_nothing(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    apiserver.seed(service_manifest("web"))
    apiserver["patch /api/v1/namespaces/default/services/web/status"] << api_error(500)
    with pytest.raises(ApiError) as info:
        await async_client.patch(Service.Status, "web", ingress("192.0.2.1"))
    stored = apiserver.read("v1/services", "default", "web")
    assert info.value.status.code == 500
    assert stored is not None
    assert "ingress" not in stored["status"]["loadBalancer"]


async def test_kmock_reaction_sliced_to_the_first_request_answers_once(
    apiserver: ApiServerEmulator, async_client: AsyncClient
) -> None:
    apiserver.seed(service_manifest("web"))
    apiserver["patch", "/api/v1/namespaces/default/services/web/status"][:1] << api_error(500)
    outcomes: list[int | None] = []
    for _ in range(2):
        try:
            await async_client.patch(Service.Status, "web", ingress("192.0.2.1"))
            outcomes.append(200)
        except ApiError as error:
            outcomes.append(error.status.code)
    assert outcomes == [500, 200]


# ---- configuration and the standalone process -------------------------------------------------


async def test_kubeconfig_file_works_with_lightkube(
    apiserver: ApiServerEmulator, kubeconfig_path: Path
) -> None:
    apiserver.seed(service_manifest("web"))
    client = AsyncClient(KubeConfig.from_file(kubeconfig_path), trust_env=False)
    fetched = await client.get(Service, "web")
    await client.close()
    assert meta(fetched, "name") == "web"


async def test_sync_client_works_from_a_thread(sync_client: Client) -> None:
    created = await asyncio.to_thread(sync_client.create, service("web"))
    fetched = await asyncio.to_thread(sync_client.get, Service, "web")
    assert meta(fetched, "uid") == meta(created, "uid")


def test_standalone_process_serves_lightkube(apiserver_process: EmulatorProcess) -> None:
    client = Client(kube_config(apiserver_process.url), trust_env=False)
    client.create(service("web"))
    client.patch(Service.Status, "web", ingress("192.0.2.1"))
    fetched = client.get(Service, "web")
    client.close()
    log = apiserver_process.control.requests()
    assert ips(fetched)[0] == "192.0.2.1"
    assert log.by_verb() == {
        ("create", "services"): 1,
        ("patch", "services/status"): 1,
        ("get", "services"): 1,
    }


def test_standalone_process_faults_through_the_control_api(
    apiserver_process: EmulatorProcess,
) -> None:
    control = apiserver_process.control
    client = Client(kube_config(apiserver_process.url), trust_env=False)
    control.seed(service_manifest("web"))
    control.conflict_on_first_status_write()
    with pytest.raises(ApiError) as conflict:
        client.patch(Service.Status, "web", ingress("192.0.2.1"))
    control.go_away("503")
    with pytest.raises(ApiError) as unavailable:
        client.get(Service, "web")
    control.come_back()
    client.patch(Service.Status, "web", ingress("192.0.2.1"))
    client.close()
    last = control.history("v1/services", "default", "web")[-1]
    assert (conflict.value.status.code, unavailable.value.status.code) == (409, 503)
    assert last is not None
    assert last["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1", "ipMode": "VIP"}]


def test_standalone_process_comes_back_after_a_refusing_outage(
    apiserver_process: EmulatorProcess,
) -> None:
    control = apiserver_process.control
    control.go_away("refuse", seconds=1.0)
    refused = not control.healthy()
    client = Client(kube_config(apiserver_process.url), trust_env=False)
    for _ in range(400):
        if control.healthy():
            break
        time.sleep(0.025)
    names = [meta(s, "name") for s in client.list(Service)]
    client.close()
    assert refused
    assert names == []


def test_standalone_process_exits_zero_on_sigterm(tmp_path: Path) -> None:
    process = EmulatorProcess.start()
    assert process.stop() == 0  # one SIGTERM


def test_standalone_process_writes_a_kubeconfig_for_the_printed_url(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    args = ["--kubeconfig", str(kubeconfig), "--namespace", "metallb-system"]
    with EmulatorProcess.start(args=args, url_host="localhost") as process:
        client = Client(KubeConfig.from_file(kubeconfig), trust_env=False)
        namespaces = [meta(ns, "name") for ns in client.list(Namespace)]
        default_namespace = client.namespace
        client.close()
    assert process.url.startswith("http://localhost:")
    assert namespaces == []
    assert default_namespace == "metallb-system"


@pytest.fixture
def network_namespace() -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to this one by a veth pair: (name, our IP, its IP)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    tag = os.getpid() % 10000
    name, outside, inside = f"k8semu{tag}", f"ke{tag}o", f"ke{tag}i"
    here, there = f"10.251.{tag % 250}.1", f"10.251.{tag % 250}.2"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)
    ip("netns", "add", name)
    try:
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", name)
        ip("addr", "add", f"{here}/30", "dev", outside)
        ip("link", "set", outside, "up")
        ip("-n", name, "addr", "add", f"{there}/30", "dev", inside)
        ip("-n", name, "link", "set", inside, "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield name, here, there
    finally:
        subprocess.run(["ip", "link", "delete", outside], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@pytest.mark.netns
def test_standalone_process_in_a_network_namespace_is_reachable(
    network_namespace: tuple[str, str, str],
) -> None:
    name, _, there = network_namespace
    prefix = ["ip", "netns", "exec", name]
    with EmulatorProcess.start(host=there, prefix=prefix) as process:
        client = Client(kube_config(process.url), trust_env=False)
        client.create(service("web"))
        fetched = client.get(Service, "web")
        client.close()
        log = process.control.requests()
    assert process.url.startswith(f"http://{there}:")
    assert meta(fetched, "name") == "web"
    assert log.count(verb="create") == 1


async def test_write_latency_delays_writes_to_the_chosen_resource_only(
    apiserver: ApiServerEmulator,
) -> None:
    import time as _time

    from announcers.kubernetes.client import CONFIG_MAP, LEASE

    from .controller_kit import client_for

    api = client_for(apiserver)
    try:
        apiserver.write_latency(0.3, 0.3, resource="leases")
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "l", "namespace": "default"}, "spec": {}}  # fmt: skip
        started = _time.monotonic()
        await api.create(LEASE, lease)
        slow = _time.monotonic() - started
        started = _time.monotonic()
        await api.get(LEASE, "l", namespace="default")
        await api.create(
            CONFIG_MAP,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "default"},
            },
        )
        fast = _time.monotonic() - started
        apiserver.write_latency(0, 0)
        assert slow >= 0.3
        assert fast < 0.3
        with pytest.raises(ValueError, match="write latency"):
            apiserver.write_latency(2, 1)
    finally:
        await api.close()
