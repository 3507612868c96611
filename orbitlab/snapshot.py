"""A snapshot of an existing cluster: what it already holds, as the Proxmox API lists it.

``orbitlab discover --snapshot FILE`` writes one from a live cluster; ``orbitlab emulate
start STACKFILE --seed FILE`` starts the emulated cluster from it, so a rehearsal plans
against the user's real cluster. The file is YAML holding the API's own listings:

.. code-block:: yaml

    format: 1
    sdn:
      controllers:   # GET /cluster/sdn/controllers
        - {controller: corpevpn, type: evpn, asn: 65000, peers: "192.0.2.11,192.0.2.12"}
      zones:         # GET /cluster/sdn/zones
        - {zone: corp, type: evpn, controller: corpevpn, vrf-vxlan: 5000}
      vnets:         # GET /cluster/sdn/vnets
        - {vnet: corpv1, zone: corp, tag: 1001}
      subnets:       # GET /cluster/sdn/vnets/{vnet}/subnets, every VNet's
        - {subnet: corp-10.9.0.0-24, vnet: corpv1, cidr: 10.9.0.0/24, gateway: 10.9.0.1}
    guests:          # GET /cluster/resources?type=vm
      - {vmid: 10011, type: qemu, node: pve1, name: legacy}
    storages:        # GET /storage
      - {storage: local, type: dir, content: "vztmpl,iso,backup"}
      - {storage: local-zfs, type: zfspool, content: "rootdir,images"}
      - {storage: nas, type: nfs, content: "vztmpl,rootdir", shared: 1}

>>> snapshot = parse_snapshot({"format": 1, "guests": [{"vmid": 10011, "type": "qemu",
...                                                      "node": "pve1"}]})
>>> snapshot.guests[0].vmid, snapshot.sdn["zones"]
(10011, ())
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from orbitlab.errors import OrbitLabError
from orbitlab.facts import GUEST_TYPES, GuestFact, guest_from_api

SNAPSHOT_FORMAT = 1
#: Each SDN listing and the key naming its objects, as ``GET /cluster/sdn/<kind>`` has it.
SDN_ID_KEYS = {"controllers": "controller", "zones": "zone", "vnets": "vnet", "subnets": "subnet"}
#: The listings the API has at ``/cluster/sdn/<kind>``; subnets are listed per VNet.
LISTED_KINDS = ("controllers", "zones", "vnets")
HEADER = (
    "# An OrbitLab cluster snapshot, written by `orbitlab discover --snapshot`;\n"
    "# `orbitlab emulate start STACKFILE --seed FILE` starts an emulated cluster from it.\n"
)


class SnapshotError(OrbitLabError):
    """A snapshot file that cannot be read, naming the file and the entry."""


@dataclass(frozen=True)
class Storage:
    id: str
    type: str
    content: frozenset[str]
    shared: bool = False
    #: The nodes it is on; empty: every node.
    nodes: tuple[str, ...] = ()
    enabled: bool = True

    def on(self, node: str) -> bool:
        return self.enabled and (not self.nodes or node in self.nodes)


@dataclass(frozen=True)
class Snapshot:
    """A parsed snapshot: the SDN listings as the API gives them (each item keyed by the
    listing's ID key), the guests and the storages."""

    sdn: Mapping[str, tuple[dict[str, Any], ...]] = field(
        default_factory=lambda: {kind: () for kind in SDN_ID_KEYS}
    )
    guests: tuple[GuestFact, ...] = ()
    storages: tuple[Storage, ...] = ()


def _items(where: str, value: Any, id_key: str) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SnapshotError(f"{where}: expected a list of objects, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not str(item.get(id_key) or ""):
            raise SnapshotError(f"{where}[{index}]: expected an object with {id_key!r}")
    return tuple(value)


def _flag(value: Any) -> bool:
    return value not in (None, 0, "0", False, "")


def _split(value: Any, separator: str) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return tuple(part.strip() for part in str(value or "").split(separator) if part.strip())


def _guest(where: str, item: dict[str, Any]) -> GuestFact:
    kind = item.get("type")
    if kind not in GUEST_TYPES:
        raise SnapshotError(f"{where}.type: {kind!r} is not a guest type (qemu or lxc)")
    try:
        vmid = int(item["vmid"])
    except (TypeError, ValueError):
        raise SnapshotError(f"{where}.vmid: {item['vmid']!r} is not a VMID") from None
    if not 100 <= vmid <= 999_999_999:
        raise SnapshotError(f"{where}.vmid: {vmid} is outside 100-999999999")
    return guest_from_api({**item, "vmid": vmid})


def storage_from_api(item: dict[str, Any]) -> Storage:
    """A ``GET /storage`` entry (the storage configuration) as a :class:`Storage`."""
    return Storage(
        id=str(item["storage"]),
        type=str(item.get("type") or ""),
        content=frozenset(_split(item.get("content"), ",")),
        shared=_flag(item.get("shared")),
        nodes=_split(item.get("nodes"), ","),
        enabled=not _flag(item.get("disable")),
    )


def parse_snapshot(document: Any, source: str = "snapshot") -> Snapshot:
    """Check a snapshot document's shape and read it; :class:`SnapshotError` names the entry."""
    if not isinstance(document, dict):
        raise SnapshotError(f"{source}: expected a mapping with format: {SNAPSHOT_FORMAT}")
    if document.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(
            f"{source}: format {document.get('format')!r} is not a snapshot format this "
            f"version reads (expected {SNAPSHOT_FORMAT}; write it with `orbitlab discover "
            "--snapshot`)"
        )
    unknown = sorted(set(document) - {"format", "sdn", "guests", "storages"})
    if unknown:
        raise SnapshotError(f"{source}: unknown keys {unknown} (known: sdn, guests, storages)")
    sdn = document.get("sdn") or {}
    if not isinstance(sdn, dict) or set(sdn) - set(SDN_ID_KEYS):
        raise SnapshotError(f"{source}: sdn holds {', '.join(SDN_ID_KEYS)}")
    listings = {
        kind: _items(f"{source}: sdn.{kind}", sdn.get(kind), key)
        for kind, key in SDN_ID_KEYS.items()
    }
    guests = _items(f"{source}: guests", document.get("guests"), "vmid")
    storages = _items(f"{source}: storages", document.get("storages"), "storage")
    parsed = tuple(_guest(f"{source}: guests[{i}]", item) for i, item in enumerate(guests))
    seen: dict[int, int] = {}
    for index, guest in enumerate(parsed):
        if guest.vmid in seen:
            raise SnapshotError(
                f"{source}: guests[{index}].vmid: {guest.vmid} repeats guests[{seen[guest.vmid]}]"
            )
        seen[guest.vmid] = index
    return Snapshot(listings, parsed, tuple(storage_from_api(item) for item in storages))


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a snapshot file (``orbitlab discover --snapshot`` writes them)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise SnapshotError(f"{path}: cannot read the snapshot: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SnapshotError(f"{path}: not YAML: {error}") from None
    return parse_snapshot(document, str(path))


class ApiReader(Protocol):
    def get(self, path: str) -> Any: ...


def read_snapshot(client: ApiReader) -> dict[str, Any]:
    """A snapshot document read from a live cluster (every call a GET)."""
    sdn = {kind: list(client.get(f"/cluster/sdn/{kind}") or []) for kind in LISTED_KINDS}
    sdn["subnets"] = [
        subnet
        for vnet in sdn["vnets"]
        for subnet in client.get(
            f"/cluster/sdn/vnets/{urllib.parse.quote(str(vnet['vnet']), safe='')}/subnets"
        )
        or []
    ]
    guests = [
        {key: guest[key] for key in ("vmid", "type", "node", "name", "tags") if key in guest}
        for guest in client.get("/cluster/resources?type=vm") or []
        if guest.get("type") in GUEST_TYPES
    ]
    storages = list(client.get("/storage") or [])
    return {"format": SNAPSHOT_FORMAT, "sdn": sdn, "guests": guests, "storages": storages}


def snapshot_text(document: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(document, sort_keys=False)
