"""Speaker round benchmark: the core's policy functions against the former inline code (issue 11).

Run from the repository root::

    python -m benchmarks.speaker_rules [--services 50 1000] [--repeats 5]

One speaker round, as ``announcers.kubernetes.speaker`` runs it after each event once the
elections are known: :func:`metallb_core.plan_announcements` (the interface x family pairing
and the announce/withdraw diff) then :func:`metallb_core.report_announcements` (what changed,
with the Events), in the steady state (nothing to announce or withdraw; the common round).
The baseline is the speaker's inline code before the policy moved to the core, restated
here (:func:`baseline_round`). A third of the Services are won by this node, with two
interfaces (one IPv4 only). Times are CPU time of this process, the median of ``--repeats``
runs of 200 rounds each. Both must agree on what is wanted and served, so a fast wrong answer
cannot pass (exit status 1).
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import sys
import time
from collections.abc import Mapping, Sequence

import metallb_core as core

NODE = "n1"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Pair = tuple[Address, str]
INTERFACES = (core.NodeInterface(name="eth0"), core.NodeInterface(name="eth1", ipv6=False))


def elections(count: int) -> dict[str, core.Announcement]:
    """``count`` Services, every third one won by :data:`NODE`, half of them IPv6."""
    result = {}
    for i in range(count):
        base = ipaddress.ip_address("10.0.0.0" if i % 2 else "fd00::")
        key = f"ns/s{i}"
        node = NODE if i % 3 == 0 else "n2"
        result[key] = core.Announcement(key=key, node=node, ips=[str(base + i)], pool="p")
    return result


def _order(pair: Pair) -> tuple[int, int, str]:
    return (pair[0].version, int(pair[0]), pair[1])


def baseline_round(
    won_by: Mapping[str, core.Announcement],
    interfaces: Sequence[core.NodeInterface],
    announced: set[Pair],
    serving_before: Mapping[str, tuple[Address, ...]],
) -> tuple[dict[Pair, set[str]], dict[str, tuple[Address, ...]], list[str]]:
    """The speaker's former inline round (``_pairs``, ``_apply``, ``_report``, no I/O)."""
    want: dict[Pair, set[str]] = {}
    won: dict[str, core.Announcement] = {}
    for key, election in won_by.items():
        if election.node != NODE:
            continue
        won[key] = election
        pairs = [
            (ip, i.name)
            for ip in election.ips
            for i in interfaces
            if election.allows(i.name) and (i.ipv4 if ip.version == 4 else i.ipv6)
        ]
        for pair in pairs:
            want.setdefault(pair, set()).add(key)
    sorted(announced - want.keys(), key=_order)
    sorted(want.keys() - announced, key=_order)
    holding: dict[str, set[Pair]] = {}
    for pair in announced:
        for key in want.get(pair, ()):
            holding.setdefault(key, set()).add(pair)
    serving = {key: won[key].ips for key in holding}
    started = [key for key, ips in serving.items() if serving_before.get(key) != ips]
    return want, serving, started


def core_round(
    won_by: Mapping[str, core.Announcement],
    interfaces: Sequence[core.NodeInterface],
    announced: set[Pair],
    before: core.AnnounceReport,
) -> tuple[core.AnnouncePlan, core.AnnounceReport, tuple[core.AnnounceChange, ...]]:
    """The same round through the core."""
    plan = core.plan_announcements(NODE, won_by.values(), interfaces, announced)
    report, changes = core.report_announcements(plan, announced, before, won_by)
    return plan, report, changes


def outcomes(count: int) -> tuple[tuple[object, object], tuple[object, object]]:
    """What each side wants and serves after a first round over ``count`` Services:
    ``((core want, core serving), (baseline want, baseline serving))``, comparable."""
    won_by = elections(count)
    plan = core.plan_announcements(NODE, won_by.values(), INTERFACES, set())
    held: set[Pair] = set(plan.want)
    report, _ = core.report_announcements(plan, held, core.AnnounceReport.empty(), won_by)
    want, serving, _ = baseline_round(won_by, INTERFACES, held, {})
    ours = (dict(plan.want), {k: s.ips for k, s in report.serving.items()})
    theirs = ({pair: frozenset(keys) for pair, keys in want.items()}, serving)
    return ours, theirs


def measure(count: int, repeats: int, rounds: int = 200) -> tuple[float, float]:
    """Median CPU seconds per round: (core, baseline); raises when they disagree."""
    ours, theirs = outcomes(count)
    if ours != theirs:
        raise AssertionError(f"{count} Services: the core and the baseline disagree")
    won_by = elections(count)
    plan = core.plan_announcements(NODE, won_by.values(), INTERFACES, set())
    held: set[Pair] = set(plan.want)
    report, _ = core.report_announcements(plan, held, core.AnnounceReport.empty(), won_by)
    _, serving, _ = baseline_round(won_by, INTERFACES, held, {})
    times: dict[str, list[float]] = {"core": [], "baseline": []}
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(rounds):
            core_round(won_by, INTERFACES, held, report)
        times["core"].append((time.process_time() - start) / rounds)
        start = time.process_time()
        for _ in range(rounds):
            baseline_round(won_by, INTERFACES, held, serving)
        times["baseline"].append((time.process_time() - start) / rounds)
    return statistics.median(times["core"]), statistics.median(times["baseline"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, nargs="+", default=[50, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("| Services | core round | former inline round | ratio |")
    print("| --- | --- | --- | --- |")
    for count in args.services:
        try:
            ours, theirs = measure(count, args.repeats)
        except AssertionError as error:
            print(error, file=sys.stderr)
            return 1
        print(f"| {count} | {ours * 1e3:.3f} ms | {theirs * 1e3:.3f} ms | {ours / theirs:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
