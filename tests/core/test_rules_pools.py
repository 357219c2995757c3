"""The rules of pool configuration, one example per rule.

Each test documents one rule of docs/design/core-api.md / docs/design/metallb-behaviour.md §2 and
§14 that the
MetalLB-derived tables (``test_metallb_config.py``, ``test_metallb_allocator.py``) do not already
pin: Go's ``net.ParseCIDR`` strictness, ranges expanded in place, Decision 4, ``exclude``,
``avoid_buggy_ips`` at ``/24`` boundaries, exact capacities (Decision 3), positional
construction, and that every invalid input is a ``ConfigError`` naming the field and the value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, cast

import pytest
from pydantic import ValidationError

import metallb_core as core
from tests.support.builders import IP, state_of


def ip(text: str) -> IP:
    return ipaddress.ip_address(text)


def take(state: core.State, key: str, family: str = "ipv4") -> tuple[core.State, IP]:
    """Allocate one address automatically; the test fails if it is refused."""
    req = core.ServiceRequest(key=key, family=cast(Any, family))
    new, outcome = core.allocate(state, req)
    assert isinstance(outcome, core.Allocation), outcome
    assert len(outcome.ips) == 1
    return new, outcome.ips[0]


def take_all(state: core.State, family: str = "ipv4") -> list[IP]:
    """Every address automatic allocation hands out, in the order it hands them out."""
    out: list[IP] = []
    while True:
        req = core.ServiceRequest(key=f"ns/s{len(out)}", family=cast(Any, family))
        state, outcome = core.allocate(state, req)
        if isinstance(outcome, core.AllocationError):
            assert isinstance(outcome, core.NoAvailableIPs), outcome
            return out
        out.extend(outcome.ips)


def untyped(cls: type[object]) -> Any:
    """``cls`` for a positional call: the pydantic mypy plugin types model ``__init__`` as
    keyword-only, although the contract (and the runtime) accept positional arguments."""
    return cls


def config_error(build: Callable[[], object]) -> str:
    """The message of the ConfigError ``build`` raises; never a pydantic ValidationError."""
    with pytest.raises(core.ConfigError) as info:
        build()
    assert not isinstance(info.value, ValidationError)
    return str(info.value)


# ---- CIDRs: Go's net.ParseCIDR ------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    ["10.0.0.0/8 ", "10.0.0.0/8\n", "\t10.0.0.0/8", "10.0.0.0 /8", "10.0.0.0/ 8", "1000:: /64"],
    ids=["trailing space", "trailing newline", "leading tab", "before slash", "after slash", "v6"],
)
def test_cidr_surrounded_by_white_space_is_refused(entry: str) -> None:
    message = config_error(lambda: core.Pool(name="p", cidrs=[entry]))
    assert message == f'invalid CIDR "{entry}" in pool "p": invalid CIDR "{entry}"'


@pytest.mark.parametrize("entry", ["10.0.0.0/255.0.0.0", "1000::/ffff:ffff::"])
def test_cidr_with_a_netmask_instead_of_a_prefix_length_is_refused(entry: str) -> None:
    message = config_error(lambda: core.Pool(name="p", cidrs=[entry]))
    assert message == f'invalid CIDR "{entry}" in pool "p": invalid CIDR "{entry}"'


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/0x8", "10.0.0.0/8.0", "/8"]
)
def test_cidr_prefix_length_must_be_a_decimal_number(entry: str) -> None:
    message = config_error(lambda: core.Pool(name="p", cidrs=[entry]))
    assert message == f'invalid CIDR "{entry}" in pool "p": invalid CIDR "{entry}"'


def test_ipv4_octet_with_a_leading_zero_is_refused() -> None:
    # Go (1.17+) refuses "010.0.0.0" rather than guess octal or decimal.
    message = config_error(lambda: core.Pool(name="p", cidrs=["010.0.0.0/8"]))
    assert message == 'invalid CIDR "010.0.0.0/8" in pool "p": invalid CIDR "010.0.0.0/8"'


def test_ipv6_cidr_with_a_zone_is_refused() -> None:
    message = config_error(lambda: core.Pool(name="p", cidrs=["fe80::%eth0/64"]))
    assert message == 'invalid CIDR "fe80::%eth0/64" in pool "p": invalid CIDR "fe80::%eth0/64"'


@pytest.mark.parametrize(
    ("entry", "first"),
    [("10.20.30.41/30", "10.20.30.40"), ("2001:db8::12:34/120", "2001:db8::12:0")],
    ids=["ipv4", "ipv6"],
)
def test_host_bits_are_masked_so_allocation_starts_at_the_network_address(
    entry: str, first: str
) -> None:
    family = "ipv4" if ip(first).version == 4 else "ipv6"
    _, got = take(state_of(core.Pool(name="p", cidrs=[entry])), "ns/a", family)
    assert got == ip(first)


# ---- ranges -------------------------------------------------------------------------------


def test_ranges_are_walked_in_place_in_config_order() -> None:
    pool = core.Pool(name="p", cidrs=["10.0.0.8/31", "10.0.0.1-10.0.0.2", "10.0.0.4/31"])
    expected = ["10.0.0.8", "10.0.0.9", "10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5"]
    assert take_all(state_of(pool)) == [ip(t) for t in expected]


def test_range_is_split_at_the_first_dash() -> None:
    entry = "10.0.0.1-10.0.0.4-10.0.0.9"
    message = config_error(lambda: core.Pool(name="p", cidrs=[entry]))
    assert message == (
        f'invalid CIDR "{entry}" in pool "p": '
        f'invalid IP range "{entry}": invalid end IP "10.0.0.4-10.0.0.9"'
    )


def test_ipv6_range_whose_start_is_after_its_end_is_refused() -> None:
    # Decision 4, with main's wording.
    entry = "1000::10-1000::1"
    message = config_error(lambda: core.Pool(name="p", cidrs=[entry]))
    assert message == (
        f'invalid CIDR "{entry}" in pool "p": '
        f'invalid IP range "{entry}": start IP "1000::10" is after the end IP "1000::1"'
    )


@pytest.mark.parametrize("entry", ["10.0.0.1-1000::1", "1000::1 - 10.0.0.1"])
def test_range_mixing_families_is_refused_naming_the_pool_and_the_entry(entry: str) -> None:
    # Decision 4: MetalLB silently yields no address for such a range.
    message = config_error(lambda: core.Pool(name="mixed", cidrs=[entry]))
    assert f'"{entry}"' in message
    assert '"mixed"' in message


# ---- exclude ------------------------------------------------------------------------------


def test_excluded_cidr_is_never_handed_out() -> None:
    pool = core.Pool(name="p", cidrs=["10.0.0.0/29"], exclude=["10.0.0.2/31"])
    assert take_all(state_of(pool)) == [
        ip(t) for t in ("10.0.0.0", "10.0.0.1", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7")
    ]


def test_excluded_range_is_never_handed_out() -> None:
    pool = core.Pool(name="p", cidrs=["10.0.0.0/29"], exclude=["10.0.0.1 - 10.0.0.6"])
    assert take_all(state_of(pool)) == [ip("10.0.0.0"), ip("10.0.0.7")]


def test_excluded_ipv6_addresses_are_never_handed_out() -> None:
    pool = core.Pool(name="p", cidrs=["1000::/126"], exclude=["1000::/127", "1000::3"])
    assert take_all(state_of(pool), "ipv6") == [ip("1000::2")]


def test_pool_whose_every_address_is_excluded_has_nothing_to_hand_out() -> None:
    state = state_of(core.Pool(name="p", cidrs=["10.0.0.0/30"], exclude=["10.0.0.0/30"]))
    _, outcome = core.allocate(state, core.ServiceRequest(key="ns/a"))
    assert isinstance(outcome, core.NoAvailableIPs)
    assert core.pool_usage(state)["p"].available_ipv4 == 0


def test_requested_pool_skips_excluded_addresses() -> None:
    state = state_of(
        core.Pool(name="p", cidrs=["10.0.0.0/30"], auto_assign=False, exclude=["10.0.0.0"])
    )
    _, outcome = core.allocate(state, core.ServiceRequest(key="ns/a", requested_pool="p"))
    assert isinstance(outcome, core.Allocation), outcome
    assert outcome.ips == (ip("10.0.0.1"),)


def test_excluded_addresses_are_counted_out_of_each_family() -> None:
    pool = core.Pool(
        name="p", cidrs=["10.0.0.0/24", "1000::/120"], exclude=["10.0.0.5", "1000::10-1000::1f"]
    )
    usage = core.pool_usage(state_of(pool))["p"]
    assert (usage.available_ipv4, usage.available_ipv6) == (255, 256 - 16)


def test_address_both_excluded_and_buggy_is_counted_out_once() -> None:
    # 256 - 2 buggy (.0, .255) - 4 excluded (.0-.3) + 1 (.0 is both).
    pool = core.Pool(name="p", cidrs=["10.0.0.0/24"], avoid_buggy_ips=True, exclude=["10.0.0.0/30"])
    assert core.pool_usage(state_of(pool))["p"].available_ipv4 == 251


def excluding_reload() -> tuple[core.State, core.Config]:
    """``a`` holds 10.0.0.0 and ``b`` holds 10.0.0.1; the new config excludes 10.0.0.1."""
    state = state_of(core.Pool(name="p", cidrs=["10.0.0.0/30"]))
    state, _ = take(state, "ns/a")
    state, _ = take(state, "ns/b")
    return state, core.Config(
        pools=[core.Pool(name="p", cidrs=["10.0.0.0/30"], exclude=["10.0.0.1"])]
    )


def test_reload_drops_an_allocation_on_a_newly_excluded_address() -> None:
    state, cfg = excluding_reload()
    new, dropped = core.reload(state, cfg)
    assert [(a.key, a.ips) for a in dropped] == [("ns/b", (ip("10.0.0.1"),))]
    assert new.allocation("ns/b") is None
    assert new.allocation("ns/a") is not None


def test_orphans_reports_an_allocation_on_a_newly_excluded_address() -> None:
    state, cfg = excluding_reload()
    assert [a.key for a in core.orphans(state, cfg)] == ["ns/b"]


def test_pool_usage_after_an_excluding_reload_counts_only_what_is_kept() -> None:
    state, cfg = excluding_reload()
    new, _ = core.reload(state, cfg)
    usage = core.pool_usage(new)["p"]
    assert (usage.assigned_ipv4, usage.available_ipv4) == (1, 2)


@pytest.mark.parametrize("entry", ["abc", "10.0.0.9-10.0.0.1", "10.0.0.0/33"])
def test_invalid_exclude_entry_is_a_config_error_naming_it(entry: str) -> None:
    message = config_error(lambda: core.Pool(name="p", cidrs=["10.0.0.0/24"], exclude=[entry]))
    assert "exclude" in message
    assert f'"{entry}"' in message
    assert '"p"' in message


# ---- avoid_buggy_ips ----------------------------------------------------------------------


def test_avoid_buggy_ips_skips_both_sides_of_a_slash_24_boundary() -> None:
    pool = core.Pool(name="p", cidrs=["10.0.0.254-10.0.1.1"], avoid_buggy_ips=True)
    assert take_all(state_of(pool)) == [ip("10.0.0.254"), ip("10.0.1.1")]


def test_avoid_buggy_ips_removes_two_addresses_per_slash_24_from_capacity() -> None:
    pool = core.Pool(name="p", cidrs=["10.0.0.0/23"], avoid_buggy_ips=True)
    assert core.pool_usage(state_of(pool))["p"].available_ipv4 == 512 - 4


# ---- capacities: exact integers (Decision 3) ----------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "size"),
    [("1000::/64", 2**64), ("1000::/48", 2**80), ("::/0", 2**128)],
    ids=["/64", "/48", "/0"],
)
def test_ipv6_capacity_is_an_exact_int(cidr: str, size: int) -> None:
    available = core.pool_usage(state_of(core.Pool(name="p", cidrs=[cidr])))["p"].available_ipv6
    assert type(available) is int
    assert available == size


def test_ipv4_cidr_after_a_slash_64_is_counted_separately() -> None:
    # MetalLB's capacity overflows here; metallb_core counts each family exactly.
    pool = core.Pool(name="p", cidrs=["1000::/64", "10.0.0.0/24", "2000::/64"])
    usage = core.pool_usage(state_of(pool))["p"]
    assert (usage.available_ipv4, usage.available_ipv6) == (256, 2**65)


def test_several_slash_64s_in_one_pool_count_an_allocation_exactly() -> None:
    state = state_of(core.Pool(name="p", cidrs=["1000::/64", "2000::/64", "3000::/64"]))
    state, got = take(state, "ns/a", "ipv6")
    usage = core.pool_usage(state)["p"]
    assert got == ip("1000::")
    assert (usage.assigned_ipv6, usage.available_ipv6) == (1, 3 * 2**64 - 1)


# ---- construction -------------------------------------------------------------------------


def test_pool_takes_name_and_cidrs_positionally() -> None:
    assert untyped(core.Pool)("p", ["10.0.0.0/30"]) == core.Pool(name="p", cidrs=["10.0.0.0/30"])


def test_pool_takes_every_field_positionally_in_contract_order() -> None:
    allocation = core.ServiceAllocation(priority=3)
    positional = untyped(core.Pool)(
        "p", ["10.0.0.0/30"], False, True, allocation, {"zone": "a"}, ["10.0.0.1"]
    )
    keywords = core.Pool(
        name="p",
        cidrs=["10.0.0.0/30"],
        auto_assign=False,
        avoid_buggy_ips=True,
        service_allocation=allocation,
        labels={"zone": "a"},
        exclude=["10.0.0.1"],
    )
    assert positional == keywords


@pytest.mark.parametrize(
    ("positional", "keywords"),
    [
        pytest.param(
            lambda: untyped(core.ServiceAllocation)(5, ["ns"]),
            lambda: core.ServiceAllocation(priority=5, namespaces=["ns"]),
            id="ServiceAllocation",
        ),
        pytest.param(
            lambda: untyped(core.L2Advertisement)("l2", ["p"], [], ["eth0"]),
            lambda: core.L2Advertisement(name="l2", pools=["p"], interfaces=["eth0"]),
            id="L2Advertisement",
        ),
        pytest.param(
            lambda: untyped(core.Config)(
                [untyped(core.Pool)("p", ["10.0.0.0/30"])], [untyped(core.L2Advertisement)("l2")]
            ),
            lambda: core.Config(
                pools=[core.Pool(name="p", cidrs=["10.0.0.0/30"])],
                l2_advertisements=[core.L2Advertisement(name="l2")],
            ),
            id="Config",
        ),
    ],
)
def test_config_values_take_positional_arguments_in_contract_order(
    positional: Callable[[], object], keywords: Callable[[], object]
) -> None:
    assert positional() == keywords()


def test_pool_normalises_cidrs_to_a_tuple_of_networks() -> None:
    pool = core.Pool(name="p", cidrs=["10.0.0.0/30", ipaddress.ip_network("1000::/127")])
    assert pool.cidrs == (ipaddress.ip_network("10.0.0.0/30"), ipaddress.ip_network("1000::/127"))


# ---- every invalid input is a ConfigError naming the field and the value -------------------

NONE: Any = None  # a value of the wrong type for a str field


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [
        pytest.param(
            lambda: core.Pool(name=cast(Any, 5), cidrs=["10.0.0.0/30"]), "name", "5", id="pool name"
        ),
        pytest.param(
            lambda: core.Pool(name="p", cidrs="10.0.0.0/30"),
            "CIDR",
            "10.0.0.0/30",
            id="cidrs not a list",
        ),
        pytest.param(lambda: core.Pool(name="p", cidrs=[42]), "CIDR", "42", id="cidr not a string"),
        pytest.param(
            lambda: core.Pool(name="p", cidrs=["10.0.0.0/30"], auto_assign=cast(Any, "maybe")),
            "auto_assign",
            "maybe",
            id="auto_assign",
        ),
        pytest.param(
            lambda: core.Pool(name="p", cidrs=["10.0.0.0/30"], avoid_buggy_ips=cast(Any, "often")),
            "avoid_buggy_ips",
            "often",
            id="avoid_buggy_ips",
        ),
        pytest.param(
            lambda: core.Pool(name="p", cidrs=["10.0.0.0/30"], labels=cast(Any, {"zone": 7})),
            "labels",
            "7",
            id="label value",
        ),
        pytest.param(
            lambda: core.Pool(name="p", cidrs=["10.0.0.0/30"], exclude=cast(Any, "10.0.0.1")),
            "exclude",
            "10.0.0.1",
            id="exclude not a list",
        ),
        pytest.param(
            lambda: core.Pool(name="p", cidrs=["10.0.0.0/30"], service_allocation=cast(Any, 5)),
            "service_allocation",
            "5",
            id="service_allocation",
        ),
        pytest.param(
            lambda: core.Pool(name="p", cidrs=["10.0.0.0/30"], **cast(Any, {"colour": "red"})),
            "colour",
            "red",
            id="unknown pool field",
        ),
        pytest.param(
            lambda: core.ServiceAllocation(priority=cast(Any, "high")),
            "priority",
            "high",
            id="priority",
        ),
        pytest.param(
            lambda: core.ServiceAllocation(namespaces="web"), "namespaces", "web", id="namespaces"
        ),
        pytest.param(
            lambda: core.ServiceAllocation(service_selectors=[{"matchLabels": "web"}]),
            "matchLabels",
            "web",
            id="selector labels",
        ),
        pytest.param(
            lambda: core.ServiceAllocation(
                service_selectors=[{"matchExpressions": [{"key": "a", "operator": "Near"}]}]
            ),
            "operator",
            "Near",
            id="selector operator",
        ),
        pytest.param(
            lambda: core.L2Advertisement(name=NONE), "name", "None", id="advertisement name"
        ),
        pytest.param(
            lambda: core.L2Advertisement(name="l2", interfaces=cast(Any, 5)),
            "interfaces",
            "5",
            id="interfaces",
        ),
        pytest.param(lambda: core.Config(pools=[NONE]), "pools", "None", id="config pool"),
        pytest.param(
            lambda: core.Config(l2_advertisements=cast(Any, ["l2"])),
            "l2_advertisements",
            "l2",
            id="config advertisement",
        ),
        pytest.param(
            lambda: core.Config(pools=cast(Any, [{"name": "p", "cidrs": ["abc"]}])),
            "CIDR",
            "abc",
            id="pool given as a dict",
        ),
    ],
)
def test_invalid_input_is_a_config_error_naming_the_field_and_the_value(
    build: Callable[[], object], field: str, value: str
) -> None:
    message = config_error(build)
    assert field in message
    assert value in message


def test_config_error_from_resources_names_the_object_at_fault() -> None:
    objects = [
        {"kind": "IPAddressPool", "metadata": {"name": "a"}, "spec": {"addresses": ["10.0.0.0/8"]}},
        {
            "kind": "IPAddressPool",
            "metadata": {"name": "b"},
            "spec": {"addresses": ["10.1.0.0/16"]},
        },
        {"kind": "L2Advertisement", "metadata": {"name": "l2"}, "spec": {}},
    ]
    with pytest.raises(core.ConfigError) as info:
        core.parse_resources(objects)
    assert (info.value.kind, info.value.name) == ("IPAddressPool", "b")
    bad_ad = {
        "kind": "L2Advertisement",
        "metadata": {"name": "l2"},
        "spec": {"ipAddressPools": ["a", "a"]},
    }
    with pytest.raises(core.ConfigError) as info:
        core.parse_resources([objects[0], bad_ad])
    assert (info.value.kind, info.value.name) == ("L2Advertisement", "l2")
