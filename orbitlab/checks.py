"""Rules that relate several settings: overlaps, membership, collisions.

Each check returns messages that start with the exact field path, so a user can find the
line in the stack file. ``cross_check`` runs them all and returns every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterator

from netaddr import IPAddress, IPNetwork

from orbitlab.allocation import sector_infra_address, subnet_gateway
from orbitlab.model import dhcp_pool, parse_endpoint, reserved_addresses
from orbitlab.roles import DNS
from orbitlab.settings import (
    MIN_MTU,
    RESERVED_HOST_NAMES,
    VXLAN_OVERHEAD,
    BackplaneSettings,
    SectorSettings,
    StackSettings,
    mirror_endpoint,
)

FIRST_SUBNET_MAX_PREFIX = 29  # network, gateway, DNS, load balancer, broadcast
OTHER_SUBNET_MAX_PREFIX = 30  # network, gateway, one host, broadcast


def _duplicates(values: list) -> list:
    seen: set = set()
    repeated = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


def check_backplane(backplane: BackplaneSettings) -> Iterator[str]:
    prefix = "orbitlab:backplane"
    names = [node.name for node in backplane.nodes]
    for name in _duplicates(names):
        yield f"{prefix}.nodes: node name {name!r} appears more than once; names must be unique"
    for address in _duplicates([node.address for node in backplane.nodes]):
        yield f"{prefix}.nodes: address {address} appears more than once; each node has its own"
    for index, node in enumerate(backplane.nodes):
        if node.address in backplane.cidr:
            yield (
                f"{prefix}.nodes[{index}].address: {node.address} lies inside the Backplane "
                f"{backplane.cidr}; node addresses are their vmbr0 (LAN) addresses, outside it"
            )
        for position, other in enumerate(node.other_addresses):
            if other in backplane.cidr:
                yield (
                    f"{prefix}.nodes[{index}].other_addresses[{position}]: {other} lies inside "
                    f"the Backplane {backplane.cidr}; list the node's own NIC addresses outside it"
                )
    for index, network in enumerate(backplane.protected_networks):
        if network in backplane.cidr or backplane.cidr in network:
            yield (
                f"{prefix}.protected_networks[{index}]: {network} overlaps the Backplane "
                f"{backplane.cidr}, which no Sector reaches anyway; list other networks"
            )
    if backplane.primary_exit_node is not None and backplane.primary_exit_node not in names:
        yield (
            f"{prefix}.primary_exit_node: {backplane.primary_exit_node!r} is not a node; "
            f"allowed: {', '.join(names)}"
        )
    ceiling = min(node.mtu for node in backplane.nodes) - VXLAN_OVERHEAD
    if backplane.mtu is not None and backplane.mtu > ceiling:
        yield (
            f"{prefix}.mtu: {backplane.mtu} is larger than the smallest vmbr0 MTU minus the "
            f"VXLAN overhead ({ceiling}); allowed: {MIN_MTU}-{ceiling}"
        )


def _check_subnets(prefix: str, sector: SectorSettings, backplane_cidr: IPNetwork) -> Iterator[str]:
    for index, subnet in enumerate(sector.subnets):
        field = f"{prefix}.subnets[{index}]"
        limit = FIRST_SUBNET_MAX_PREFIX if index == 0 else OTHER_SUBNET_MAX_PREFIX
        if subnet.prefixlen > limit:
            what = "gateway, DNS and load balancer" if index == 0 else "gateway and one host"
            yield (f"{field}: {subnet} is too small for the {what}; allowed: a /{limit} or larger")
        if subnet in backplane_cidr or backplane_cidr in subnet:
            yield (
                f"{field}: {subnet} overlaps the Backplane {backplane_cidr}; Sector subnets "
                "may overlap other Sectors' but never the Backplane"
            )
        for other_index in range(index):
            other = sector.subnets[other_index]
            if subnet in other or other in subnet:
                yield (
                    f"{field}: {subnet} overlaps {prefix}.subnets[{other_index}] ({other}); "
                    "subnets within one Sector must not overlap"
                )


def _check_hosts(prefix: str, sector: SectorSettings) -> Iterator[str]:
    reserved = reserved_addresses(sector)
    for name in _duplicates([host.name for host in sector.hosts]):
        yield f"{prefix}.hosts: host name {name!r} appears more than once"
    addresses = [host.address for host in sector.hosts if host.address is not None]
    for address in _duplicates(addresses):
        yield f"{prefix}.hosts: address {address} is given to more than one host"
    for index, host in enumerate(sector.hosts):
        field = f"{prefix}.hosts[{index}]"
        if host.name in RESERVED_HOST_NAMES:
            yield (
                f"{field}.name: {host.name!r} is reserved for an appliance; "
                f"not allowed: {', '.join(sorted(RESERVED_HOST_NAMES))}"
            )
        if host.address is None:
            continue
        subnet = next((s for s in sector.subnets if host.address in s), None)
        if subnet is None:
            yield (
                f"{field}.address: {host.address} is in none of the Sector's subnets "
                f"({', '.join(str(s) for s in sector.subnets)})"
            )
        elif host.address in (subnet.network, subnet.broadcast):
            yield f"{field}.address: {host.address} is the network or broadcast address of {subnet}"
        elif host.address in reserved:
            yield f"{field}.address: {host.address} is reserved for {reserved[host.address]}"


def _check_dhcp_off(prefix: str, sector: SectorSettings) -> Iterator[str]:
    off = f"DHCP is off ({prefix}.dhcp.enabled: false)"
    for index, host in enumerate(sector.hosts):
        field = f"{prefix}.hosts[{index}]"
        if host.address is None:
            yield (
                f"{field}: host {host.name!r} has no address, and {off}; give it an address "
                "or turn DHCP on"
            )
        if host.mac is not None:
            yield (
                f"{field}.mac: a mac asks for a DHCP reservation, and {off}; remove it or turn "
                "DHCP on"
            )


def _range_subnet(
    field: str, shown: str, ends: tuple[IPAddress, IPAddress], sector: SectorSettings
) -> tuple[IPNetwork | None, list[str]]:
    """The one subnet a range lies in, or None with the reasons it lies in none."""
    start, end = ends
    if start > end:
        return None, [
            f"{field}: {shown} is reversed (start {start} is above end {end}); "
            f"write [{end}, {start}]"
        ]
    homes = [next((s for s in sector.subnets if a in s), None) for a in ends]
    subnets = ", ".join(str(s) for s in sector.subnets)
    for address, home in zip(ends, homes, strict=True):
        if home is None:
            return None, [
                f"{field}: {address} is in none of the Sector's subnets ({subnets}); "
                "the pool lies in one of them"
            ]
    if homes[0] != homes[1]:
        return None, [
            f"{field}: {shown} spans two subnets ({homes[0]} and {homes[1]}); "
            "the pool lies in one subnet"
        ]
    return homes[0], []


def _check_range(prefix: str, sector: SectorSettings) -> Iterator[str]:
    assert sector.dhcp.range is not None
    start, end = sector.dhcp.range
    field = f"{prefix}.dhcp.range"
    shown = f"[{start}, {end}]"
    subnet, problems = _range_subnet(field, shown, (start, end), sector)
    yield from problems
    if subnet is None:
        return
    if start == subnet.network or end == subnet.broadcast:
        yield f"{field}: {shown} includes the network or broadcast address of {subnet}"
    for address, owner in sorted(reserved_addresses(sector).items()):
        if start <= address <= end:
            yield f"{field}: {shown} includes {address}, reserved for {owner}"
    for index, host in enumerate(sector.hosts):
        if host.address is not None and host.mac is None and start <= host.address <= end:
            yield (
                f"{field}: {shown} includes {host.address}, the static address of host "
                f"{host.name!r} ({prefix}.hosts[{index}]), which has no mac; move the range, "
                f"or give {host.name} a mac (a DHCP reservation)"
            )


def _check_dhcp(prefix: str, sector: SectorSettings) -> Iterator[str]:
    if sector.dhcp.known_only and not any(host.mac for host in sector.hosts):
        yield (
            f"{prefix}.dhcp.known_only: true, but no host of Sector {sector.name!r} declares a "
            "mac, so the Sector DHCP would answer no one; declare the hosts with their mac, "
            "or set known_only: false"
        )
    if not sector.dhcp.enabled:
        yield from _check_dhcp_off(prefix, sector)
    elif sector.dhcp.range is not None:
        yield from _check_range(prefix, sector)
    elif dhcp_pool(sector) is None:
        yield (
            f"{prefix}.dhcp: no address is left for a default pool in the upper half of "
            f"{sector.subnets[0]} (declared hosts take them); set {prefix}.dhcp.range, or "
            "enabled: false"
        )


def check_macs(settings: StackSettings) -> Iterator[str]:
    """Every host's mac is its own, across the stack."""
    owners: dict[str, str] = {}
    for sector_index, sector in enumerate(settings.sectors):
        for index, host in enumerate(sector.hosts):
            if host.mac is None:
                continue
            field = f"orbitlab:sectors[{sector_index}].hosts[{index}]"
            if host.mac in owners:
                yield (
                    f"{field}.mac: {host.mac} is also the mac of {owners[host.mac]}; every NIC "
                    "needs its own MAC"
                )
            else:
                owners[host.mac] = f"{field} ({host.name})"


