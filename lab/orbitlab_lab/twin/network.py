"""The twin's links and addresses: the external side, the nodes, the Backplane, the Sectors.

Everything is created inside the twin's own namespaces (veths are created with both ends
placed directly in their namespaces), so the root namespace never sees a link, a route or
a sysctl change. Commands are grouped into one ``ip -batch`` per namespace.

The Backplane is built the way Proxmox's EVPN zone builds it:

- one bridge per node named after the VNet (``olbpvn``) holding the anycast gateway address
  with the same MAC on every node, joined over VXLAN VNI 100 (head-end replication);
- the zone's L3 VNI (VRF-VXLAN tag 10, ``vrfvx_olbpz``) carries routed traffic between
  nodes: every node routes each appliance's Backplane address (/32) to the node it lives on,
  and the non-primary nodes send traffic leaving the Backplane to the primary exit node;
- the primary exit node SNATs the Backplane CIDR out of ``vmbr0`` (its default route).

Each Sector VNet is a bridge per node (``olvn<tag>``) with a VXLAN whose VNI is the tag,
and every node loads each Sector's guard (:mod:`orbitlab.components.guard`), as the
program installs it on a Proxmox node.

    >>> from orbitlab.stack import load_plan
    >>> from orbitlab_lab.twin.topology import build_topology
    >>> topology = build_topology(load_plan("stacks/Pulumi.example.yaml"))
    >>> 'ip saddr 10.200.0.0/16 oifname "vmbr0" masquerade' in snat_ruleset(topology)
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from orbitlab.allocation import appliance_mac
from orbitlab.rendering import guard_ruleset
from orbitlab_lab.twin import TwinError, guards, system
from orbitlab_lab.twin.topology import (
    ANYCAST_MAC,
    GUI_PORT,
    INTERNET,
    INTERNET_HOST,
    INTERNET_OTHER,
    ROUTER_INTERNET,
    VXLAN_PORT,
    HostTwin,
    NodeTwin,
    SectorTwin,
    Topology,
)

BACKPLANE_TABLE = 100
FORWARDING = {
    "net.ipv4.ip_forward": 1,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
}
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}
NOT_ROUTING = {"net.ipv4.ip_forward": 0}
#: The kernel rate-limits the ICMP errors it sends to one host (about one a second after a
#: burst of six): `twin test` probes many rejected targets from one host at once and names
#: each rejection by its ICMP, so the twin's appliances send every one. What passes is the
#: same either way; a real gateway keeps the kernel's default.
EVERY_ICMP = {"net.ipv4.icmp_ratelimit": 0}
# bridge-nf-call-* are 1 in new namespaces when br_netfilter is loaded: bridged frames
# must not go through the node's IP hooks. (`sysctl -e` skips them when absent.)
BRIDGE_NF_OFF = {
    "net.bridge.bridge-nf-call-iptables": 0,
    "net.bridge.bridge-nf-call-ip6tables": 0,
    "net.bridge.bridge-nf-call-arptables": 0,
}
WATCH_TABLE = "olt_watch"
SNAT_TABLE = "olt_snat"
#: A NIC's MTU before anything sets it (a DHCP client's, until its lease says otherwise).
DEFAULT_MTU = 1500


def create_namespaces(topology: Topology) -> list[str]:
    """``ip netns add`` every namespace; returns the names created."""
    names = [ns.name for ns in topology.namespaces()]
    system.run(["ip", "-batch", "-"], stdin="".join(f"netns add {name}\n" for name in names))
    return names


def set_sysctls(topology: Topology) -> None:
    """Explicit forwarding and IPv6 settings in every namespace (they would otherwise be
    inherited from the root namespace). Appliances get theirs from their rendered files."""
    set_base_sysctls(topology)
    others = []
    for sector in topology.sectors:
        others += [sector.dns, *(host.ns for host in sector.hosts)]
    for ns in others:
        system.sysctl(ns.name, {**NOT_ROUTING, **NO_IPV6})
    for sector in topology.sectors:
        # the gateway's and LB's own files set these again; start from a known state
        for ns in (sector.gateway, sector.lb):
            if ns is not None:
                system.sysctl(ns.name, {**NOT_ROUTING, **NO_IPV6, **EVERY_ICMP})


def set_base_sysctls(topology: Topology) -> None:
    """The home router and the nodes route (bridged frames skip their IP hooks); the other
    external namespaces do not."""
    routers = [topology.external.router, *(node.ns for node in topology.nodes)]
    for ns in routers:
        system.sysctl(ns.name, {**FORWARDING, **NO_IPV6})
        system.run(
            system.in_netns(ns.name, ["sysctl", "-q", "-e", "-w"])
            + [f"{key}={value}" for key, value in BRIDGE_NF_OFF.items()]
        )
    for ns in (topology.external.client, topology.external.resolver, topology.external.inet):
        system.sysctl(ns.name, {**NOT_ROUTING, **NO_IPV6})


def _veth(name: str, peer: str, peer_ns: str, mtu: int) -> str:
    return f"link add {name} mtu {mtu} type veth peer name {peer} mtu {mtu} netns {peer_ns}"


def external_commands(topology: Topology) -> dict[str, list[str]]:
    """``ip`` commands of the home router, the client, the resolver and the internet."""
    ext = topology.external
    plan = topology.plan
    prefix = ext.lan.prefixlen
    lan_mtu = max(node.mtu for node in topology.nodes)
    router = [
        "link set lo up",
        f"link add lan0 mtu {lan_mtu} type bridge",
        "link set lan0 up",
        f"addr add {ext.router_lan}/{prefix} dev lan0",
    ]
    for node in topology.nodes:
        router += [
            _veth(node.lan_port, "vmbr0", node.ns.name, node.mtu),
            f"link set {node.lan_port} master lan0 up",
        ]
    for port, ns in (("lan-c", ext.client), ("lan-r", ext.resolver)):
        router += [_veth(port, "eth0", ns.name, lan_mtu), f"link set {port} master lan0 up"]
    router += [
        _veth("wan0", "eth0", ext.inet.name, 1500),
        f"addr add {ROUTER_INTERNET}/{INTERNET.prefixlen} dev wan0",
        "link set wan0 up",
        # the static route docs/prerequisites.md asks of the home router
        f"route add {plan.backplane.cidr} via {topology.primary.address} dev lan0",
        *(f"route add {extra}/32 via {ext.resolver_lan} dev lan0" for extra in ext.resolver_extra),
    ]
    resolver = ["link set lo up", "link set eth0 up"]
    resolver += [f"addr add {a}/{prefix} dev eth0" for a in ext.service_addresses if a in ext.lan]
    if ext.resolver_lan not in ext.service_addresses:
        resolver.append(f"addr add {ext.resolver_lan}/{prefix} dev eth0")
    resolver += [f"addr add {extra}/32 dev lo" for extra in ext.resolver_extra]
    resolver.append(f"route add default via {ext.router_lan}")
    client = [
        "link set lo up",
        "link set eth0 up",
        f"addr add {ext.client_lan}/{prefix} dev eth0",
        f"route add default via {ext.router_lan}",
    ]
    for _, address in topology.protected_services:
        if address == ext.client_lan:
            continue
        if address in ext.lan:
            client.append(f"addr add {address}/{prefix} dev eth0")
        else:
            client.append(f"addr add {address}/32 dev lo")
            router.append(f"route add {address}/32 via {ext.client_lan} dev lan0")
    return {
        ext.router.name: router,
        ext.client.name: client,
        ext.resolver.name: resolver,
        ext.inet.name: [
            "link set lo up",
            "link set eth0 up",
            f"addr add {INTERNET_HOST}/{INTERNET.prefixlen} dev eth0",
            f"addr add {INTERNET_OTHER}/{INTERNET.prefixlen} dev eth0",
            f"route add default via {ROUTER_INTERNET}",
        ],
    }


def vxlan_command(name: str, vni: int, node: NodeTwin, mtu: int, learning: bool = True) -> str:
    """``ip`` command of a VXLAN link on a node (UDP 4789 from the node's address)."""
    learn = "" if learning else " nolearning"
    return (
        f"link add {name} mtu {mtu} type vxlan id {vni} local {node.address} "
        f"dstport {VXLAN_PORT}{learn}"
    )


def node_commands(topology: Topology, node: NodeTwin) -> list[str]:
    """``ip`` commands of one node: vmbr0, the Backplane, the L3 VNI, the Sector bridges."""
    plan = topology.plan
    bp = plan.backplane
    mtu = bp.mtu
    bridge, vxlan, l3 = topology.backplane_bridge, topology.backplane_vxlan, topology.l3_vxlan
    commands = [
        "link set lo up",
        "link set vmbr0 up",
        f"addr add {node.address}/{topology.external.lan.prefixlen} dev vmbr0",
        f"route add default via {topology.external.router_lan}",
        f"link add {bridge} mtu {mtu} address {ANYCAST_MAC} type bridge",
        f"addr add {bp.gateway}/{bp.cidr.prefixlen} dev {bridge}",
        vxlan_command(vxlan, bp.vnet_tag, node, mtu),
        f"link set {vxlan} master {bridge} up",
        f"link set {bridge} up",
        vxlan_command(l3, bp.vrf_tag, node, mtu, learning=False),
        f"link set {l3} address {node.router_mac} up",
    ]
    for other in topology.nodes:
        if other is not node:
            commands.append(
                f"neigh add {other.address} lladdr {other.router_mac} dev {l3} nud permanent"
            )
    for address, home in topology.backplane_homes():
        if home != node.name:
            other = topology.node(home)
            commands.append(f"route add {address}/32 via {other.address} dev {l3} onlink")
    # the node's other NICs' addresses (storage, corosync) on its loopback; the other nodes
    # route to them over the L3 VNI, as a shared storage LAN would carry them
    commands += [f"addr add {address}/32 dev lo" for address in node.other_addresses]
    for other in topology.nodes:
        if other is not node:
            commands += [
                f"route add {address}/32 via {other.address} dev {l3} onlink"
                for address in other.other_addresses
            ]
    if not node.primary:
        commands += [
            f"rule add iif {bridge} lookup {BACKPLANE_TABLE} pref {BACKPLANE_TABLE}",
            f"route add default via {topology.primary.address} dev {l3} onlink "
            f"table {BACKPLANE_TABLE}",
        ]
    for sector in topology.sectors:
        commands += [
            f"link add {sector.bridge} mtu {mtu} type bridge",
            vxlan_command(sector.vxlan, sector.plan.tag, node, mtu),
            f"link set {sector.vxlan} master {sector.bridge} up",
            f"link set {sector.bridge} up",
        ]
    commands += list(_member_ports(topology, node))
    return commands


def _member_ports(topology: Topology, node: NodeTwin) -> Iterator[str]:
    """Veths from the node's bridges to the appliances and hosts that live on it."""
    mtu = topology.plan.backplane.mtu
    bp_bridge = topology.backplane_bridge
    for sector in topology.sectors:
        legs: list[tuple[str, str, str, str]] = []
        if sector.node == node.name:
            legs += [
                (sector.port("gateway", "s"), "eth0", sector.gateway.name, sector.bridge),
                (sector.port("gateway", "b"), "eth1", sector.gateway.name, bp_bridge),
                (sector.port("dns"), "eth0", sector.dns.name, sector.bridge),
            ]
            if sector.lb is not None:
                legs += [
                    (sector.port("lb", "b"), "eth0", sector.lb.name, bp_bridge),
                    (sector.port("lb", "s"), "eth1", sector.lb.name, sector.bridge),
                ]
        legs += [
            (host.port, "eth0", host.ns.name, sector.bridge)
            for host in sector.hosts
            if host.node == node.name
        ]
        for port, peer, peer_ns, bridge in legs:
            yield _veth(port, peer, peer_ns, mtu)
            yield f"link set {port} master {bridge} up"


def flood_entries(topology: Topology, node: NodeTwin) -> list[str]:
    """``bridge fdb`` head-end replication to every other node, per VXLAN, and the other
    nodes' router MACs on the L3 VNI."""
    entries = []
    vxlans = [topology.backplane_vxlan, *(sector.vxlan for sector in topology.sectors)]
    for other in topology.nodes:
        if other is node:
            continue
        entries += [f"fdb append 00:00:00:00:00:00 dev {v} dst {other.address}" for v in vxlans]
        entries.append(f"fdb append {other.router_mac} dev {topology.l3_vxlan} dst {other.address}")
    return entries


def sector_commands(sector: SectorTwin, topology: Topology) -> dict[str, list[str]]:
    """Addresses and routes of a Sector's DNS, LB and hosts, and the appliances' pinned MACs
    (as their containers declare them). The gateway's addresses and default route are FRR's
    job (its rendered frr.conf)."""
    plan = sector.plan
    bp = topology.plan.backplane
    mtu = bp.mtu
    first = plan.first_subnet
    tag = plan.tag
    commands = {
        sector.gateway.name: [
            "link set lo up",
            f"link set eth0 address {appliance_mac(tag, 'gateway', 0)} up",
            f"link set eth1 address {appliance_mac(tag, 'gateway', 1)} up",
        ],
        sector.dns.name: [
            "link set lo up",
            f"link set eth0 address {plan.dns.mac} up",
            f"addr add {plan.dns.sector_address}/{first.cidr.prefixlen} dev eth0",
            f"route add default via {first.gateway}",
        ],
    }
    if sector.lb is not None and plan.load_balancer is not None:
        lb = plan.load_balancer
        commands[sector.lb.name] = [
            "link set lo up",
            f"link set eth0 address {appliance_mac(tag, 'lb', 0)} up",
            f"addr add {lb.backplane_address}/{bp.cidr.prefixlen} dev eth0",
            f"route add default via {bp.gateway}",
            f"link set eth1 address {appliance_mac(tag, 'lb', 1)} up",
            f"addr add {lb.sector_address}/{first.cidr.prefixlen} dev eth1",
        ]
    for host in sector.hosts:
        commands[host.ns.name] = host_commands(host, mtu)
    return commands


def host_commands(host: HostTwin, mtu: int) -> list[str]:
    """A static host configured by hand (address, gateway, MTU); a DHCP client only up, with
    its declared MAC if any and an Ethernet default MTU of 1500: its lease brings the rest
    (the MTU too, so a client that applies option 26 shows it).

    >>> from orbitlab_lab.twin.topology import Namespace
    >>> client = HostTwin("app3", None, None, "pve1", "h1001x2", Namespace("n", "l", "app3"),
    ...                   (8080,), (), mac="bc:24:11:00:00:03", dhcp=True)
    >>> host_commands(client, 1450)
    ['link set lo up', 'link set eth0 address bc:24:11:00:00:03', 'link set eth0 mtu 1500 up']
    """
    if host.dhcp:
        mac = [f"link set eth0 address {host.mac}"] if host.mac else []
        return ["link set lo up", *mac, f"link set eth0 mtu {DEFAULT_MTU} up"]
    assert host.subnet is not None
    return [
        "link set lo up",
        f"link set eth0 mtu {mtu} up",
        f"addr add {host.interface} dev eth0",
        f"route add default via {host.subnet.gateway}",
    ]


def snat_table(subnets: Iterable[object]) -> str:
    """A node's SNAT of ``subnets`` out of ``vmbr0`` (Proxmox: a subnet's ``snat``).

    >>> 'ip saddr 10.200.0.0/16 oifname "vmbr0" masquerade' in snat_table(["10.200.0.0/16"])
    True
    """
    rules = "".join(f'\t\tip saddr {subnet} oifname "vmbr0" masquerade\n' for subnet in subnets)
    return (
        f"table ip {SNAT_TABLE} {{\n\tchain postrouting {{\n"
        "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        f"{rules}\t}}\n}}\n"
    )


