"""The plan: validated settings plus allocation, resolved into plain values.

A plan is what rendering, the Pulumi components and the twin all work from: every tag,
ID, address and placement is decided here, once, before anything is declared.

>>> from orbitlab.stack import parse_settings
>>> settings = parse_settings({
...     "backplane": {"nodes": [{"name": "pve1", "address": "192.0.2.11"}]},
...     "sectors": [{"name": "web", "subnets": ["172.16.0.0/24"]}],
... })
>>> plan = plan_stack("dev", settings)
>>> sector = plan.sectors[0]
>>> sector.tag, sector.vnet_id, str(sector.gateway.backplane_address), str(sector.dns.mac)
(1001, 'olvn1001', '10.200.0.10', '02:4f:4c:20:03:e9')
>>> sector.dns.dhcp.pool_text, sector.dns.dhcp.lease_time_s
('172.16.0.128-172.16.0.254', 3600)
>>> sector.appliance("gateway").hostname, sector.gateway.egress.default
('olvn1001-router', 'allow')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from netaddr import AddrFormatError, IPAddress, IPNetwork

from orbitlab import allocation
from orbitlab.errors import AllocationError, SettingsError
from orbitlab.model import Endpoint, dhcp_pool, parse_endpoint
from orbitlab.roles import DNS, GATEWAY, LOAD_BALANCER, RoleName, roles_of
from orbitlab.settings import (
    DEFAULT_LEASE_S,
    ApplianceSettings,
    EgressSettings,
    HealthCheckSettings,
    SectorSettings,
    StackSettings,
    mirror_endpoint,
)

BACKPLANE_CONTROLLER_ID = "olevpn"
BACKPLANE_ZONE_ID = "olbpz"
BACKPLANE_VNET_ID = "olbpvn"
BACKPLANE_ALIAS_PREFIX = "orbitlab backplane"


def backplane_alias(cidr: IPNetwork) -> str:
    """The Backplane VNet's alias: it records the CIDR, so the CIDR can be read back.

    The prefix length follows a ``-`` (as in Proxmox's own subnet IDs), not a ``/``: bpg's
    provider allows only ``()._``, letters, digits, whitespace and ``-`` in a VNet alias
    (``fwprovider/cluster/sdn/vnet/resource.go``), so a ``/`` fails ``pulumi preview``.

    >>> backplane_alias(IPNetwork("10.200.0.0/16"))
    'orbitlab backplane 10.200.0.0-16'
    """
    return f"{BACKPLANE_ALIAS_PREFIX} {cidr.network}-{cidr.prefixlen}"


def cidr_from_backplane_alias(alias: str) -> IPNetwork | None:
    """The CIDR a Backplane alias records, in the current form (``10.200.0.0-16``) or in
    the form of OrbitLab before 0.2 (``10.200.0.0/16``); None when it records none.

    >>> str(cidr_from_backplane_alias("orbitlab backplane 10.200.0.0-16"))
    '10.200.0.0/16'
    >>> str(cidr_from_backplane_alias("orbitlab backplane 10.200.0.0/16"))
    '10.200.0.0/16'
    >>> [cidr_from_backplane_alias(a) for a in ("orbitlab backplane 10.2.0.0", "my vnet")]
    [None, None]
    """
    match = BACKPLANE_ALIAS.fullmatch(alias)
    if match is None:
        return None
    try:
        cidr = IPNetwork(f"{match['network']}/{match['prefix']}", version=4)
    except (AddrFormatError, ValueError):
        return None
    return cidr if str(cidr.network) == match["network"] else None


BACKPLANE_ALIAS = re.compile(
    rf"{BACKPLANE_ALIAS_PREFIX} (?P<network>[0-9.]+)[-/](?P<prefix>[0-9]{{1,2}})"
)


@dataclass(frozen=True)
class NodePlan:
    name: str
    address: IPAddress
    mtu: int
    host_key: str | None = None
    #: The node's other IPv4 addresses (storage, corosync, management NICs).
    other_addresses: tuple[IPAddress, ...] = ()
    #: The IPv4 networks of the node's interfaces, ``vmbr0``'s first.
    networks: tuple[IPNetwork, ...] = ()

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        """Every address of the node: ``vmbr0`` first."""
        return (self.address, *self.other_addresses)

    @property
    def broadcasts(self) -> tuple[IPAddress, ...]:
        """The broadcast address of each of the node's networks (a /31 or /32 has none).

        >>> node = NodePlan("pve1", IPAddress("192.0.2.11"), 1500,
        ...                 networks=(IPNetwork("192.0.2.0/24"), IPNetwork("198.51.100.0/31")))
        >>> [str(address) for address in node.broadcasts]
        ['192.0.2.255']
        """
        return tuple(broadcast(network) for network in self.networks if has_broadcast(network))


def has_broadcast(network: IPNetwork) -> bool:
    """A /31 (RFC 3021, point-to-point) or a /32 has no broadcast address."""
    return network.prefixlen < 31


def broadcast(network: IPNetwork) -> IPAddress:
    """The last address of ``network``: its directed broadcast address."""
    return IPAddress(network.last, network.version)


@dataclass(frozen=True)
class BackplanePlan:
    """The Backplane's facts: what Sectors (also in other stacks) need to attach."""

    cidr: IPNetwork
    gateway: IPAddress
    mtu: int
    asn: int
    nodes: tuple[NodePlan, ...]
    primary_exit_node: str
    controller_id: str = BACKPLANE_CONTROLLER_ID
    zone_id: str = BACKPLANE_ZONE_ID
    vnet_id: str = BACKPLANE_VNET_ID
    vrf_tag: int = allocation.BACKPLANE_VRF_TAG
    vnet_tag: int = allocation.BACKPLANE_VNET_TAG
    #: The stack that owns the Backplane, when this stack only attaches Sectors to it.
    owner_stack: str | None = None
    #: Networks no Sector may reach (storage, corosync, management LANs).
    protected_networks: tuple[IPNetwork, ...] = ()

    @property
    def alias(self) -> str:
        """The VNet alias records the CIDR, so it can be read back from the cluster."""
        return backplane_alias(self.cidr)

    @property
    def peers(self) -> tuple[IPAddress, ...]:
        return tuple(node.address for node in self.nodes)

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes)

    @property
    def node_addresses(self) -> tuple[IPAddress, ...]:
        """Every address of every node: no Sector may reach any of them."""
        return tuple(address for node in self.nodes for address in node.addresses)

    @property
    def node_broadcasts(self) -> tuple[IPAddress, ...]:
        """The broadcast addresses of every node's networks, sorted and unique: a Sector's
        directed broadcast to one would reach the node as a broadcast of its own LAN."""
        return tuple(sorted({address for node in self.nodes for address in node.broadcasts}))


