"""An emulated cluster that starts from a snapshot of a real one (``emulate start --seed``).

The snapshot (:mod:`orbitlab.snapshot`) holds the Proxmox API's listings; the emulator keeps
SDN objects with the provider's attribute names. What is seeded is the cluster's own and
already applied: the SDN objects in the config and in the running config, the guests as
VMIDs the emulator does not run, the storages per node.

>>> from orbitlab.snapshot import parse_snapshot
>>> seeded = seed_state(parse_snapshot({"format": 1, "sdn": {"zones": [
...     {"zone": "corp", "type": "evpn", "controller": "corpevpn", "vrf-vxlan": 5000,
...      "exitnodes": "pve1,pve2"}]}}), ["pve1", "pve2"])
>>> seeded.sdn["zones"]["corp"]
{'type': 'evpn', 'controller': 'corpevpn', 'vrfVxlan': 5000, 'exitNodes': ['pve1', 'pve2']}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orbitlab.snapshot import SDN_ID_KEYS, Snapshot

#: The API's key → the provider's attribute, where they differ beyond kebab → camel case.
RENAMED = {
    "vrf-vxlan": "vrfVxlan",
    "exitnodes": "exitNodes",
    "exitnodes-primary": "primaryExitNode",
    "exitnodes-local-routing": "exitNodesLocalRouting",
    "advertise-subnets": "advertiseSubnets",
    "disable-arp-nd-suppression": "disableArpNdSuppression",
    "vlanaware": "vlanAware",
    "isolate-ports": "isolatePorts",
    "rt-import": "rtImport",
}
#: Comma-separated lists in the API, lists in the provider.
LISTS = frozenset({"peers", "nodes", "exitNodes"})
NUMBERS = frozenset({"asn", "tag", "vrfVxlan", "mtu"})
FLAGS = frozenset({"snat", "vlanAware", "isolatePorts", "advertiseSubnets"})
#: Listing fields that are the API's bookkeeping, not the object's config.
SKIPPED = frozenset({"digest", "pending", "state", "network", "mask", "zone-type"})
#: Fields a VNet's or subnet's listing adds (its kind; a subnet's zone is its VNet's).
LISTING_ONLY = {"vnets": ("type",), "subnets": ("type", "zone")}


@dataclass(frozen=True)
class SeededState:
    sdn: dict[str, dict[str, dict[str, Any]]]
    guests: dict[str, dict[str, Any]]
    storages: dict[str, dict[str, list[str]]]
    shared: list[str]


def _camel(key: str) -> str:
    head, *rest = key.split("-")
    return head + "".join(part.title() for part in rest)


def _value(key: str, value: Any) -> Any:
    if key in LISTS:
        return value if isinstance(value, list) else [p for p in str(value).split(",") if p]
    if key in NUMBERS:
        return int(value)
    if key in FLAGS:
        return value not in (0, "0", False, None, "")
    return value


def sdn_props(kind: str, item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """An API listing item as the emulator keeps the object: its ID and its attributes."""
    id_key = SDN_ID_KEYS[kind]
    props: dict[str, Any] = {}
    for key, value in item.items():
        if key == id_key or key in SKIPPED or key in LISTING_ONLY.get(kind, ()):
            continue
        name = RENAMED.get(key, _camel(key))
        props[name] = _value(name, value)
    return str(item[id_key]), props


def seed_state(snapshot: Snapshot, nodes: list[str]) -> SeededState:
    """What a snapshot puts into a new emulated cluster of ``nodes``. Without storages in
    the snapshot, every node keeps a fresh install's (``local`` and ``local-lvm``)."""
    sdn = {
        kind: dict(sdn_props(kind, item) for item in snapshot.sdn.get(kind, ()))
        for kind in SDN_ID_KEYS
    }
    guests = {
        str(guest.vmid): {
            "type": guest.kind,
            "node": guest.node,
            "name": guest.name,
            "tags": list(guest.tags),
        }
        for guest in snapshot.guests
    }
    storages = {
        node: {
            storage.id: sorted(storage.content) for storage in snapshot.storages if storage.on(node)
        }
        for node in nodes
    }
    shared = sorted(storage.id for storage in snapshot.storages if storage.shared)
    return SeededState(sdn, guests, storages if snapshot.storages else {}, shared)
