"""Allocation: pure functions from settings to tags, IDs, addresses and placement.

Nothing here keeps state: every value is a function of its inputs, so the same stack
gives the same answer on every run and no ledger is needed.

>>> str(backplane_gateway(IPNetwork("172.16.0.0/16")))
'172.16.0.1'
>>> [str(a) for a in appliance_backplane_addresses(IPNetwork("10.200.0.0/16"), 1002)]
['10.200.0.12', '10.200.0.13']
>>> allocate_tags([("web", None), ("db", None)], in_use={1001, 1003}, existing={})
{'web': 1002, 'db': 1004}
>>> appliance_mac(1001, "dns")
'02:4f:4c:20:03:e9'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from netaddr import IPAddress, IPNetwork

from orbitlab.errors import AllocationError
from orbitlab.roles import GATEWAY, LOAD_BALANCER, RoleName, backplane_stride, role

SECTOR_TAG_MIN = 1001
SECTOR_TAG_MAX = 9999
BACKPLANE_VRF_TAG = 10
BACKPLANE_VNET_TAG = 100
BACKPLANE_TAGS = frozenset({BACKPLANE_VRF_TAG, BACKPLANE_VNET_TAG})
APPLIANCE_OFFSET = 10
VXLAN_OVERHEAD = 50

#: The default DHCP pool starts at the upper half of the first subnet, and never below this
#: offset (the lower addresses are the appliances', see :mod:`orbitlab.roles`).
POOL_MIN_OFFSET = 4
#: Locally administered, unicast (first octet 0x02), "OL" in the second and third octets.
MAC_PREFIX = "02:4f:4c"


def backplane_gateway(cidr: IPNetwork) -> IPAddress:
    """The Backplane's anycast gateway: network + 1."""
    return IPAddress(cidr.first + 1)


def backplane_mtu(node_mtus: Iterable[int], override: int | None = None) -> int:
    """Smallest ``vmbr0`` MTU minus the VXLAN overhead, unless overridden."""
    return override if override is not None else min(node_mtus) - VXLAN_OVERHEAD


def max_sector_tag(cidr: IPNetwork) -> int:
    """The highest Sector tag whose Backplane addresses fit below the broadcast address."""
    last_offset = cidr.size - 2
    stride = backplane_stride()
    return min(
        SECTOR_TAG_MIN + (last_offset - APPLIANCE_OFFSET - (stride - 1)) // stride, SECTOR_TAG_MAX
    )


def appliance_backplane_addresses(cidr: IPNetwork, tag: int) -> tuple[IPAddress, IPAddress]:
    """(Sector Gateway, Load Balancer) Backplane addresses of a tag: network + 10 + 2*(tag - 1001)
    plus each role's Backplane offset (one address per role with a leg there).

    Raises :class:`AllocationError` when they do not fit the Backplane.
    """
    if not SECTOR_TAG_MIN <= tag <= SECTOR_TAG_MAX:
        raise AllocationError(f"tag {tag} is outside {SECTOR_TAG_MIN}-{SECTOR_TAG_MAX}")
    stride = backplane_stride()
    offset = APPLIANCE_OFFSET + stride * (tag - SECTOR_TAG_MIN)
    if offset + stride - 1 > cidr.size - 2:
        raise AllocationError(
            f"tag {tag} needs Backplane addresses network+{offset} and "
            f"network+{offset + stride - 1}, outside {cidr} "
            f"(room for tags {SECTOR_TAG_MIN}-{max_sector_tag(cidr)}); "
            "use a larger Backplane (a /17 holds every tag)"
        )
    return _backplane_address(cidr, offset, GATEWAY.name), _backplane_address(
        cidr, offset, LOAD_BALANCER.name
    )


def _backplane_address(cidr: IPNetwork, pair_offset: int, name: RoleName) -> IPAddress:
    """A role's Backplane address, given its Sector's first Backplane offset."""
    backplane_offset = role(name).backplane_offset
    if backplane_offset is None:
        raise AllocationError(f"the {role(name).title} has no Backplane address")
    return IPAddress(cidr.first + pair_offset + backplane_offset)


