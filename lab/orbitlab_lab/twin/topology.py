"""The twin's topology: a plan turned into namespaces, links and addresses (pure data).

Nothing here touches the system, so the layout can be checked without root::

    >>> from orbitlab.stack import load_plan
    >>> topology = build_topology(load_plan("stacks/Pulumi.example.yaml"))
    >>> [node.ns.name for node in topology.nodes]
    ['olt-n.pve1', 'olt-n.pve2']
    >>> web = topology.sector("web")
    >>> web.gateway.name, [(h.name, h.node) for h in web.hosts]
    ('olt-s.web.gateway', [('app1', 'pve1'), ('app2', 'pve2'), ('app3', 'pve1')])
    >>> [h.name for h in web.dhcp_clients], [h.name for h in web.fixed_hosts]
    (['app3'], ['app1', 'app2'])

Layout (every name below lives inside a namespace of ours; the root namespace is untouched):

- ``olt-x.router``: the home router. Bridge ``lan0`` is the home LAN, holding the router's
  LAN address; ``wan0`` leads to ``olt-x.inet`` (the "internet", 203.0.113.0/24). It routes
  the Backplane CIDR to the primary exit node (the static route docs/prerequisites.md asks for).
- ``olt-x.client`` (home LAN client), ``olt-x.resolver`` (the upstream resolver stand-in,
  holding every address the stack names as a nameserver or forwarder), both on ``lan0``.
- ``olt-n.<node>``: a Proxmox node. ``vmbr0`` on the home LAN with the node's address; the
  Backplane bridge (VNet id, anycast gateway address and MAC, VXLAN VNI 100); the Backplane
  zone's L3 VNI (VRF-VXLAN tag) carrying routed traffic between nodes; per Sector a bridge
  named after its VNet with a VXLAN whose VNI is the Sector tag.
- ``olt-s.<sector>.<gateway|dns|lb|host>``: appliances and declared hosts, each with veths
  into its node's bridges. A host without an address, or with a ``mac`` (a reservation),
  takes its address from the Sector DHCP with a real client (busybox ``udhcpc``).
- ``olt-c.<vmid>``: in a twin of the emulated cluster, a container the stack does not
  expect (:mod:`orbitlab_lab.twin.containers`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from netaddr import IPAddress, IPNetwork

from orbitlab.plan import HostPlan, SectorPlan, StackPlan, SubnetPlan
from orbitlab.roles import ROLE_NAMES, role, roles_of
from orbitlab_lab.twin import TwinError

PREFIX = "olt-"
NODE_PREFIX = f"{PREFIX}n."
EXTERNAL_PREFIX = f"{PREFIX}x."
SECTOR_PREFIX = f"{PREFIX}s."
#: A container of the emulated cluster that the stack does not expect (``olt-c.<vmid>``).
CONTAINER_PREFIX = f"{PREFIX}c."
OUR_PREFIXES = (NODE_PREFIX, EXTERNAL_PREFIX, SECTOR_PREFIX, CONTAINER_PREFIX)

INTERNET = IPNetwork("203.0.113.0/24")
ROUTER_INTERNET = IPAddress("203.0.113.1")
INTERNET_HOST = IPAddress("203.0.113.10")
#: A second internet service on the same host: a stack can deny it inside an allowed range.
INTERNET_OTHER = IPAddress("203.0.113.20")
#: An internet address no host has: what is sent there is never answered.
INTERNET_SILENT = IPAddress("203.0.113.99")
INTERNET_NAME = "internet.test"
DEFAULT_RESOLVER = IPAddress("198.51.100.53")
WILDCARD_ANSWER = IPAddress("198.51.100.99")
SERVICE_PORT = 80
HOST_PORT = 8080
GUI_PORT = 8006
ANYCAST_MAC = "02:4f:4c:00:00:01"
VXLAN_PORT = 4789
ROLES = ROLE_NAMES


@dataclass(frozen=True)
class Namespace:
    """One network namespace: its name, how users call it, and what runs inside sees."""

    name: str
    label: str
    hostname: str
    resolver: IPAddress | None = None


@dataclass(frozen=True)
class NodeTwin:
    """A Proxmox node: ``vmbr0`` on the home LAN, the Backplane and Sector bridges."""

    name: str
    index: int
    address: IPAddress
    mtu: int
    primary: bool
    ns: Namespace
    #: The node's other NIC addresses (storage, corosync): on a dummy link of the node.
    other_addresses: tuple[IPAddress, ...] = ()

    @property
    def router_mac(self) -> str:
        """The node's MAC on the Backplane zone's L3 VNI (routed traffic between nodes)."""
        return f"02:4f:4c:0a:{self.index // 256:02x}:{self.index % 256:02x}"

    @property
    def lan_port(self) -> str:
        """The home router's switch port the node's ``vmbr0`` plugs into."""
        return f"lan-n{self.index}"


@dataclass(frozen=True)
class HostTwin:
    """A declared Sector host: a namespace with ``eth0`` on the Sector's VNet, on some node.

    A static host has its address configured; a DHCP client (``dhcp``: no address, or a
    reservation by ``mac``) leases it. ``address`` and ``subnet`` are None when the address
    comes from the pool (known only once leased).
    """

    name: str
    address: IPAddress | None
    subnet: SubnetPlan | None
    node: str
    port: str
    ns: Namespace
    tcp_ports: tuple[int, ...]
    udp_ports: tuple[int, ...]
    mac: str | None = None
    dhcp: bool = False

    @property
    def interface(self) -> str:
        """The static address with its prefix, e.g. ``172.16.0.21/24``."""
        if self.address is None or self.subnet is None:
            raise TwinError(f"{self.ns.label} has no fixed address (it leases one by DHCP)")
        return f"{self.address}/{self.subnet.cidr.prefixlen}"


@dataclass(frozen=True)
class SectorTwin:
    """A Sector: its plan, its appliances' namespaces and its hosts."""

    plan: SectorPlan
    gateway: Namespace
    dns: Namespace
    lb: Namespace | None
    hosts: tuple[HostTwin, ...]

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def node(self) -> str:
        return self.plan.node

    @property
    def bridge(self) -> str:
        """The node bridge of the Sector's VNet, named like Proxmox names it (``olvn1001``)."""
        return self.plan.vnet_id

    @property
    def vxlan(self) -> str:
        return f"vxlan_{self.plan.vnet_id}"

    def port(self, name: str, leg: str = "") -> str:
        """Node-side veth of an appliance leg: ``gw1001s`` (Sector), ``gw1001b`` (Backplane)."""
        return f"{role(name).short}{self.plan.tag}{leg}"

    @property
    def fixed_hosts(self) -> tuple[HostTwin, ...]:
        """Hosts whose address is known in advance: static, or reserved by DHCP."""
        return tuple(host for host in self.hosts if host.address is not None)

    @property
    def dhcp_clients(self) -> tuple[HostTwin, ...]:
        """Hosts that lease their address: dynamic, or reserved by their mac."""
        return tuple(host for host in self.hosts if host.dhcp)

    def appliances(self) -> dict[str, Namespace]:
        """The appliances' namespaces by role, in the registry's order (its attributes are
        named after the roles)."""
        found = {each.name: getattr(self, each.name) for each in roles_of(self.plan)}
        return {name: ns for name, ns in found.items() if ns is not None}

    def host(self, name: str) -> HostTwin:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


