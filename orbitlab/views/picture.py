"""What the picture of a stack shows, decided once for every drawing format.

A :class:`Picture` is boxes (each a title and ``(key, value)`` rows), groups of boxes (a
Proxmox node holding its Sectors; a Sector holding its appliances) and edges.
:mod:`orbitlab.views.dot` and :mod:`orbitlab.views.mermaid` only decide how it looks.

The Backplane sits on top and reaches every node; each node holds the Sectors placed on
it. In a Sector the Sector Gateway and the Load Balancer have a leg on the Backplane (their
node) and one on the Sector's VNet, where the Sector DNS and the declared hosts live::

    Backplane -> node -> Sector Gateway, Load Balancer -> VNet -> Sector DNS, hosts

>>> from orbitlab.stack import load_plan
>>> picture = picture_of(load_plan("stacks/Pulumi.example.yaml"))
>>> [group.title for group in picture.groups]
['node pve1, primary exit node', 'node pve2']
>>> gateway = picture.box("s0_gateway")
>>> gateway.title, gateway.rows[:2]
('Sector Gateway', (('Backplane', '10.200.0.10'), ('Sector', '172.16.0.1')))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from orbitlab.model import Endpoint
from orbitlab.plan import BackplanePlan, HostPlan, NodePlan, SectorPlan, StackPlan
from orbitlab.roles import BACKPLANE_ROLES

#: A box's line: a key (may be empty, continuing the row above) and its value.
Row = tuple[str, str]


@dataclass(frozen=True)
class Box:
    """A thing drawn as a titled table: ``kind`` says which, for colours and shapes."""

    id: str
    kind: str
    title: str
    rows: tuple[Row, ...] = ()


@dataclass(frozen=True)
class Group:
    """Boxes drawn together: a Proxmox node with its Sectors, or one Sector."""

    id: str
    kind: str
    title: str
    boxes: tuple[Box, ...] = ()
    groups: tuple[Group, ...] = ()

    def walk_boxes(self) -> Iterator[Box]:
        """Every box in the group, its sub-groups' too."""
        yield from self.boxes
        for group in self.groups:
            yield from group.walk_boxes()


@dataclass(frozen=True)
class Edge:
    """A link between two boxes (by id), drawn from ``tail`` down to ``head``."""

    tail: str
    head: str


@dataclass(frozen=True)
class Picture:
    """The whole drawing: top-level boxes, groups and edges."""

    title: str
    boxes: tuple[Box, ...]
    groups: tuple[Group, ...]
    edges: tuple[Edge, ...]

    def walk_boxes(self) -> Iterator[Box]:
        """Every box in the picture, in drawing order."""
        yield from self.boxes
        for group in self.groups:
            yield from group.walk_boxes()

    def box(self, box_id: str) -> Box:
        """The box with this id (KeyError when there is none)."""
        for box in self.walk_boxes():
            if box.id == box_id:
                return box
        raise KeyError(box_id)


def listed(key: str, values: list[str]) -> tuple[Row, ...]:
    """One row per value, the key on the first only.

    >>> listed("Sector", ["172.16.0.1", "172.16.1.1"])
    (('Sector', '172.16.0.1'), ('', '172.16.1.1'))
    """
    return tuple((key if index == 0 else "", value) for index, value in enumerate(values))


def endpoint_text(endpoint: Endpoint) -> str:
    """A backend or forward target: its name when declared, its address and port.

    >>> from netaddr import IPAddress
    >>> endpoint_text(Endpoint("app1", IPAddress("172.16.0.21"), 8080))
    'app1 172.16.0.21:8080'
    """
    where = f"{endpoint.address}:{endpoint.port}"
    return f"{endpoint.host} {where}" if endpoint.host else where


def backplane_box(backplane: BackplanePlan) -> Box:
    """The Backplane: CIDR, gateway, MTU, ASN, its SDN IDs and the primary exit node."""
    primary = next(n for n in backplane.nodes if n.name == backplane.primary_exit_node)
    owner = (("owned by stack", backplane.owner_stack),) if backplane.owner_stack else ()
    return Box(
        "bp",
        "backplane",
        "Backplane",
        (
            ("CIDR", str(backplane.cidr)),
            ("gateway", str(backplane.gateway)),
            ("MTU", str(backplane.mtu)),
            ("ASN", str(backplane.asn)),
            ("VNet", f"{backplane.vnet_id} (tag {backplane.vnet_tag})"),
            ("zone", f"{backplane.zone_id} (EVPN, VRF-VXLAN {backplane.vrf_tag})"),
            ("primary exit node", f"{primary.name} {primary.address}"),
            *owner,
        ),
    )


def node_box(node_id: str, node: NodePlan, backplane: BackplanePlan) -> Box:
    """A node's end of the Backplane: its vmbr0 (the VXLAN peer) and its exit role."""
    if node.name == backplane.primary_exit_node:
        role: tuple[Row, ...] = (
            ("exit node", "primary (SNAT)"),
            ("home route", f"{backplane.cidr} via {node.address}"),
        )
    else:
        role = (("exit node", "secondary"),)
    return Box(
        node_id,
        "node",
        "Backplane peer",
        (("vmbr0", str(node.address)), ("MTU", str(node.mtu)), *role),
    )