@dataclass(frozen=True)
class SubnetPlan:
    cidr: IPNetwork
    gateway: IPAddress

    @property
    def gateway_interface(self) -> str:
        """The gateway's address with the subnet's prefix, e.g. ``172.16.0.1/24``."""
        return f"{self.gateway}/{self.cidr.prefixlen}"


@dataclass(frozen=True)
class HostPlan:
    """A declared host: static (address), reserved (address and mac) or dynamic (no address;
    its name comes with its DHCP lease, bound to its NIC when it has a mac)."""

    name: str
    address: IPAddress | None
    mac: str | None = None

    @property
    def dynamic(self) -> bool:
        return self.address is None

    @property
    def leases(self) -> bool:
        """True when the host takes its address by DHCP (dynamic, or reserved by its mac)."""
        return self.address is None or self.mac is not None


@dataclass(frozen=True)
class DhcpPlan:
    """The Sector DHCP server: its pool (in one subnet) and the lease time."""

    pool_start: IPAddress
    pool_end: IPAddress
    pool_subnet: SubnetPlan
    lease_time_s: int
    #: Serve only the hosts declared with a mac.
    known_only: bool = False

    @property
    def pool_text(self) -> str:
        """``first-last``, e.g. ``172.16.0.128-172.16.0.254``."""
        return f"{self.pool_start}-{self.pool_end}"

    def in_pool(self, address: IPAddress) -> bool:
        return self.pool_start <= address <= self.pool_end


@dataclass(frozen=True)
class ListenerPlan:
    port: int
    mode: str
    proxy_protocol: bool
    health_check: HealthCheckSettings
    backends: tuple[Endpoint, ...]


