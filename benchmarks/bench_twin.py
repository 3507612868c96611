"""Twin benchmark: appliance memory, DHCP, NAT throughput, bring-up and teardown (root).

    sudo .venv/bin/python benchmarks/bench_twin.py [--runs 3] [--big-runs 3] [--seconds 3] \
        [--leases 7]

Prints:

1. resident memory (VmRSS) of each appliance's daemons on the example stack, against the
   128 MiB a container gets (SPEC §5), and the DNS appliance's (CoreDNS + dnsmasq with its
   lease-script helper) against half of it (SPEC §11);
2. from a DHCP client's start to its name resolving through the Sector DNS (median of
   several leases, each a new client: a fresh MAC and name on web/app3), beside the time to
   its lease;
3. TCP throughput (iperf3) from a Sector host through its gateway (forwarding + nftables
   masquerade) to the "internet", as a ratio of the direct path from the gateway itself
   over the same Backplane/L3-VNI/SNAT path, measured in the same run;
4. bring-up and teardown time (median of a few runs) of 2 nodes x 3 Sectors and
   2 nodes x 30 Sectors, generated stacks with two static hosts and a DHCP client per
   Sector and an LB in every third Sector.

Everything runs in the twin's own namespaces and is removed at the end, also on error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from orbitlab.stack import load_plan
from orbitlab_lab.twin import appliances, dhcp, runner, system
from orbitlab_lab.twin.checks import leases as dhcp_checks
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.topology import INTERNET_HOST, build_topology

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "stacks" / "Pulumi.example.yaml"
BUDGET_MIB = 128
IPERF_PORT = 5201


def quiet(message: str) -> None:
    del message


def generated_stack(sectors: int) -> dict[str, Any]:
    """2 nodes and ``sectors`` Sectors, two static hosts each (one per node) and a DHCP
    client, an LB every third."""
    config: dict[str, Any] = {
        "orbitlab:backplane": {
            "nodes": [
                {"name": "pve1", "address": "192.0.2.11"},
                {"name": "pve2", "address": "192.0.2.12"},
            ]
        },
        "orbitlab:appliances": {"nameservers": ["192.0.2.53"]},
        "orbitlab:sectors": [],
    }
    for index in range(sectors):
        sector: dict[str, Any] = {
            "name": f"s{index:02d}",
            "subnets": ["172.16.0.0/24", "172.16.1.0/24"],
            "hosts": [
                {"name": "app1", "address": "172.16.0.21"},
                {"name": "app2", "address": "172.16.1.22"},
                {"name": "app3"},  # a DHCP client, named by its lease
            ],
        }
        if index % 3 == 0:
            sector["load_balancer"] = {"listeners": [{"port": 80, "backends": ["app1:8080"]}]}
        config["orbitlab:sectors"].append(sector)
    return {"config": config}


def measure_memory(twin: TwinContext) -> None:
    print(f"\n== appliance memory (VmRSS of the daemons; budget {BUDGET_MIB} MiB each) ==")
    print(f"{'appliance':<16} {'daemons':<34} {'RSS MiB':>8} {'of budget':>10}")
    for sector in twin.topology.sectors:
        for role, ns in sector.appliances().items():
            rss = appliances.daemon_rss_kib(twin, ns.name)
            total = sum(rss.values()) / 1024
            daemons = " + ".join(f"{name} {kib / 1024:.1f}" for name, kib in rss.items())
            share = 100 * total / BUDGET_MIB
            print(f"{sector.name + '/' + role:<16} {daemons:<34} {total:>8.1f} {share:>9.1f}%")


def measure_dns_appliance(twin: TwinContext) -> None:
    """The DNS appliances (CoreDNS + dnsmasq) against half their budget."""
    print(f"\n== DNS appliance memory (CoreDNS + dnsmasq; target under {BUDGET_MIB // 2} MiB) ==")
    for sector in twin.topology.sectors:
        rss = appliances.daemon_rss_kib(twin, sector.dns.name)
        total = sum(rss.values()) / 1024
        verdict = "ok" if total < BUDGET_MIB / 2 else "OVER HALF THE BUDGET"
        print(
            f"{sector.dns.label:<16} coredns {rss.get('coredns', 0) / 1024:.1f} + dnsmasq "
            f"{rss.get('dnsmasq', 0) / 1024:.1f} = {total:.1f} MiB of {BUDGET_MIB} "
            f"({100 * total / BUDGET_MIB:.1f}%): {verdict}"
        )


def lease_to_name(twin: TwinContext, round_: int) -> tuple[float, float]:
    """A new client on web/app3 (fresh MAC and name): seconds to its lease, to its name."""
    sector = twin.topology.sector("web")
    host = sector.host("app3")
    name = f"bench{round_}"
    dhcp.stop_client(twin, host)
    mac = f"0a:00:00:00:{round_ // 256:02x}:{round_ % 256:02x}"
    system.ip_batch(host.ns.name, ["link set eth0 down", f"link set eth0 address {mac} up"])
    before = dhcp.read_lease(twin, host)
    began = time.monotonic()
    dhcp.start_client(twin, host, name)
    lease = dhcp.wait_bound(twin, host, after=before.stamp if before else 0)
    leased = time.monotonic() - began

    def resolves() -> bool:
        return dhcp_checks.forward(twin, sector, name).answers == (str(lease.ip),)

    system.wait_until(f"{name}.{sector.plan.domain} to resolve", resolves, 30, step=0.05)
    return leased, time.monotonic() - began


def measure_lease_to_name(twin: TwinContext, rounds: int) -> None:
    print(f"\n== DHCP client start -> lease -> name resolves (web/app3, {rounds} new clients) ==")
    timings = [lease_to_name(twin, index) for index in range(rounds)]
    leases, names = zip(*timings, strict=True)
    print("lease s: " + " ".join(f"{t:.2f}" for t in leases))
    print("name  s: " + " ".join(f"{t:.2f}" for t in names))
    print(
        f"median: lease {statistics.median(leases):.2f}s, name resolves "
        f"{statistics.median(names):.2f}s after the client started"
    )


def iperf(twin: TwinContext, ns: str, seconds: int) -> float:
    """Received bits per second of an iperf3 run from ``ns`` to the internet host."""
    argv = ["iperf3", "-c", str(INTERNET_HOST), "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]
    result = twin.run(ns, argv, timeout=seconds + 30)
    return float(json.loads(result.stdout)["end"]["sum_received"]["bits_per_second"])


def measure_nat(twin: TwinContext, seconds: int) -> None:
    inet = twin.topology.external.inet.name
    twin.start(inet, ["iperf3", "-s", "-p", str(IPERF_PORT)], "iperf3")
    system.wait_until(
        "iperf3 server",
        lambda: f":{IPERF_PORT} " in twin.run(inet, ["ss", "-ltn"], check=False).stdout,
        10,
    )
    sector = twin.topology.sector("web")
    host = next(h for h in sector.hosts if h.node == sector.node)
    direct = iperf(twin, sector.gateway.name, seconds)
    natted = iperf(twin, host.ns.name, seconds)
    print(f"\n== NAT throughput (iperf3, {seconds}s each, same run) ==")
    print(f"direct  web/gateway -> internet {INTERNET_HOST}: {direct / 1e9:8.2f} Gbit/s")
    print(f"via NAT {host.ns.label} -> gateway -> internet: {natted / 1e9:8.2f} Gbit/s")
    print(f"ratio NAT/direct: {natted / direct:.2f}")


def time_cycle(stack: Path) -> tuple[float, float]:
    began = time.monotonic()
    runner.up(str(stack), quiet)
    up_s = time.monotonic() - began
    began = time.monotonic()
    runner.down(quiet)
    return up_s, time.monotonic() - began


def measure_scale(sector_counts: dict[int, int]) -> None:
    print("\n== bring-up / teardown (2 nodes, median of runs) ==")
    print(f"{'Sectors':>7} {'runs':>5} {'up s':>7} {'down s':>7}  namespaces")
    with tempfile.TemporaryDirectory(prefix="olt-bench-") as directory:
        for count, runs in sector_counts.items():
            stack = Path(directory) / f"Pulumi.bench{count}.yaml"
            stack.write_text(yaml.safe_dump(generated_stack(count)))
            cycles = [time_cycle(stack) for _ in range(runs)]
            ups, downs = zip(*cycles, strict=True)
            namespaces = len(list(build_topology(load_plan(str(stack))).namespaces()))
            print(
                f"{count:>7} {runs:>5} {statistics.median(ups):>7.2f} "
                f"{statistics.median(downs):>7.2f}  {namespaces}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the 3-Sector cycle")
    parser.add_argument("--big-runs", type=int, default=3, help="runs of the 30-Sector cycle")
    parser.add_argument("--seconds", type=int, default=3, help="iperf3 duration")
    parser.add_argument("--leases", type=int, default=7, help="new DHCP clients to time")
    args = parser.parse_args()
    system.preflight(system.CORE_TOOLS, system.TEST_TOOLS, system.BENCH_TOOLS)
    try:
        twin = runner.up(str(EXAMPLE), quiet)
        measure_memory(twin)
        measure_dns_appliance(twin)
        measure_lease_to_name(twin, args.leases)
        measure_nat(twin, args.seconds)
        runner.down(quiet)
        measure_scale({3: args.runs, 30: args.big_runs})
    finally:
        runner.down(quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
