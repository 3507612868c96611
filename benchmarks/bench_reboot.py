"""What a reboot by the provider costs a Sector, on the emulated cluster backed by the twin.

    sudo .venv/bin/python benchmarks/bench_reboot.py [--rounds 5] [--apply-seconds 1.5]

The example stack is created with `pulumi up` (the real CLI) and its hosts joined; then
each round changes the appliances' memory (128 <-> 160 MiB), which bpg's provider answers
with a reboot of every running appliance, and runs `pulumi up` while `web/app1` watches the
internet host through its Sector Gateway (`orbitlab_lab.twin.outage`: a new connection every
0.1 s, and one connection kept open). Compared with a change that needs no reboot: a new
port forward, which the gateway's provisioning reloads in place.

Prints per round the `up`'s duration, the longest time no new connection got through and
whether the open connection survived, then medians — a benchmark, not a test. The twin
boots a container in a fraction of a second; a real Alpine container boots in seconds
(not measured here). Wrap it in the twin's lock:

    flock /tmp/orbitlab-twin.lock .venv/bin/python benchmarks/bench_reboot.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orbitlab_lab.emulate import control
from orbitlab_lab.emulate.rehearsal import Rehearsal
from orbitlab_lab.twin import outage, runner, system
from orbitlab_lab.twin.state import load_state
from orbitlab_lab.twin.topology import INTERNET_HOST

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "stacks" / "Pulumi.example.yaml"
PORT = 9099
WATCHER = "web/app1"


def watched_up(rehearsal: Rehearsal, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Change the stack, then `pulumi up` while the watcher watches; its report and time."""
    rehearsal.edit("bench", change)
    twin = runner.context_of(load_state())
    target = str(INTERNET_HOST)
    with (
        outage.serving(twin, "external:inet", PORT),
        outage.watching(twin, WATCHER, target, PORT) as watch,
    ):
        began = time.monotonic()
        rehearsal.pulumi("up", "--yes", "--skip-preview", stack="bench")
        took = time.monotonic() - began
        report = watch()
    return {**report, "up_s": took}


def memory(mib: int) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["orbitlab:appliances"]["memory_mib"] = mib

    return change


def forward(port: int) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["orbitlab:sectors"][0]["port_forwards"] = [{"port": port, "to": "app1:22"}]

    return change


def line(what: str, report: dict[str, Any]) -> str:
    return (
        f"{what:<28} up {report['up_s']:5.1f} s  outage {report['outage_s']:5.2f} s  "
        f"failed attempts {report['failures']:3d}  open connection {report['established']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--apply-seconds", type=float, default=1.5)
    args = parser.parse_args()
    system.preflight(system.CORE_TOOLS, system.TEST_TOOLS)
    if not control.pulumi_built():
        print(f"no Pulumi CLI in {control.pulumi_bin()}: run `orbitlab emulate build`")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-reboot-") as workdir:
        rehearsal = Rehearsal.create(
            Path(workdir), EXAMPLE, apply_s=args.apply_seconds, twin_stack="bench"
        )
        try:
            rehearsal.init_stack("bench")
            rehearsal.pulumi("up", "--yes", "--skip-preview", stack="bench")
            rehearsal.orbitlab("emulate", "join", check=True)
            reboots, reloads = [], []
            for round_ in range(args.rounds):
                reboots.append(watched_up(rehearsal, memory((160, 128)[round_ % 2])))
                print(line(f"memory (reboot) {round_ + 1}", reboots[-1]), flush=True)
                reloads.append(watched_up(rehearsal, forward(2100 + round_)))
                print(line(f"port forward (reload) {round_ + 1}", reloads[-1]), flush=True)
        finally:
            rehearsal.stop()
    for what, runs in (("reboot", reboots), ("reload in place", reloads)):
        survived = sum(run["established"] == "open" for run in runs)
        took = statistics.median(run["up_s"] for run in runs)
        gap = statistics.median(run["outage_s"] for run in runs)
        print(
            f"median of {len(runs)}, {what}: up {took:.1f} s, outage {gap:.2f} s; the open "
            f"connection survived {survived} of {len(runs)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
