"""Configuration end to end: live edits, invalid objects, the source rule, pools removed."""

from __future__ import annotations

import ipaddress

from announcers.kubernetes.client import CONFIG_MAP, IP_ADDRESS_POOL, NAMESPACE, SERVICE
from tests.support.emulator import ApiServerEmulator, api_error

from .controller_kit import (
    NS,
    POOLS,
    client_for,
    configmap,
    events_about,
    every_address,
    holding,
    ips_of,
    layer2,
    namespace,
    pool,
    quiet,
    reasons,
    running,
    service,
)


async def test_configmap_edit_applies_live(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), configmap({"address-pools": [layer2("a", "192.0.2.0/31")]}))
    apiserver.seed(*(service(f"s{i}") for i in range(3)))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await apiserver.wait_for(lambda: events_about(apiserver, "s2"))
        assert ips_of(apiserver, "s2") == ()
        edited = {"address-pools": [layer2("a", "192.0.2.0/31"), layer2("b", "198.51.100.7/32")]}
        api = client_for(apiserver)
        await api.patch(CONFIG_MAP, "config", configmap(edited), namespace=NS)
        await apiserver.wait_for(lambda: ips_of(apiserver, "s2"))
        await api.close()
    assert ips_of(apiserver, "s2") == ("198.51.100.7",)


async def test_pool_edit_applies_live(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), pool("a", "192.0.2.0/31"))
    apiserver.seed(*(service(f"s{i}") for i in range(3)))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await apiserver.wait_for(lambda: events_about(apiserver, "s2"))
        api = client_for(apiserver)
        grown = {"spec": {"addresses": ["192.0.2.0/31", "192.0.2.9/32"]}}
        await api.patch(IP_ADDRESS_POOL, "a", grown, namespace=NS)
        await apiserver.wait_for(lambda: ips_of(apiserver, "s2"))
        await api.close()
    assert ips_of(apiserver, "s2") == ("192.0.2.9",)
    assert [ips_of(apiserver, "s0"), ips_of(apiserver, "s1")] == [("192.0.2.0",), ("192.0.2.1",)]


async def test_a_pool_edit_seen_only_in_the_answer_to_a_status_write_applies(
    apiserver: ApiServerEmulator,
) -> None:
    """The chaos test's seed 44: the pools watch is down when the pool is edited, the
    controller writes the pool's status, and the answer carries the new addresses. That
    answer is newer than the edit's watch event, so when the watch resumes the event is
    ignored as stale: the edit must be taken from the answer itself."""
    apiserver.seed(namespace(NS), pool("a", "192.0.2.0/29"), service("s0"))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await quiet(apiserver, ctl.replica)
        assert ips_of(apiserver, "s0") == ("192.0.2.0",)
        # Every list and watch of the pools fails from now on: the edit can only be
        # learnt from the answer to the controller's own pool status write.
        apiserver["get", f"/apis/metallb.io/v1beta1/namespaces/{NS}/ipaddresspools"] << (
            api_error(503, "ServiceUnavailable", "pools are unavailable")
        )
        apiserver.drop_watches()
        apiserver.seed(pool("a", "198.51.100.0/29"))  # s0's address leaves the pool
        writes = apiserver.request_log.count(resource="ipaddresspools", subresource="status")
        api = client_for(apiserver)
        await api.create(SERVICE, service("s1"))  # a round, then a pool status write
        await apiserver.wait_for(
            lambda: (
                apiserver.request_log.count(resource="ipaddresspools", subresource="status")
                > writes
            )
        )
        await apiserver.wait_for(
            lambda: (
                ips_of(apiserver, "s0") == ("198.51.100.0",)
                and ips_of(apiserver, "s1") == ("198.51.100.1",)
            )
        )
        await api.close()


async def test_pool_status_counts_exactly(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), pool("v4", "192.0.2.0/28"), pool("v6", "2001:db8::/64"))
    apiserver.seed(
        service("a"),
        service("b"),
        service("six", annotations={"metallb.io/address-pool": "v6"}, ipFamilies=["IPv6"]),
    )
    async with running(apiserver) as ctl:
        await ctl.synced()
        await quiet(apiserver, ctl.replica)
    v4 = apiserver.read(POOLS, NS, "v4")
    v6 = apiserver.read(POOLS, NS, "v6")
    assert v4 is not None
    assert v6 is not None
    assert v4["status"] == {
        "assignedIPv4": 2,
        "assignedIPv6": 0,
        "availableIPv4": 14,
        "availableIPv6": 0,
    }
    assert v6["status"] == {
        "assignedIPv4": 0,
        "assignedIPv6": 1,
        "availableIPv4": 0,
        "availableIPv6": 2**64 - 1,
    }


