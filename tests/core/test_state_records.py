"""The state keeps compact records and builds allocations on demand; the two must agree.

The allocator builds :class:`~metallb_core.Allocation` values without pydantic's validation
(``trusted_allocation``), from values it holds validated already. These tests pin that such
values are indistinguishable from validated ones, and that what a state gives back equals
what ``allocate`` returned.
"""

from __future__ import annotations

import gc
import ipaddress
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

import metallb_core as core
from metallb_core._outcomes import trusted_allocation

ADDRESSES = st.one_of(
    st.ip_addresses(v=4).map(ipaddress.IPv4Address),
    st.ip_addresses(v=6).map(ipaddress.IPv6Address),
)
PORTS = st.lists(
    st.builds(
        core.Port, protocol=st.sampled_from(["TCP", "UDP", "SCTP"]), port=st.integers(1, 65535)
    ),
    max_size=3,
).map(tuple)
TEXT = st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=8)


@given(
    key=TEXT,
    ips=st.lists(ADDRESSES, min_size=1, max_size=2).map(tuple),
    pool=TEXT,
    ports=PORTS,
    sharing_key=TEXT,
    backend_key=TEXT,
)
def test_a_trusted_allocation_is_indistinguishable_from_a_validated_one(
    key: str,
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...],
    pool: str,
    ports: tuple[core.Port, ...],
    sharing_key: str,
    backend_key: str,
) -> None:
    fast = trusted_allocation(key, ips, pool, ports, sharing_key, backend_key)
    slow = core.Allocation(
        key=key,
        ips=ips,
        pool=pool,
        ports=ports,
        sharing_key=sharing_key,
        backend_key=backend_key,
    )
    assert type(fast) is core.Allocation
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_copy(update={"pool": "other"}) == slow.model_copy(update={"pool": "other"})
    assert pickle.loads(pickle.dumps(fast)) == slow


def test_a_trusted_allocation_is_frozen_and_owns_its_field_set() -> None:
    ip = ipaddress.IPv4Address("10.0.0.1")
    a = trusted_allocation("ns/a", (ip,), "p", (), "", "")
    b = trusted_allocation("ns/b", (ip,), "p", (), "", "")
    with pytest.raises(ValueError, match="frozen"):
        a.pool = "q"  # type: ignore[misc]
    a.model_fields_set.discard("pool")
    assert "pool" in b.model_fields_set


def dual_config() -> core.Config:
    return core.Config(
        pools=[
            core.Pool(name="a", cidrs=["10.0.0.0/29", "2001:db8::/125"]),
            core.Pool(name="b", cidrs=["10.0.1.0/29"], auto_assign=False),
        ]
    )


def test_what_a_state_gives_back_equals_what_allocate_returned() -> None:
    state = core.State.empty(dual_config())
    requests = [
        core.ServiceRequest(key="ns/one", ports=[core.Port(protocol="TCP", port=80)]),
        core.ServiceRequest(key="ns/two", family="dual", policy="RequireDualStack"),
        # Requested dual-stack addresses keep the user's order (IPv6 first here).
        core.ServiceRequest(
            key="ns/three", family="dual", requested_ips=["2001:db8::5", "10.0.0.5"]
        ),
        core.ServiceRequest(key="ns/four", requested_pool="b", sharing_key="k", backend_key="x"),
    ]
    returned = {}
    for request in requests:
        state, outcome = core.allocate(state, request)
        assert isinstance(outcome, core.Allocation), outcome
        returned[request.key] = outcome
    assert [str(ip) for ip in returned["ns/three"].ips] == ["2001:db8::5", "10.0.0.5"]
    for key, allocation in returned.items():
        assert state.allocation(key) == allocation
        assert state.allocations[key] == allocation
        assert [type(ip) for ip in state.allocations[key].ips] == [
            type(ip) for ip in allocation.ips
        ]
    assert dict(state.allocations.items()) == returned
    assert list(state.allocations) == sorted(returned)
    assert list(state.allocations.values()) == [returned[k] for k in sorted(returned)]
    assert "ns/one" in state.allocations
    assert "ns/five" not in state.allocations
    with pytest.raises(KeyError):
        state.allocations["ns/five"]


def test_reload_renames_the_pool_in_what_the_state_gives_back() -> None:
    state = core.State.empty(dual_config())
    state, first = core.allocate(state, core.ServiceRequest(key="ns/a"))
    assert isinstance(first, core.Allocation)
    renamed = core.Config(pools=[core.Pool(name="renamed", cidrs=["10.0.0.0/29"])])
    state, dropped = core.reload(state, renamed)
    assert dropped == ()
    assert state.allocation("ns/a") == first.model_copy(update={"pool": "renamed"})


def tracked_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def test_a_state_keeps_about_one_collected_object_per_allocation() -> None:
    # An Allocation is five objects the garbage collector tracks; a state keeps one record
    # per allocation (plus its share of tree nodes), so collections stay cheap when it is big.
    n = 2_000
    config = core.Config(pools=[core.Pool(name="p", cidrs=["10.0.0.0/16"])])
    ports = (core.Port(protocol="TCP", port=80),)
    requests = [core.ServiceRequest(key=f"ns/s{i}", ports=ports) for i in range(n)]
    state = core.State.empty(config)
    before = tracked_objects()
    for request in requests:
        state, _ = core.allocate(state, request)
    assert len(state.allocations) == n
    assert tracked_objects() - before < 1.5 * n


def test_a_state_has_no_public_attribute_that_can_be_set() -> None:
    state = core.State.empty(dual_config())
    for name in ("config", "allocations", "allocation", "holders", "anything_new"):
        with pytest.raises(AttributeError):
            setattr(state, name, None)
    with pytest.raises(TypeError):
        core.State()
    assert state.config == dual_config()
    assert state.allocation("ns/a") is None