@dataclass(frozen=True)
class External:
    """The home LAN and the internet stand-ins, documentation addresses only."""

    lan: IPNetwork
    router: Namespace
    router_lan: IPAddress
    client: Namespace
    client_lan: IPAddress
    resolver: Namespace
    resolver_lan: IPAddress
    resolver_addresses: tuple[IPAddress, ...]
    inet: Namespace
    #: The package mirror's address and port (a home-LAN service), if the stack names one.
    mirror: tuple[IPAddress, int] | None = None

    @property
    def service_addresses(self) -> tuple[IPAddress, ...]:
        """What the resolver namespace holds: every resolver, and the package mirror."""
        mirror = (self.mirror[0],) if self.mirror else ()
        return tuple(dict.fromkeys([*self.resolver_addresses, *mirror]))

    @property
    def resolver_extra(self) -> tuple[IPAddress, ...]:
        """Service addresses outside the home LAN: held on the resolver's loopback."""
        return tuple(a for a in self.service_addresses if a not in self.lan)


@dataclass(frozen=True)
class Topology:
    """Everything the twin builds for one stack plan."""

    plan: StackPlan
    nodes: tuple[NodeTwin, ...]
    sectors: tuple[SectorTwin, ...]
    external: External
    #: A service address in each protected network (held by the home LAN client).
    protected_services: tuple[tuple[IPNetwork, IPAddress], ...] = ()

    @property
    def primary(self) -> NodeTwin:
        return next(node for node in self.nodes if node.primary)

    @property
    def backplane_bridge(self) -> str:
        return self.plan.backplane.vnet_id

    @property
    def backplane_vxlan(self) -> str:
        return f"vxlan_{self.plan.backplane.vnet_id}"

    @property
    def l3_vxlan(self) -> str:
        return f"vrfvx_{self.plan.backplane.zone_id}"

    def node(self, name: str) -> NodeTwin:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def sector(self, name: str) -> SectorTwin:
        for sector in self.sectors:
            if sector.name == name:
                return sector
        raise KeyError(name)

    def external_namespaces(self) -> tuple[Namespace, ...]:
        ext = self.external
        return (ext.router, ext.inet, ext.client, ext.resolver)

    def namespaces(self) -> Iterator[Namespace]:
        """Every namespace, in creation order (the external side and nodes first)."""
        yield from self.external_namespaces()
        for node in self.nodes:
            yield node.ns
        for sector in self.sectors:
            yield from sector.appliances().values()
            for host in sector.hosts:
                yield host.ns

    def backplane_homes(self) -> Iterator[tuple[IPAddress, str]]:
        """Every Backplane address of an appliance and the node it lives on."""
        for sector in self.sectors:
            yield sector.plan.gateway.backplane_address, sector.node
            if sector.plan.load_balancer is not None:
                yield sector.plan.load_balancer.backplane_address, sector.node

    def find(self, target: str) -> Namespace:
        """Resolve ``SECTOR/HOST`` (HOST: a declared host, ``gateway``, ``dns`` or ``lb``),
        ``node:NAME`` or ``external:router|client|inet|resolver`` to its namespace.

        >>> from orbitlab.stack import load_plan
        >>> build_topology(load_plan("stacks/Pulumi.example.yaml")).find("lab/box1").name
        'olt-s.lab.box1'
        """
        kind, colon, rest = target.partition(":")
        if colon and kind == "node":
            return self._find_node(rest)
        if colon and kind == "external":
            return self._find_external(rest)
        sector_name, slash, member = target.partition("/")
        if not slash:
            raise TwinError(
                f"{target!r}: expected SECTOR/HOST (HOST: a declared host, gateway, dns or lb), "
                "node:NAME or external:router|client|inet|resolver"
            )
        return self._find_member(sector_name, member)

    def _find_node(self, name: str) -> Namespace:
        try:
            return self.node(name).ns
        except KeyError:
            names = ", ".join(node.name for node in self.nodes)
            raise TwinError(f"no node {name!r}; nodes: {names}") from None

    def _find_external(self, name: str) -> Namespace:
        for ns in self.external_namespaces():
            if ns.name == f"{EXTERNAL_PREFIX}{name}":
                return ns
        raise TwinError(f"no external {name!r}; choose router, client, inet or resolver")

    def _find_member(self, sector_name: str, member: str) -> Namespace:
        try:
            sector = self.sector(sector_name)
        except KeyError:
            names = ", ".join(s.name for s in self.sectors) or "none"
            raise TwinError(f"no Sector {sector_name!r}; Sectors: {names}") from None
        appliances = sector.appliances()
        if member in appliances:
            return appliances[member]
        try:
            return sector.host(member).ns
        except KeyError:
            choices = ", ".join([*appliances, *(h.name for h in sector.hosts)])
            raise TwinError(
                f"no {member!r} in Sector {sector_name!r}; choose one of: {choices}"
            ) from None


