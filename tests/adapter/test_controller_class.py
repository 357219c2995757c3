"""``spec.loadBalancerClass`` and ``--lb-class``: other classes are never touched."""

from __future__ import annotations

from tests.support.emulator import ApiServerEmulator

from .controller_kit import (
    NS,
    events_about,
    holding,
    ips_of,
    namespace,
    pool,
    quiet,
    running,
    service,
)

OTHER = "example.com/other"


def _foreign(name: str) -> dict[str, object]:
    body = holding(name, ["203.0.113.7"], "theirs")
    body["spec"]["loadBalancerClass"] = OTHER
    return body


async def test_foreign_load_balancer_class_is_left_untouched(
    apiserver: ApiServerEmulator,
) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/30"))
    apiserver.seed(_foreign("theirs"), service("ours"))
    before = apiserver.read("v1/services", "default", "theirs")
    async with running(apiserver) as ctl:
        await apiserver.wait_for(lambda: ips_of(apiserver, "ours"))
        await quiet(apiserver, ctl.replica)
    assert apiserver.read("v1/services", "default", "theirs") == before
    assert apiserver.request_log.count(verb="patch", name="theirs") == 0
    assert events_about(apiserver, "theirs") == []


async def test_foreign_class_pending_service_gets_nothing(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/30"))
    apiserver.seed(service("theirs", loadBalancerClass=OTHER))
    async with running(apiserver) as ctl:
        await ctl.synced()
        await quiet(apiserver, ctl.replica)
    assert ips_of(apiserver, "theirs") == ()
    assert events_about(apiserver, "theirs") == []


async def test_lb_class_controller_handles_only_its_class(apiserver: ApiServerEmulator) -> None:
    apiserver.seed(namespace(NS), pool("p", "192.0.2.0/30"))
    apiserver.seed(
        service("mine", loadBalancerClass=OTHER),
        service("classless"),
        holding("classless-held", ["203.0.113.8"], "theirs"),
    )
    async with running(apiserver, lb_class=OTHER) as ctl:
        await apiserver.wait_for(lambda: ips_of(apiserver, "mine"))
        await quiet(apiserver, ctl.replica)
    assert ips_of(apiserver, "mine") == ("192.0.2.0",)
    assert ips_of(apiserver, "classless") == ()
    assert ips_of(apiserver, "classless-held") == ("203.0.113.8",)
    assert apiserver.request_log.count(verb="patch", name="classless-held") == 0