@dataclass(frozen=True)
class PortForwardPlan:
    protocol: str
    port: int
    to: Endpoint


@dataclass(frozen=True)
class EgressPlan:
    """What the Sector Gateway lets the Sector reach beyond the Backplane: everything but
    ``deny`` (``default: allow``), or only ``allow`` (``default: deny``); a deny always wins."""

    default: Literal["allow", "deny"]
    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, egress: EgressSettings) -> EgressPlan:
        return cls(egress.default, tuple(egress.allow), tuple(egress.deny))


@dataclass(frozen=True)
class GatewayPlan:
    """The Sector Gateway: ``.1`` of every subnet (the first's is ``sector_address``), its
    Backplane leg, and the egress policy it enforces."""

    backplane_address: IPAddress
    sector_address: IPAddress
    hostname: str
    vmid: int
    egress: EgressPlan


@dataclass(frozen=True)
class DnsPlan:
    """The Sector DNS: its address and pinned MAC in the first subnet, the resolvers it
    forwards to (none: the appliances' nameservers) and its DHCP server (None: DHCP off)."""

    sector_address: IPAddress
    hostname: str
    vmid: int
    mac: str
    forwarders: tuple[IPAddress, ...]
    dhcp: DhcpPlan | None = None


@dataclass(frozen=True)
class LoadBalancerPlan:
    """The Sector Load Balancer: a leg on the Backplane, one in the Sector, its listeners."""

    backplane_address: IPAddress
    sector_address: IPAddress
    hostname: str
    vmid: int
    listeners: tuple[ListenerPlan, ...]


#: The plan of one appliance, whatever its role: each has a hostname, VMID and Sector address.
AppliancePlan = GatewayPlan | DnsPlan | LoadBalancerPlan


@dataclass(frozen=True)
class SectorPlan:
    """One Sector, fully resolved."""

    stack: str
    name: str
    tag: int
    node: str
    subnets: tuple[SubnetPlan, ...]
    hosts: tuple[HostPlan, ...]
    domain: str
    gateway: GatewayPlan
    dns: DnsPlan
    load_balancer: LoadBalancerPlan | None
    port_forwards: tuple[PortForwardPlan, ...]
    mtu: int

    @property
    def zone_id(self) -> str:
        return allocation.zone_id(self.tag)

    @property
    def vnet_id(self) -> str:
        return allocation.vnet_id(self.tag)

    @property
    def alias(self) -> str:
        """Stack-scoped VNet alias: how an existing Sector is found again on the cluster."""
        return sector_alias(self.stack, self.name)

    def appliance(self, role: RoleName) -> AppliancePlan:
        """The plan of the Sector's appliance of ``role``; KeyError when it has none."""
        found: dict[RoleName, AppliancePlan | None] = {
            GATEWAY.name: self.gateway,
            DNS.name: self.dns,
            LOAD_BALANCER.name: self.load_balancer,
        }
        appliance = found[role]
        if appliance is None:
            raise KeyError(f"Sector {self.name!r} has no {role} appliance")
        return appliance

    @property
    def first_subnet(self) -> SubnetPlan:
        return self.subnets[0]

    @property
    def gateway_address(self) -> IPAddress:
        """The gateway's address in the first subnet (.1): hosts' default gateway."""
        return self.first_subnet.gateway

    def vmid(self, role: RoleName) -> int:
        return allocation.vmid(self.tag, role)

    @property
    def roles(self) -> tuple[RoleName, ...]:
        """The appliances the Sector has (:func:`orbitlab.roles.roles_of`): gateway and DNS,
        and its LB if it declares one."""
        return tuple(role.name for role in roles_of(self))

    @property
    def fixed_hosts(self) -> tuple[HostPlan, ...]:
        """The declared hosts whose address is known in advance (static or reserved)."""
        return tuple(host for host in self.hosts if host.address is not None)

    def subnet_of(self, address: IPAddress) -> SubnetPlan | None:
        return next((subnet for subnet in self.subnets if address in subnet.cidr), None)


@dataclass(frozen=True)
class MirrorPlan:
    """The package mirror: the URL for the repositories, its address and port for the rules."""

    url: str
    address: IPAddress
    port: int


