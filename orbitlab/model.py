"""Domain values of a Sector's settings: endpoints, the appliances' addresses, the DHCP pool.

These are facts the settings imply, read alike by the validator (:mod:`orbitlab.checks`),
the plan, rendering and the views; they live here so that none of those imports the
validator for them.

>>> from orbitlab.settings import SectorSettings
>>> web = SectorSettings(name="web", subnets=["172.16.0.0/24"],
...                      hosts=[{"name": "app1", "address": "172.16.0.10"}])
>>> parse_endpoint("app1:8080", web)
Endpoint(host='app1', address=IPAddress('172.16.0.10'), port=8080)
>>> sorted((str(a), owner) for a, owner in reserved_addresses(web).items())
[('172.16.0.1', 'the gateway'), ('172.16.0.2', 'the Sector DNS'), ('172.16.0.3', 'the Sector LB')]
>>> [str(a) for a in dhcp_pool(web)]
['172.16.0.128', '172.16.0.254']
"""

from __future__ import annotations

from typing import NamedTuple

from netaddr import AddrFormatError, IPAddress

from orbitlab.allocation import default_pool, sector_infra_address, subnet_gateway
from orbitlab.roles import GATEWAY, ROLES
from orbitlab.settings import SectorSettings


class Endpoint(NamedTuple):
    """A resolved ``host:port``: the declared host name (or None for a literal IP) and IP."""

    host: str | None
    address: IPAddress
    port: int


def parse_endpoint(text: str, sector: SectorSettings) -> Endpoint:
    """Resolve ``host:port`` where host is a declared host name or an address in the Sector.

    Raises ValueError with a message naming the value and what is allowed.
    """
    host, sep, port_text = str(text).rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not host:port; expected e.g. app:8080 (port 1-65535)")
    port = int(port_text)
    for declared in sector.hosts:
        if declared.name == host and declared.address is None:
            raise ValueError(
                f"{text!r}: host {host!r} has no fixed address (it takes one from the DHCP "
                "pool); give it an address (with its mac, a DHCP reservation) to use it here"
            )
        if declared.name == host:
            return Endpoint(declared.name, declared.address, port)
    try:
        address = IPAddress(host, version=4)
    except (AddrFormatError, ValueError):
        names = ", ".join(h.name for h in sector.hosts) or "none declared"
        raise ValueError(
            f"{text!r}: {host!r} is neither a host of Sector {sector.name!r} ({names}) "
            "nor an IPv4 address"
        ) from None
    subnet = next((s for s in sector.subnets if address in s), None)
    if subnet is None:
        raise ValueError(
            f"{text!r}: {address} is outside Sector {sector.name!r} "
            f"({', '.join(str(s) for s in sector.subnets)}); backends must be in the Sector"
        )
    if address in (subnet.network, subnet.broadcast):
        raise ValueError(
            f"{text!r}: {address} is the network or broadcast address of {subnet}; "
            "expected a host's address"
        )
    reserved = reserved_addresses(sector)
    if address in reserved:
        raise ValueError(
            f"{text!r}: {address} is {reserved[address]}'s address, not a host's; "
            "expected a host of the Sector"
        )
    pool = dhcp_pool(sector)
    declared = {host.address for host in sector.hosts if host.mac is not None}
    if pool is not None and pool[0] <= address <= pool[1] and address not in declared:
        raise ValueError(
            f"{text!r}: {address} is in the Sector's DHCP pool ({pool[0]}-{pool[1]}), so "
            "whoever leases it gets the traffic; declare the host with that address and its "
            "mac (a DHCP reservation), or use a static address outside the pool"
        )
    return Endpoint(None, address, port)


def reserved_addresses(sector: SectorSettings) -> dict[IPAddress, str]:
    """The appliances' addresses in the Sector: the gateway's ``.1`` of every subnet, then
    every other role's address in the first (whether or not the Sector has that role)."""
    reserved = {subnet_gateway(subnet): "the gateway" for subnet in sector.subnets}
    first = sector.subnets[0]
    for each in ROLES:
        if each is not GATEWAY:
            reserved[sector_infra_address(first, each.name)] = f"the Sector {each.name.upper()}"
    return reserved


def dhcp_pool(sector: SectorSettings) -> tuple[IPAddress, IPAddress] | None:
    """The Sector's DHCP pool: its ``dhcp.range``, else the default in its first subnet
    (clear of every declared host), or None when DHCP is off or no default fits."""
    if not sector.dhcp.enabled:
        return None
    if sector.dhcp.range is not None:
        start, end = sector.dhcp.range
        return start, end
    declared = [host.address for host in sector.hosts if host.address is not None]
    return default_pool(sector.subnets[0], declared)
