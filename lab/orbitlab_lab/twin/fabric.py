"""The nodes of a twin built by the emulated cluster: their networks as the SDN declares them.

In a twin of an emulated cluster (``orbitlab emulate start --twin``) a node starts with
``vmbr0`` alone (its home LAN address, a default route to the home router, its other NICs'
addresses). Every SDN apply then reloads the node's network into what the *running* SDN
config declares, as Proxmox's ``ifreload`` does (:func:`reload_node`):

- a VNet of a VXLAN zone (a Sector): a bridge named after the VNet with a VXLAN whose VNI is
  the VNet's tag, the zone's MTU, flooding (head-end replication) to every peer of the zone
  but the node itself;
- a VNet of an EVPN zone (the Backplane): the same, plus its subnets' gateways on the bridge
  (anycast: the same address and MAC on every node), the zone's L3 VNI (its VRF-VXLAN tag)
  for traffic routed between nodes, and at the zone's primary exit node SNAT of the subnets
  with ``snat`` out of ``vmbr0``; the other nodes send traffic leaving the VNet there;
- a VNet no longer declared loses its bridge; a changed one is changed in place (MTU,
  peers, gateways), so the containers on it stay plugged in.

A container's address on an EVPN VNet is routed (/32) from the other nodes over the L3 VNI,
as EVPN's type-2 routes would carry it (:func:`backplane_routes`)::

    >>> from orbitlab.stack import load_plan
    >>> from orbitlab_lab.twin.topology import build_topology
    >>> topology = build_topology(load_plan("stacks/Pulumi.example.yaml"))
    >>> web = VnetBridge("olvn1001", vni=1001, mtu=1450, peers=(IPAddress("192.0.2.11"),
    ...                  IPAddress("192.0.2.12")))
    >>> vnet_commands(web, topology.node("pve1"))[:2]
    ['link add olvn1001 mtu 1450 type bridge', 'link add vxlan_olvn1001 mtu 1450 type vxlan \
id 1001 local 192.0.2.11 dstport 4789']
    >>> flood_commands(web, topology.node("pve1"), ())
    ['fdb append 00:00:00:00:00:00 dev vxlan_olvn1001 dst 192.0.2.12']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netaddr import IPAddress, IPNetwork

from orbitlab_lab.twin import system
from orbitlab_lab.twin.network import (
    BACKPLANE_TABLE,
    SNAT_TABLE,
    WATCH_TABLE,
    snat_table,
    vxlan_command,
    watch_counters,
)
from orbitlab_lab.twin.topology import ANYCAST_MAC, NodeTwin, Topology

#: Routes of containers' EVPN addresses carry this protocol number, so a reload finds them.
ROUTE_PROTO = 99
#: A node's VXLANs: this much smaller than its vmbr0 (Proxmox's default zone MTU).
VXLAN_OVERHEAD = 50


@dataclass(frozen=True)
class VnetBridge:
    """What one applied VNet makes on a node: its bridge, VXLAN and (EVPN) routing."""

    name: str
    vni: int
    mtu: int
    peers: tuple[IPAddress, ...]
    #: An EVPN zone's VNet (the Backplane): gateways on the bridge, an L3 VNI, exit nodes.
    evpn: bool = False
    zone: str = ""
    #: The subnets' gateways with their prefix length (``10.200.0.1/16``), anycast.
    gateways: tuple[IPNetwork, ...] = ()
    #: Subnets whose traffic leaving the VNet is SNATed at the primary exit node.
    snat: tuple[IPNetwork, ...] = ()
    vrf_vni: int | None = None
    primary_exit: str | None = None

    @property
    def vxlan(self) -> str:
        return f"vxlan_{self.name}"

    @property
    def l3(self) -> str:
        """The zone's L3 VNI link (routed traffic between nodes)."""
        return f"vrfvx_{self.zone}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("peers", "gateways", "snat"):
            data[key] = [str(value) for value in data[key]]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VnetBridge:
        return cls(
            name=str(data["name"]),
            vni=int(data["vni"]),
            mtu=int(data["mtu"]),
            peers=tuple(IPAddress(a) for a in data["peers"]),
            evpn=bool(data["evpn"]),
            zone=str(data["zone"]),
            gateways=tuple(IPNetwork(g) for g in data["gateways"]),
            snat=tuple(IPNetwork(s) for s in data["snat"]),
            vrf_vni=data["vrf_vni"],
            primary_exit=data["primary_exit"],
        )