#: The storages a fresh Proxmox VE install (LVM) has; used when the cluster is not read.
DEFAULT_ROOT_STORAGE = "local-lvm"
DEFAULT_TEMPLATE_STORAGE = "local"


@dataclass(frozen=True)
class NodeStorage:
    """Where a node's appliances live: their root disks (a storage holding ``rootdir``) and
    their template (one holding ``vztmpl``; ``shared``: every node that has it sees one
    volume, so one download serves them all)."""

    rootdir: str = DEFAULT_ROOT_STORAGE
    vztmpl: str = DEFAULT_TEMPLATE_STORAGE
    shared: bool = False

    @classmethod
    def configured(cls, appliances: ApplianceSettings) -> NodeStorage:
        """Without the cluster's storages: the configured names, else a fresh install's."""
        return cls(
            appliances.storage or DEFAULT_ROOT_STORAGE,
            appliances.template_storage or DEFAULT_TEMPLATE_STORAGE,
        )


def template_downloads(
    nodes: Iterable[str], storage: Callable[[str], NodeStorage]
) -> list[tuple[str, NodeStorage]]:
    """The nodes that download the appliance template, with their storages: every node,
    except that a shared template storage is downloaded to once, by the first node using it.

    >>> shared = {"pve1": NodeStorage(vztmpl="nfs", shared=True),
    ...           "pve2": NodeStorage(vztmpl="nfs", shared=True), "pve3": NodeStorage()}
    >>> [node for node, _ in template_downloads(["pve1", "pve2", "pve3"], shared.get)]
    ['pve1', 'pve3']
    """
    downloads: list[tuple[str, NodeStorage]] = []
    shared: set[str] = set()
    for node in nodes:
        chosen = storage(node)
        if chosen.shared and chosen.vztmpl in shared:
            continue
        if chosen.shared:
            shared.add(chosen.vztmpl)
        downloads.append((node, chosen))
    return downloads


@dataclass(frozen=True)
class StackPlan:
    stack: str
    backplane: BackplanePlan
    sectors: tuple[SectorPlan, ...]
    appliances: ApplianceSettings = field(default_factory=ApplianceSettings)
    #: Per node, the storages chosen from the cluster's (:func:`orbitlab.facts.choose_storages`).
    storages: Mapping[str, NodeStorage] = field(default_factory=dict)

    def storage(self, node: str) -> NodeStorage:
        """A node's storages: chosen from the cluster's, else the configured or default ones."""
        return self.storages.get(node) or NodeStorage.configured(self.appliances)

    @property
    def package_mirror(self) -> MirrorPlan | None:
        url = self.appliances.package_mirror
        if url is None:
            return None
        address, port = mirror_endpoint(url)
        return MirrorPlan(url.rstrip("/"), address, port)

    @property
    def hosting_nodes(self) -> tuple[str, ...]:
        """The nodes that host appliances (each Sector's node), sorted."""
        return tuple(sorted({sector.node for sector in self.sectors}))

    def sector(self, name: str) -> SectorPlan:
        for sector in self.sectors:
            if sector.name == name:
                return sector
        raise KeyError(name)


def plan_dhcp(sector: SectorSettings, subnets: tuple[SubnetPlan, ...]) -> DhcpPlan | None:
    """The DHCP plan of a validated Sector (None when DHCP is off)."""
    pool = dhcp_pool(sector)
    if pool is None:
        return None
    start, end = pool
    return DhcpPlan(
        pool_start=start,
        pool_end=end,
        pool_subnet=next(subnet for subnet in subnets if start in subnet.cidr),
        lease_time_s=sector.dhcp.lease_time or DEFAULT_LEASE_S,
        known_only=sector.dhcp.known_only,
    )


def sector_alias(stack: str, sector: str) -> str:
    return f"ol {stack} {sector}"


def plan_backplane(settings: StackSettings) -> BackplanePlan:
    backplane = settings.backplane
    nodes = tuple(
        NodePlan(n.name, n.address, n.mtu, n.host_key, tuple(n.other_addresses), tuple(n.networks))
        for n in backplane.nodes
    )
    return BackplanePlan(
        cidr=backplane.cidr,
        gateway=allocation.backplane_gateway(backplane.cidr),
        mtu=allocation.backplane_mtu((n.mtu for n in nodes), backplane.mtu),
        asn=backplane.asn,
        nodes=nodes,
        primary_exit_node=backplane.primary_exit_node or nodes[0].name,
        owner_stack=backplane.stack,
        protected_networks=tuple(backplane.protected_networks),
    )


