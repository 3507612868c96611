"""The emulated Proxmox cluster: nodes, SDN, templates and containers, with Proxmox's rules.

What it enforces, as Proxmox does (its messages; a parameter's format is the API's, checked
by the stand-in with :data:`orbitlab.emulate.rules.APPLY_RULES` before it calls in here):

- zones, VNets, subnets and controllers unique; one EVPN controller per cluster; VXLAN tags
  unique among VXLAN/EVPN VNets; an EVPN zone's VRF-VXLAN tag unique; a VNet's zone, a
  subnet's VNet and an EVPN zone's controller must exist; a subnet's gateway inside its
  CIDR; a VNet changes its zone only while it has no subnets. An error inside Proxmox's SDN
  lock reads ``<action> sdn <kind> object failed: ...``;
- SDN changes stay *pending* until an apply (``PUT /cluster/sdn``) commits them to the
  *running* config; then every node reloads its network, and only then does a VNet's bridge
  exist on the nodes of its zone;
- the apply takes the cluster-wide ``sdn`` domain lock (Proxmox waits 10 s for it) and holds
  it for ``apply_s``: the commit, then the node reloads. An apply that finds the lock taken is
  an overlapping apply: when it gets the lock its commit goes through but the nodes are still
  reloading for the other one, so its reload fails (ifupdown2: "Another instance of this
  program is already running."); when it does not get it in time: "could not commit SDN
  config: cfs-lock 'domain-sdn' error: got lock request timeout";
- a template is a volume on one node's storage; a container needs its template on its node,
  a storage for its root disk that holds container directories, a VMID free in the whole
  cluster, and a NIC with an MTU a bridge on its node at least that large (a NIC without
  one is created, but the container does not start without its bridges); a root disk only
  grows; a container updated in place is rebooted (stopped, started) for the changes bpg's
  provider reboots it for;
- in use cannot be deleted: a zone with VNets, a VNet with subnets, a controller with zones.
  Guests are not looked at: a VNet a container is on can be deleted (the NIC is left on no
  bridge once applied: every later update of that container and its next start fail with
  "bridge ... does not exist"), and so can the template a container was made from.

Every function takes the :class:`~orbitlab.emulate.store.Store` and changes the state under
its lock. IDs in the state are Proxmox's (``olvn1001``), properties the provider's inputs.
What makes nodes and containers real is the cluster's backend (:mod:`~orbitlab.emulate.backend`):
a node reload tells it each node's bridges as declared (:func:`node_bridges`); a created,
changed or deleted container is told to it after the state recorded it, outside the state's
lock (a twin container takes a moment to build).

>>> import tempfile
>>> from pathlib import Path
>>> store = Store(Path(tempfile.mkdtemp()))
>>> create_cluster(store, [Node("pve1", "192.0.2.11")], apply_s=0)
>>> create_sdn(store, "zones", "olvz1001", {"type": "vxlan", "peers": ["192.0.2.11"]})
>>> create_sdn(store, "vnets", "olvn1001", {"zone": "olvz1001", "tag": 1001})
>>> bridges(store.read(), "pve1")
['vmbr0']
>>> apply_sdn(store, "rollout-apply", "create")["ok"]
True
>>> bridges(store.read(), "pve1")
['olvn1001', 'vmbr0']
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from netaddr import IPAddress, IPNetwork

from orbitlab.emulate import ProxmoxError, param_error
from orbitlab.emulate.backend import BACKENDS, Backend, Bridge, FilesBackend
from orbitlab.emulate.store import Store

FORMAT = 1
SDN_KINDS = ("controllers", "zones", "vnets", "subnets")
#: Proxmox waits this long for the cluster-wide "sdn" lock (cfs_lock_domain's default).
LOCK_WAIT_S = 10.0
#: How long an apply holds the lock: the commit, then the node reloads.
APPLY_S = 1.5
#: A node's storages and what they hold, as on a fresh Proxmox VE install.
STORAGES = {"local": ["vztmpl", "iso", "backup", "snippets"], "local-lvm": ["rootdir", "images"]}
#: A container template's name: ``.tar``, or ``.tar`` compressed with gz, xz, zst or bz2.
VZTMPL_FILE = re.compile(r"[^/]+\.(?:tar(?!\.)|tar\.(?:gz|xz|zst|bz2))$", re.IGNORECASE)
IFRELOAD_BUSY = "error: Another instance of this program is already running."
LOCK_TIMEOUT = "could not commit SDN config: cfs-lock 'domain-sdn' error: got lock request timeout"


@dataclass(frozen=True)
class Node:
    """A node as the stack file names it."""

    name: str
    address: str
    mtu: int = 1500
    host_key: str | None = None


def create_cluster(
    store: Store,
    nodes: list[Node],
    *,
    apply_s: float = APPLY_S,
    lock_wait_s: float = LOCK_WAIT_S,
    stack: str = "",
    backend: str = "files",
) -> None:
    """A fresh cluster: the nodes with their storages and ``vmbr0``, no SDN, nothing else
    (``backend``: what makes it real, see :mod:`~orbitlab.emulate.backend`)."""
    state: dict[str, Any] = {
        "format": FORMAT,
        "stack": stack,
        "settings": {"apply_s": apply_s, "lock_wait_s": lock_wait_s, "backend": backend},
        "nodes": {
            node.name: {
                "address": node.address,
                "mtu": node.mtu,
                "host_key": node.host_key,
                "storages": STORAGES,
                "bridges": ["vmbr0"],
            }
            for node in nodes
        },
        "sdn": {"version": 0, "config": _empty_sdn(), "running": _empty_sdn()},
        "volumes": {node.name: {} for node in nodes},
        "containers": {},
        "applies": [],
        "reboots": [],
        "failed_tasks": [],
        "runs": [],
    }
    store.write(state)
    for node in nodes:
        backend_of(store, state).node_reloaded(node.name, [Bridge("vmbr0")])


def backend_for(store: Store, name: str = "files") -> Backend:
    """The backend a cluster was started with."""
    if name == "twin":
        from orbitlab.emulate.twin_backend import TwinBackend

        return TwinBackend(store)
    if name != "files":
        raise ValueError(f"unknown emulator backend {name!r} (known: {', '.join(BACKENDS)})")
    return FilesBackend(store.cluster_dir)


def backend_of(store: Store, state: dict[str, Any]) -> Backend:
    """What makes this cluster's nodes and containers real (its ``settings.backend``)."""
    return backend_for(store, state["settings"].get("backend", "files"))


