"""The adapter's pure parts: conversions, patches, Event bookkeeping, backoff."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

import metallb_core as core
from announcers.kubernetes.convert import (
    offending_object,
    read_config,
)
from announcers.kubernetes.informer import Backoff, is_older
from announcers.kubernetes.status import (
    NOTE_LIMIT,
    CreateEvent,
    EventBook,
    UpdateSeries,
    annotation_patch,
    pool_status_patch,
    reference,
    status_patch,
)
from metallb_core.vocabulary import ALLOCATED_FROM_POOL, ingress_ips, object_key

from .controller_kit import configmap, layer2, namespace, pool

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def svc(*ips: str, pool_name: str | None = None, rv: str = "7", **entry: Any) -> dict[str, Any]:
    notes = {} if pool_name is None else {ALLOCATED_FROM_POOL: pool_name}
    return {
        "metadata": {
            "namespace": "web",
            "name": "nginx",
            "resourceVersion": rv,
            "annotations": notes,
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip, **entry} for ip in ips]}},
    }


def outcome(*ips: str, pool_name: str | None = "p") -> core.Convergence:
    return core.Convergence(key="web/nginx", ingress=tuple(ips), pool=pool_name)


# -- status and annotation patches ---------------------------------------------------------------


def test_status_patch_is_none_when_the_status_already_says_it() -> None:
    assert status_patch(svc("10.0.0.1", ipMode="VIP"), outcome("10.0.0.1")) is None


def test_status_patch_tolerates_a_server_that_drops_ip_mode() -> None:
    assert status_patch(svc("10.0.0.1"), outcome("10.0.0.1")) is None


def test_status_patch_carries_the_resource_version() -> None:
    patch = status_patch(svc(), outcome("10.0.0.1"))
    assert patch == {
        "metadata": {"resourceVersion": "7"},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1", "ipMode": "VIP"}]}},
    }


def test_status_patch_keeps_allocation_order() -> None:
    patch = status_patch(svc("10.0.0.1"), outcome("fd00::1", "10.0.0.1"))
    assert patch is not None
    assert [e["ip"] for e in patch["status"]["loadBalancer"]["ingress"]] == ["fd00::1", "10.0.0.1"]


def test_status_patch_clears_with_null() -> None:
    patch = status_patch(svc("10.0.0.1"), outcome(pool_name=None))
    assert patch is not None
    assert patch["status"] == {"loadBalancer": {"ingress": None}}


def test_status_patch_rewrites_foreign_fields_in_our_entries() -> None:
    assert status_patch(svc("10.0.0.1", hostname="x"), outcome("10.0.0.1")) is not None


def test_nothing_is_written_for_a_service_that_is_not_ours() -> None:
    foreign = core.Convergence(key="web/nginx", ingress=None, pool=None)
    assert (status_patch(svc("1.2.3.4"), foreign), annotation_patch(svc(), foreign)) == (None, None)


def test_annotation_patch_sets_then_removes_the_pool_and_the_inputs_digest() -> None:
    digest = core.inputs_digest(svc())
    assert annotation_patch(svc(), outcome("10.0.0.1")) == {
        "metadata": {"annotations": {ALLOCATED_FROM_POOL: "p", core.INPUTS_ANNOTATION: digest}}
    }
    written = svc(pool_name="p")
    written["metadata"]["annotations"][core.INPUTS_ANNOTATION] = digest
    assert annotation_patch(written, outcome(pool_name=None)) == {
        "metadata": {"annotations": {ALLOCATED_FROM_POOL: None, core.INPUTS_ANNOTATION: None}}
    }
    assert annotation_patch(written, outcome("10.0.0.1")) is None
    # Same addresses, other inputs: only the digest is rewritten.
    written["metadata"]["labels"] = {"tier": "gold"}
    patch = annotation_patch(written, outcome("10.0.0.1"))
    assert patch is not None
    assert patch["metadata"]["annotations"][core.INPUTS_ANNOTATION] not in (digest, None)


def test_pool_status_patch_is_exact_and_none_when_current() -> None:
    usage = core.PoolUsage(assigned_ipv4=0, assigned_ipv6=3, available_ipv4=0, available_ipv6=2**64)
    patch = pool_status_patch({"status": {}}, usage)
    assert patch is not None
    assert patch["status"]["availableIPv6"] == 2**64
    assert pool_status_patch({"status": patch["status"]}, usage) is None


def test_ingress_ips_skip_hostname_entries() -> None:
    service = {"status": {"loadBalancer": {"ingress": [{"hostname": "a"}, {"ip": "10.0.0.1"}]}}}
    assert ingress_ips(service) == ["10.0.0.1"]


def test_object_key_of_namespaced_and_cluster_objects() -> None:
    assert object_key(svc()) == "web/nginx"
    assert object_key(namespace("web")) == "web"


# -- Events ---------------------------------------------------------------------------------------


def _ref(name: str = "nginx", uid: str = "u1") -> dict[str, Any]:
    meta = {"namespace": "web", "name": name, "uid": uid}
    return reference({"metadata": meta}, api_version="v1", kind="Service")


WARN = core.Event(type="Warning", reason="AllocationFailed", message="no available IPs")


def test_first_event_is_a_create_with_every_required_field() -> None:
    write = EventBook(instance="c-0").record(_ref(), WARN, NOW)
    assert isinstance(write, CreateEvent)
    body = write.body
    assert (body["apiVersion"], body["kind"], body["metadata"]["namespace"]) == (
        "events.k8s.io/v1",
        "Event",
        "web",
    )
    assert (body["type"], body["reason"], body["note"]) == (
        "Warning",
        "AllocationFailed",
        "no available IPs",
    )
    assert body["regarding"] == {
        "apiVersion": "v1",
        "kind": "Service",
        "name": "nginx",
        "namespace": "web",
        "uid": "u1",
    }
    assert body["eventTime"] == "2026-01-02T03:04:05.000000Z"
    assert (body["reportingController"], body["reportingInstance"]) == (
        "metallb-core/controller",
        "c-0",
    )
    assert re.fullmatch(r"nginx\.[0-9a-f]+", body["metadata"]["name"])


def test_repeats_update_the_series_of_the_first() -> None:
    book = EventBook(instance="c-0")
    first = book.record(_ref(), WARN, NOW)
    later = [book.record(_ref(), WARN, NOW + datetime.timedelta(seconds=s)) for s in (1, 2)]
    assert isinstance(first, CreateEvent)
    assert all(isinstance(w, UpdateSeries) for w in later)
    assert [w.patch["series"]["count"] for w in later if isinstance(w, UpdateSeries)] == [2, 3]
    assert {w.name for w in later if isinstance(w, UpdateSeries)} == {
        first.body["metadata"]["name"]
    }


def test_a_different_message_or_object_is_a_new_event() -> None:
    book = EventBook(instance="c-0")
    book.record(_ref(), WARN, NOW)
    other = core.Event(type="Warning", reason="AllocationFailed", message="something else")
    assert isinstance(book.record(_ref(), other, NOW), CreateEvent)
    assert isinstance(book.record(_ref(uid="u2"), WARN, NOW), CreateEvent)


def test_forgotten_event_is_created_again() -> None:
    book = EventBook(instance="c-0")
    first = book.record(_ref(), WARN, NOW)
    book.forget(first.key)
    assert isinstance(book.record(_ref(), WARN, NOW), CreateEvent)


def test_book_forgets_the_oldest_beyond_capacity() -> None:
    book = EventBook(instance="c-0", capacity=2)
    for name in ("a", "b", "c"):
        book.record(_ref(name), WARN, NOW)
    assert len(book) == 2
    assert isinstance(book.record(_ref("a"), WARN, NOW), CreateEvent)
    assert isinstance(book.record(_ref("c"), WARN, NOW), UpdateSeries)


def test_long_notes_are_cut_to_the_api_limit() -> None:
    event = core.Event(type="Warning", reason="X", message="y" * 5000)
    write = EventBook(instance="c-0").record(_ref(), event, NOW)
    assert isinstance(write, CreateEvent)
    assert len(write.body["note"]) == NOTE_LIMIT


# -- configuration --------------------------------------------------------------------------------


def test_pools_are_read_in_name_order() -> None:
    reading = read_config([pool("b", "10.0.1.0/24"), pool("a", "10.0.0.0/24")], [], [], None)
    assert reading.config is not None
    assert [p.name for p in reading.config.pools] == ["a", "b"]


def test_pools_win_over_the_configmap() -> None:
    cm = configmap({"address-pools": [layer2("old", "10.9.0.0/24")]})
    reading = read_config([pool("a", "10.0.0.0/24")], [], [], cm)
    assert reading.source == "crds"
    assert reading.ignored is cm
    assert reading.config is not None
    assert [p.name for p in reading.config.pools] == ["a"]


def test_configmap_is_read_when_no_pool_exists() -> None:
    cm = configmap({"address-pools": [layer2("old", "10.9.0.0/24")]})
    reading = read_config([], [], [], cm)
    assert reading.source == "configmap"
    assert reading.config is not None
    assert [p.name for p in reading.config.pools] == ["old"]


def test_nothing_configured_is_no_configuration() -> None:
    assert read_config([], [], [], None) == read_config([], [], [], None, previous="configmap")
    assert read_config([], [], [], None).config is None


def test_deleting_the_last_pool_is_a_configuration_without_pools() -> None:
    reading = read_config([], [], [], None, previous="crds")
    assert reading.config == core.Config()


def test_invalid_pool_names_its_object() -> None:
    bad = pool("z-bad", "10.0.0.0/16")
    reading = read_config([pool("a", "10.0.0.0/24"), bad], [], [], None)
    assert reading.config is None
    assert reading.offender is bad
    assert reading.error == (
        'CIDR "10.0.0.0/16" in pool "z-bad" overlaps with already defined CIDR "10.0.0.0/24"'
    )


def test_invalid_advertisement_is_the_offender() -> None:
    ad = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "l2", "namespace": "metallb-system"},
        "spec": {"ipAddressPools": ["a", "a"]},
    }
    reading = read_config([pool("a", "10.0.0.0/24")], [ad], [], None)
    assert reading.offender is ad


def test_namespaces_resolve_selectors_and_are_never_blamed() -> None:
    pinned = pool(
        "a",
        "10.0.0.0/24",
        serviceAllocation={"namespaceSelectors": [{"matchLabels": {"team": "x"}}]},
    )
    reading = read_config([pinned], [], [namespace("web", team="x")], None)
    assert reading.config is not None
    allocation = reading.config.pools[0].service_allocation
    assert allocation is not None
    assert set(allocation.namespaces) == {"web"}
    assert reading.offender is None


def test_offender_is_found_by_the_kind_and_name_the_core_reports() -> None:
    first, second = pool("a", "10.0.0.0/24"), pool("b", "10.0.0.0/24")
    error = core.ConfigError("x", kind="IPAddressPool", name="b")
    assert offending_object([first, second], error) is second
    assert offending_object([first], error) is None


def test_unparsable_configmap_yaml_is_a_config_error() -> None:
    cm = configmap("address-pools: [oops")
    reading = read_config([], [], [], cm)
    assert reading.offender is cm
    assert reading.error is not None
    assert reading.error.startswith("could not parse config: ")


@pytest.mark.parametrize("document", ["- a list", "42"])
def test_configmap_that_is_not_a_mapping_is_a_config_error(document: str) -> None:
    reading = read_config([], [], [], configmap(document))
    assert reading.error == "could not parse config: the config key is not a YAML mapping"


# -- informer helpers -----------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=0.25, cap=1.0, jitter=0.0)
    assert [backoff.next() for _ in range(4)] == [0.25, 0.5, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.25


def test_backoff_jitter_stays_within_its_fraction() -> None:
    low = Backoff(initial=1.0, jitter=0.1, rng=lambda: 0.0).next()
    high = Backoff(initial=1.0, jitter=0.1, rng=lambda: 1.0).next()
    assert low == pytest.approx(0.9)
    assert high == pytest.approx(1.1)


def test_an_older_version_of_the_same_object_is_recognised() -> None:
    def obj(rv: str, uid: str = "u") -> dict[str, Any]:
        return {"metadata": {"resourceVersion": rv, "uid": uid}}

    assert is_older(obj("9"), obj("10"))
    assert not is_older(obj("10"), obj("9"))
    assert not is_older(obj("9", "other"), obj("10"))
    assert not is_older(obj("abc"), obj("10"))
