"""Egress: every Sector reaches the "internet", NATed twice, within its egress policy.

- egress SNAT: from a host of every subnet, the internet answers; the gateway masquerades to
  its Backplane address (its conntrack shows it) and the primary exit node SNATs to its LAN
  address (the internet host sees it);
- overlap: Sectors with overlapping CIDRs reach out at the same time, each Sector's DNS
  (same address) answering its own names;
- egress policy: a home-LAN or internet service (and the package mirror) answers a host and
  the Sector DNS unless the Sector's egress denies it, and the gateway rejects it then.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from netaddr import IPAddress

from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.probing import (
    REJECT_RETRY_S,
    dns_allowed,
    egress_allowed,
    gateway_of,
    outcome_of,
    probe,
    shown,
    source_of,
)
from orbitlab_lab.twin.results import CheckResult, dig
from orbitlab_lab.twin.topology import (
    INTERNET_HOST,
    INTERNET_OTHER,
    SERVICE_PORT,
    Namespace,
    SectorTwin,
)


def check_egress(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """From a host of every subnet that has one: the internet answers, seen from the
    primary exit node's address; the gateway's conntrack shows its masquerade."""
    primary = twin.topology.primary.address
    gateway_bp = sector.plan.gateway.backplane_address
    sources: list[tuple[Namespace, IPAddress]] = []
    for subnet in sector.plan.subnets:
        host = next((h for h in sector.fixed_hosts if h.subnet == subnet), None)
        if host is not None and host.address is not None:
            sources.append((host.ns, host.address))
    sources = sources or [source_of(sector)]
    results = []
    for ns, address in sources:
        found = probe(twin, ns, "http", INTERNET_HOST, SERVICE_PORT)
        seen = found["body"].split()[-1] if found["result"] == "ok" else found["result"]
        conntrack = twin.run(
            sector.gateway.name,
            ["conntrack", "-L", "-p", "tcp", "-s", str(address), "-d", str(INTERNET_HOST)],
            check=False,
        ).stdout
        nat = masquerade_address(conntrack, address)
        got = f"seen as {seen}; gateway NAT {'to ' + nat if nat else 'none'}"
        results.append(
            CheckResult(
                "egress SNAT",
                ns.label,
                f"{INTERNET_HOST}:{SERVICE_PORT}",
                f"seen as {primary}; gateway NAT to {gateway_bp}",
                got,
                seen == str(primary) and nat == str(gateway_bp),
            )
        )
    return results


def masquerade_address(conntrack: str, source: IPAddress) -> str | None:
    """The address a flow from ``source`` was masqueraded to, from ``conntrack -L`` (the
    reply's destination), or None when it was not translated.

    >>> masquerade_address("tcp 6 src=172.16.0.21 dst=203.0.113.10 sport=1 dport=80 "
    ...                    "src=203.0.113.10 dst=10.200.0.10 sport=80 dport=1", "172.16.0.21")
    '10.200.0.10'
    """
    for line in conntrack.splitlines():
        destinations = re.findall(r"dst=(\S+)", line)
        if len(destinations) >= 2 and destinations[1] != str(source):
            return destinations[1]
    return None


def check_overlap(twin: TwinContext, a: SectorTwin, b: SectorTwin) -> list[CheckResult]:
    """Two Sectors sharing address space: both egress at once, each DNS its own names."""
    (ns_a, addr_a), (ns_b, addr_b) = source_of(a), source_of(b)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(probe, twin, ns, "http", INTERNET_HOST, SERVICE_PORT) for ns in (ns_a, ns_b)
        ]
        egress = [future.result() for future in futures]
    own = []
    for sector, ns in ((a, ns_a), (b, ns_b)):
        answer = dig(twin, ns, f"@{sector.plan.dns.sector_address}", f"dns.{sector.plan.domain}")
        own.append(answer.answers == (str(sector.plan.dns.sector_address),))
    overlap = sorted(str(x) for x, _ in _shared_subnets(a, b))
    got = f"egress {shown(egress[0])} | {shown(egress[1])}; own DNS {own[0]} | {own[1]}"
    return [
        CheckResult(
            "overlap",
            f"{ns_a.label} ({addr_a}) + {ns_b.label} ({addr_b})",
            f"internet at once; DNS {a.plan.dns.sector_address} ({', '.join(overlap)})",
            "both answered; each its own DNS",
            got,
            all(e["result"] == "ok" for e in egress) and all(own),
        )
    ]


def _policy_targets(twin: TwinContext) -> list[tuple[str, IPAddress, int]]:
    ext = twin.topology.external
    targets = [
        ("home LAN service", IPAddress(ext.client_lan), SERVICE_PORT),
        ("internet service", INTERNET_HOST, SERVICE_PORT),
        ("internet service", INTERNET_OTHER, SERVICE_PORT),
    ]
    if ext.mirror is not None:
        targets.append(("package mirror", ext.mirror[0], ext.mirror[1]))
    return targets


def check_egress_policy(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """The egress settings, from a host and from the Sector DNS appliance: each target
    answers when the policy allows it, and is rejected by the gateway otherwise (an
    explicit deny wins, for the appliance too)."""
    sources: list[tuple[Namespace, IPAddress, bool]] = []
    if sector.fixed_hosts:
        sources.append((sector.fixed_hosts[0].ns, sector.fixed_hosts[0].address, False))
    sources.append((sector.dns, sector.plan.dns.sector_address, True))
    results = []
    for ns, address, is_dns in sources:
        rejected = f"rejected by {gateway_of(sector, address)}"
        for what, target, port in _policy_targets(twin):
            allowed = (
                dns_allowed(twin, sector, target, port)
                if is_dns
                else egress_allowed(sector, target)
            )
            found = probe(twin, ns, "http", target, port)
            if found["result"] == "timeout" and not allowed:
                time.sleep(REJECT_RETRY_S)  # a reject missed on a busy machine: ask once more
                found = probe(twin, ns, "http", target, port)
            got = outcome_of(found)
            results.append(
                CheckResult(
                    "egress policy",
                    ns.label,
                    f"{what} {target}:{port}",
                    "answers" if allowed else rejected,
                    got,
                    found["result"] == "ok" if allowed else got == rejected,
                )
            )
    return results


def overlapping_pairs(twin: TwinContext) -> Iterator[tuple[SectorTwin, SectorTwin]]:
    sectors = twin.topology.sectors
    for i, a in enumerate(sectors):
        for b in sectors[i + 1 :]:
            if _shared_subnets(a, b):
                yield a, b


def _shared_subnets(a: SectorTwin, b: SectorTwin) -> list[tuple[object, object]]:
    """Pairs of overlapping subnets of two Sectors."""
    return [
        (x.cidr, y.cidr)
        for x in a.plan.subnets
        for y in b.plan.subnets
        if x.cidr in y.cidr or y.cidr in x.cidr
    ]
