"""`pulumi up` on the emulated cluster backed by the twin, until `twin test` is green (root).

    sudo .venv/bin/python benchmarks/bench_twin_cluster.py [--sizes 3 30] [--runs 3]

For each size (generated stacks as in bench_twin.py: 2 nodes, two static hosts and a DHCP
client per Sector, an LB every third Sector), two ways to the same green table:

- the emulated cluster backed by the twin: `orbitlab emulate start --twin` (not counted),
  then from the start of `pulumi up` (the real CLI: every SDN object, container and
  provisioning in full) through `orbitlab emulate join` (the declared hosts, as VMs joined
  by hand) to `orbitlab twin test` passing;
- the plan-built twin: `orbitlab twin up` (bring-up from the stack file), then the same
  `twin test`.

Both run the same checks: by default the groups that grow linearly with the Sectors
(`--check` to choose others, `--all` for every group but the gateway failure and the
DHCP lease changes: at 30 Sectors sharing one CIDR, "overlap" and "isolation" grow with
the square of the Sectors). An SDN apply's node reloads take `--apply-seconds` in all (the
emulator's default). Prints medians — a benchmark, not a test. Wrap it in the twin's lock:

    flock /tmp/orbitlab-twin.lock .venv/bin/python benchmarks/bench_twin_cluster.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml
from bench_twin import generated_stack

from orbitlab_lab.emulate import control
from orbitlab_lab.emulate.rehearsal import Rehearsal
from orbitlab_lab.twin import runner, system

REPO = Path(__file__).resolve().parent.parent
LINEAR_CHECKS = (
    "egress SNAT",
    "subnet routing",
    "dns forward",
    "lb ingress",
    "gateway services",
    "dhcp pool",
    "dhcp names",
)
QUICK = ("--skip-failover", "--skip-dhcp-changes")


def quiet(message: str) -> None:
    del message


def test_args(checks: Sequence[str]) -> list[str]:
    return [*QUICK, *(arg for check in checks for arg in ("--check", check))]


def green(output: str, code: int, what: str) -> None:
    if code != 0:
        raise SystemExit(f"{what}: twin test is not green:\n{output[-3000:]}")


def cluster_run(stack: Path, apply_s: float, checks: Sequence[str]) -> dict[str, float]:
    """Seconds of pulumi up, join and twin test, and from up's start to green."""
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as workdir:
        rehearsal = Rehearsal.create(Path(workdir), stack, apply_s=apply_s, twin_stack="bench")
        try:
            rehearsal.init_stack("bench", endpoint="https://192.0.2.11:8006/")
            began = time.monotonic()
            rehearsal.pulumi("up", "--yes", "--skip-preview")
            upped = time.monotonic()
            rehearsal.orbitlab("emulate", "join", check=True)
            joined = time.monotonic()
            done = rehearsal.orbitlab("twin", "test", *test_args(checks), timeout=3600)
            green(done.stdout + done.stderr, done.returncode, "cluster")
            ended = time.monotonic()
        finally:
            rehearsal.stop()
    return {
        "up": upped - began,
        "join": joined - upped,
        "test": ended - joined,
        "green": ended - began,
    }


def plan_run(stack: Path, checks: Sequence[str]) -> dict[str, float]:
    """Seconds of twin up and twin test, and from up's start to green."""
    began = time.monotonic()
    try:
        runner.up(str(stack), quiet)
        upped = time.monotonic()
        argv = [sys.executable, "-m", "orbitlab.cli", "twin", "test", *test_args(checks)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
        green(done.stdout + done.stderr, done.returncode, "plan")
        ended = time.monotonic()
    finally:
        runner.down(quiet)
    return {"up": upped - began, "test": ended - upped, "green": ended - began}


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 30])
    parser.add_argument("--runs", type=int, default=3, help="runs per size (median)")
    parser.add_argument("--apply-seconds", type=float, default=1.5)
    parser.add_argument("--check", action="append", default=[], help="a check group to run")
    parser.add_argument("--all", action="store_true", help="every group (see the docstring)")
    args = parser.parse_args()
    system.preflight(system.CORE_TOOLS, system.TEST_TOOLS)
    if not control.pulumi_built():
        print(f"no Pulumi CLI in {control.pulumi_bin()}: run `orbitlab emulate build`")
        return 1
    checks = [] if args.all else (args.check or list(LINEAR_CHECKS))
    print(
        f"pulumi up -> twin test green, median of {args.runs} run(s); checks: "
        f"{', '.join(checks) or 'all but failover and DHCP lease changes'}; "
        f"an SDN apply's node reloads take {args.apply_seconds:g} s"
    )
    print(
        f"{'Sectors':>7} {'containers':>10}  {'up s':>6} {'join s':>6} {'test s':>6} "
        f"{'green s':>7}   plan-built: {'up s':>6} {'test s':>6} {'green s':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-stacks-") as directory:
        for count in args.sizes:
            stack = Path(directory) / f"Pulumi.bench{count}.yaml"
            stack.write_text(yaml.safe_dump(generated_stack(count)))
            cluster = [cluster_run(stack, args.apply_seconds, checks) for _ in range(args.runs)]
            plan = [plan_run(stack, checks) for _ in range(args.runs)]
            containers = 2 * count + (count + 2) // 3
            print(
                f"{count:>7} {containers:>10}  {median(cluster, 'up'):>6.1f} "
                f"{median(cluster, 'join'):>6.1f} {median(cluster, 'test'):>6.1f} "
                f"{median(cluster, 'green'):>7.1f}   plan-built: {median(plan, 'up'):>6.1f} "
                f"{median(plan, 'test'):>6.1f} {median(plan, 'green'):>7.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
