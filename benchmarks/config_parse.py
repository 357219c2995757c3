"""Whole-configuration parsing benchmark (issue 12): what validating the BGP side costs.

Run from the repository root::

    python -m benchmarks.config_parse [--pools 2000] [--repeats 3]

Three rows on the same pools, in this one process (CPU time, best of ``--repeats``):

- ``floor``: ``Config(pools=...)`` from ``Pool`` values built before the clock starts (the
  overlap and name checks only: what any parser must at least pay);
- ``layer 2``: ``parse_resources`` on one ``IPAddressPool`` (an IPv4 /24 and an IPv6 range)
  and one ``L2Advertisement`` naming it, per pool;
- ``whole``: the same plus, per pool, a ``BGPAdvertisement`` naming it, one
  ``BGPAdvertisement`` for every pool, a ``Community``, a ``BFDProfile`` and two ``BGPPeer``s.

Each row checks the config it got (pools, advertisements), so a fast wrong answer fails.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from typing import Any

import metallb_core as core


def layer2_objects(pools: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(pools):
        out.append(
            {
                "kind": "IPAddressPool",
                "metadata": {"name": f"p{i}"},
                "spec": {
                    "addresses": [
                        f"10.{i // 250}.{i % 250}.0/24",
                        f"fd00:{i:x}::1-fd00:{i:x}::ff",
                    ]
                },
            }
        )
        spec = {"ipAddressPools": [f"p{i}"]}
        out.append({"kind": "L2Advertisement", "metadata": {"name": f"l{i}"}, "spec": spec})
    return out


def whole_objects(pools: int) -> list[dict[str, Any]]:
    out = layer2_objects(pools)
    for i in range(pools):
        spec = {"ipAddressPools": [f"p{i}"], "communities": ["edge"]}
        out.append({"kind": "BGPAdvertisement", "metadata": {"name": f"b{i}"}, "spec": spec})
    out += [
        {"kind": "BGPAdvertisement", "metadata": {"name": "all"}, "spec": {}},
        {"kind": "Community", "metadata": {"name": "c"},
         "spec": {"communities": [{"name": "edge", "value": "64512:1"}]}},
        {"kind": "BFDProfile", "metadata": {"name": "fast"}, "spec": {"receiveInterval": 50}},
        {"kind": "BGPPeer", "metadata": {"name": "r1"},
         "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1",
                  "bfdProfile": "fast"}},
        {"kind": "BGPPeer", "metadata": {"name": "r2"},
         "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.2"}},
    ]  # fmt: skip
    return out


def _best(run: Callable[[], core.Config], repeats: int) -> tuple[float, core.Config]:
    best, config = float("inf"), core.Config()
    for _ in range(repeats):
        gc.collect()
        start = time.process_time()
        config = run()
        best = min(best, time.process_time() - start)
    return best, config


def run_all(pools: int, repeats: int) -> list[tuple[str, float]]:
    """Rows ``(name, seconds)``; raises ``AssertionError`` if a config is wrong."""
    values = core.parse_resources(layer2_objects(pools)).pools
    l2, whole = layer2_objects(pools), whole_objects(pools)
    floor, got = _best(lambda: core.Config(pools=values), repeats)
    assert len(got.pools) == pools
    l2_time, got = _best(lambda: core.parse_resources(l2), repeats)
    assert len(got.pools) == pools
    assert len(got.l2_advertisements) == pools
    whole_time, got = _best(lambda: core.parse_resources(whole), repeats)
    assert len(got.bgp_advertisements) == pools + 1
    assert len(got.peers) == 2
    return [("floor", floor), ("layer 2", l2_time), ("whole", whole_time)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = run_all(args.pools, args.repeats)
    floor = rows[0][1]
    print(f"{args.pools} pools, best of {args.repeats} (CPU seconds)")
    for name, seconds in rows:
        print(f"  {name:8} {seconds:8.3f}   x{seconds / floor:5.1f} the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
