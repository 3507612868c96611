"""Pure functions from the Proxmox API's answers to the stack's settings values.

Nothing here talks to the API or touches a file: the answers of ``GET /nodes``,
``GET /nodes/{node}/network[/vmbr0]`` and ``GET /storage`` go in, Backplane node entries
(validated as :class:`~orbitlab.settings.NodeSettings`), the merge of those into the stack's
current nodes, and the proposals for ``protected_networks`` come out.

Example::

    >>> online, offline = split_by_status([{"node": "pve1", "status": "online"},
    ...                                    {"node": "pve2", "status": "offline"}])
    >>> node = node_from_bridge("pve1", {"type": "bridge", "cidr": "192.0.2.11/24"})
    >>> merge_nodes([{"name": "pve2", "address": "192.0.2.12"}], [node], offline).warnings
    ['node pve2 is offline: kept its entry from the stack file as is']
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from orbitlab.discover.errors import DiscoverError
from orbitlab.settings import NodeSettings

BRIDGE = "vmbr0"
DEFAULT_MTU = 1500
#: Storage types whose ``server`` is a machine on the network the nodes mount from.
NETWORK_STORAGE_TYPES = ("nfs", "cifs", "pbs")


def split_by_status(listing: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Split ``GET /nodes`` into ``(online, not online)`` node names, each sorted.

    Proxmox reports ``online``, ``offline`` or ``unknown`` (e.g. without quorum).

    >>> split_by_status([{"node": "b", "status": "online"}, {"node": "a", "status": "offline"}])
    (['b'], ['a'])
    """
    online = sorted(entry["node"] for entry in listing if entry.get("status") == "online")
    other = sorted(entry["node"] for entry in listing if entry.get("status") != "online")
    return online, other


def other_addresses(interfaces: list[dict[str, Any]], main: str) -> list[str]:
    """The IPv4 addresses of a node's other interfaces (``GET /nodes/{node}/network``):
    storage, corosync, management NICs — no Sector may reach them either.

    >>> other_addresses([{"iface": "vmbr0", "cidr": "192.0.2.11/24"},
    ...                  {"iface": "vmbr1", "cidr": "198.51.100.11/24"},
    ...                  {"iface": "eno2", "address": "203.0.113.11", "netmask": "24"},
    ...                  {"iface": "eno3"}], "192.0.2.11")
    ['198.51.100.11', '203.0.113.11']
    """
    found = []
    for interface in interfaces:
        address = _interface_ipv4(interface)
        if address and address != main and not ipaddress.ip_address(address).is_loopback:
            found.append(address)
    return sorted(set(found), key=ipaddress.ip_address)


def _interface_ipv4(interface: dict[str, Any]) -> str | None:
    """An interface's IPv4 address (its ``cidr`` or ``address``), or None.

    >>> _interface_ipv4({"cidr": "192.0.2.11/24"}), _interface_ipv4({"cidr": "2001:db8::1/64"})
    ('192.0.2.11', None)
    """
    raw = interface.get("cidr") or interface.get("address")
    if not raw:
        return None
    try:
        return str(ipaddress.IPv4Interface(str(raw)).ip)
    except ValueError:
        return None  # an IPv6 address where an IPv4 one was expected: not ours to judge


def interface_network(interface: dict[str, Any]) -> ipaddress.IPv4Network | None:
    """The IPv4 network of one interface of ``GET /nodes/{node}/network`` (its ``cidr``, or
    its ``address`` and ``netmask``), or None: no IPv4 network, or a loopback one.

    >>> str(interface_network({"iface": "eno2", "address": "203.0.113.11", "netmask": "24"}))
    '203.0.113.0/24'
    >>> [interface_network(i) for i in ({"cidr": "2001:db8::11/64"}, {"address": "192.0.2.9"})]
    [None, None]
    """
    raw = interface.get("cidr")
    if not raw and interface.get("address") and interface.get("netmask"):
        raw = f"{interface['address']}/{interface['netmask']}"
    if not raw:
        return None
    try:
        network = ipaddress.IPv4Interface(str(raw)).network
    except ValueError:
        return None  # an IPv6 address where an IPv4 one was expected: not ours to judge
    return None if network.is_loopback else network


def node_networks(bridge: dict[str, Any], interfaces: list[dict[str, Any]]) -> list[str]:
    """The IPv4 networks of a node's interfaces: ``vmbr0``'s first, then the others' (each
    once, sorted), whose broadcast addresses no Sector may send to.

    >>> node_networks({"iface": "vmbr0", "cidr": "192.0.2.11/24"},
    ...               [{"iface": "vmbr0", "cidr": "192.0.2.11/24"},
    ...                {"iface": "vmbr1", "cidr": "198.51.100.11/24"},
    ...                {"iface": "eno2", "address": "10.0.0.11", "netmask": "255.255.255.0"},
    ...                {"iface": "lo", "cidr": "127.0.0.1/8"}, {"iface": "eno3"}])
    ['192.0.2.0/24', '10.0.0.0/24', '198.51.100.0/24']
    """
    main = interface_network(bridge)
    found = {interface_network(interface) for interface in interfaces} - {main, None}
    others = sorted(network for network in found if network is not None)
    return [str(network) for network in ([main] if main else []) + others]