@dataclass
class NodeNetwork:
    """What a node's last reload built (kept in its working directory between reloads)."""

    vnets: dict[str, VnetBridge] = field(default_factory=dict)

    @property
    def evpn(self) -> VnetBridge | None:
        return next((v for v in self.vnets.values() if v.evpn), None)


# --- commands (pure) -------------------------------------------------------------------------


def node_base_commands(topology: Topology, node: NodeTwin) -> list[str]:
    """A node before any SDN: ``vmbr0`` on the home LAN, its default route, its other NICs'
    addresses on its loopback (the other nodes reach them over the home LAN)."""
    commands = [
        "link set lo up",
        "link set vmbr0 up",
        f"addr add {node.address}/{topology.external.lan.prefixlen} dev vmbr0",
        f"route add default via {topology.external.router_lan}",
        *(f"addr add {address}/32 dev lo" for address in node.other_addresses),
    ]
    for other in topology.nodes:
        if other is not node:
            commands += [
                f"route add {address}/32 via {other.address} dev vmbr0"
                for address in other.other_addresses
            ]
    return commands


def vnet_commands(vnet: VnetBridge, node: NodeTwin) -> list[str]:
    """Create a VNet's bridge and VXLAN on a node (an EVPN VNet's with its gateways)."""
    mac = f" address {ANYCAST_MAC}" if vnet.evpn else ""
    return [
        f"link add {vnet.name} mtu {vnet.mtu}{mac} type bridge",
        vxlan_command(vnet.vxlan, vnet.vni, node, vnet.mtu),
        f"link set {vnet.vxlan} master {vnet.name} up",
        f"link set {vnet.name} up",
        *(f"addr add {gateway} dev {vnet.name}" for gateway in vnet.gateways),
    ]


def change_commands(old: VnetBridge, new: VnetBridge, node: NodeTwin) -> list[str]:
    """Change a VNet in place: its VXLAN's VNI, MTU, gateways (what is plugged in stays)."""
    commands = []
    if old.vni != new.vni:
        commands += [
            f"link del {old.vxlan}",
            vxlan_command(new.vxlan, new.vni, node, new.mtu),
            f"link set {new.vxlan} master {new.name} up",
        ]
    if old.mtu != new.mtu:
        commands += [f"link set {new.vxlan} mtu {new.mtu}", f"link set {new.name} mtu {new.mtu}"]
    commands += [f"addr del {g} dev {new.name}" for g in old.gateways if g not in new.gateways]
    commands += [f"addr add {g} dev {new.name}" for g in new.gateways if g not in old.gateways]
    return commands


def flood_commands(vnet: VnetBridge, node: NodeTwin, before: Iterable[IPAddress]) -> list[str]:
    """``bridge fdb`` head-end replication to the zone's peers but the node itself, given
    the peers the VXLAN floods to already."""
    wanted = [peer for peer in vnet.peers if peer != node.address]
    had = [peer for peer in before if peer != node.address]
    zero = "00:00:00:00:00:00"
    return [f"fdb del {zero} dev {vnet.vxlan} dst {peer}" for peer in had if peer not in wanted] + [
        f"fdb append {zero} dev {vnet.vxlan} dst {peer}" for peer in wanted if peer not in had
    ]


def primary_of(vnet: VnetBridge, topology: Topology) -> NodeTwin:
    """The EVPN zone's primary exit node (the stack's, if the zone names none)."""
    if vnet.primary_exit is not None:
        try:
            return topology.node(vnet.primary_exit)
        except KeyError:
            pass
    return topology.primary


