"""Status writes through faults: the issue's three sequences, and the write planner against a
model (at no instant does the cluster show an address in two Services that may not share it).

The "cluster" here is a dict of Service dicts: a write replaces one Service's status, and the
invariant is checked after every single write, whatever subset of a batch fails.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metallb_core as core

ALLOCATED = "metallb.io/ip-allocated-from-pool"

JsonDict = dict[str, Any]


def svc(
    name: str,
    *ips: str,
    pool: str | None = None,
    share: str | None = None,
    ports: Iterable[int] = (80,),
    created: str = "2026-01-01T00:00:00Z",
    wants: str | None = None,
) -> JsonDict:
    """A LoadBalancer Service; with ``ips``, as a controller left it (status, pool, digest)."""
    notes: dict[str, str] = {}
    if share is not None:
        notes["metallb.io/allow-shared-ip"] = share
    if wants is not None:
        notes["metallb.io/address-pool"] = wants
    service: JsonDict = {
        "metadata": {
            "namespace": "default",
            "name": name,
            "creationTimestamp": created,
            "annotations": notes,
        },
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.1",
            "ports": [{"port": p, "protocol": "TCP"} for p in ports],
        },
    }
    if ips:
        written(service, ips, pool)
    return service


def written(service: JsonDict, ips: Iterable[str], pool: str | None) -> JsonDict:
    """What the controller's writes leave: the status, the pool and the inputs digest."""
    ips = tuple(ips)
    service["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    notes = service["metadata"]["annotations"]
    if ips:
        if pool is not None:  # an interim write keeps the annotation
            notes[ALLOCATED] = pool
        pool = notes.get(ALLOCATED)
        notes[core.INPUTS_ANNOTATION] = core.inputs_digest(service)
    else:
        notes.pop(ALLOCATED, None)
        notes.pop(core.INPUTS_ANNOTATION, None)
    return service


def shown(service: Mapping[str, Any]) -> tuple[str, ...]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(e["ip"] for e in ingress)


def conflicts(cluster: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """Every (ip, a, b): two Services showing ``ip`` that may not share it."""
    by_ip: dict[str, list[str]] = {}
    for key, service in cluster.items():
        for ip in shown(service):
            by_ip.setdefault(ip, []).append(key)
    out = []
    for ip, keys in by_ip.items():
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                if not core.may_share(cluster[a], cluster[b]):
                    out.append((ip, a, b))
    return out


def keyed(services: Iterable[JsonDict]) -> dict[str, JsonDict]:
    return {f"default/{s['metadata']['name']}": s for s in services}


def run_round(
    cluster: dict[str, JsonDict],
    outcomes: Mapping[str, core.Convergence],
    fails: Iterable[bool] = (),
    order: Iterable[int] = (),
) -> tuple[list[core.StatusWrite], set[str]]:
    """Write a round's statuses the controller's way, checking the cluster after each write.

    ``fails`` says, write after write, which ones fail (then cycled through; none when empty);
    ``order`` permutes each batch. Returns every write that succeeded and the failed keys.
    """
    fail_pattern = list(fails) or [False]
    order_pattern = list(order) or [0]
    remaining = dict(outcomes)
    done: list[core.StatusWrite] = []
    failed: set[str] = set()
    n = 0
    # Edits can make two statuses clash (a sharing key changed): the writes never add a clash.
    clashes = set(conflicts(cluster))
    while True:
        batch = list(core.next_writes(cluster, remaining))
        if not batch:
            return done, failed
        # Every status that gives an address up is written before any that only takes one:
        # a batch is all give-ups or all takes; an interim write only gives up.
        gives = [any(ip not in w.ingress for ip in shown(cluster[w.key])) for w in batch]
        assert all(gives) or not any(gives), batch
        for write in batch:
            assert write.final or set(write.ingress) < set(shown(cluster[write.key]))
        shift = order_pattern[n % len(order_pattern)] % len(batch)
        batch = batch[shift:] + batch[:shift]
        for write in batch:
            if fail_pattern[n % len(fail_pattern)]:
                failed.add(write.key)
                remaining.pop(write.key, None)
            else:
                pool = outcomes[write.key].pool if write.final else None
                written(cluster[write.key], write.ingress, pool)
                done.append(write)
            n += 1
            assert set(conflicts(cluster)) <= clashes, (write, conflicts(cluster))


# -- the three sequences ---------------------------------------------------------------

POOLS = core.Config(
    pools=[
        core.Pool(name="pool-a", cidrs=["10.77.0.0-10.77.0.9"]),
        core.Pool(name="pool-r", cidrs=["10.77.1.10-10.77.1.19"]),
    ]
)


def test_sequence_1_a_swap_of_pools_frees_before_it_takes() -> None:
    # a held .0.0 from pool-a, b held .1.10 from pool-r; their pool annotations were swapped
    # while no controller ran. The new term must not show .1.10 in a and b at once.
    a = svc("a", "10.77.0.0", pool="pool-a")
    b = svc("b", "10.77.1.10", pool="pool-r")
    a["metadata"]["annotations"]["metallb.io/address-pool"] = "pool-r"
    b["metadata"]["annotations"]["metallb.io/address-pool"] = "pool-a"
    cluster = keyed([a, b])
    after, outcomes = core.converge_all(core.State.empty(POOLS), cluster.values())
    assert outcomes["default/a"].ingress == ("10.77.1.10",)
    assert outcomes["default/b"].ingress == ("10.77.0.0",)
    first = core.next_writes(cluster, outcomes)
    assert first == (
        core.StatusWrite("default/a", (), final=False),
        core.StatusWrite("default/b", (), final=False),
    )
    done, failed = run_round(cluster, outcomes)
    assert failed == set()
    assert [(w.key, w.ingress) for w in done[2:]] == [
        ("default/a", ("10.77.1.10",)),
        ("default/b", ("10.77.0.0",)),
    ]
    assert core.settle(after, cluster, outcomes) == after


def test_sequence_1_a_failed_interim_write_blocks_the_take_only() -> None:
    a = svc("a", "10.77.0.0", pool="pool-a", wants="pool-r")
    b = svc("b", "10.77.1.10", pool="pool-r", wants="pool-a")
    pending = svc("c")
    cluster = keyed([a, b, pending])
    after, outcomes = core.converge_all(core.State.empty(POOLS), cluster.values())
    assert outcomes["default/c"].ingress == ("10.77.0.1",)
    # b's interim clear fails: a may not take .1.10; b stays where it is, c is served.
    _done, failed = run_round(cluster, outcomes, fails=[False, True, False, False])
    assert failed == {"default/b"}
    assert shown(cluster["default/a"]) == ()
    assert shown(cluster["default/b"]) == ("10.77.1.10",)
    assert shown(cluster["default/c"]) == ("10.77.0.1",)
    state = core.settle(after, cluster, outcomes)
    assert state.allocation("default/a") is None
    held = state.allocation("default/b")
    assert held is not None
    assert [str(ip) for ip in held.ips] == ["10.77.1.10"]
    # The next round (b's retry, and a) finishes the swap.
    state, again = core.converge_all(state, [cluster["default/a"], cluster["default/b"]])
    run_round(cluster, again)
    assert shown(cluster["default/a"]) == ("10.77.1.10",)
    assert shown(cluster["default/b"]) == ("10.77.0.0",)


def test_sequence_2_successful_writes_of_a_failed_round_are_kept() -> None:
    config = core.Config(pools=[core.Pool(name="p", cidrs=["10.77.0.10-10.77.0.14"])])
    holders = [svc(f"h{i}", f"10.77.0.{10 + i}", pool="p") for i in range(3)]
    cluster = keyed([*holders, svc("x"), svc("y")])
    state, _ = core.converge_all(core.State.empty(config), holders)
    after, outcomes = core.converge_all(state, [cluster["default/x"], cluster["default/y"]])
    assert outcomes["default/x"].ingress == ("10.77.0.13",)
    assert outcomes["default/y"].ingress == ("10.77.0.14",)
    # x's write succeeds, y's meets a 409.
    _, failed = run_round(cluster, outcomes, fails=[False, True])
    assert failed == {"default/y"}
    state = core.settle(after, cluster, outcomes)
    held = state.allocation("default/x")
    assert held is not None
    assert [str(ip) for ip in held.ips] == ["10.77.0.13"]
    assert state.allocation("default/y") is None
    # A later round never hands .13 to another Service while x shows it.
    cluster["default/z"] = svc("z")
    state, later = core.converge_all(state, [cluster["default/z"], cluster["default/y"]])
    assert later["default/y"].ingress == ("10.77.0.14",)  # y first: same age, by key
    assert later["default/z"].ingress == ()
    run_round(cluster, later)


def _sharers() -> tuple[JsonDict, JsonDict]:
    s1 = svc(
        "s1", "10.77.0.8", pool="pool-a", share="k", ports=[80], created="2026-01-01T00:00:00Z"
    )
    s2 = svc(
        "s2", "10.77.0.8", pool="pool-a", share="k", ports=[443], created="2026-01-02T00:00:00Z"
    )
    return s1, s2


def test_sequence_3_the_unchanged_sharer_keeps_the_address_in_a_new_term() -> None:
    s1, s2 = _sharers()
    s1["spec"]["ports"] = [{"port": 443, "protocol": "TCP"}]  # collides with s2, no leader
    cluster = keyed([s1, s2])
    _, outcomes = core.converge_all(core.State.empty(POOLS), cluster.values())
    assert outcomes["default/s2"].ingress == ("10.77.0.8",)
    assert outcomes["default/s2"].events == ()
    assert outcomes["default/s1"].ingress == ("10.77.0.0",)
    assert "IPConflict" in [e.reason for e in outcomes["default/s1"].events]
    run_round(cluster, outcomes)


def test_sequence_3_a_running_leader_decides_the_same() -> None:
    s1, s2 = _sharers()
    state, _ = core.converge_all(core.State.empty(POOLS), [s1, s2])
    changed = copy.deepcopy(s1)
    changed["spec"]["ports"] = [{"port": 443, "protocol": "TCP"}]
    _, outcome = core.converge(state, changed)
    assert outcome.ingress == ("10.77.0.0",)
    assert [e.reason for e in outcome.events] == ["ClearAssignment", "IPAllocated"]


def test_without_a_digest_the_older_sharer_keeps_it_as_metallb_does() -> None:
    s1, s2 = _sharers()
    for s in (s1, s2):
        del s["metadata"]["annotations"][core.INPUTS_ANNOTATION]
    s1["spec"]["ports"] = [{"port": 443, "protocol": "TCP"}]
    _, outcomes = core.converge_all(core.State.empty(POOLS), [s2, s1])
    assert outcomes["default/s1"].ingress == ("10.77.0.8",)
    assert outcomes["default/s2"].ingress == ("10.77.0.0",)


# -- status is the truth -----------------------------------------------------------------------


def test_an_empty_status_clears_the_key_before_allocating() -> None:
    config = core.Config(
        pools=[
            core.Pool(name="low", cidrs=["10.0.0.0/30"]),
            core.Pool(
                name="high",
                cidrs=["10.0.1.0/30"],
                service_allocation=core.ServiceAllocation(
                    priority=1, service_selectors=[{"matchLabels": {"tier": "gold"}}]
                ),
            ),
        ]
    )
    service = svc("a")
    state, first = core.converge(core.State.empty(config), service)
    assert first.ingress == ("10.0.0.0",)
    service["metadata"]["labels"] = {"tier": "gold"}  # the status was never written
    _, again = core.converge(state, service)
    assert (again.ingress, again.pool) == (("10.0.1.0",), "high")
    assert again == core.converge(core.State.empty(config), service)[1]


def test_an_invalid_load_balancer_ip_with_an_empty_status_leaks_nothing() -> None:
    config = core.Config(pools=[core.Pool(name="p", cidrs=["10.0.0.0/30"])])
    service = svc("a")
    state, first = core.converge(core.State.empty(config), service)
    assert first.ingress == ("10.0.0.0",)
    service["spec"]["loadBalancerIP"] = "abc"
    state, again = core.converge(state, service)
    assert again.ingress == ()
    assert [(e.type, e.reason) for e in again.events] == [("Warning", "AllocationFailed")]
    assert 'invalid spec.loadBalancerIP "abc"' in again.events[0].message
    assert state.allocation("default/a") is None


# -- the planner against a model ---------------------------------------------------------------

IPS = [f"10.9.0.{i}" for i in range(6)]


@st.composite
def clusters(draw: st.DrawFn) -> tuple[dict[str, JsonDict], dict[str, core.Convergence]]:
    """A consistent cluster of up to 6 Services (some sharing), and arbitrary outcomes for
    some of them (possibly clashing with each other or with the others' statuses)."""
    n = draw(st.integers(1, 6))
    services = []
    for i in range(n):
        share = draw(st.sampled_from([None, "k", "j"]))
        ports = draw(st.sets(st.sampled_from([80, 443, 53]), min_size=1, max_size=2))
        services.append(svc(f"s{i}", share=share, ports=sorted(ports)))
    cluster = keyed(services)
    for service in cluster.values():
        ips = draw(st.lists(st.sampled_from(IPS), max_size=2, unique=True))
        written(service, ips, "p")
        if conflicts(cluster):
            written(service, (), None)
    outcomes = {}
    for key in draw(st.lists(st.sampled_from(sorted(cluster)), unique=True)):
        ingress = draw(
            st.one_of(st.none(), st.lists(st.sampled_from(IPS), max_size=2, unique=True))
        )
        outcomes[key] = core.Convergence(
            key=key, ingress=None if ingress is None else tuple(ingress), pool="p"
        )
    return cluster, outcomes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), st.lists(st.booleans(), max_size=12), st.lists(st.integers(0, 5), max_size=4))