def snat_ruleset(topology: Topology) -> str:
    """The primary exit node's SNAT (Proxmox: subnet ``snat`` on, out of the default route)."""
    return snat_table([topology.plan.backplane.cidr])


def backplane_ports(topology: Topology, node: NodeTwin) -> list[str]:
    """The ports of a node's Backplane bridge: its VXLAN and the appliances' Backplane legs."""
    ports = [topology.backplane_vxlan]
    for sector in topology.sectors:
        if sector.node == node.name:
            ports.append(sector.port("gateway", "b"))
            if sector.lb is not None:
                ports.append(sector.port("lb", "b"))
    return ports


def watch_counters(ports: Iterable[str]) -> str:
    """Counters of SYN+FIN probes (to the GUI port) reaching a node or crossing its
    Backplane bridge from ``ports``: how the test sees invalid packets that leak.

    >>> 'iifname { "vxlan_olbpvn", "veth10011i1" }' in watch_counters(["vxlan_olbpvn",
    ...                                                                 "veth10011i1"])
    True
    """
    match = f"tcp dport {GUI_PORT} tcp flags & (fin | syn) == fin | syn"
    names = ", ".join(f'"{port}"' for port in ports)
    bridged = f"\t\tiifname {{ {names} }} {match} counter\n" if names else ""
    return (
        f"table inet {WATCH_TABLE} {{\n"
        "\tchain input {\n\t\ttype filter hook input priority -300; policy accept;\n"
        f"\t\t{match} counter\n\t}}\n"
        "\tchain forward {\n\t\ttype filter hook forward priority -300; policy accept;\n"
        f"\t\t{match} counter\n\t}}\n"
        "}\n"
        f"table bridge {WATCH_TABLE} {{\n"
        "\tchain forward {\n\t\ttype filter hook forward priority -300; policy accept;\n"
        f"{bridged}\t}}\n"
        "}\n"
    )