def _check_endpoint(field: str, text: str, sector: SectorSettings) -> Iterator[str]:
    try:
        parse_endpoint(text, sector)
    except ValueError as error:
        yield f"{field}: {error}"


def _check_load_balancer(prefix: str, sector: SectorSettings) -> Iterator[str]:
    if sector.load_balancer is None:
        return
    listeners = sector.load_balancer.listeners
    for port in _duplicates([listener.port for listener in listeners]):
        yield f"{prefix}.load_balancer.listeners: port {port} is used by more than one listener"
    for index, listener in enumerate(listeners):
        field = f"{prefix}.load_balancer.listeners[{index}]"
        for backend_index, backend in enumerate(listener.backends):
            yield from _check_endpoint(f"{field}.backends[{backend_index}]", backend, sector)
        for backend in _duplicates(list(listener.backends)):
            yield f"{field}.backends: {backend!r} is listed more than once"


def _check_port_forwards(prefix: str, sector: SectorSettings) -> Iterator[str]:
    keys = [(forward.protocol, forward.port) for forward in sector.port_forwards]
    for protocol, port in _duplicates(keys):
        yield f"{prefix}.port_forwards: {protocol} port {port} is forwarded more than once"
    for index, forward in enumerate(sector.port_forwards):
        field = f"{prefix}.port_forwards[{index}]"
        yield from _check_endpoint(f"{field}.to", forward.to, sector)