async def test_pool_metrics_follow_the_allocations(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/29"))
    apiserver.seed(service("a"), service("b"))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await quiet(apiserver, ctl.replica)
        metrics = ctl.metrics
        values = {
            name: metrics.value(name, pool="p")
            for name in (
                "metallb_allocator_addresses_in_use_total",
                "metallb_allocator_addresses_total",
                "metallb_allocator_ipv4_addresses_in_use_total",
                "metallb_allocator_ipv6_addresses_total",
            )
        }
    assert values == {
        "metallb_allocator_addresses_in_use_total": 2.0,
        "metallb_allocator_addresses_total": 8.0,
        "metallb_allocator_ipv4_addresses_in_use_total": 2.0,
        "metallb_allocator_ipv6_addresses_total": 0.0,
    }


async def test_bad_pool_keeps_the_last_good_configuration(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), pool("good", "192.0.2.0/30"))
    async with running(apiserver) as ctl:
        await ctl.synced()
        api = client_for(apiserver)
        await api.create(IP_ADDRESS_POOL, pool("overlap", "192.0.2.0/24"))
        await apiserver.wait_for(
            lambda: events_about(apiserver, "overlap", NS, kind="IPAddressPool")
        )
        await api.create(SERVICE, service("web"))
        await apiserver.wait_for(lambda: ips_of(apiserver, "web"))
        stale = ctl.metrics.value("metallb_k8s_client_config_stale_bool")
        await api.close()
    (warning,) = events_about(apiserver, "overlap", NS, kind="IPAddressPool")
    assert (warning["type"], warning["reason"]) == ("Warning", "InvalidConfiguration")
    assert warning["note"].startswith(
        'CIDR "192.0.2.0/24" in pool "overlap" overlaps with already defined CIDR "192.0.2.0/30"'
    )
    assert ips_of(apiserver, "web") == ("192.0.2.0",)
    assert stale == 1.0


async def test_fixing_the_bad_pool_applies_it(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), pool("good", "192.0.2.0/32"), pool("bad", "192.0.2.0/24"))
    apiserver.seed(service("first"), service("second"))
    async with running(apiserver) as ctl:
        await ctl.synced()
        assert ctl.controller.state is None  # never valid: nothing in force, nothing written
        api = client_for(apiserver)
        await api.patch(
            IP_ADDRESS_POOL, "bad", {"spec": {"addresses": ["198.51.100.0/32"]}}, namespace=NS
        )
        await apiserver.wait_for(lambda: ips_of(apiserver, "second"))
        stale = ctl.metrics.value("metallb_k8s_client_config_stale_bool")
        await api.close()
    assert sorted([ips_of(apiserver, "first"), ips_of(apiserver, "second")]) == [
        ("192.0.2.0",),
        ("198.51.100.0",),
    ]
    assert stale == 0.0


async def test_invalid_configmap_keeps_the_last_good_one(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), configmap({"address-pools": [layer2("a", "192.0.2.0/30")]}))
    async with running(apiserver) as ctl:
        await ctl.synced()
        api = client_for(apiserver)
        await api.patch(CONFIG_MAP, "config", configmap("address-pools: [oops"), namespace=NS)
        await apiserver.wait_for(lambda: events_about(apiserver, "config", NS, kind="ConfigMap"))
        await api.create(SERVICE, service("web"))
        await apiserver.wait_for(lambda: ips_of(apiserver, "web"))
        await api.close()
    (warning,) = events_about(apiserver, "config", NS, kind="ConfigMap")
    assert warning["reason"] == "InvalidConfiguration"
    assert warning["note"].startswith("could not parse config: ")
    assert ips_of(apiserver, "web") == ("192.0.2.0",)


async def test_pools_win_over_the_configmap_with_a_warning(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(
        namespace(NS),
        configmap({"address-pools": [layer2("old", "198.51.100.0/30")]}),
        pool("new", "192.0.2.0/30"),
        service("web"),
    )
    async with running(apiserver):
        await apiserver.wait_for(lambda: ips_of(apiserver, "web"))
        await apiserver.wait_for(lambda: events_about(apiserver, "config", NS, kind="ConfigMap"))
    (warning,) = events_about(apiserver, "config", NS, kind="ConfigMap")
    assert (warning["type"], warning["reason"]) == ("Warning", "ConfigMapIgnored")
    assert ips_of(apiserver, "web") == ("192.0.2.0",)


async def test_removed_pool_moves_services_to_the_remaining_pool(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), pool("a", "192.0.2.0/31"), pool("b", "198.51.100.0/31"))
    apiserver.seed(service("s0"), service("s1"))
    async with running(apiserver) as ctl:
        await apiserver.wait_for(lambda: ips_of(apiserver, "s1"))
        assert {ips_of(apiserver, "s0"), ips_of(apiserver, "s1")} == {
            ("192.0.2.0",),
            ("192.0.2.1",),
        }
        apiserver.remove(POOLS, NS, "a")
        await apiserver.wait_for(
            lambda: ips_of(apiserver, "s1") and ips_of(apiserver, "s1")[0].startswith("198")
        )
        await apiserver.wait_for(
            lambda: ips_of(apiserver, "s0") and ips_of(apiserver, "s0")[0].startswith("198")
        )
        await quiet(apiserver, ctl.replica)
    assert sorted(every_address(apiserver)) == ["198.51.100.0", "198.51.100.1"]
    assert reasons(events_about(apiserver, "s0"))[-2:] == [
        ("Normal", "ClearAssignment"),
        ("Normal", "IPAllocated"),
    ]