def _empty_sdn() -> dict[str, dict[str, Any]]:
    return {kind: {} for kind in SDN_KINDS}


# --- SDN objects -------------------------------------------------------------------------


def subnet_id(zone: str, cidr: str) -> str:
    """Proxmox's ID of a subnet: its zone and CIDR (``olvz1001-172.16.0.0-24``)."""
    return f"{zone}-{cidr.replace('/', '-')}"


@contextlib.contextmanager
def _sdn_lock(action: str, kind: str) -> Iterator[None]:
    """What Proxmox does around an SDN write (``lock_sdn_config``): an error inside becomes
    ``<action> sdn <kind> object failed: <error>``, an HTTP 500 (pve-network
    ``src/PVE/Network/SDN.pm``; a parameter error keeps its ``400`` in the text)."""
    try:
        yield
    except ProxmoxError as error:
        inner = f"400 {error.reason}" if error.code == 400 else error.reason
        label = kind.removesuffix("s")
        failed = f"{action} sdn {label} object failed: {inner}"
        raise ProxmoxError(failed, 500, error.errors) from None


def create_sdn(store: Store, kind: str, object_id: str, props: dict[str, Any]) -> None:
    """Add a controller, zone, VNet or subnet to the pending config (its ID's format is the
    API's, :mod:`orbitlab.emulate.rules.api`)."""
    with _sdn_lock("create", kind), store.change() as state:
        config = state["sdn"]["config"]
        if object_id in config[kind]:
            label = kind.removesuffix("s")
            raise ProxmoxError(f"sdn {label} object ID '{object_id}' already defined", 500)
        _validate_sdn(config, kind, object_id, props, None)
        config[kind][object_id] = props