def _check_egress(
    prefix: str, sector: SectorSettings, backplane: BackplaneSettings
) -> Iterator[str]:
    egress = sector.egress
    backplane_cidr = backplane.cidr
    if egress.default == "allow" and egress.allow:
        yield (
            f"{prefix}.egress.allow: only used with default: deny (everything is already "
            "allowed); set default: deny or list what to block under deny"
        )
    for index, cidr in enumerate(egress.allow):
        if cidr in backplane_cidr or backplane_cidr in cidr:
            yield (
                f"{prefix}.egress.allow[{index}]: {cidr} overlaps the Backplane {backplane_cidr}, "
                "which a Sector never reaches"
            )
        for position, network in enumerate(backplane.protected_networks):
            if cidr in network or network in cidr:
                yield (
                    f"{prefix}.egress.allow[{index}]: {cidr} overlaps "
                    f"orbitlab:backplane.protected_networks[{position}] ({network}), which a "
                    "Sector never reaches"
                )


def _unreachable_reason(address: IPAddress, settings: StackSettings) -> str | None:
    """Why the Sector Gateway never lets a Sector reach ``address``, or None."""
    backplane = settings.backplane
    if address in backplane.cidr:
        return f"lies inside the Backplane {backplane.cidr}"
    for node in backplane.nodes:
        if address in (node.address, *node.other_addresses):
            return f"is an address of node {node.name!r}"
    for index, network in enumerate(backplane.protected_networks):
        if address in network:
            return f"lies in orbitlab:backplane.protected_networks[{index}] ({network})"
    return None


def _denied_reason(address: IPAddress, sector: SectorSettings) -> str | None:
    """Why the Sector's own egress settings refuse ``address`` (a deny always wins)."""
    for position, cidr in enumerate(sector.egress.deny):
        if address in cidr:
            return f"lies in its egress.deny[{position}] ({cidr}) (a deny always wins)"
    return None


