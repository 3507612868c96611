"""The Sector DNS: its names, and the exemptions only it has.

- dns forward, dns reverse, dns nxdomain, dns forwarding: forward and reverse names of every
  host, NXDOMAIN for unknown names in the domain (the upstream stand-in answers every name,
  so a forwarded query would be seen), and forwarding of other names;
- dns spoofing: a host that takes the Sector DNS's address (not its pinned MAC) gets none of
  its exemptions: its packets to the upstream resolvers and to package-mirror ports outside
  the egress policy are counted where they would arrive (none may), beside the same packets
  from the real Sector DNS (which must arrive).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from netaddr import IPAddress

from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.probing import (
    SPOOF_PROBES,
    MarkedProbe,
    dns_allowed,
    egress_allowed,
    source_of,
)
from orbitlab_lab.twin.results import CheckResult, dig
from orbitlab_lab.twin.topology import INTERNET_HOST, INTERNET_NAME, Namespace, SectorTwin

NXDOMAIN_NAME = "no-such-host-twin"


def check_dns(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Through the host's own resolver (the Sector DNS): forward, reverse, NXDOMAIN, upstream."""
    ns, _ = source_of(sector)
    domain = sector.plan.domain
    results = []
    names = [(host.name, host.address) for host in sector.fixed_hosts] or [
        ("dns", sector.plan.dns.sector_address)
    ]
    for name, address in names:
        forward = dig(twin, ns, f"{name}.{domain}")
        reverse = dig(twin, ns, "-x", str(address))
        fqdn = f"{name}.{domain}"
        forward_ok = forward.answers == (str(address),)
        reverse_ok = reverse.answers == (f"{fqdn}.",)
        results.append(
            CheckResult("dns forward", ns.label, fqdn, str(address), forward.show(), forward_ok)
        )
        results.append(
            CheckResult(
                "dns reverse", ns.label, str(address), f"{fqdn}.", reverse.show(), reverse_ok
            )
        )
    unknown = dig(twin, ns, f"{NXDOMAIN_NAME}.{domain}")
    # a name never asked before: a cached answer would hide a broken path to the resolver
    fresh = f"q{secrets.token_hex(4)}.{INTERNET_NAME}"
    upstream = dig(twin, ns, fresh)
    results.append(
        CheckResult(
            "dns nxdomain",
            ns.label,
            f"{NXDOMAIN_NAME}.{domain}",
            "NXDOMAIN (not forwarded)",
            unknown.show(),
            unknown.status == "NXDOMAIN" and not unknown.answers,
        )
    )
    results.append(
        CheckResult(
            "dns forwarding",
            ns.label,
            fresh,
            str(INTERNET_HOST),
            upstream.show(),
            upstream.answers == (str(INTERNET_HOST),),
        )
    )
    return results


def _spoof_targets(
    twin: TwinContext, sector: SectorTwin
) -> Iterator[tuple[str, Namespace, IPAddress, str, int]]:
    """(what, receiving namespace, address, protocol, port) the Sector DNS is exempted for:
    its resolvers (53), and, under deny by default, the package mirror."""
    ext = twin.topology.external
    forwarders = sector.plan.dns.forwarders or ext.resolver_addresses
    for resolver in forwarders:
        for protocol in ("udp", "tcp"):
            yield "upstream resolver", ext.resolver, IPAddress(resolver), protocol, 53
    mirror = ext.mirror
    exempt = (
        mirror is not None
        and not egress_allowed(sector, mirror[0])
        and dns_allowed(twin, sector, mirror[0], mirror[1])
    )
    if mirror is not None and exempt:
        yield "package mirror", ext.resolver, mirror[0], "tcp", mirror[1]


def check_dns_spoofing(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """A Sector host sending as the Sector DNS (its address, the host's own MAC) reaches no
    destination the DNS alone is exempted for; the real DNS's packets do arrive."""
    if not sector.fixed_hosts:
        return []
    host = sector.fixed_hosts[0]
    dns_address = sector.plan.dns.sector_address
    results = []
    for what, receiver, address, protocol, port in _spoof_targets(twin, sector):
        spoofed = MarkedProbe.new(protocol, address, port)
        control = MarkedProbe.new(protocol, address, port)
        read_spoofed = spoofed.count_in(twin, receiver)
        read_control = control.count_in(twin, receiver)
        spoofed.send(twin, host.ns, spoof=dns_address)
        control.send(twin, sector.dns)
        got_spoofed, got_control = read_spoofed(), read_control()
        results.append(
            CheckResult(
                "dns spoofing",
                f"{host.ns.label} as {dns_address}",
                f"{what} {address}:{port}/{protocol}",
                f"0 arrive (real DNS: {SPOOF_PROBES})",
                f"{got_spoofed} arrive (real DNS: {got_control})",
                got_spoofed == 0 and got_control >= 1,
            )
        )
    return results