def allocate_tags(
    sectors: Sequence[tuple[str, int | None]],
    in_use: Iterable[int],
    existing: Mapping[str, int],
    blocked: Mapping[int, str] | None = None,
) -> dict[str, int]:
    """Give every Sector a VNet tag.

    ``sectors`` is ``(name, explicit tag or None)`` in declaration order; ``in_use`` the tags
    taken on the cluster (VXLAN/EVPN VNet tags and EVPN VRF tags); ``existing`` the tags of
    this stack's Sectors that already exist; ``blocked`` tags a new Sector cannot take for
    another reason, with that reason (e.g. a guest holds one of its VMIDs). An existing
    Sector keeps its tag, an explicit tag is honoured if free, every other Sector gets the
    lowest free tag in 1001-9999.
    """
    blocked = blocked or {}
    taken = set(in_use) | set(blocked)
    tags: dict[str, int] = {}
    for name, explicit in sectors:
        if name in existing:
            tag = existing[name]
            if explicit is not None and explicit != tag:
                raise AllocationError(
                    f"Sector {name!r} exists with tag {tag}, and a tag is fixed for life; "
                    f"the config asks for {explicit}: set tag: {tag} or remove it",
                    sector=name,
                )
            tags[name] = tag
            taken.add(tag)
    for name, explicit in sectors:
        if name in tags or explicit is None:
            continue
        if explicit in blocked:
            raise AllocationError(
                f"tag {explicit} cannot be used: {blocked[explicit]}; choose a free tag in "
                f"{SECTOR_TAG_MIN}-{SECTOR_TAG_MAX} or leave it out",
                sector=name,
            )
        if explicit in taken:
            raise AllocationError(
                f"tag {explicit} is already in use on the cluster (by a VNet or an EVPN "
                f"VRF); choose a free tag in {SECTOR_TAG_MIN}-{SECTOR_TAG_MAX} or leave it out",
                sector=name,
            )
        tags[name] = explicit
        taken.add(explicit)
    candidate = SECTOR_TAG_MIN
    for name, _ in sectors:
        if name in tags:
            continue
        while candidate in taken:
            candidate += 1
        if candidate > SECTOR_TAG_MAX:
            raise AllocationError(
                f"no free VNet tag left for Sector {name!r}: all of "
                f"{SECTOR_TAG_MIN}-{SECTOR_TAG_MAX} are in use on the cluster",
                sector=name,
            )
        tags[name] = candidate
        taken.add(candidate)
    return tags


def zone_id(tag: int) -> str:
    """Proxmox zone ID of a Sector (at most 8 characters)."""
    return f"olvz{tag}"


def vnet_id(tag: int) -> str:
    """Proxmox VNet ID of a Sector; containers join it with ``bridge=<vnet id>``."""
    return f"olvn{tag}"


def vmid(tag: int, name: RoleName) -> int:
    """Deterministic container VMID: the tag followed by the role's digit (1001 → 10011)."""
    return role(name).vmid(tag)


def appliance_mac(tag: int, name: RoleName, nic: int = 0) -> str:
    """The pinned MAC of an appliance NIC: ``02:4f:4c:<role><nic>:<tag, two octets>``.

    Deterministic (a replaced container keeps its MAC) and unique on the cluster, since tags
    are: the gateway can match the Sector DNS by MAC and address together, so a host that
    takes the DNS's address does not get its exemptions.
    """
    if not 0 <= nic <= 9:
        raise AllocationError(f"NIC index {nic} is outside 0-9")
    if not SECTOR_TAG_MIN <= tag <= SECTOR_TAG_MAX:
        raise AllocationError(f"tag {tag} is outside {SECTOR_TAG_MIN}-{SECTOR_TAG_MAX}")
    role_octet = role(name).vmid_suffix * 16 + nic
    return f"{MAC_PREFIX}:{role_octet:02x}:{tag >> 8:02x}:{tag & 0xFF:02x}"


def sector_infra_address(first_subnet: IPNetwork, name: RoleName) -> IPAddress:
    """Gateway (+1), DNS (+2) and load balancer (+3) addresses in a Sector's first subnet:
    each role's Sector offset."""
    return IPAddress(first_subnet.first + role(name).sector_offset)


def subnet_gateway(subnet: IPNetwork) -> IPAddress:
    """Every Sector subnet's gateway: network + 1, held by the Sector Gateway."""
    return IPAddress(subnet.first + 1)


def default_pool(
    first_subnet: IPNetwork, taken: Iterable[IPAddress]
) -> tuple[IPAddress, IPAddress] | None:
    """The default DHCP pool of a Sector: the longest run of addresses in the upper half of
    its first subnet that holds none of ``taken`` (declared hosts), never .1-.3 and never the
    broadcast address; the lowest such run on a tie; None when no address is left.

    >>> [str(a) for a in default_pool(IPNetwork("172.16.0.0/24"), [])]
    ['172.16.0.128', '172.16.0.254']
    >>> [str(a) for a in default_pool(IPNetwork("172.16.0.0/24"), [IPAddress("172.16.0.150")])]
    ['172.16.0.151', '172.16.0.254']
    >>> [str(a) for a in default_pool(IPNetwork("10.0.0.0/29"), [])]
    ['10.0.0.4', '10.0.0.6']
    """
    start = max(first_subnet.first + POOL_MIN_OFFSET, first_subnet.first + first_subnet.size // 2)
    end = first_subnet.last - 1
    blocked = sorted({int(address) for address in taken if start <= int(address) <= end})
    best: tuple[int, int] | None = None
    run_start = start
    for value in [*blocked, end + 1]:
        if value > run_start and (best is None or value - run_start > best[1] - best[0] + 1):
            best = (run_start, value - 1)
        run_start = value + 1
    return (IPAddress(best[0]), IPAddress(best[1])) if best else None


def place(sector: str, nodes: Sequence[str]) -> str:
    """Rendezvous (highest random weight) placement of a Sector on a node.

    Adding a Sector moves nothing; adding a node moves only the Sectors it wins.
    """
    if not nodes:
        raise AllocationError("no nodes to place Sectors on")

    def weight(node: str) -> bytes:
        return hashlib.sha256(f"{node}\0{sector}".encode()).digest()

    return max(nodes, key=weight)