def watch_ruleset(topology: Topology, node: NodeTwin) -> str:
    """The :func:`watch_counters` of a node of the plan-built twin."""
    return watch_counters(backplane_ports(topology, node))


def build_external(topology: Topology) -> None:
    for ns, commands in external_commands(topology).items():
        system.ip_batch(ns, commands)


def build_nodes(topology: Topology) -> None:
    for node in topology.nodes:
        system.ip_batch(node.ns.name, node_commands(topology, node))
    for node in topology.nodes:
        system.ip_batch(node.ns.name, flood_entries(topology, node), tool="bridge")
        ruleset = watch_ruleset(topology, node)
        if node.primary:
            ruleset += snat_ruleset(topology)
        system.nft(node.ns.name, ruleset)


def load_guards(topology: Topology) -> None:
    """Every Sector's guard on every node, as the program installs it on a Proxmox node."""
    for node in topology.nodes:
        for sector in topology.sectors:
            done = guards.load(node.ns.name, guard_ruleset(sector.plan))
            if done.returncode != 0:
                raise TwinError(f"{node.ns.label}: the guard of {sector.name}: {done.stderr}")


def build_sectors(topology: Topology) -> None:
    for sector in topology.sectors:
        for ns, commands in sector_commands(sector, topology).items():
            system.ip_batch(ns, commands)


def watch_count(topology: Topology) -> int:
    """Packets counted by :func:`watch_ruleset` on all nodes so far."""
    total = 0
    for node in topology.nodes:
        listing = system.run(system.in_netns(node.ns.name, ["nft", "list", "ruleset"])).stdout
        for line in listing.splitlines():
            if "counter packets" in line and f"dport {GUI_PORT}" in line:
                total += int(line.split("counter packets")[1].split()[0])
    return total
