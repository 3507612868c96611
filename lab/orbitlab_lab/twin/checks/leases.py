"""``twin test``: the Sector DHCP, checked with the hosts' real DHCP clients (SPEC §11).

What a lease brings, read from what each client recorded (run with the other checks, in
parallel, changing nothing):

- dhcp reserved: a host declared with an address and a ``mac`` leases that address;
- dhcp pool: a host declared without an address leases one from the Sector's pool;
- dhcp options: router (the ``.1`` of the lease's subnet), DNS, domain and MTU as the client
  received them, and the MTU it applied to its NIC;
- dhcp names: a leased name resolves forward and reverse, asked from another host;
- dhcp sectors: each Sector's lease file holds its own clients only — Sectors sharing a
  CIDR (same DNS address, same pool) each lease to their own hosts.

What happens to leases and names (changes the twin; after the other checks, the Sectors
in parallel, each restored at the end):

- dhcp guard: a client that sends an appliance's name, ``wpad`` or a declared host's name
  gets no name: that name still answers with its own address (``wpad``: NXDOMAIN), the
  client's address has no name;
- dhcp release: a released lease's name is NXDOMAIN forward and reverse within seconds,
  and comes back with a new lease;
- dhcp restart: after a restart of the DNS appliance its leases are still on disk and every
  client renews the same address.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from netaddr import IPAddress

from orbitlab_lab.twin import dhcp, lifecycle
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.results import CheckResult, DigAnswer, dig
from orbitlab_lab.twin.topology import HostTwin, Namespace, SectorTwin

#: How long a name may take to come or go (lease script, then CoreDNS's 1 s reload).
NAME_WAIT_S = 5.0
#: How long a refused name is watched, in case it shows up after all.
GUARD_WATCH_S = 3.0
POLL_S = 0.2

Restart = Callable[[TwinContext, SectorTwin], None]


def observer(sector: SectorTwin) -> Namespace:
    """Who asks the names: the Sector's first host with a fixed address, else its DNS."""
    return sector.fixed_hosts[0].ns if sector.fixed_hosts else sector.dns


def forward(twin: TwinContext, sector: SectorTwin, name: str) -> DigAnswer:
    """``<name>.<domain>`` asked of the Sector DNS by the :func:`observer`."""
    plan = sector.plan
    return dig(twin, observer(sector), f"@{plan.dns.sector_address}", f"{name}.{plan.domain}")


def reverse(twin: TwinContext, sector: SectorTwin, address: object) -> DigAnswer:
    """The PTR of ``address`` asked of the Sector DNS by the :func:`observer`."""
    return dig(twin, observer(sector), f"@{sector.plan.dns.sector_address}", "-x", str(address))


