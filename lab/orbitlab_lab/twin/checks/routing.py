"""Routing inside a Sector: its subnets reach each other un-NATed, without redirects.

- subnet routing: hosts in different subnets of one Sector reach each other (un-NATed) and
  the Sector DNS;
- icmp redirects: the gateway and the LB send none (every interface has them off, and none
  is sent while hosts of different subnets on one L2 talk through the gateway).
"""

from __future__ import annotations

from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.probing import count_output, probe, shown
from orbitlab_lab.twin.results import CheckResult, dig
from orbitlab_lab.twin.topology import Namespace, SectorTwin


def check_routing(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Hosts in different subnets of one Sector reach each other (un-NATed) and its DNS."""
    results = []
    hosts = sector.fixed_hosts
    for a in hosts:
        for b in hosts:
            if a is b or a.subnet == b.subnet:
                continue
            found = probe(twin, a.ns, "tcp", b.address, b.tcp_ports[0])
            results.append(
                CheckResult(
                    "subnet routing",
                    a.ns.label,
                    f"{b.ns.label} {b.address}:{b.tcp_ports[0]}",
                    f"{b.name} {a.address}",
                    shown(found),
                    found.get("body") == f"{b.name} {a.address}",
                )
            )
        if a.subnet != sector.plan.first_subnet:
            answer = dig(twin, a.ns, f"dns.{sector.plan.domain}")
            results.append(
                CheckResult(
                    "subnet routing",
                    a.ns.label,
                    f"Sector DNS {sector.plan.dns.sector_address} (other subnet)",
                    str(sector.plan.dns.sector_address),
                    answer.show(),
                    answer.answers == (str(sector.plan.dns.sector_address),),
                )
            )
    return results


def _redirects_allowed(twin: TwinContext, ns: Namespace) -> list[str]:
    """Interfaces of ``ns`` (and ``all``, ``default``) that would send ICMP redirects; the
    loopback forwards nothing, so it is not counted."""
    listing = twin.run(
        ns.name, ["sh", "-c", "grep -H . /proc/sys/net/ipv4/conf/*/send_redirects"]
    ).stdout
    return sorted(
        name
        for line in listing.splitlines()
        if not line.endswith(":0") and (name := line.split("/")[-2]) != "lo"
    )


def check_redirects(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """No ICMP redirects: every interface of the gateway and the LB has them off, and the
    gateway sends none while hosts of different subnets (one L2) talk through it."""
    results = []
    for ns in (sector.gateway, sector.lb):
        if ns is None:
            continue
        allowed = _redirects_allowed(twin, ns)
        results.append(
            CheckResult(
                "icmp redirects",
                ns.label,
                "send_redirects of every interface",
                "off everywhere",
                "on: " + ", ".join(allowed) if allowed else "off everywhere",
                not allowed,
            )
        )
    pairs = [(a, b) for a in sector.fixed_hosts for b in sector.fixed_hosts if a.subnet != b.subnet]
    if pairs:
        read = count_output(twin, sector.gateway, "icmp type redirect")
        for a, b in pairs:
            probe(twin, a.ns, "tcp", b.address, b.tcp_ports[0])
        sent = read()
        results.append(
            CheckResult(
                "icmp redirects",
                sector.gateway.label,
                f"{len(pairs)} flows between subnets through it",
                "0 redirects sent",
                f"{sent} redirects sent",
                sent == 0,
            )
        )
    return results