def gateway_box(box_id: str, sector: SectorPlan) -> Box:
    """The Sector Gateway: both legs, the port forwards and the egress policy."""
    egress = sector.gateway.egress
    return Box(
        box_id,
        "gateway",
        "Sector Gateway",
        (
            ("Backplane", str(sector.gateway.backplane_address)),
            *listed("Sector", [str(subnet.gateway) for subnet in sector.subnets]),
            *(
                (f"forward {f.port}/{f.protocol}", f"to {endpoint_text(f.to)}")
                for f in sector.port_forwards
            ),
            ("egress", f"default {egress.default}"),
            *listed("allow", [str(cidr) for cidr in egress.allow]),
            *listed("deny", [str(cidr) for cidr in egress.deny]),
        ),
    )


def dns_box(box_id: str, sector: SectorPlan) -> Box:
    """The Sector DNS: its address, domain, upstream resolvers and DHCP pool."""
    upstream = [str(address) for address in sector.dns.forwarders] or ["the node's resolvers"]
    dhcp = ("DHCP pool", sector.dns.dhcp.pool_text) if sector.dns.dhcp else ("DHCP", "off")
    return Box(
        box_id,
        "dns",
        "Sector DNS",
        (
            ("Sector", str(sector.dns.sector_address)),
            ("domain", sector.domain),
            *listed("forwards to", upstream),
            dhcp,
        ),
    )


def host_text(host: HostPlan) -> str:
    """A host's address as the picture shows it: fixed, reserved by DHCP, or from the pool.

    >>> from netaddr import IPAddress
    >>> reserved = HostPlan("db", IPAddress("10.0.0.9"), "bc:24:11:00:00:01")
    >>> host_text(HostPlan("app3", None)), host_text(reserved)
    ('DHCP', '10.0.0.9 (DHCP)')
    """
    if host.address is None:
        return "DHCP"
    return f"{host.address} (DHCP)" if host.mac else str(host.address)


def load_balancer_box(box_id: str, sector: SectorPlan) -> Box | None:
    """The Load Balancer, if any: both legs and every listener with its backends."""
    lb = sector.load_balancer
    if lb is None:
        return None
    listeners: list[Row] = []
    for listener in lb.listeners:
        proxy = " PROXY" if listener.proxy_protocol else ""
        key = f"listen {listener.port}/{listener.mode}{proxy}"
        listeners.extend(listed(key, [endpoint_text(b) for b in listener.backends]))
    return Box(
        box_id,
        "lb",
        "Load Balancer",
        (("Backplane", str(lb.backplane_address)), ("Sector", str(lb.sector_address)), *listeners),
    )


def vnet_box(box_id: str, sector: SectorPlan) -> Box:
    """The Sector's VNet: tag, SDN IDs, MTU and subnets."""
    return Box(
        box_id,
        "vnet",
        f"VNet {sector.vnet_id}",
        (
            ("tag", str(sector.tag)),
            ("zone", sector.zone_id),
            ("MTU", str(sector.mtu)),
            *listed("subnets", [str(subnet.cidr) for subnet in sector.subnets]),
        ),
    )


def hosts_box(box_id: str, sector: SectorPlan) -> Box | None:
    """The hosts declared in the Sector, if any."""
    if not sector.hosts:
        return None
    return Box(box_id, "hosts", "hosts", tuple((h.name, host_text(h)) for h in sector.hosts))


def sector_group(index: int, sector: SectorPlan) -> tuple[Group, tuple[Edge, ...]]:
    """One Sector's group and its inner edges (legs up to the VNet, the VNet down)."""
    sid = f"s{index}"
    gateway, vnet = gateway_box(f"{sid}_gateway", sector), vnet_box(f"{sid}_vnet", sector)
    lb, dns = load_balancer_box(f"{sid}_lb", sector), dns_box(f"{sid}_dns", sector)
    hosts = hosts_box(f"{sid}_hosts", sector)
    boxes = tuple(box for box in (gateway, lb, vnet, dns, hosts) if box is not None)
    edges = tuple(Edge(leg.id, vnet.id) for leg in (gateway, lb) if leg is not None)
    edges += tuple(Edge(vnet.id, box.id) for box in (dns, hosts) if box is not None)
    return Group(sid, "sector", f"Sector {sector.name}", boxes), edges


#: The kinds of box with a leg on the Backplane, in reading order (the registry's).
BACKPLANE_LEG_KINDS: tuple[str, ...] = tuple(role.name for role in BACKPLANE_ROLES)


def backplane_legs(group: Group) -> tuple[str, ...]:
    """The boxes of a Sector group with a leg on the Backplane (gateway, load balancer)."""
    return tuple(box.id for box in group.boxes if box.kind in BACKPLANE_LEG_KINDS)


def picture_of(plan: StackPlan) -> Picture:
    """The picture of a plan: the Backplane, then each node with the Sectors placed on it."""
    backplane = plan.backplane
    sectors = [sector_group(index, sector) for index, sector in enumerate(plan.sectors)]
    groups: list[Group] = []
    edges: list[Edge] = []
    for index, node in enumerate(backplane.nodes):
        node_id = f"n{index}"
        placed = [
            (group, inner)
            for (group, inner), sector in zip(sectors, plan.sectors, strict=True)
            if sector.node == node.name
        ]
        edges.append(Edge("bp", node_id))
        for group, inner in placed:
            edges.extend(Edge(node_id, leg) for leg in backplane_legs(group))
            edges.extend(inner)
        primary = ", primary exit node" if node.name == backplane.primary_exit_node else ""
        groups.append(
            Group(
                f"{node_id}_group",
                "node",
                f"node {node.name}{primary}",
                (node_box(node_id, node, backplane),),
                tuple(group for group, _ in placed),
            )
        )
    title = f"OrbitLab stack {plan.stack}: {len(plan.sectors)} Sector(s) on {len(groups)} node(s)"
    return Picture(title, (backplane_box(backplane),), tuple(groups), tuple(edges))