def home_lan(plan: StackPlan) -> IPNetwork:
    """The home LAN: the smallest network of at least a /24 holding every node address."""
    addresses = [node.address for node in plan.backplane.nodes]
    for prefix in range(24, 15, -1):
        lan = IPNetwork(f"{addresses[0]}/{prefix}").cidr
        if all(address in lan for address in addresses):
            return lan
    raise TwinError(
        "the nodes' addresses do not share one /16; the twin puts every node on one home LAN"
    )


def _free_address(lan: IPNetwork, taken: set[IPAddress], offsets: tuple[int, ...]) -> IPAddress:
    candidates = [*(lan.first + offset for offset in offsets), *range(lan.first + 2, lan.last)]
    for value in candidates:
        address = IPAddress(value)
        if address not in taken and lan.first < value < lan.last:
            taken.add(address)
            return address
    raise TwinError(f"no free address left in the home LAN {lan}")


def resolver_addresses(plan: StackPlan) -> tuple[IPAddress, ...]:
    """Every upstream resolver the stack names (nameservers, forwarders), or a stand-in."""
    found = {*plan.appliances.nameservers}
    for sector in plan.sectors:
        found.update(sector.dns.forwarders)
    for address in found:
        if address in plan.backplane.cidr:
            raise TwinError(f"resolver {address} lies inside the Backplane {plan.backplane.cidr}")
    return tuple(sorted(found)) or (DEFAULT_RESOLVER,)