def test_no_instant_shows_an_address_twice(
    drawn: tuple[dict[str, JsonDict], dict[str, core.Convergence]],
    fails: list[bool],
    order: list[int],
) -> None:
    cluster, outcomes = drawn
    done, _failed = run_round(cluster, outcomes, fails, order)  # checks after every write
    assert {w.key for w in done if w.final} <= set(outcomes)
    if not any(fails):
        # Nothing failed: what is left unwritten is blocked by a Service showing the address.
        for key, outcome in outcomes.items():
            if outcome.ingress is None or shown(cluster[key]) == outcome.ingress:
                continue
            others = [
                k for k in cluster if k != key and set(shown(cluster[k])) & set(outcome.ingress)
            ]
            assert others, (key, outcome)


@st.composite
def rounds(draw: st.DrawFn) -> tuple[core.State, dict[str, JsonDict], list[JsonDict]]:
    """A pool, a cluster restored by converge_all, and edited Services for the next round."""
    config = core.Config(pools=[core.Pool(name="p", cidrs=["10.9.0.0/29"])])
    n = draw(st.integers(1, 7))
    services = []
    for i in range(n):
        share = draw(st.sampled_from([None, "k"]))
        ports = draw(st.sets(st.sampled_from([80, 443, 53]), min_size=1, max_size=2))
        services.append(
            svc(f"s{i}", share=share, ports=sorted(ports), created=f"2026-01-0{i + 1}T00:00:00Z")
        )
    state, first = core.converge_all(core.State.empty(config), services)
    cluster = keyed(services)
    for key, outcome in first.items():
        written(cluster[key], outcome.ingress or (), outcome.pool)
    edited = []
    for key in draw(st.lists(st.sampled_from(sorted(cluster)), unique=True, min_size=1)):
        service = cluster[key]
        notes = service["metadata"]["annotations"]
        change = draw(st.sampled_from(["share", "ports", "ip", "none"]))
        if change == "share":
            notes["metallb.io/allow-shared-ip"] = draw(st.sampled_from(["k", "j"]))
        elif change == "ports":
            service["spec"]["ports"] = [
                {"port": draw(st.sampled_from([80, 443, 53])), "protocol": "TCP"}
            ]
        elif change == "ip":
            service["spec"]["loadBalancerIP"] = draw(st.sampled_from(IPS))
        edited.append(service)
    return state, cluster, edited


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds(), st.lists(st.booleans(), max_size=10), st.lists(st.integers(0, 5), max_size=4))
def test_settle_holds_exactly_what_the_statuses_show(
    drawn: tuple[core.State, dict[str, JsonDict], list[JsonDict]],
    fails: list[bool],
    order: list[int],
) -> None:
    state, cluster, edited = drawn
    after, outcomes = core.converge_all(state, edited)
    run_round(cluster, outcomes, fails, order)
    settled = core.settle(after, cluster, outcomes)
    # A clash an edit made (and a failed write left) cannot be held twice: the state keeps
    # one side, and the planner still sees both statuses.
    clashing = {k for _, a, b in conflicts(cluster) for k in (a, b)}
    for key, service in cluster.items():
        if key in clashing:
            continue
        held = settled.allocation(key)
        assert (() if held is None else tuple(str(ip) for ip in held.ips)) == shown(service), key
    # The next round, all writes succeeding, ends with every outcome written.
    again_state, again = core.converge_all(settled, list(cluster.values()))
    _, failed = run_round(cluster, again)
    assert failed == set()
    for key, outcome in again.items():
        if outcome.ingress is not None:
            assert shown(cluster[key]) == outcome.ingress, key
    assert core.settle(again_state, cluster, again) == again_state


