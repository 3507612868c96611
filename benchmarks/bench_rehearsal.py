"""`pulumi up` for real on the emulated cluster: wall time and SDN applies, per stack size.

For 1, 10 and 30 Sectors (on the example stack's two nodes, every other Sector with a load
balancer), each run starts a fresh emulated cluster and times, with the real Pulumi CLI:
the first `pulumi up` (everything created), a no-op `pulumi up`, and `pulumi destroy
--exclude-protected` (every Sector goes, the Backplane stays), and counts the SDN applies
the emulated cluster saw in each. An apply's node reloads take `--apply-seconds` in all
(default 1.5, the emulator's default), which is part of every time that applies.

    .venv/bin/python benchmarks/bench_rehearsal.py                    # 1, 10, 30 Sectors
    .venv/bin/python benchmarks/bench_rehearsal.py --sizes 1 10 --runs 1

Needs the built CLI (orbitlab emulate build). Prints medians — a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orbitlab_lab.emulate import control
from orbitlab_lab.emulate.rehearsal import Rehearsal

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "stacks" / "Pulumi.example.yaml"
STEPS = ("create", "no-op up", "destroy")


def sectors(count: int) -> list[dict[str, Any]]:
    """``count`` Sectors with one subnet each, every other one with a load balancer."""
    found = []
    for index in range(count):
        sector: dict[str, Any] = {
            "name": f"s{index:02d}",
            "subnets": [f"172.16.{index}.0/24"],
            "hosts": [{"name": "app", "address": f"172.16.{index}.20"}],
        }
        if index % 2 == 0:
            sector["load_balancer"] = {"listeners": [{"port": 80, "backends": ["app:8080"]}]}
        found.append(sector)
    return found


def timed(rehearsal: Rehearsal, *args: str) -> tuple[float, int]:
    """Seconds of ``pulumi ARGS`` and the SDN applies it caused."""
    before = len(rehearsal.applies())
    started = time.monotonic()
    rehearsal.pulumi(*args)
    seconds = time.monotonic() - started
    applies = rehearsal.applies()
    if not all(a["ok"] for a in applies):
        raise SystemExit(f"an SDN apply failed: {applies}")
    return seconds, len(applies) - before


def one_run(count: int, apply_s: float) -> tuple[dict[str, tuple[float, int]], int]:
    """The three steps' (seconds, applies), and how many resources the stack had."""
    with tempfile.TemporaryDirectory(prefix="bench-rehearsal-") as workdir:
        rehearsal = Rehearsal.create(Path(workdir), EXAMPLE, apply_s=apply_s)
        try:
            rehearsal.add_stack_file(
                "bench", EXAMPLE, lambda c: c.__setitem__("orbitlab:sectors", sectors(count))
            )
            rehearsal.init_stack("bench")
            steps = {"create": timed(rehearsal, "up", "--yes", "--skip-preview")}
            # the stack itself and the default provider are not resources of the program
            resources = len(rehearsal.resources("bench")) - 2
            steps["no-op up"] = timed(rehearsal, "up", "--yes", "--skip-preview")
            steps["destroy"] = timed(rehearsal, "destroy", "--yes", "--exclude-protected")
            return steps, resources
        finally:
            rehearsal.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--runs", type=int, default=3, help="runs per size (median)")
    parser.add_argument("--apply-seconds", type=float, default=1.5)
    args = parser.parse_args()
    if not control.pulumi_built():
        print(f"no Pulumi CLI in {control.pulumi_bin()}: run `orbitlab emulate build`")
        return 1
    print(
        f"pulumi up on the emulated cluster: median of {args.runs} run(s), an SDN apply's "
        f"node reloads take {args.apply_seconds:g} s; applies = SDN applies the cluster saw"
    )
    header = f"{'Sectors':>7} {'resources':>9}  " + "  ".join(
        f"{step + ' s':>12} {'applies':>7}" for step in STEPS
    )
    print(header)
    for count in args.sizes:
        outcomes = [one_run(count, args.apply_seconds) for _ in range(args.runs)]
        runs = [steps for steps, _ in outcomes]
        cells = []
        for step in STEPS:
            seconds = statistics.median(run[step][0] for run in runs)
            applies = {run[step][1] for run in runs}
            cells.append(f"{seconds:>12.1f} {'/'.join(map(str, sorted(applies))):>7}")
        print(f"{count:>7} {outcomes[0][1]:>9}  " + "  ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
