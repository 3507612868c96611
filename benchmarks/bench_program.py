"""Program time under Pulumi mocks, per Sector, beside the SDK's floor (issue 18, item 7).

The *program* run is the stack program's whole work: settings validation, the cluster
invokes, allocation, rendering every appliance's script, and declaring the components.
The *floor* registers exactly the same resources (types, names, parents, inputs and
dependencies, recorded from a program run) with no program logic: what the Pulumi SDK
costs on its own. It declares them as the cheapest program could: each through a class of
its own (as every provider's resource is; the SDK records where user code declared it) and
with its dependencies by URN (:func:`orbitlab.components.rollout.after`, so the SDK's cycle
check walks nothing). Target: the program at most 1.5 times the floor at every size, and
its cost per Sector flat (linear in Sectors).

    .venv/bin/python benchmarks/bench_program.py                 # 100, 300, 1000 Sectors
    .venv/bin/python benchmarks/bench_program.py --sizes 10 100 --repeats 5

Prints medians (ms per Sector) — a benchmark, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from orbitlab.components.rollout import after
from orbitlab.program import main

TARGET_RATIO = 1.5
TEMPLATE_CHECKSUM = "sha512:" + "0" * 128  # any well-formed one: nothing is downloaded
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrbitLabBenchKeyOnlyForBenchmarksAAAAAAA"


class QuietMocks(pulumi.runtime.Mocks):
    """An empty cluster; resources get their inputs back as state."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        return {"id": "x", "vnets": [], "zones": [], "vms": [], "containers": [],
                "nodeName": "n", "datastores": []}  # fmt: skip

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        if args.typ == "pulumi:pulumi:StackReference":  # the stack's own, before its first up
            return args.name, {"name": args.name, "outputs": {}}
        return f"{args.name}-id", dict(args.inputs)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Keeps, in registration order, what the floor must replay."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.recorded.append(
                {
                    "urn": response.urn,
                    "type": request.type,
                    "name": request.name,
                    "custom": request.custom,
                    "parent": request.parent,
                    "inputs": rpc.deserialize_properties(request.object),
                    "dependencies": list(request.dependencies),
                }
            )
        return response


def stack_config(sectors: int) -> dict[str, str]:
    """A 2-node stack (host keys pinned) with ``sectors`` Sectors (overlapping CIDRs, every
    tenth with an LB)."""
    entries = []
    for index in range(sectors):
        sector: dict[str, Any] = {
            "name": f"s{index}",
            "subnets": ["172.16.0.0/24", "172.16.1.0/24"],
            "hosts": [{"name": "app", "address": "172.16.0.20"}],
        }
        if index % 10 == 0:
            sector["load_balancer"] = {"listeners": [{"port": 80, "backends": ["app:8080"]}]}
        entries.append(sector)
    config = {
        "backplane": {
            "cidr": "10.200.0.0/16",
            "nodes": [
                {"name": "pve1", "address": "192.0.2.11", "host_key": HOST_KEY},
                {"name": "pve2", "address": "192.0.2.12", "host_key": HOST_KEY},
            ],
        },
        "appliances": {"nameservers": ["192.0.2.53"], "template_checksum": TEMPLATE_CHECKSUM},
        "sectors": entries,
    }
    return {f"orbitlab:{key}": json.dumps(value) for key, value in config.items()}


def timed(body: Callable[[], None], monitor: pulumi_mocks.MockMonitor) -> float:
    """Seconds from the program's start until every registration has completed."""
    pulumi.runtime.set_mocks(monitor.mocks, project="orbitlab", stack="bench", monitor=monitor)
    start = time.perf_counter()
    pulumi.runtime.test(body)()
    return time.perf_counter() - start


def program_run(config: dict[str, str], monitor: pulumi_mocks.MockMonitor) -> float:
    pulumi.runtime.set_all_config(config)

    def body() -> None:
        main()

    return timed(body, monitor)


class Replayed(pulumi.CustomResource):
    """A resource class of its own, as every provider's is: the SDK records where user code
    declared it (the floor pays that as the program does)."""

    def __init__(self, t: str, name: str, props: dict, opts: pulumi.ResourceOptions) -> None:
        super().__init__(t, name, props, opts)


class ReplayedComponent(pulumi.ComponentResource):
    """A component class of its own, as every component is."""

    def __init__(self, t: str, name: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__(t, name, None, opts)


def floor_run(recorded: list[dict[str, Any]]) -> float:
    """Register the recorded resources again, with nothing but the SDK calls."""

    def body() -> None:
        made: dict[str, pulumi.Resource] = {}
        for entry in recorded:
            opts = pulumi.ResourceOptions(
                parent=made.get(entry["parent"]),
                depends_on=[after(made[urn] for urn in entry["dependencies"] if urn in made)],
            )
            if entry["custom"]:
                resource: pulumi.Resource = Replayed(
                    entry["type"], entry["name"], dict(entry["inputs"]), opts
                )
            else:
                resource = ReplayedComponent(entry["type"], entry["name"], opts)
            made[entry["urn"]] = resource

    return timed(body, pulumi_mocks.MockMonitor(QuietMocks()))


def measure(sectors: int, repeats: int) -> tuple[float, float, int]:
    config = stack_config(sectors)
    recorder = RecordingMonitor(QuietMocks())
    program_run(config, recorder)  # warm-up, and the recording the floor replays
    program = [program_run(config, pulumi_mocks.MockMonitor(QuietMocks())) for _ in range(repeats)]
    floor = [floor_run(recorder.recorded) for _ in range(repeats)]
    return statistics.median(program), statistics.median(floor), len(recorder.recorded)


def main_cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument(
        "--repeats", type=int, default=0, help="runs per size (default: 9, 7, 5, 3 by size)"
    )
    args = parser.parse_args()
    print(
        f"{'Sectors':>8} {'resources':>10} {'floor ms/Sector':>16} {'program ms/Sector':>18} "
        f"{'ratio':>6} {'floor ms/res':>13}"
    )
    worst = 0.0
    per_sector: list[float] = []
    for sectors in args.sizes:
        repeats = args.repeats or (
            9 if sectors <= 1 else 7 if sectors <= 10 else 5 if sectors <= 100 else 3
        )
        program, floor, resources = measure(sectors, repeats)
        ratio = program / floor
        worst = max(worst, ratio)
        per_sector.append(program * 1000 / sectors)
        print(
            f"{sectors:>8} {resources:>10} {floor * 1000 / sectors:>16.1f} "
            f"{program * 1000 / sectors:>18.1f} {ratio:>6.2f} {floor * 1000 / resources:>13.2f}",
            flush=True,
        )
    if len(per_sector) > 1:
        print(
            f"program ms/Sector from {args.sizes[0]} to {args.sizes[-1]} Sectors: "
            f"{per_sector[0]:.1f} -> {per_sector[-1]:.1f} ({per_sector[-1] / per_sector[0]:.2f}x)"
        )
    verdict = "within" if worst <= TARGET_RATIO else "OVER"
    print(f"worst ratio {worst:.2f}: {verdict} the target of {TARGET_RATIO}x the floor")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main_cli())