def _external(plan: StackPlan) -> External:
    lan = home_lan(plan)
    resolvers = resolver_addresses(plan)
    mirror = plan.package_mirror
    taken = {node.address for node in plan.backplane.nodes} | set(resolvers)
    if mirror is not None:
        taken.add(mirror.address)
    in_lan = [address for address in resolvers if address in lan]
    resolver_lan = in_lan[0] if in_lan else _free_address(lan, taken, (53,))
    upstream = resolvers[0]
    return External(
        lan=lan,
        router=Namespace(f"{EXTERNAL_PREFIX}router", "external:router", "home-router", upstream),
        router_lan=_free_address(lan, taken, (1, 254)),
        client=Namespace(f"{EXTERNAL_PREFIX}client", "external:client", "home-client", upstream),
        client_lan=_free_address(lan, taken, (100,)),
        resolver=Namespace(f"{EXTERNAL_PREFIX}resolver", "external:resolver", "resolver", upstream),
        resolver_lan=resolver_lan,
        resolver_addresses=resolvers,
        inet=Namespace(f"{EXTERNAL_PREFIX}inet", "external:inet", "internet", upstream),
        mirror=(mirror.address, mirror.port) if mirror is not None else None,
    )


def _host_ports(sector: SectorPlan, host: HostPlan) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """TCP and UDP ports a host serves: its LB backends, port-forward targets and 8080."""
    tcp = {HOST_PORT}
    udp: set[int] = set()
    if host.address is None:  # from the pool: never a backend or a forward target
        return (HOST_PORT,), ()
    if sector.load_balancer is not None:
        for listener in sector.load_balancer.listeners:
            tcp.update(b.port for b in listener.backends if b.address == host.address)
    for forward in sector.port_forwards:
        if forward.to.address == host.address:
            (udp if forward.protocol == "udp" else tcp).add(forward.to.port)
    return tuple(sorted(tcp)), tuple(sorted(udp))