def update_sdn(store: Store, kind: str, object_id: str, props: dict[str, Any]) -> None:
    """Change an object of the pending config (its ID stays; a VNet may change its zone)."""
    with _sdn_lock("update", kind), store.change() as state:
        config = state["sdn"]["config"]
        _require(config, kind, object_id)
        _validate_sdn(config, kind, object_id, props, config[kind][object_id])
        config[kind][object_id] = props


def delete_sdn(store: Store, kind: str, object_id: str) -> None:
    """Remove an object from the pending config, unless another SDN object still uses it.

    Proxmox does not look at guests: a VNet a container's NIC is on can be deleted; once
    applied, its bridge is gone from the nodes and the NIC is left on no bridge (the
    container runs on, cut off, and cannot start again, see :func:`update_container`).
    """
    with _sdn_lock("delete", kind), store.change() as state:
        config = state["sdn"]["config"]
        _require(config, kind, object_id)
        _refuse_delete_in_use(config, kind, object_id)
        del config[kind][object_id]


def _require(config: dict[str, Any], kind: str, object_id: str) -> None:
    if object_id not in config[kind]:
        label = "" if kind in ("controllers", "zones") else f"{kind.removesuffix('s')} "
        raise ProxmoxError(f"sdn {label}'{object_id}' does not exist", 500)


Props = dict[str, Any]


def _validate_sdn(
    config: dict[str, Any], kind: str, object_id: str, props: Props, old: Props | None
) -> None:
    validate = {
        "controllers": _validate_controller,
        "zones": _validate_zone,
        "vnets": _validate_vnet,
        "subnets": _validate_subnet,
    }[kind]
    validate(config, object_id, props, old)


def _validate_controller(
    config: dict[str, Any], object_id: str, props: Props, old: Props | None
) -> None:
    """``Controllers/EvpnPlugin.pm``, ``on_update_hook``."""
    others = [c for c in config["controllers"] if c != object_id]
    if props.get("type") == "evpn" and any(
        config["controllers"][c].get("type") == "evpn" for c in others
    ):
        raise ProxmoxError("only 1 global evpn controller can be defined", 500)
    if bool(props.get("peers")) == bool(props.get("fabric")):
        raise ProxmoxError("must have exactly one of peers / fabric defined", 500)


def _validate_zone(config: dict[str, Any], object_id: str, props: Props, old: Props | None) -> None:
    """``Zones/VxlanPlugin.pm`` and ``Zones/EvpnPlugin.pm``, ``on_update_hook``."""
    if props.get("type") == "vxlan" and bool(props.get("peers")) == bool(props.get("fabric")):
        message = "must have exactly one of peers / fabric defined"
        raise param_error(f"fabric: {message}", f"peers: {message}")
    if props.get("type") != "evpn":
        return
    controller = props.get("controller")
    if controller not in config["controllers"]:
        raise ProxmoxError(f"controller {controller} don't exist", 500)
    if config["controllers"][controller].get("type") != "evpn":
        raise ProxmoxError(f"{controller} is not a evpn controller type", 500)
    vrf = props.get("vrfVxlan")
    for other, zone in config["zones"].items():
        if other != object_id and zone.get("vrfVxlan") == vrf:
            raise ProxmoxError(f"vrf-vxlan {vrf} is already declared in {other}", 500)


def _validate_vnet(config: dict[str, Any], object_id: str, props: Props, old: Props | None) -> None:
    """``VnetPlugin.pm`` and the zone's ``vnet_update_hook`` (VXLAN, EVPN)."""
    zone_id = props.get("zone")
    has_subnets = any(subnet.get("vnet") == object_id for subnet in config["subnets"].values())
    if old is not None and old.get("zone") != zone_id and has_subnets:
        raise param_error("zone: can't change zone if subnets exist")
    zone = config["zones"].get(zone_id)
    if zone is None:
        # Proxmox looks up the zone's plugin by the type of a zone it does not have
        raise ProxmoxError("cannot lookup undefined type!", 500)
    if zone.get("type") not in ("vxlan", "evpn"):
        return
    tag = props.get("tag")
    if tag is None:
        raise param_error("tag: missing vxlan tag")
    if zone.get("type") == "evpn" and props.get("vlanAware"):
        raise param_error("vlan-aware: vlan-aware option can't be enabled with evpn")
    for other, vnet in sorted(config["vnets"].items()):
        other_zone = config["zones"].get(vnet.get("zone"), {})
        if other == object_id or other_zone.get("type") not in ("vxlan", "evpn"):
            continue
        if vnet.get("tag") == tag:
            taken = f"vxlan tag {tag} already exist in vnet {other} in zone {vnet['zone']} "
            raise param_error(f"tag: {taken}")  # (sic: Proxmox's message ends in a space)