def l3_commands(vnet: VnetBridge, node: NodeTwin, topology: Topology) -> list[str]:
    """The EVPN zone's L3 VNI on a node: the other nodes' router MACs; a node that is not the
    primary exit node sends traffic leaving the VNet to it."""
    if vnet.vrf_vni is None:
        return []
    commands = [
        vxlan_command(vnet.l3, vnet.vrf_vni, node, vnet.mtu, learning=False),
        f"link set {vnet.l3} address {node.router_mac} up",
    ]
    for other in topology.nodes:
        if other is not node:
            commands.append(
                f"neigh add {other.address} lladdr {other.router_mac} dev {vnet.l3} nud permanent"
            )
    primary = primary_of(vnet, topology)
    if node is not primary:
        commands += [
            f"rule add iif {vnet.name} lookup {BACKPLANE_TABLE} pref {BACKPLANE_TABLE}",
            f"route add default via {primary.address} dev {vnet.l3} onlink table {BACKPLANE_TABLE}",
        ]
    return commands


def l3_flood(vnet: VnetBridge, node: NodeTwin, topology: Topology) -> list[str]:
    return [
        f"fdb append {other.router_mac} dev {vnet.l3} dst {other.address}"
        for other in topology.nodes
        if other is not node and vnet.vrf_vni is not None
    ]


def l3_removal(vnet: VnetBridge, node: NodeTwin, topology: Topology) -> list[str]:
    commands = [f"link del {vnet.l3}"] if vnet.vrf_vni is not None else []
    if node is not primary_of(vnet, topology):
        commands.append(f"rule del pref {BACKPLANE_TABLE}")
    return commands


def snat_ruleset(vnet: VnetBridge | None, node: NodeTwin, topology: Topology) -> str:
    """The node's SNAT of an EVPN VNet's ``snat`` subnets (at its primary exit node only),
    replacing what was there."""
    subnets = vnet.snat if vnet is not None and node is primary_of(vnet, topology) else ()
    return f"table ip {SNAT_TABLE} {{}}\nflush table ip {SNAT_TABLE}\n" + snat_table(subnets)


def watch_ruleset(ports: Iterable[str]) -> str:
    """The node's :func:`~orbitlab_lab.twin.network.watch_counters` on its EVPN bridge's ports
    (its VXLAN and the containers' ports on it), replacing its earlier counters."""
    return (
        f"table inet {WATCH_TABLE} {{}}\ndelete table inet {WATCH_TABLE}\n"
        f"table bridge {WATCH_TABLE} {{}}\ndelete table bridge {WATCH_TABLE}\n"
        + watch_counters(ports)
    )


@dataclass(frozen=True)
class Member:
    """A container's NIC on the EVPN VNet: its static address (routed from the other
    nodes), its node and its port on the node's bridge (watched)."""

    address: IPAddress | None
    node: str
    port: str


def backplane_routes(
    members: Iterable[Member], node: NodeTwin, topology: Topology
) -> dict[IPAddress, NodeTwin]:
    """Addresses on the EVPN VNet that live on another node, and that node: what ``node``
    routes over the L3 VNI.

    >>> from orbitlab.stack import load_plan
    >>> from orbitlab_lab.twin.topology import build_topology
    >>> topology = build_topology(load_plan("stacks/Pulumi.example.yaml"))
    >>> gateway = Member(IPAddress("10.200.0.10"), "pve2", "veth10011i1")
    >>> routes = backplane_routes([gateway], topology.node("pve1"), topology)
    >>> {str(a): n.name for a, n in routes.items()}
    {'10.200.0.10': 'pve2'}
    """
    return {
        member.address: topology.node(member.node)
        for member in members
        if member.address is not None and member.node != node.name
    }


# --- the reload (system) ---------------------------------------------------------------------