def _sector_index(settings: StackSettings, name: str | None) -> str:
    for index, sector in enumerate(settings.sectors):
        if sector.name == name:
            return f"orbitlab:sectors[{index}]"
    return "orbitlab:sectors"


def plan_stack(
    stack: str,
    settings: StackSettings,
    in_use_tags: Iterable[int] = (),
    existing_tags: Mapping[str, int] | None = None,
    blocked_tags: Mapping[int, str] | None = None,
) -> StackPlan:
    """Resolve validated settings against the tags in use on the cluster.

    ``in_use_tags``: every VXLAN/EVPN VNet tag and EVPN VRF tag on the cluster.
    ``existing_tags``: tags of this stack's Sectors that already exist (found by alias).
    ``blocked_tags``: tags a new Sector cannot take, and why (a guest holds its VMIDs).
    Raises :class:`SettingsError` naming the Sector's field when allocation fails.
    """
    backplane = plan_backplane(settings)
    requests = [(sector.name, sector.tag) for sector in settings.sectors]
    try:
        tags = allocation.allocate_tags(requests, in_use_tags, existing_tags or {}, blocked_tags)
    except AllocationError as error:
        raise SettingsError([f"{_sector_index(settings, error.sector)}.tag: {error}"]) from None
    problems: list[str] = []
    sectors = []
    for index, sector in enumerate(settings.sectors):
        tag = tags[sector.name]
        try:
            gateway_bp, lb_bp = allocation.appliance_backplane_addresses(backplane.cidr, tag)
        except AllocationError as error:
            problems.append(f"orbitlab:sectors[{index}] ({sector.name}): {error}")
            continue
        first = sector.subnets[0]
        load_balancer = None
        if sector.load_balancer is not None:
            load_balancer = LoadBalancerPlan(
                backplane_address=lb_bp,
                sector_address=allocation.sector_infra_address(first, LOAD_BALANCER.name),
                hostname=LOAD_BALANCER.hostname(tag),
                vmid=LOAD_BALANCER.vmid(tag),
                listeners=tuple(
                    ListenerPlan(
                        port=listener.port,
                        mode=listener.mode,
                        proxy_protocol=listener.proxy_protocol,
                        health_check=listener.health_check,
                        backends=tuple(parse_endpoint(b, sector) for b in listener.backends),
                    )
                    for listener in sector.load_balancer.listeners
                ),
            )
        subnets = tuple(
            SubnetPlan(cidr, allocation.subnet_gateway(cidr)) for cidr in sector.subnets
        )
        gateway = GatewayPlan(
            backplane_address=gateway_bp,
            sector_address=allocation.sector_infra_address(first, GATEWAY.name),
            hostname=GATEWAY.hostname(tag),
            vmid=GATEWAY.vmid(tag),
            egress=EgressPlan.of(sector.egress),
        )
        dns = DnsPlan(
            sector_address=allocation.sector_infra_address(first, DNS.name),
            hostname=DNS.hostname(tag),
            vmid=DNS.vmid(tag),
            mac=allocation.appliance_mac(tag, DNS.name),
            forwarders=tuple(sector.dns.forwarders or settings.appliances.nameservers),
            dhcp=plan_dhcp(sector, subnets),
        )
        sectors.append(
            SectorPlan(
                stack=stack,
                name=sector.name,
                tag=tag,
                node=sector.node or allocation.place(sector.name, backplane.node_names),
                subnets=subnets,
                hosts=tuple(HostPlan(h.name, h.address, h.mac) for h in sector.hosts),
                domain=sector.domain,
                gateway=gateway,
                dns=dns,
                load_balancer=load_balancer,
                port_forwards=tuple(
                    PortForwardPlan(f.protocol, f.port, parse_endpoint(f.to, sector))
                    for f in sector.port_forwards
                ),
                mtu=backplane.mtu,
            )
        )
    if problems:
        raise SettingsError(problems)
    return StackPlan(stack, backplane, tuple(sectors), settings.appliances)
