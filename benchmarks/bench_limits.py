"""What one Sector host can make the Sector DNS and the Sector Gateway hold (root).

    sudo .venv/bin/python benchmarks/bench_limits.py [--rounds 3] [--queries 1000] \
        [--syns 20000]

On the twin of the example stack, from ``web/app1``, each round:

1. ``--queries`` DNS queries sent at once (one UDP socket each, every name new, so each one
   is forwarded: none is answered from the cache) to the Sector DNS; the CoreDNS resident
   memory (VmRSS) sampled every 20 ms until every query is answered or 5 s pass. Printed:
   CoreDNS's RSS before and at its peak, the answers by their code (REFUSED: past
   ``forward``'s ``max_concurrent``, see ``orbitlab.rendering.DnsLimits``) and how many got
   none within the 5 s;
2. ``--syns`` TCP SYNs (hping3, 20 000 per second) to an internet address that never
   answers, so every one would stay in the gateway's connection tracking (SYN_SENT, 120 s);
   printed: the gateway's conntrack entries from that host afterwards, against the
   gateway's per-host bound (``orbitlab.rendering.GatewayLimits``).

Medians over the rounds. A benchmark, not a test; the twin's own checks test the bounds.
Everything runs in the twin's namespaces and is removed at the end, also on error. Wrap it
in the twin's lock: ``flock /tmp/orbitlab-twin.lock .venv/bin/python benchmarks/bench_limits.py``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from orbitlab.rendering import DNS_LIMITS, GATEWAY_LIMITS
from orbitlab_lab.twin import appliances, runner, system
from orbitlab_lab.twin.context import TwinContext

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "stacks" / "Pulumi.example.yaml"
SILENT = "203.0.113.99"  # no host answers there: SYNs to it stay SYN_SENT
SAMPLE_S = 0.02

FLOOD = """
import json, os, select, socket, struct, sys, time
dns, count, round_ = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def query(i):
    name = b"".join(bytes([len(p)]) + p for p in (f"q{round_}x{i}".encode(), b"example", b"com"))
    return struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + b"\\0" + b"\\0\\1\\0\\1"
socks = []
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.sendto(query(i), (dns, 53))
    socks.append(s)
rcodes, deadline = {}, time.monotonic() + 5
pending = set(socks)
while pending and time.monotonic() < deadline:
    ready, _, _ = select.select(list(pending), [], [], 0.1)
    for s in ready:
        rcode = s.recv(4096)[3] & 15
        code = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}.get(rcode, "other")
        rcodes[code] = rcodes.get(code, 0) + 1
        pending.discard(s)
print(json.dumps({"answers": sum(rcodes.values()), "rcodes": rcodes}))
"""


def coredns_rss_kib(twin: TwinContext, ns: str) -> int:
    return appliances.daemon_rss_kib(twin, ns).get("coredns", 0)


def dns_round(twin: TwinContext, queries: int, round_: int) -> dict[str, Any]:
    sector = twin.topology.sector("web")
    host = sector.host("app1")
    before = coredns_rss_kib(twin, sector.dns.name)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak.append(coredns_rss_kib(twin, sector.dns.name))
            time.sleep(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        argv = [sys.executable, "-c", FLOOD, str(sector.plan.dns.sector_address), str(queries)]
        result = twin.run(host.ns.name, [*argv, str(round_)], timeout=60)
    finally:
        done.set()
        sampler.join()
    found = json.loads(result.stdout)
    return {
        "before_mib": before / 1024,
        "peak_mib": max(peak) / 1024,
        "answers": found["answers"],
        "rcodes": found["rcodes"],
    }


def syn_round(twin: TwinContext, syns: int) -> int:
    sector = twin.topology.sector("web")
    host = sector.host("app1")
    gateway = sector.gateway.name
    twin.run(gateway, ["conntrack", "-F"], check=False)
    argv = ["hping3", "-q", "-S", "-p", "9", "-i", "u50", "-c", str(syns), SILENT]
    twin.run(host.ns.name, argv, check=False, timeout=120)
    listed = twin.run(gateway, ["conntrack", "-L", "-s", str(host.address)], check=False).stdout
    return sum(1 for line in listed.splitlines() if line.startswith("tcp"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--syns", type=int, default=20000)
    args = parser.parse_args()
    system.preflight(system.CORE_TOOLS, system.TEST_TOOLS, system.BENCH_TOOLS)
    try:
        twin = runner.up(str(EXAMPLE), lambda message: None)
        print(
            f"== {args.queries} DNS queries at once from web/app1 (CoreDNS forward "
            f"max_concurrent {DNS_LIMITS.forward_max_concurrent}; budget 128 MiB) =="
        )
        rounds = [dns_round(twin, args.queries, index) for index in range(args.rounds)]
        for index, found in enumerate(rounds):
            codes = ", ".join(f"{n} {code}" for code, n in sorted(found["rcodes"].items()))
            print(
                f"round {index}: RSS {found['before_mib']:.1f} -> peak {found['peak_mib']:.1f} "
                f"MiB; {found['answers']} answered ({codes or 'none'}), "
                f"{args.queries - found['answers']} unanswered in 5 s"
            )
        print(
            "median: peak RSS "
            f"{statistics.median(r['peak_mib'] for r in rounds):.1f} MiB, answered "
            f"{statistics.median(r['answers'] for r in rounds):.0f} of {args.queries}"
        )
        bound = GATEWAY_LIMITS.connections_per_host
        print(f"\n== {args.syns} SYNs from web/app1 to {SILENT} (bound {bound} per host) ==")
        entries = [syn_round(twin, args.syns) for _ in range(args.rounds)]
        print("conntrack entries from web/app1: " + " ".join(str(n) for n in entries))
        print(f"median: {statistics.median(entries):.0f} (bound {bound})")
    finally:
        runner.down(lambda message: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