def build_node_base(topology: Topology, node: NodeTwin) -> None:
    """A node of an emulated cluster before its first SDN apply."""
    system.ip_batch(node.ns.name, node_base_commands(topology, node))
    system.nft(node.ns.name, watch_ruleset(()) + snat_ruleset(None, node, topology))


def _record_path(workdir: Path, node: NodeTwin) -> Path:
    return workdir / "ns" / node.ns.name / "vnets.json"


def load_network(workdir: Path, node: NodeTwin) -> NodeNetwork:
    path = _record_path(workdir, node)
    if not path.exists():
        return NodeNetwork()
    data = json.loads(path.read_text())
    return NodeNetwork({name: VnetBridge.from_json(v) for name, v in data.items()})


def _save_network(workdir: Path, node: NodeTwin, network: NodeNetwork) -> None:
    path = _record_path(workdir, node)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({n: v.to_json() for n, v in network.vnets.items()}, indent=1))


def reload_node(
    topology: Topology, workdir: Path, node: NodeTwin, wanted: Iterable[VnetBridge]
) -> NodeNetwork:
    """Make the node's VNets what is declared now: remove, change, create (``ifreload``)."""
    before = load_network(workdir, node)
    after = NodeNetwork({vnet.name: vnet for vnet in wanted})
    ns = node.ns.name
    old_evpn, new_evpn = before.evpn, after.evpn
    if old_evpn is not None and (new_evpn is None or _l3_differs(old_evpn, new_evpn)):
        system.ip_batch(ns, l3_removal(old_evpn, node, topology))
    commands, floods = [], []
    for name, old in before.vnets.items():
        if name not in after.vnets:
            commands.append(f"link del {name}")
            commands.append(f"link del {old.vxlan}")
    for name, vnet in after.vnets.items():
        old = before.vnets.get(name)
        if old is None:
            commands += vnet_commands(vnet, node)
        else:
            commands += change_commands(old, vnet, node)
        kept = old.peers if old is not None and old.vni == vnet.vni else ()
        floods += flood_commands(vnet, node, kept)
    if new_evpn is not None and (old_evpn is None or _l3_differs(old_evpn, new_evpn)):
        commands += l3_commands(new_evpn, node, topology)
        floods += l3_flood(new_evpn, node, topology)
    system.ip_batch(ns, commands)
    system.ip_batch(ns, floods, tool="bridge")
    system.nft(ns, snat_ruleset(new_evpn, node, topology))
    _save_network(workdir, node, after)
    return after


def _l3_differs(old: VnetBridge, new: VnetBridge) -> bool:
    return (old.name, old.zone, old.vrf_vni, old.primary_exit, old.mtu) != (
        new.name,
        new.zone,
        new.vrf_vni,
        new.primary_exit,
        new.mtu,
    )


def sync_backplane(
    topology: Topology, workdir: Path, members: list[Member], nodes: Iterable[NodeTwin]
) -> None:
    """After a reload or a container change: every node routes the containers' addresses
    on the EVPN VNet that live elsewhere over the L3 VNI (and no longer those that are
    gone), and watches the ports of its EVPN bridge."""
    for node in nodes:
        evpn = load_network(workdir, node).evpn
        ports = [evpn.vxlan] if evpn is not None else []
        ports += [m.port for m in members if evpn is not None and m.node == node.name]
        system.nft(node.ns.name, watch_ruleset(ports))
        if evpn is None or evpn.vrf_vni is None:
            continue
        wanted = backplane_routes(members, node, topology)
        listing = system.run(["ip", "-n", node.ns.name, "-j", "route", "show", "proto", "99"])
        present = {str(route["dst"]) for route in json.loads(listing.stdout or "[]")}
        stale = present - {str(address) for address in wanted}
        commands = [f"route del {dst}/32 proto {ROUTE_PROTO}" for dst in sorted(stale)]
        commands += [
            f"route replace {address}/32 via {home.address} dev {evpn.l3} onlink "
            f"proto {ROUTE_PROTO}"
            for address, home in wanted.items()
        ]
        system.ip_batch(node.ns.name, commands)