def _validate_subnet(
    config: dict[str, Any], object_id: str, props: Props, old: Props | None
) -> None:
    """``SubnetPlugin.pm``, ``on_update_hook`` (a /32 may have its gateway outside)."""
    vnet = props.get("vnet")
    if vnet not in config["vnets"]:
        raise ProxmoxError(f"sdn vnet '{vnet}' does not exist", 500)
    cidr = IPNetwork(props["cidr"])
    gateway = props.get("gateway")
    if gateway and cidr.prefixlen < 32 and IPAddress(gateway) not in cidr:
        raise param_error(f"gateway: {gateway} is not in subnet {cidr}")


def _refuse_delete_in_use(config: dict[str, Any], kind: str, object_id: str) -> None:
    """The ``on_delete_hook``s: SDN objects in use by SDN objects (never by guests)."""
    if kind == "controllers":
        for zone_id, zone in sorted(config["zones"].items()):
            if zone.get("controller") == object_id:
                raise ProxmoxError(f"controller {object_id} is used by {zone_id}", 500)
    elif kind == "zones":
        for vnet_id, vnet in sorted(config["vnets"].items()):
            if vnet.get("zone") == object_id:
                raise ProxmoxError(f"zone {object_id} is used by vnet {vnet_id}", 500)
    elif kind == "vnets" and any(
        subnet.get("vnet") == object_id for subnet in config["subnets"].values()
    ):
        raise param_error("vnet: Can't delete vnet if subnets exists")