def _hosts(sector: SectorPlan, node_names: tuple[str, ...], resolver: IPAddress) -> list[HostTwin]:
    """Hosts spread over the nodes, the first one away from the appliances' node, so that
    Sector traffic really crosses VXLAN."""
    start = node_names.index(sector.node) + 1
    hosts = []
    for index, host in enumerate(sector.hosts):
        subnet = sector.subnet_of(host.address) if host.address is not None else None
        tcp, udp = _host_ports(sector, host)
        hosts.append(
            HostTwin(
                name=host.name,
                address=host.address,
                subnet=subnet,
                node=node_names[(start + index) % len(node_names)],
                port=f"h{sector.tag}x{index}",
                ns=Namespace(
                    f"{SECTOR_PREFIX}{sector.name}.{host.name}",
                    f"{sector.name}/{host.name}",
                    host.name,
                    resolver,
                ),
                tcp_ports=tcp,
                udp_ports=udp,
                mac=host.mac,
                dhcp=host.leases,
            )
        )
    return hosts


def _sector(sector: SectorPlan, node_names: tuple[str, ...], upstream: IPAddress) -> SectorTwin:
    def appliance(role: str, hostname: str, resolver: IPAddress) -> Namespace:
        return Namespace(
            f"{SECTOR_PREFIX}{sector.name}.{role}", f"{sector.name}/{role}", hostname, resolver
        )

    dns_upstream = sector.dns.forwarders[0] if sector.dns.forwarders else upstream
    lb = sector.load_balancer
    return SectorTwin(
        plan=sector,
        gateway=appliance("gateway", sector.gateway.hostname, upstream),
        dns=appliance("dns", sector.dns.hostname, dns_upstream),
        lb=appliance("lb", lb.hostname, upstream) if lb is not None else None,
        hosts=tuple(_hosts(sector, node_names, sector.dns.sector_address)),
    )


def build_topology(plan: StackPlan) -> Topology:
    """Lay out the twin of a plan. Raises :class:`TwinError` if it cannot be emulated."""
    if len(plan.backplane.nodes) < 2:
        raise TwinError(
            f"the twin needs at least two nodes to span the Backplane; the stack declares "
            f"{len(plan.backplane.nodes)}"
        )
    external = _external(plan)
    upstream = external.resolver_addresses[0]
    nodes = tuple(
        NodeTwin(
            name=node.name,
            index=index + 1,
            address=node.address,
            mtu=node.mtu,
            primary=node.name == plan.backplane.primary_exit_node,
            ns=Namespace(f"{NODE_PREFIX}{node.name}", f"node:{node.name}", node.name, upstream),
            other_addresses=node.other_addresses,
        )
        for index, node in enumerate(plan.backplane.nodes)
    )
    node_names = plan.backplane.node_names
    sectors = tuple(_sector(sector, node_names, upstream) for sector in plan.sectors)
    return Topology(
        plan=plan,
        nodes=nodes,
        sectors=sectors,
        external=external,
        protected_services=_protected_services(plan, external),
    )


def _protected_services(
    plan: StackPlan, external: External
) -> tuple[tuple[IPNetwork, IPAddress], ...]:
    """An address in each protected network for the home LAN client to answer on: the
    client's own when the network holds it, else the network's first free address."""
    taken = {
        external.router_lan,
        external.resolver_lan,
        *external.service_addresses,
        *plan.backplane.node_addresses,
    }
    found = []
    for network in plan.backplane.protected_networks:
        if external.client_lan in network:
            found.append((network, external.client_lan))
            continue
        address = next(
            IPAddress(value)
            for value in range(network.first + 1, max(network.last, network.first + 2))
            if IPAddress(value) not in taken
        )
        taken.add(address)
        found.append((network, address))
    return tuple(found)