def node_from_bridge(
    node: str, bridge: dict[str, Any], interfaces: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Build a node entry from ``GET /nodes/{node}/network/vmbr0`` (and the node's other
    interfaces), validated as NodeSettings.

    >>> node_from_bridge("pve1", {"type": "bridge", "cidr": "192.0.2.11/24", "mtu": "9000"})
    {'name': 'pve1', 'address': '192.0.2.11', 'mtu': 9000, 'networks': ['192.0.2.0/24']}
    """
    address = _bridge_ipv4(node, bridge)
    entry: dict[str, Any] = {"name": node, "address": address, "mtu": _bridge_mtu(node, bridge)}
    others = other_addresses(interfaces or [], address)
    if others:
        entry["other_addresses"] = others
    networks = node_networks(bridge, interfaces or [])
    if networks:
        entry["networks"] = networks
    _check_node(node, entry)
    return entry


def _check_node(node: str, entry: dict[str, Any]) -> None:
    """Refuse a node entry that NodeSettings would refuse, naming each problem's field."""
    try:
        NodeSettings.model_validate(entry)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise DiscoverError(
            f"node {node}: cannot be used as a Backplane node: {problems}"
        ) from None


def _bridge_ipv4(node: str, bridge: dict[str, Any]) -> str:
    raw = bridge.get("cidr") or bridge.get("address")
    if not raw:
        method = bridge.get("method", "manual")
        raise DiscoverError(
            f"node {node}: {BRIDGE} has no static IPv4 address (method {method}); the Backplane "
            f"peers over each node's {BRIDGE} IPv4 address: give {BRIDGE} one, or write the "
            "node into the stack file by hand"
        )
    try:
        return str(ipaddress.IPv4Interface(str(raw)).ip)
    except ValueError:
        raise DiscoverError(
            f"node {node}: {BRIDGE} address {raw!r} is not an IPv4 address"
        ) from None


def _bridge_mtu(node: str, bridge: dict[str, Any]) -> int:
    raw = bridge.get("mtu")
    if raw is None or raw == "":
        return DEFAULT_MTU
    try:
        return int(str(raw))
    except ValueError:
        raise DiscoverError(f"node {node}: {BRIDGE} mtu {raw!r} is not a number") from None


@dataclass
class Merge:
    """The Backplane's new ``nodes`` list and what the user should be told about it."""

    nodes: list[dict[str, Any]]
    warnings: list[str]


def merge_nodes(existing: list[Any], discovered: list[dict[str, Any]], offline: list[str]) -> Merge:
    """Merge discovered nodes into the stack's current ``nodes`` list.

    Nodes keep their place (the first node is the default primary exit node), new ones
    are appended by name, a ``host_key`` is kept, offline nodes keep their old entry, and
    nodes no longer in the cluster are dropped.

    >>> merge_nodes([{"name": "b", "address": "192.0.2.2", "host_key": "ssh-ed25519 AA"}],
    ...             [{"name": "a", "address": "192.0.2.1", "mtu": 1500},
    ...              {"name": "b", "address": "192.0.2.9", "mtu": 1500}], []).nodes[0]
    {'name': 'b', 'address': '192.0.2.9', 'mtu': 1500, 'host_key': 'ssh-ed25519 AA'}
    """
    found = {entry["name"]: entry for entry in discovered}
    old = {e["name"]: e for e in existing if isinstance(e, dict) and isinstance(e.get("name"), str)}
    nodes: list[dict[str, Any]] = []
    warnings: list[str] = []
    for name, entry in old.items():
        if name in found:
            host_key = entry.get("host_key")
            nodes.append(found[name] | ({"host_key": host_key} if host_key else {}))
        elif name in offline:
            nodes.append(entry)
            warnings.append(f"node {name} is offline: kept its entry from the stack file as is")
        else:
            warnings.append(f"node {name} is not in the cluster any more: removed from the stack")
    nodes.extend(found[name] for name in sorted(found) if name not in old)
    warnings.extend(
        f"node {name} is offline and was skipped: run discover again when it is online, "
        "or write it into the stack file by hand"
        for name in offline
        if name not in old
    )
    return Merge(nodes, warnings)


@dataclass(frozen=True)
class StorageServer:
    """A network storage the nodes use, and its server (an address, or a name)."""

    storage: str
    type: str
    server: str

    @property
    def network(self) -> str | None:
        """``<address>/32``, or None when the server is a name."""
        try:
            return f"{ipaddress.IPv4Address(self.server)}/32"
        except ValueError:
            return None


def storage_servers(storages: list[dict[str, Any]]) -> list[StorageServer]:
    """The NFS, CIFS and PBS servers of ``GET /storage``: machines every node trusts, which
    a Sector should never reach (``backplane.protected_networks``).

    >>> [s.network for s in storage_servers([{"storage": "nas", "type": "nfs",
    ...     "server": "198.51.100.20"}, {"storage": "local", "type": "dir"}])]
    ['198.51.100.20/32']
    """
    return [
        StorageServer(str(item["storage"]), str(item["type"]), str(item["server"]))
        for item in storages
        if item.get("type") in NETWORK_STORAGE_TYPES and item.get("server")
    ]


def protected_proposal(servers: list[StorageServer], existing: list[str]) -> list[str]:
    """Lines that propose ``protected_networks`` for the storage servers not yet in it.

    >>> protected_proposal(storage_servers([{"storage": "nas", "type": "nfs",
    ...     "server": "198.51.100.20"}]), ["198.51.100.0/24"])
    []
    """
    covered = [ipaddress.IPv4Network(str(net), strict=False) for net in existing]
    lines = []
    for server in servers:
        network = server.network
        if network is None:
            lines.append(
                f"storage {server.storage} ({server.type}) is served by {server.server}: add "
                "its address to orbitlab:backplane.protected_networks"
            )
        elif not any(ipaddress.IPv4Network(network).subnet_of(net) for net in covered):
            lines.append(
                f"storage {server.storage} ({server.type}) is served by {server.server}, which "
                f"every node trusts: add {network} to orbitlab:backplane.protected_networks so "
                "that no Sector reaches it (under egress: allow, Sector traffic to the LAN "
                "leaves as the exit node's address)"
            )
    return lines