def sdn_listing(state: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """The objects as the API lists them with pending changes: the config, plus what is
    deleted but still running; each with its state (``new``, ``changed``, ``deleted`` or None).
    """
    config, running = state["sdn"]["config"][kind], state["sdn"]["running"][kind]
    listed = []
    for object_id in sorted(set(config) | set(running)):
        if object_id not in running:
            listed.append((object_id, config[object_id], "new"))
        elif object_id not in config:
            listed.append((object_id, running[object_id], "deleted"))
        else:
            changed = config[object_id] != running[object_id]
            listed.append((object_id, config[object_id], "changed" if changed else None))
    return listed


# --- the apply ---------------------------------------------------------------------------


@contextlib.contextmanager
def domain_lock(store: Store, wait_s: float) -> Iterator[bool]:
    """Proxmox's cluster-wide ``sdn`` lock; yields whether it had to wait for another holder.

    Raises :class:`ProxmoxError` (Proxmox's message) when it is not free within ``wait_s``.
    """
    store.cluster_dir.mkdir(parents=True, exist_ok=True)
    with open(store.domain_lock_path, "a") as handle:
        waited = False
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = True
                if time.monotonic() >= deadline:
                    raise ProxmoxError(LOCK_TIMEOUT, 500) from None
                time.sleep(0.05)
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def apply_sdn(store: Store, by: str, why: str) -> dict[str, Any]:
    """``PUT /cluster/sdn``: commit the pending config, reload every node's network.

    Returns the apply's record; raises :class:`ProxmoxError` when it overlapped another apply.
    """
    settings = store.read()["settings"]
    started = time.time()
    with domain_lock(store, settings["lock_wait_s"]) as waited:
        with store.change() as state:
            record = _commit(state, by, why, started)
            if waited:
                _fail_reloads(state, record)
        if waited:
            raise ProxmoxError(record["error"])
        time.sleep(settings["apply_s"])
        with store.change() as state:
            record = state["applies"][record["n"] - 1]
            for node in state["nodes"]:
                _reload_node(store, state, node)
            record.update(ok=True, end=time.time())
    store.log("cluster", f"apply #{record['n']} by {by} ({why}): SDN version {record['version']}")
    return record


def _commit(state: dict[str, Any], by: str, why: str, started: float) -> dict[str, Any]:
    sdn = state["sdn"]
    sdn["version"] += 1
    sdn["running"] = {kind: dict(objects) for kind, objects in sdn["config"].items()}
    record = {
        "n": len(state["applies"]) + 1,
        "by": by,
        "why": why,
        "version": sdn["version"],
        "start": started,
        "end": None,
        "ok": False,
        "error": None,
    }
    state["applies"].append(record)
    return record


def _fail_reloads(state: dict[str, Any], record: dict[str, Any]) -> None:
    """An apply that overlapped another: its commit went through, its node reloads fail."""
    nodes = sorted(state["nodes"])
    for node in nodes:
        state["failed_tasks"].append(
            {"node": node, "task": "srvreload", "apply": record["n"], "error": IFRELOAD_BUSY}
        )
    record.update(
        end=time.time(),
        error=(
            f"SDN apply #{record['n']} overlapped another apply: the commit went through, but "
            f"reloading the network failed on {', '.join(nodes)}: {IFRELOAD_BUSY} "
            "(two SDN applies at once; see 'orbitlab emulate status')"
        ),
    )


def bridges(state: dict[str, Any], node: str) -> list[str]:
    """The bridges on a node now: those of its last network reload."""
    return list(state["nodes"][node]["bridges"])


def running_bridges(state: dict[str, Any], node: str) -> list[str]:
    """The bridges the running config puts on a node: ``vmbr0`` and every VNet whose zone
    spans the node (a zone without ``nodes`` spans them all)."""
    return sorted(bridge.name for bridge in node_bridges(state, node))


#: What Proxmox subtracts from vmbr0's MTU for a zone that declares none.
VXLAN_OVERHEAD = 50


def node_bridges(state: dict[str, Any], node: str) -> list[Bridge]:
    """The bridges the running config puts on a node, with what their zone, VNet and
    subnets declare (``vmbr0`` first)."""
    running = state["sdn"]["running"]
    found = [Bridge("vmbr0")]
    for vnet_id, vnet in sorted(running["vnets"].items()):
        zone = running["zones"].get(vnet.get("zone"), {})
        if node in (zone.get("nodes") or list(state["nodes"])):
            found.append(_bridge(state, node, vnet_id, vnet, zone))
    return found


def _bridge(
    state: dict[str, Any], node: str, vnet_id: str, vnet: dict[str, Any], zone: dict[str, Any]
) -> Bridge:
    running = state["sdn"]["running"]
    subnets = [s for _, s in sorted(running["subnets"].items()) if s.get("vnet") == vnet_id]
    peers = zone.get("peers") or []
    if zone.get("type") == "evpn":
        peers = running["controllers"].get(zone.get("controller"), {}).get("peers") or []
    gateways = tuple(
        f"{s['gateway']}/{IPNetwork(s['cidr']).prefixlen}" for s in subnets if s.get("gateway")
    )
    exits = zone.get("exitNodes") or []
    return Bridge(
        name=vnet_id,
        zone=str(vnet.get("zone", "")),
        zone_type=str(zone.get("type", "")),
        tag=vnet.get("tag"),
        mtu=zone.get("mtu") or state["nodes"][node]["mtu"] - VXLAN_OVERHEAD,
        peers=tuple(str(peer) for peer in peers),
        gateways=gateways,
        snat=tuple(str(s["cidr"]) for s in subnets if s.get("snat")),
        vrf_tag=zone.get("vrfVxlan"),
        primary_exit_node=zone.get("primaryExitNode") or (exits[0] if exits else None),
    )


def _reload_node(store: Store, state: dict[str, Any], node: str) -> None:
    declared = node_bridges(state, node)
    state["nodes"][node]["bridges"] = sorted(bridge.name for bridge in declared)
    backend_of(store, state).node_reloaded(node, declared)


# --- templates ---------------------------------------------------------------------------


def _node(state: dict[str, Any], node: str) -> dict[str, Any]:
    if node not in state["nodes"]:
        raise ProxmoxError(f"no such cluster node '{node}'")
    return state["nodes"][node]


def _storage(state: dict[str, Any], node: str, storage: str, content: str) -> None:
    """The storage exists on the node and holds ``content`` (pve-storage's and
    pve-container's messages for a download and for a root disk)."""
    kinds = _node(state, node)["storages"].get(storage)
    if kinds is None:
        raise ProxmoxError(f"storage '{storage}' does not exist", 500)
    if content in kinds:
        return
    if content == "rootdir":
        raise param_error(f"storage: storage '{storage}' does not support container directories")
    raise ProxmoxError(f"storage '{storage}' is not configured for content-type '{content}'", 500)


def create_volume(
    store: Store, node: str, storage: str, content: str, file_name: str, url: str, overwrite: bool
) -> str:
    """A downloaded template (or other file) on a node's storage; returns its volume ID."""
    volid = f"{storage}:{content}/{file_name}"
    if content == "vztmpl" and not VZTMPL_FILE.search(file_name):
        # pve-storage src/PVE/API2/Storage/Status.pm (download_url), $VZTMPL_EXT_RE_1
        raise param_error("filename: wrong file extension")
    with store.change() as state:
        _storage(state, node, storage, content)
        if volid in state["volumes"][node] and not overwrite:
            raise ProxmoxError(f"refusing to override existing file '{file_name}'", 500)
        state["volumes"][node][volid] = {"url": url}
    return volid


def delete_volume(store: Store, node: str, volid: str) -> None:
    """Remove a volume. A template a container was made from may go (the container has its
    own root disk), as on Proxmox."""
    with store.change() as state:
        if volid not in state["volumes"].get(node, {}):
            raise ProxmoxError(f"volume '{volid}' does not exist", 500)
        del state["volumes"][node][volid]


# --- containers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """What the emulator keeps of a container (no secret: passwords and keys stay out).

    Each NIC: ``name``, ``bridge``, ``mac``, ``mtu`` and ``ipv4`` (``address``, ``gateway``:
    the ``ip_configs`` entry of the same index, as Proxmox pairs ``ipconfigN`` with
    ``netN``); ``dns``: the declared ``domain`` and ``servers``; ``disk_gib``: the root
    disk's size.
    """

    vmid: int
    node: str
    hostname: str
    template: str
    storage: str
    nics: tuple[dict[str, Any], ...]
    started: bool = True
    dns: dict[str, Any] | None = None
    disk_gib: int | None = None

    def record(self, running: bool | None = None) -> dict[str, Any]:
        on = self.started if running is None else running
        return {
            "node": self.node,
            "hostname": self.hostname,
            "template": self.template,
            "storage": self.storage,
            "nics": list(self.nics),
            "dns": self.dns or {},
            "disk_gib": self.disk_gib,
            "status": "running" if on else "stopped",
        }


def create_container(store: Store, container: Container) -> None:
    """Create (and start) a container; the backend builds it once the state has it.

    A NIC on a bridge the node does not have is refused at once when it sets an MTU (its
    bridge's MTU is read); without one the container is created, and then fails to start
    (pve-container ``update_pct_config``, ``update_lxc_config``).
    """
    vmid = str(container.vmid)
    with store.change() as state:
        _node(state, container.node)
        existing = state["containers"].get(vmid)
        if existing is not None:
            # pve-cluster ``check_vmid_unused``: VMIDs are unique across VMs and containers
            raise ProxmoxError(
                f"CT {container.vmid} already exists on node '{existing['node']}'", 500
            )
        if container.template not in state["volumes"][container.node]:
            raise ProxmoxError(f"volume '{container.template}' does not exist", 500)
        _storage(state, container.node, container.storage, "rootdir")
        _check_nic_mtus(state, container)
        missing = _missing_bridges(state, container)
        record = state["containers"][vmid] = container.record(container.started and not missing)
        backend = backend_of(store, state)
    try:
        backend.container_created(container.node, container.vmid, record)
    except BaseException:
        with store.change() as state:
            state["containers"].pop(vmid, None)
        raise
    if container.started and missing:
        raise ProxmoxError(f"bridge '{missing[0]}' does not exist", 500)


def update_container(store: Store, container: Container, reboot: tuple[str, ...] = ()) -> None:
    """Change a container in place: its NICs hot-plugged, started or stopped, its disk
    grown; with ``reboot`` (the changes bpg's provider reboots it for), a running container
    is stopped and started again, as ``POST .../status/reboot`` does.

    A NIC on a bridge the node no longer has (its VNet deleted and applied) fails every
    update, after the config was written, and the container cannot start.
    """
    vmid = str(container.vmid)
    with store.change() as state:
        old = state["containers"].get(vmid)
        if old is None:
            raise ProxmoxError(
                f"Configuration file 'nodes/{container.node}/lxc/{vmid}.conf' does not exist",
                500,
            )
        _check_disk(old, container)
        _check_nic_mtus(state, container, old)
        missing = _missing_bridges(state, container)
        was_running = old["status"] == "running"
        new = container.record(was_running if missing else container.started)
        state["containers"][vmid] = new
        rebooted = bool(reboot) and was_running and container.started and not missing
        if rebooted:
            state.setdefault("reboots", []).append(
                {"vmid": container.vmid, "node": container.node,
                 "hostname": container.hostname, "why": list(reboot), "at": time.time()}
            )  # fmt: skip
        backend = backend_of(store, state)
    if missing:
        raise ProxmoxError(f"bridge '{missing[0]}' does not exist", 500)
    if rebooted:
        backend.container_rebooted(container.node, container.vmid, old, new)
    else:
        backend.container_updated(container.node, container.vmid, old, new)


def _check_disk(old: dict[str, Any], container: Container) -> None:
    """A root disk grows in place; bpg's provider refuses to shrink one
    (``proxmoxtf/resource/container/container.go``, ``containerUpdate``)."""
    before, after = old.get("disk_gib"), container.disk_gib
    if before is not None and after is not None and after < before:
        raise ProxmoxError(
            f"new disk size ({after}G) has to be greater than the current disk ({before}G)"
        )


def _node_bridge_mtus(state: dict[str, Any], node: str) -> dict[str, int]:
    """The bridges on a node now, with their MTU (``vmbr0``: the node's)."""
    present = set(bridges(state, node))
    declared = {bridge.name: bridge.mtu for bridge in node_bridges(state, node)}
    mtu = state["nodes"][node]["mtu"]
    return {name: int(declared.get(name) or mtu) for name in present}


def _check_nic_mtus(
    state: dict[str, Any], container: Container, old: dict[str, Any] | None = None
) -> None:
    """A NIC set with an MTU (every NIC at creation, the changed ones on an update): its
    bridge exists, and the MTU fits it (pve-container ``update_pct_config``, pve-common
    ``read_bridge_mtu``)."""
    present = _node_bridge_mtus(state, container.node)
    before = list(old["nics"]) if old is not None else []
    for index, nic in enumerate(container.nics):
        mtu = nic.get("mtu")
        if not mtu or (index < len(before) and before[index] == nic):
            continue
        if nic["bridge"] not in present:
            raise ProxmoxError(f"bridge '{nic['bridge']}' does not exist", 500)
        if mtu > present[nic["bridge"]]:
            raise ProxmoxError(
                f"net{index}: MTU size '{mtu}' is bigger than bridge MTU "
                f"'{present[nic['bridge']]}'",
                500,
            )


def _missing_bridges(state: dict[str, Any], container: Container) -> list[str]:
    present = set(bridges(state, container.node))
    return [nic["bridge"] for nic in container.nics if nic["bridge"] not in present]


def delete_container(store: Store, vmid: int) -> None:
    with store.change() as state:
        container = state["containers"].pop(str(vmid), None)
        if container is None:
            raise ProxmoxError(f"CT {vmid} does not exist")
        backend = backend_of(store, state)
    backend.container_deleted(container["node"], vmid)


def record_run(store: Store, run: dict[str, Any]) -> None:
    """Remember a command that ran on a node or in a container (no stdin, only its hash)."""
    with store.change() as state:
        state["runs"].append(run)
