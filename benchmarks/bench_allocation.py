"""Benchmark: allocating tags and Backplane addresses for very many Sectors on a /8.

The tag range 1001-9999 holds 8,999 Sectors, so "10,000 Sectors" means: the whole range
allocated, and the 10,000-Sector request failing with the exhaustion error. Each figure is
the median of several runs; beside it, a naive allocator (rescanning from 1001 for every
Sector) shows what the single forward scan saves.

    .venv/bin/python benchmarks/bench_allocation.py [--runs 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from netaddr import IPNetwork

from orbitlab.allocation import (
    SECTOR_TAG_MAX,
    SECTOR_TAG_MIN,
    allocate_tags,
    appliance_backplane_addresses,
)
from orbitlab.errors import AllocationError

BACKPLANE = IPNetwork("10.0.0.0/8")
CAPACITY = SECTOR_TAG_MAX - SECTOR_TAG_MIN + 1


def naive_allocate(names: list[str], in_use: set[int]) -> dict[str, int]:
    taken, tags = set(in_use), {}
    for name in names:
        tag = next(t for t in range(SECTOR_TAG_MIN, SECTOR_TAG_MAX + 1) if t not in taken)
        tags[name] = tag
        taken.add(tag)
    return tags


def allocate_all(count: int, in_use: set[int], allocator: Callable) -> int:
    names = [f"s{i}" for i in range(count)]
    if allocator is allocate_tags:
        tags = allocate_tags([(name, None) for name in names], in_use, {})
    else:
        tags = allocator(names, in_use)
    for tag in tags.values():
        appliance_backplane_addresses(BACKPLANE, tag)
    return len(tags)


def median_ms(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def exhaustion(count: int) -> None:
    try:
        allocate_all(count, set(), allocate_tags)
    except AllocationError:
        return
    raise AssertionError("expected exhaustion")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    scattered = set(random.Random(7).sample(range(SECTOR_TAG_MIN, SECTOR_TAG_MAX + 1), 2000))
    rows = [
        ("all 8,999 tags + addresses, empty cluster", CAPACITY, set()),
        ("6,999 Sectors, 2,000 scattered tags in use", CAPACITY - 2000, scattered),
        ("1,000 Sectors, empty cluster", 1000, set()),
    ]
    print(f"Backplane {BACKPLANE}; median of {args.runs} runs")
    print(f"{'case':46} {'orbitlab':>12} {'naive rescan':>14} {'per Sector':>12}")
    for label, count, in_use in rows:
        ours = median_ms(lambda c=count, u=in_use: allocate_all(c, u, allocate_tags), args.runs)
        naive_runs = max(1, args.runs // 3)
        naive = median_ms(lambda c=count, u=in_use: allocate_all(c, u, naive_allocate), naive_runs)
        print(f"{label:46} {ours:10.1f}ms {naive:12.1f}ms {ours * 1000 / count:9.2f}us")
    failing = median_ms(lambda: exhaustion(10_000), args.runs)
    print(f"{'10,000 Sectors requested -> exhaustion error':46} {failing:10.1f}ms")


if __name__ == "__main__":
    main()
