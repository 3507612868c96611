"""``twin test``: the Sector guard on the nodes, against hosts that misbehave.

Each node loads every Sector's guard (:mod:`orbitlab.components.guard`); these checks have
a host of the Sector break the rules and watch what reaches the other hosts:

- rogue dhcp: a host with a fixed address runs its own DHCP server (a real dnsmasq); a
  DHCPDISCOVER from another host (one on the rogue's node and one on another node, where
  the Sector has them) gets offers from the Sector DNS only, and at least one;
- dhcp identity: a host whose request names a declared host's NIC (its MAC written into the
  DHCP payload, its frames from its own) gets no offer, while the Sector DNS answers that
  host's own requests;
- rogue ipv6: router advertisements and DHCPv6 server messages a host sends to all nodes of
  the link reach no other host.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from orbitlab_lab.twin import system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.results import CheckResult
from orbitlab_lab.twin.topology import HostTwin, SectorTwin

PROBE = "orbitlab_lab.twin.l2probe"
ROGUE = "rogue-dhcp"
#: How long a DHCPDISCOVER waits for offers (the Sector DNS answers within milliseconds).
OFFER_WAIT_S = 4.0
ROGUE_START_S = 5.0
ADVERTISEMENTS = 5


def l2probe(twin: TwinContext, host: HostTwin, *args: str) -> dict[str, Any]:
    """Run :mod:`orbitlab_lab.twin.l2probe` on the host's ``eth0``; its JSON answer."""
    argv = twin.python(host.ns.name, PROBE, *args)
    out = system.run(argv, timeout=30).stdout.strip().splitlines()
    return json.loads(out[-1])


def _offers(twin: TwinContext, host: HostTwin, chaddr: str | None = None) -> list[dict[str, str]]:
    extra = ("--chaddr", chaddr) if chaddr else ()
    return l2probe(twin, host, "discover", "eth0", *extra, "--wait", f"{OFFER_WAIT_S:g}")["offers"]


def _rogue(sector: SectorTwin) -> HostTwin | None:
    """A host with a fixed address (a DHCP server needs one)."""
    return next((h for h in sector.fixed_hosts if h.address is not None and not h.dhcp), None)


def _witnesses(sector: SectorTwin, rogue: HostTwin) -> list[HostTwin]:
    """Other hosts that watch: one on the rogue's node, one on another node, if any."""
    others = [h for h in sector.hosts if h is not rogue]
    same = [h for h in others if h.node == rogue.node][:1]
    away = [h for h in others if h.node != rogue.node][:1]
    return same + away


def rogue_server_argv(twin: TwinContext, sector: SectorTwin, rogue: HostTwin) -> list[str]:
    """A real DHCP server on the rogue host, offering addresses of its own subnet."""
    assert rogue.subnet is not None
    cidr = rogue.subnet.cidr
    first, last = cidr[-20], cidr[-10]
    run = twin.run_dir(rogue.ns.name)
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",
        "--no-hosts",
        "--interface=eth0",
        "--bind-interfaces",
        f"--dhcp-range={first},{last},{cidr.netmask},5m",
        f"--dhcp-leasefile={run / 'rogue.leases'}",
        f"--pid-file={run / 'rogue.pid'}",
        "--dhcp-broadcast",
        "--log-facility=-",
        "--log-dhcp",
    ]


def _rogue_listening(twin: TwinContext, rogue: HostTwin) -> bool:
    listing = twin.run(rogue.ns.name, ["ss", "-lun"], check=False).stdout
    return ":67 " in listing


def check_rogue_dhcp(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Offers come from the Sector DNS only, while a host runs its own DHCP server."""
    rogue = _rogue(sector)
    if sector.plan.dns.dhcp is None or rogue is None:
        return []
    dns_mac = sector.plan.dns.mac
    twin.start(rogue.ns.name, rogue_server_argv(twin, sector, rogue), ROGUE)
    try:
        system.wait_until(
            f"{rogue.ns.label}'s DHCP server", lambda: _rogue_listening(twin, rogue), ROGUE_START_S
        )
        results = []
        for witness in _witnesses(sector, rogue):
            offers = _offers(twin, witness)
            servers = sorted({f"{o['server_id']} ({o['server_mac']})" for o in offers})
            from_dns = [o for o in offers if o["server_mac"] == dns_mac]
            results.append(
                CheckResult(
                    "rogue dhcp",
                    f"{witness.ns.label} ({witness.node})",
                    f"DHCPDISCOVER, {rogue.ns.label} ({rogue.node}) serving DHCP",
                    f"offers from {sector.plan.dns.sector_address} ({dns_mac}) only",
                    f"offers from {', '.join(servers)}" if servers else "no offer",
                    bool(from_dns) and len(from_dns) == len(offers),
                )
            )
        return results
    finally:
        system.stop_processes(twin.forget(rogue.ns.name, ROGUE))
        twin.save()


def check_dhcp_identity(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """A request naming a declared host's NIC from another NIC gets no offer, while the
    Sector DNS answers requests of its own NIC."""
    impostor = next((h for h in sector.hosts if h.mac is None), None)
    if sector.plan.dns.dhcp is None or impostor is None:
        return []
    results = []
    for target in (h for h in sector.hosts if h.mac is not None):
        assert target.mac is not None
        stolen = [offer["yiaddr"] for offer in _offers(twin, impostor, chaddr=target.mac)]
        answered = bool(_offers(twin, target)) if target.dhcp else True
        results.append(
            CheckResult(
                "dhcp identity",
                f"{impostor.ns.label} as {target.mac}",
                f"DHCPDISCOVER naming {target.name}'s NIC",
                f"no offer ({target.name} itself: an offer)",
                f"{'offers of ' + ', '.join(stolen) if stolen else 'no offer'} "
                f"({target.name} itself: {'an offer' if answered else 'no offer'})",
                not stolen and answered,
            )
        )
    return results


def check_rogue_ipv6(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Router advertisements and DHCPv6 server messages from a host reach no other host."""
    if len(sector.hosts) < 2:
        return []
    rogue = _rogue(sector) or sector.hosts[0]
    results = []
    for witness in _witnesses(sector, rogue):
        listen = [*twin.python(witness.ns.name, PROBE, "listen", "eth0", "--wait", "2")]
        with subprocess.Popen(listen, stdout=subprocess.PIPE, text=True) as listener:
            assert listener.stdout is not None
            listener.stdout.readline()  # listening
            l2probe(twin, rogue, "advertise", "eth0", "--count", str(ADVERTISEMENTS))
            counts = json.loads(listener.stdout.read().strip().splitlines()[-1])
        results.append(
            CheckResult(
                "rogue ipv6",
                f"{witness.ns.label} ({witness.node})",
                f"{ADVERTISEMENTS} RAs and DHCPv6 ADVERTISEs from {rogue.ns.label} ({rogue.node})",
                "0 RA, 0 DHCPv6 arrive",
                f"{counts['ra']} RA, {counts['dhcpv6']} DHCPv6 arrive",
                counts["ra"] == 0 and counts["dhcpv6"] == 0,
            )
        )
    return results