def poll(probe: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``probe`` held, or None if it never did within ``timeout``."""
    began = time.monotonic()
    while True:
        if probe():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            return None
        time.sleep(POLL_S)


def _lease_text(lease: dhcp.Lease | None) -> str:
    return str(lease.ip) if lease is not None and lease.bound else "no lease"


# --- what a lease brings (read-only) ------------------------------------------------------


def check_reserved(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Each host with a ``mac`` and an address leases that address."""
    results = []
    for host in sector.dhcp_clients:
        if host.address is None:
            continue
        lease = dhcp.read_lease(twin, host)
        results.append(
            CheckResult(
                "dhcp reserved",
                host.ns.label,
                f"{sector.dns.label}, reservation for {host.mac}",
                str(host.address),
                _lease_text(lease),
                lease is not None and lease.ip == host.address,
            )
        )
    return results


def check_pool(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Each host without an address leases one from the Sector's pool."""
    pool = sector.plan.dns.dhcp
    results = []
    for host in sector.dhcp_clients:
        if host.address is not None or pool is None:
            continue
        lease = dhcp.read_lease(twin, host)
        ip = lease.ip if lease is not None else None
        results.append(
            CheckResult(
                "dhcp pool",
                host.ns.label,
                f"{sector.dns.label}, pool",
                f"in {pool.pool_text}",
                _lease_text(lease),
                ip is not None and pool.in_pool(ip),
            )
        )
    return results


def expected_options(sector: SectorTwin, ip: IPAddress | None) -> str:
    """The options a client of ``sector`` must get with ``ip``, and its NIC's MTU.

    >>> from orbitlab.stack import load_plan
    >>> from orbitlab_lab.twin.topology import build_topology
    >>> web = build_topology(load_plan("stacks/Pulumi.example.yaml")).sector("web")
    >>> expected_options(web, IPAddress("172.16.1.150"))
    'router 172.16.1.1, DNS 172.16.0.2, domain web.internal, MTU 1450 (eth0 1450)'
    """
    plan = sector.plan
    subnet = plan.subnet_of(ip) if ip is not None else None
    router = subnet.gateway if subnet is not None else "(no subnet)"
    mtu, dns = plan.mtu, plan.dns.sector_address
    return f"router {router}, DNS {dns}, domain {plan.domain}, MTU {mtu} (eth0 {mtu})"


def check_options(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Router, DNS, domain and MTU as each client received them, and the MTU it applied."""
    results = []
    for host in sector.dhcp_clients:
        lease = dhcp.read_lease(twin, host)
        got = "no lease"
        if lease is not None and lease.bound:
            got = (
                f"router {lease.get('router')}, DNS {lease.get('dns')}, domain "
                f"{lease.get('domain')}, MTU {lease.get('mtu')} (eth0 {dhcp.live_mtu(twin, host)})"
            )
        expected = expected_options(sector, lease.ip if lease is not None else None)
        results.append(
            CheckResult(
                "dhcp options",
                host.ns.label,
                f"lease of {_lease_text(lease)}",
                expected,
                got,
                got == expected,
            )
        )
    return results


def _named(twin: TwinContext, sector: SectorTwin, name: str, ip: object) -> tuple[bool, str]:
    """Whether ``name`` resolves to ``ip`` and back, and what was answered."""
    fqdn = f"{name}.{sector.plan.domain}."
    there, back = forward(twin, sector, name), reverse(twin, sector, ip)
    ok = there.answers == (str(ip),) and back.answers == (fqdn,)
    return ok, f"{there.show()}; {ip} -> {back.show()}"


def check_names(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Each host without an address is named by its lease, forward and reverse."""
    results = []
    for host in sector.dhcp_clients:
        if host.address is not None:
            continue
        lease = dhcp.read_lease(twin, host)
        ip = lease.ip if lease is not None else None
        ok, got = _named(twin, sector, host.name, ip) if ip is not None else (False, "no lease")
        fqdn = f"{host.name}.{sector.plan.domain}"
        results.append(
            CheckResult(
                "dhcp names",
                observer(sector).label,
                fqdn,
                f"{ip}; {ip} -> {fqdn}.",
                got,
                ok,
            )
        )
    return results


def _clients_by_mac(twin: TwinContext) -> dict[str, HostTwin]:
    return {
        dhcp.live_mac(twin, host): host
        for sector in twin.topology.sectors
        for host in sector.dhcp_clients
    }


def _sharing(twin: TwinContext, sector: SectorTwin) -> str:
    """`` (172.20.0.0/24 also in blue)`` for the Sectors sharing a subnet with ``sector``."""
    own = [subnet.cidr for subnet in sector.plan.subnets]
    others = [
        other.name
        for other in twin.topology.sectors
        if other is not sector
        and any(s.cidr in c or c in s.cidr for s in other.plan.subnets for c in own)
    ]
    return f" (its subnets also in {', '.join(others)})" if others else ""


def check_sectors(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """The Sector's lease file holds exactly its own clients."""
    if sector.plan.dns.dhcp is None:
        return []
    clients = _clients_by_mac(twin)
    on_disk = {lease.mac for lease in dhcp.leases_on_disk(twin, sector)}
    own = {mac for mac, host in clients.items() if host in sector.dhcp_clients}

    def labels(macs: set[str]) -> str:
        return ", ".join(sorted(clients[m].ns.label if m in clients else m for m in macs)) or "none"

    return [
        CheckResult(
            "dhcp sectors",
            sector.dns.label,
            f"its lease file{_sharing(twin, sector)}",
            f"leases to {labels(own)}",
            f"leases to {labels(on_disk)}",
            on_disk == own,
        )
    ]


# --- what happens to leases and names (changes the twin) --------------------------------


def _dynamic_client(sector: SectorTwin) -> HostTwin | None:
    """A client whose name is only what it sends (no address, no mac binding it)."""
    return next((h for h in sector.dhcp_clients if h.address is None and h.mac is None), None)


def rejoin(twin: TwinContext, host: HostTwin, hostname: str | None = None) -> dhcp.Lease:
    """Restart the host's client (sending ``hostname``, else its own name); its new lease."""
    before = dhcp.read_lease(twin, host)
    dhcp.stop_client(twin, host)
    dhcp.start_client(twin, host, hostname)
    twin.save()
    return dhcp.wait_bound(twin, host, after=before.stamp if before else 0)


def _rogue_names(sector: SectorTwin) -> list[tuple[str, IPAddress | None]]:
    """Names a client must never take, with the address they keep (None: no address, the
    name is NXDOMAIN): an appliance's, one never published (``wpad``, which browsers ask
    for a proxy) and, if any, a declared host's."""
    names: list[tuple[str, IPAddress | None]] = [
        ("gateway", sector.plan.gateway_address),
        ("wpad", None),
    ]
    fixed = [h for h in sector.fixed_hosts if h.address is not None]
    if fixed and fixed[0].address is not None:
        names.append((fixed[0].name, fixed[0].address))
    return names


def _guarded(
    twin: TwinContext, sector: SectorTwin, name: str, true: IPAddress | None, ip: object
) -> str:
    """Watch ``name`` and the rogue's address ``ip`` for a while: the name must keep its true
    address (or stay NXDOMAIN) and never point back from ``ip``, and ``ip`` must end up with
    no name (its old one goes). What was seen, '' when all held."""
    fqdn = f"{name}.{sector.plan.domain}."
    kept = (str(true),) if true is not None else ()
    began = time.monotonic()
    while True:
        there, back = forward(twin, sector, name), reverse(twin, sector, ip)
        seen = f"{there.show()}; {ip} -> {back.show()}"
        taken = there.answers != kept or (true is None and there.status != "NXDOMAIN")
        if taken or fqdn in back.answers:
            return seen
        waited = time.monotonic() - began
        if waited >= GUARD_WATCH_S and back.status == "NXDOMAIN":
            return ""
        if waited >= NAME_WAIT_S:
            return f"{seen} (still named)"
        time.sleep(POLL_S)


def check_guard(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """A client sending an appliance's or a declared host's name gets no name; sending its
    own again, it is named again."""
    client = _dynamic_client(sector)
    if client is None:
        return []
    results = []
    domain = sector.plan.domain
    try:
        for rogue, true in _rogue_names(sector):
            ip = rejoin(twin, client, rogue).ip
            taken = _guarded(twin, sector, rogue, true, ip)
            results.append(
                CheckResult(
                    "dhcp guard",
                    f"{client.ns.label} as {rogue!r}",
                    f"{rogue}.{domain}",
                    f"{true or 'NXDOMAIN'}; {ip} -> NXDOMAIN",
                    taken or f"{true or 'NXDOMAIN'}; {ip} -> NXDOMAIN",
                    not taken,
                )
            )
    finally:
        ip = rejoin(twin, client).ip
    came = poll(lambda: _named(twin, sector, client.name, ip)[0], NAME_WAIT_S)
    results.append(
        CheckResult(
            "dhcp guard",
            f"{client.ns.label} as {client.name!r}",
            f"{client.name}.{domain}",
            f"{ip} (its own name back)",
            _named(twin, sector, client.name, ip)[1],
            came is not None,
        )
    )
    return results


def _gone(twin: TwinContext, sector: SectorTwin, name: str, ip: object) -> bool:
    there, back = forward(twin, sector, name), reverse(twin, sector, ip)
    return there.status == back.status == "NXDOMAIN"


def check_release(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """A released lease's name goes (forward and reverse); a new lease brings it back."""
    client = next((h for h in sector.dhcp_clients if h.address is None), None)
    lease = dhcp.read_lease(twin, client) if client is not None else None
    if client is None or lease is None or lease.ip is None:
        return []
    fqdn, ip = f"{client.name}.{sector.plan.domain}", lease.ip
    dhcp.release(twin, client)
    went = poll(lambda: _gone(twin, sector, client.name, ip), NAME_WAIT_S)
    got = (
        f"NXDOMAIN after {went:.1f}s"
        if went is not None
        else _named(twin, sector, client.name, ip)[1]
    )
    results = [
        CheckResult(
            "dhcp release",
            client.ns.label,
            f"{fqdn}, {ip} released",
            f"NXDOMAIN within {NAME_WAIT_S:g}s (forward and reverse)",
            got,
            went is not None,
        )
    ]
    released = dhcp.read_lease(twin, client)
    dhcp.renew(twin, client)
    new = dhcp.wait_bound(twin, client, after=released.stamp if released else 0).ip
    came = poll(lambda: _named(twin, sector, client.name, new)[0], NAME_WAIT_S)
    results.append(
        CheckResult(
            "dhcp release",
            client.ns.label,
            f"{fqdn}, a new lease",
            f"{new}; {new} -> {fqdn}.",
            _named(twin, sector, client.name, new)[1],
            came is not None,
        )
    )
    return results


def check_restart(
    twin: TwinContext, sector: SectorTwin, restart: Restart = lifecycle.restart_dns
) -> list[CheckResult]:
    """After a restart of the DNS appliance its leases are still on disk, and every client
    renews its address."""
    clients = sector.dhcp_clients
    if not clients or sector.plan.dns.dhcp is None:
        return []
    before = {host: dhcp.read_lease(twin, host) for host in clients}
    restart(twin, sector)
    on_disk = {lease.mac: lease.ip for lease in dhcp.leases_on_disk(twin, sector)}
    for host in clients:
        dhcp.renew(twin, host)
    results = []
    for host in clients:
        old = before[host]
        kept = old is not None and on_disk.get(dhcp.live_mac(twin, host)) == old.ip
        new = dhcp.wait_bound(twin, host, after=old.stamp if old else 0)
        results.append(
            CheckResult(
                "dhcp restart",
                host.ns.label,
                f"renew after a restart of {sector.dns.label}",
                f"{_lease_text(old)} (lease kept on disk)",
                f"{_lease_text(new)} (lease {'kept' if kept else 'lost'} on disk)",
                kept and old is not None and new.ip == old.ip,
            )
        )
    return results


def lifecycle(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """The checks that change a Sector's leases, one after the other."""
    return [
        *check_guard(twin, sector),
        *check_release(twin, sector),
        *check_restart(twin, sector),
    ]