def _check_forwarders(index: int, sector: SectorSettings, settings: StackSettings) -> Iterator[str]:
    """The Sector DNS forwards to resolvers the gateway lets it reach (not the Backplane,
    not a node). Without its own forwarders it uses ``appliances.nameservers``."""
    prefix = f"orbitlab:sectors[{index}]"
    own = sector.dns.forwarders
    field = f"{prefix}.dns.forwarders" if own else "orbitlab:appliances.nameservers"
    appliances = _own_appliances(sector)
    for position, address in enumerate(own or settings.appliances.nameservers):
        if address in appliances:
            yield (
                f"{field}[{position}]: {address} is {appliances[address]} of Sector "
                f"{sector.name!r}; the Sector DNS would forward to itself (CoreDNS' loop "
                "plugin then stops it); forward to a resolver on the home LAN or beyond"
            )
            continue
        reason = _unreachable_reason(address, settings) or _denied_reason(address, sector)
        if reason is None:
            continue
        if own:
            yield (
                f"{field}[{position}]: {address} {reason}, which the Sector Gateway of Sector "
                f"{sector.name!r} never lets it reach; forward to a resolver on the home LAN "
                "or beyond"
            )
        else:
            yield (
                f"{field}[{position}]: {address} {reason}; Sector {sector.name!r} forwards to "
                "it, and its Sector Gateway never lets it reach that address; set "
                f"{prefix}.dns.forwarders to a resolver on the home LAN or beyond"
            )


def _own_appliances(sector: SectorSettings) -> dict[IPAddress, str]:
    """The Sector DNS's and gateway's addresses in the Sector, named."""
    first = sector.subnets[0]
    found = {subnet_gateway(subnet): "the gateway" for subnet in sector.subnets}
    found[sector_infra_address(first, DNS.name)] = f"the {DNS.title}"
    return found


def check_sector(index: int, sector: SectorSettings, settings: StackSettings) -> Iterator[str]:
    prefix = f"orbitlab:sectors[{index}]"
    node_names = [node.name for node in settings.backplane.nodes]
    if sector.node is not None and sector.node not in node_names:
        yield f"{prefix}.node: {sector.node!r} is not a node; allowed: {', '.join(node_names)}"
    yield from _check_subnets(prefix, sector, settings.backplane.cidr)
    for node in settings.backplane.nodes:
        for subnet_index, subnet in enumerate(sector.subnets):
            for address in (node.address, *node.other_addresses):
                if address in subnet:
                    yield (
                        f"{prefix}.subnets[{subnet_index}]: {subnet} contains the address of "
                        f"node {node.name!r} ({address}); Sectors must not overlap node addresses"
                    )
    for subnet_index, subnet in enumerate(sector.subnets):
        for position, network in enumerate(settings.backplane.protected_networks):
            if subnet in network or network in subnet:
                yield (
                    f"{prefix}.subnets[{subnet_index}]: {subnet} overlaps "
                    f"orbitlab:backplane.protected_networks[{position}] ({network}), which no "
                    "Sector may reach"
                )
    yield from _check_hosts(prefix, sector)
    yield from _check_dhcp(prefix, sector)
    yield from _check_load_balancer(prefix, sector)
    yield from _check_port_forwards(prefix, sector)
    yield from _check_egress(prefix, sector, settings.backplane)
    yield from _check_forwarders(index, sector, settings)


def check_package_mirror(settings: StackSettings) -> Iterator[str]:
    """A deny-by-default Sector's DNS is let through to the mirror alone: it must be
    reachable at all (not the Backplane, a node or a protected network, not denied)."""
    url = settings.appliances.package_mirror
    if url is None:
        return
    field = "orbitlab:appliances.package_mirror"
    address, _ = mirror_endpoint(url)
    reason = _unreachable_reason(address, settings)
    if reason is not None:
        yield f"{field}: {address} {reason}, which no Sector DNS may reach; use a mirror elsewhere"
    for index, sector in enumerate(settings.sectors):
        for position, cidr in enumerate(sector.egress.deny):
            if address in cidr:
                yield (
                    f"{field}: {address} lies in orbitlab:sectors[{index}].egress.deny"
                    f"[{position}] ({cidr}); the Sector DNS of {sector.name!r} could not "
                    "install its packages"
                )


def cross_check(settings: StackSettings) -> list[str]:
    """Every relational problem in the settings, each naming its field."""
    problems = list(check_backplane(settings.backplane))
    problems.extend(check_package_mirror(settings))
    for name in _duplicates([sector.name for sector in settings.sectors]):
        problems.append(f"orbitlab:sectors: Sector name {name!r} appears more than once")
    explicit = [sector.tag for sector in settings.sectors if sector.tag is not None]
    for tag in _duplicates(explicit):
        problems.append(f"orbitlab:sectors: tag {tag} is given to more than one Sector")
    for index, sector in enumerate(settings.sectors):
        problems.extend(check_sector(index, sector, settings))
    problems.extend(check_macs(settings))
    return problems