async def test_removed_pool_clears_what_does_not_fit_elsewhere(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), pool("a", "192.0.2.0/30"), pool("b", "198.51.100.0/32"))
    apiserver.seed(*(service(f"s{i}") for i in range(3)))
    async with running(apiserver) as ctl:
        await apiserver.wait_for(lambda: all(ips_of(apiserver, f"s{i}") for i in range(3)))
        apiserver.remove(POOLS, NS, "a")
        await apiserver.wait_for(
            lambda: sum(bool(ips_of(apiserver, f"s{i}")) for i in range(3)) == 1
        )
        await quiet(apiserver, ctl.replica)
    addresses = every_address(apiserver)
    assert addresses == ["198.51.100.0"]
    cleared = [f"s{i}" for i in range(3) if not ips_of(apiserver, f"s{i}")]
    for name in cleared:
        assert ("Warning", "AllocationFailed") in reasons(events_about(apiserver, name))


async def test_pool_changes_never_give_an_address_twice_or_outside_the_pools(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), pool("a", "192.0.2.0/29"), pool("b", "198.51.100.0/30"))
    apiserver.seed(*(service(f"s{i}") for i in range(10)))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await quiet(apiserver, ctl.replica)
        api = client_for(apiserver)
        for addresses in (["192.0.2.4/30"], ["192.0.2.0/30", "192.0.2.6/31"], ["192.0.2.2/31"]):
            await api.patch(IP_ADDRESS_POOL, "a", {"spec": {"addresses": addresses}}, namespace=NS)
            await quiet(apiserver, ctl.replica)
            owned = [ipaddress.ip_network(n) for n in [*addresses, "198.51.100.0/30"]]
            held = every_address(apiserver)
            assert len(held) == len(set(held))
            assert all(any(ipaddress.ip_address(ip) in n for n in owned) for ip in held)
        await api.close()


async def test_no_configuration_touches_no_service(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), holding("web", ["203.0.113.9"], "elsewhere"))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await quiet(apiserver, ctl.replica)
    assert ips_of(apiserver, "web") == ("203.0.113.9",)
    assert apiserver.request_log.count(verb="patch", resource="services") == 0


async def test_refused_pool_status_is_not_resent_until_it_changes(
    apiserver: ApiServerEmulator,
) -> None:
    path = f"/apis/metallb.io/v1beta1/namespaces/{NS}/ipaddresspools/p/status"
    apiserver["patch", path] << api_error(422, "Invalid", "status.availableIPv6: out of range")
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/29"), service("a"))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await quiet(apiserver, ctl.replica)
        first = apiserver.request_log.count(resource="ipaddresspools", subresource="status")
        api = client_for(apiserver)
        await api.patch(SERVICE, "a", {"metadata": {"labels": {"x": "y"}}}, namespace="default")
        await quiet(apiserver, ctl.replica)
        same = apiserver.request_log.count(resource="ipaddresspools", subresource="status")
        await api.create(SERVICE, service("b"))
        await apiserver.wait_for(lambda: ips_of(apiserver, "b"))
        await quiet(apiserver, ctl.replica)
        changed = apiserver.request_log.count(resource="ipaddresspools", subresource="status")
        await api.close()
    assert (first, same, changed) == (1, 1, 2)


async def test_namespace_label_change_applies_namespace_selectors_live(
    apiserver: ApiServerEmulator,
) -> None:
    selected = {"namespaceSelectors": [{"matchLabels": {"team": "x"}}]}
    apiserver.seed(
        namespace(NS),
        namespace("web"),
        pool("teams", "192.0.2.0/30", serviceAllocation=selected, autoAssign=True),
        service("app", "web"),
    )
    async with running(apiserver) as ctl:
        await ctl.synced()
        await apiserver.wait_for(lambda: events_about(apiserver, "app", "web"))
        assert ips_of(apiserver, "app", "web") == ()
        api = client_for(apiserver)
        await api.patch(NAMESPACE, "web", {"metadata": {"labels": {"team": "x"}}})
        await apiserver.wait_for(lambda: ips_of(apiserver, "app", "web"))
        await api.close()
    assert ips_of(apiserver, "app", "web") == ("192.0.2.0",)


async def test_repeated_allocation_failure_updates_the_event_series(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(
        namespace(NS),
        pool("a", "192.0.2.0/32"),
        pool("b", "198.51.100.0/32", autoAssign=False),
        service("holder"),
        service("manual", annotations={"metallb.io/address-pool": "b"}),
        service("waiting"),
    )
    async with running(apiserver) as ctl:
        await ctl.synced()
        await quiet(apiserver, ctl.replica)
        # Freeing an address the waiting Service may not use converges it again: it fails again.
        apiserver.remove("v1/services", "default", "manual")
        await apiserver.wait_for(
            lambda: any(e.get("series") for e in events_about(apiserver, "waiting"))
        )
    (failed,) = events_about(apiserver, "waiting")
    assert failed["reason"] == "AllocationFailed"
    assert failed["series"]["count"] == 2
