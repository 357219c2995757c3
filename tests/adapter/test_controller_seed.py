"""The seed walkthrough, end to end: the controller in-process, the emulator over HTTP.

examples/seed: a v0.10 ConfigMap with pools ``default`` (10.206.65.234-250, auto-assign) and
``expensive`` (10.206.65.224-225, auto-assign false); Services ask for ``expensive`` with the
``metallb.universe.tf/address-pool`` annotation, v0.10's documented key.
"""

from __future__ import annotations

from announcers.kubernetes.client import SERVICE, LightkubeApi
from tests.support.emulator import ApiServerEmulator

from .controller_kit import (
    NS,
    annotation_of,
    client_for,
    events_about,
    ips_of,
    namespace,
    reasons,
    running,
    seed_configmap,
    service,
)

EXPENSIVE = {"metallb.universe.tf/address-pool": "expensive"}


async def _start(apiserver: ApiServerEmulator) -> LightkubeApi:
    apiserver.seed(namespace(NS), seed_configmap())
    api = client_for(apiserver)
    await api.create(SERVICE, service("nginx", "without-istio"))
    await api.create(SERVICE, service("nginx-manual", annotations=EXPENSIVE))
    return api


async def test_services_get_addresses_from_their_pools(apiserver: ApiServerEmulator) -> None:
    async with running(apiserver):
        api = await _start(apiserver)
        await apiserver.wait_for(lambda: ips_of(apiserver, "nginx-manual"))
        await apiserver.wait_for(lambda: ips_of(apiserver, "nginx", "without-istio"))
        await api.close()
    assert ips_of(apiserver, "nginx", "without-istio") == ("10.206.65.234",)
    assert ips_of(apiserver, "nginx-manual") == ("10.206.65.224",)


async def test_status_holds_one_vip_entry_per_address(apiserver: ApiServerEmulator) -> None:
    async with running(apiserver):
        api = await _start(apiserver)
        await apiserver.wait_for(lambda: ips_of(apiserver, "nginx-manual"))
        await api.close()
    stored = apiserver.read("v1/services", "default", "nginx-manual")
    assert stored is not None
    assert stored["status"]["loadBalancer"]["ingress"] == [{"ip": "10.206.65.224", "ipMode": "VIP"}]


async def test_allocated_from_pool_annotation_names_the_pool(apiserver: ApiServerEmulator) -> None:
    async with running(apiserver):
        api = await _start(apiserver)
        await apiserver.wait_for(lambda: annotation_of(apiserver, "nginx-manual"))
        await apiserver.wait_for(lambda: annotation_of(apiserver, "nginx", "without-istio"))
        await api.close()
    assert annotation_of(apiserver, "nginx-manual") == "expensive"
    assert annotation_of(apiserver, "nginx", "without-istio") == "default"


async def test_allocation_emits_ip_allocated_and_no_deprecation_warning_under_the_configmap(
    apiserver: ApiServerEmulator,
) -> None:
    async with running(apiserver) as ctl:
        api = await _start(apiserver)
        await apiserver.wait_for(lambda: events_about(apiserver, "nginx-manual"))
        await api.close()
        await ctl.halt()
    events = events_about(apiserver, "nginx-manual")
    assert reasons(events) == [("Normal", "IPAllocated")]
    assert [e["note"] for e in events] == ['Assigned IP ["10.206.65.224"]']
    assert {e["reportingInstance"] for e in events} == {"controller-0"}


async def test_load_balancer_ip_patch_moves_the_service(apiserver: ApiServerEmulator) -> None:
    async with running(apiserver):
        api = await _start(apiserver)
        await apiserver.wait_for(lambda: ips_of(apiserver, "nginx-manual"))
        await api.patch(
            SERVICE,
            "nginx-manual",
            {"spec": {"loadBalancerIP": "10.206.65.225"}},
            namespace="default",
        )
        await apiserver.wait_for(lambda: ips_of(apiserver, "nginx-manual") == ("10.206.65.225",))
        await api.close()
    notes = [e["note"] for e in events_about(apiserver, "nginx-manual")]
    assert 'Assigned IP ["10.206.65.225"]' in notes


async def test_exhausted_pool_leaves_the_service_pending_with_a_warning(
    apiserver: ApiServerEmulator,
) -> None:
    async with running(apiserver):
        api = await _start(apiserver)
        await api.create(SERVICE, service("nginx-expensive-2", annotations=EXPENSIVE))
        await apiserver.wait_for(lambda: ips_of(apiserver, "nginx-expensive-2"))
        await api.create(SERVICE, service("nginx-expensive-3", annotations=EXPENSIVE))
        await apiserver.wait_for(lambda: events_about(apiserver, "nginx-expensive-3"))
        await api.close()
    (failed,) = [e for e in events_about(apiserver, "nginx-expensive-3") if e["type"] == "Warning"]
    assert (failed["reason"], failed["note"]) == (
        "AllocationFailed",
        'Failed to allocate IP for "default/nginx-expensive-3": no available IPs in pool expensive',
    )
    assert ips_of(apiserver, "nginx-expensive-3") == ()


async def test_freed_address_goes_to_the_pending_service(apiserver: ApiServerEmulator) -> None:
    async with running(apiserver):
        api = await _start(apiserver)
        await api.patch(
            SERVICE,
            "nginx-manual",
            {"spec": {"loadBalancerIP": "10.206.65.225"}},
            namespace="default",
        )
        await apiserver.wait_for(lambda: ips_of(apiserver, "nginx-manual") == ("10.206.65.225",))
        for name in ("nginx-expensive-2", "nginx-expensive-3"):
            await api.create(SERVICE, service(name, annotations=EXPENSIVE))
        await apiserver.wait_for(lambda: events_about(apiserver, "nginx-expensive-3"))
        apiserver.remove("v1/services", "default", "nginx-manual")
        await apiserver.wait_for(lambda: ips_of(apiserver, "nginx-expensive-3"))
        await api.close()
    assert ips_of(apiserver, "nginx-expensive-3") == ("10.206.65.225",)
    assert ips_of(apiserver, "nginx-expensive-2") == ("10.206.65.224",)