# -- converge's answer depends on the Service and the statuses only ------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.data(),
    st.lists(st.sampled_from([None, *IPS[:4]]), min_size=2, max_size=5),
)
def test_converge_ignores_what_the_state_held_for_the_key(
    data: st.DataObject, shown_ips: list[str | None]
) -> None:
    """Whatever earlier, unwritten decisions left in the state for a Service (a pending one,
    or one whose status says otherwise), converging it gives what converging it against the
    state restored from the statuses gives."""
    config = core.Config(pools=[core.Pool(name="p", cidrs=["10.9.0.0/29"])])
    cluster = []
    for i, ip in enumerate(shown_ips):
        share = data.draw(st.sampled_from([None, "k"]))
        service = svc(f"s{i}", share=share, ports=[80 + i])
        if ip is not None:
            written(service, [ip], "p")
        cluster.append(service)
    restored, _ = core.converge_all(core.State.empty(config), cluster)
    target = copy.deepcopy(data.draw(st.sampled_from(cluster)))
    key = f"default/{target['metadata']['name']}"
    # An earlier decision for the same key, never written: another spec, another request.
    earlier = copy.deepcopy(target)
    earlier.pop("status", None)
    earlier["spec"]["loadBalancerIP"] = data.draw(st.sampled_from(IPS))
    cluttered, _ = core.converge(core.release(restored, key), earlier)
    if data.draw(st.booleans()):
        target["metadata"]["labels"] = {"edited": "yes"}
    assert core.converge(cluttered, target)[1] == core.converge(restored, target)[1]
