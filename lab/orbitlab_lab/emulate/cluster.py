"""The emulated Proxmox cluster: nodes, SDN, templates and containers, with Proxmox's rules.

What it enforces, as Proxmox does (its messages; a parameter's format is the API's, checked
by the stand-in with :data:`orbitlab_lab.emulate.rules.APPLY_RULES` before it calls in here):

- zones, VNets, subnets and controllers unique; one EVPN controller per cluster; VXLAN tags
  unique among VXLAN/EVPN VNets; an EVPN zone's VRF-VXLAN tag unique; a VNet's zone, a
  subnet's VNet and an EVPN zone's controller must exist; a subnet's gateway inside its
  CIDR; a VNet changes its zone only while it has no subnets. An error inside Proxmox's SDN
  lock reads ``<action> sdn <kind> object failed: ...``;
- SDN changes stay *pending* until an apply (``PUT /cluster/sdn``) commits them to the
  *running* config; then every node reloads its network, and only then does a VNet's bridge
  exist on the nodes of its zone;
- the apply, as Proxmox VE 9 or 8.4 has it (``settings.pve``): VE 9 commits under the
  cluster-wide ``sdn`` domain lock (waiting 10 s for it: "could not commit SDN config:
  cfs-lock 'domain-sdn' error: got lock request timeout") and refuses while a lock token
  is held (:func:`hold_lock`); VE 8.4 commits without a lock. Then one task reloads the
  nodes one after the other (taking ``apply_s`` in all): each generates its SDN config (its
  SDN version), then ``ifreload`` brings its bridges there — unless another reload runs on
  it ("error: Another instance of this program is already running.") or it is set to fail
  (:func:`fail_reload`): a warning of the task, and the apply succeeds. A node reports its
  zones as Proxmox does (:func:`zone_status`);
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

Every function takes the :class:`~orbitlab_lab.emulate.store.Store` and changes the state under
its lock. IDs in the state are Proxmox's (``olvn1001``), properties the provider's inputs.
What makes nodes and containers real is the cluster's backend
(:mod:`~orbitlab_lab.emulate.backend`): a node reload tells it each node's bridges as
declared (:func:`node_bridges`); a created, changed or deleted container is told to it after
the state recorded it, outside the state's lock (a twin container takes a moment to build).

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
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from netaddr import IPAddress, IPNetwork

from orbitlab_lab.emulate import EmulateError, ProxmoxError, param_error
from orbitlab_lab.emulate.backend import BACKENDS, Backend, Bridge, FilesBackend
from orbitlab_lab.emulate.seed import SeededState
from orbitlab_lab.emulate.store import Store

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
COMMIT_FAILED = "could not commit SDN config"
#: The Proxmox VE an emulated cluster is, unless started with ``--pve``.
DEFAULT_PVE = 9
PVE_VERSIONS = (8, 9)
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
    pve: int = DEFAULT_PVE,
    seed: SeededState | None = None,
    access: dict[str, Any] | None = None,
) -> None:
    """A fresh cluster: the nodes with their storages and ``vmbr0``, no SDN, nothing else
    (``backend``: what makes it real, see :mod:`~orbitlab_lab.emulate.backend`; ``pve``: the
    Proxmox VE major version whose SDN apply it has); or, with ``seed``, what a snapshot of
    a real cluster holds: its SDN objects applied, its guests' VMIDs, its storages.
    ``access``: the API token's ACLs (:class:`~orbitlab_lab.emulate.access.Access` state; None:
    a root@pam token, which no permission check stops)."""
    if pve not in PVE_VERSIONS:
        raise ValueError(f"Proxmox VE {pve} is not emulated (choose {PVE_VERSIONS})")
    seed = seed or SeededState(_empty_sdn(), {}, {}, [])
    state: dict[str, Any] = {
        "format": FORMAT,
        "stack": stack,
        "settings": {
            "apply_s": apply_s,
            "lock_wait_s": lock_wait_s,
            "backend": backend,
            "pve": pve,
        },
        "nodes": {
            node.name: {
                "address": node.address,
                "mtu": node.mtu,
                "host_key": node.host_key,
                "storages": seed.storages.get(node.name) or STORAGES,
                "bridges": ["vmbr0"],
                "sdn_version": 0,
            }
            for node in nodes
        },
        "sdn": {
            "version": 0,
            "config": {kind: dict(seed.sdn.get(kind, {})) for kind in SDN_KINDS},
            "running": {kind: dict(seed.sdn.get(kind, {})) for kind in SDN_KINDS},
            "lock_token": None,
        },
        "reload_failures": {},
        "volumes": {node.name: {} for node in nodes},
        "shared_storages": list(seed.shared),
        "containers": {},
        #: VMs and containers the snapshot had: their VMIDs are taken (none of them runs).
        "guests": dict(seed.guests),
        "applies": [],
        "reboots": [],
        "failed_tasks": [],
        "runs": [],
        "access": access,
    }
    for node in nodes:
        state["nodes"][node.name]["bridges"] = running_bridges(state, node.name)
    store.write(state)
    for node in nodes:
        backend_of(store, state).node_reloaded(node.name, node_bridges(state, node.name))


def backend_for(store: Store, name: str = "files") -> Backend:
    """The backend a cluster was started with."""
    if name == "twin":
        from orbitlab_lab.emulate.twin_backend import TwinBackend

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
    API's, :mod:`orbitlab_lab.emulate.rules.api`)."""
    with _sdn_lock("create", kind), store.change() as state:
        _check_lock_token(state)  # bpg's provider sends no lock token
        config = state["sdn"]["config"]
        if object_id in config[kind]:
            label = kind.removesuffix("s")
            raise ProxmoxError(f"sdn {label} object ID '{object_id}' already defined", 500)
        _validate_sdn(config, kind, object_id, props, None)
        config[kind][object_id] = props


def update_sdn(store: Store, kind: str, object_id: str, props: dict[str, Any]) -> None:
    """Change an object of the pending config (its ID stays; a VNet may change its zone)."""
    with _sdn_lock("update", kind), store.change() as state:
        _check_lock_token(state)  # bpg's provider sends no lock token
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
        _check_lock_token(state)  # bpg's provider sends no lock token
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


def pve_version(state: dict[str, Any]) -> int:
    return int(state["settings"].get("pve", DEFAULT_PVE))


def apply_sdn(store: Store, by: str, why: str) -> dict[str, Any]:
    """``PUT /cluster/sdn``: commit the pending config, then one task reloads the nodes.

    As pve-network's ``reload`` (``src/PVE/API2/Network/SDN.pm``): on Proxmox VE 9 the
    cluster-wide ``sdn`` lock is held while the config is committed (and a held lock token
    refuses the commit); VE 8.4 commits without a lock. Then a task reloads the nodes one by
    one; a node whose reload fails (another reload running on it, or a failure set with
    :func:`fail_reload`) is a warning of that task, and the apply succeeds. The emulated
    apply returns once the task is done (Proxmox returns when it starts): the program's
    per-node check polls either way.
    """
    state = store.read()
    settings = state["settings"]
    started = time.time()
    if pve_version(state) >= 9:
        try:
            with domain_lock(store, settings["lock_wait_s"]), store.change() as state:
                _check_lock_token(state)
                record = _commit(state, by, why, started)
        except ProxmoxError as error:
            if error.reason == LOCK_TIMEOUT:
                raise
            raise ProxmoxError(f"{COMMIT_FAILED}: {error.reason}", 500, error.errors) from None
    else:
        with store.change() as state:
            record = _commit(state, by, why, started)
    warnings = [warning for node in _node_names(store) if (warning := _reload(store, node, record))]
    with store.change() as state:
        record = state["applies"][record["n"] - 1]
        record.update(ok=True, end=time.time(), warnings=warnings)
    store.log("cluster", f"apply #{record['n']} by {by} ({why}): SDN version {record['version']}")
    return record


def _node_names(store: Store) -> list[str]:
    return sorted(store.read()["nodes"])


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
        "warnings": [],
    }
    state["applies"].append(record)
    return record


@contextlib.contextmanager
def _reload_lock(store: Store, node: str) -> Iterator[bool]:
    """ifupdown2's one-instance lock on a node; yields whether this reload got it."""
    store.cluster_dir.mkdir(parents=True, exist_ok=True)
    with open(store.cluster_dir / f"ifreload-{node}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reload(store: Store, node: str, record: dict[str, Any]) -> str | None:
    """One node's network reload, as pve-manager's ``reload_network_config``: the SDN
    config is generated from the running config (the node's SDN version), then
    ``ifreload -a`` brings the node's bridges to what was generated — unless another
    ``ifreload`` still runs there, or the reload was set to fail: then the generated config
    and the bridges differ (the node reports those zones ``error``). Returns the warning of
    a failed reload, else None."""
    with store.change() as state:
        state["nodes"][node]["sdn_version"] = state["sdn"]["version"]
        generated = node_bridges(state, node)
        failure = state.get("reload_failures", {}).get(node)
        share = state["settings"]["apply_s"] / max(1, len(state["nodes"]))
    with _reload_lock(store, node) as free:
        if not free:
            return _failed(store, node, record, IFRELOAD_BUSY)
        time.sleep(share)
        if failure is not None:
            return _failed(store, node, record, failure)
        with store.change() as state:
            state["nodes"][node]["bridges"] = sorted(bridge.name for bridge in generated)
            backend_of(store, state).node_reloaded(node, generated)
    return None


def _failed(store: Store, node: str, record: dict[str, Any], error: str) -> str:
    """A node's failed reload: a failed ``srvreload`` task (the apply only warns)."""
    with store.change() as state:
        state["failed_tasks"].append(
            {"node": node, "task": "srvreload", "apply": record["n"], "error": error}
        )
    return f"{node}: {error}"


def set_sysctl(store: Store, node: str, key: str, value: str) -> None:
    """Change one of an emulated node's settings (what its ``sysctl -n`` answers)."""
    with store.change() as state:
        if node not in state["nodes"]:
            raise EmulateError(
                f"no node {node!r} in the emulated cluster ({', '.join(sorted(state['nodes']))})"
            )
        state["nodes"][node].setdefault("sysctls", {})[key] = value


def fail_reload(store: Store, node: str, message: str | None) -> None:
    """Make every network reload of ``node`` fail with ``message`` (None: reload again)."""
    with store.change() as state:
        _node(state, node)
        failures = state.setdefault("reload_failures", {})
        if message is None:
            failures.pop(node, None)
        else:
            failures[node] = message


# --- VE 9's lock token ---------------------------------------------------------------------


def _check_lock_token(state: dict[str, Any], token: str | None = None) -> None:
    """``lock_sdn_config``: while a lock token is held, a write without it is refused."""
    held = state["sdn"].get("lock_token")
    if held is not None and token != held:
        raise ProxmoxError("invalid lock token provided!", 500)


def has_pending(state: dict[str, Any]) -> bool:
    sdn = state["sdn"]
    return any(sdn["config"][kind] != sdn["running"][kind] for kind in SDN_KINDS)


def hold_lock(store: Store, allow_pending: bool = False) -> str:
    """``POST /cluster/sdn/lock`` (Proxmox VE 9): hold the SDN config's lock, as an admin
    does in the web UI; returns its token. Every SDN write without it fails until it is
    released."""
    with store.change() as state:
        if pve_version(state) < 9:
            raise ProxmoxError("Proxmox VE 8 has no SDN lock API (POST /cluster/sdn/lock)")
        try:
            _check_lock_token(state)
            if not allow_pending and has_pending(state):
                raise ProxmoxError("configuration has pending changes", 500)
        except ProxmoxError as error:
            raise ProxmoxError(f"could not acquire lock for SDN config: {error.reason}") from None
        token = secrets.token_hex(16)
        state["sdn"]["lock_token"] = token
    return token


def release_lock(store: Store, token: str | None, force: bool = False) -> None:
    """``DELETE /cluster/sdn/lock``: with the token, or ``force``."""
    with store.change() as state:
        if not force:
            try:
                _check_lock_token(state, token)
            except ProxmoxError as error:
                raise ProxmoxError(f"could not release lock: {error.reason}") from None
        state["sdn"]["lock_token"] = None


# --- what a node reports ------------------------------------------------------------------


def zone_status(state: dict[str, Any], node: str) -> list[dict[str, str]]:
    """``GET /nodes/{node}/sdn/zones`` (pve-network ``Zones.pm``, ``status``): each zone of
    the running config on the node, ``pending`` while the node's generated SDN config is
    older than the running one, ``error`` when a VNet of it has no bridge there (a reload
    that generated the config and failed), else ``available``."""
    running, version = state["sdn"]["running"], state["sdn"]["version"]
    if not version:
        return []
    local = state["nodes"][node].get("sdn_version", 0)
    status = "pending" if local < version else "available"
    statuses = {
        zone_id: status
        for zone_id, zone in running["zones"].items()
        if node in (zone.get("nodes") or list(state["nodes"]))
    }
    if status == "available":
        present = set(bridges(state, node))
        for vnet_id, vnet in running["vnets"].items():
            if vnet.get("zone") in statuses and vnet_id not in present:
                statuses[vnet["zone"]] = "error"
    return [{"zone": zone_id, "status": statuses[zone_id]} for zone_id in sorted(statuses)]


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
        for holder in _volume_nodes(state, node, storage):
            state["volumes"][holder][volid] = {"url": url}
    return volid


def _volume_nodes(state: dict[str, Any], node: str, storage: str) -> list[str]:
    """The nodes that see a volume on ``node``'s ``storage``: every node that has a shared
    storage (one NFS export, one Ceph pool), only ``node`` for a local one."""
    if storage not in state.get("shared_storages", ()):
        return [node]
    return [name for name, info in sorted(state["nodes"].items()) if storage in info["storages"]]


def delete_volume(store: Store, node: str, volid: str) -> None:
    """Remove a volume. A template a container was made from may go (the container has its
    own root disk), as on Proxmox."""
    with store.change() as state:
        if volid not in state["volumes"].get(node, {}):
            raise ProxmoxError(f"volume '{volid}' does not exist", 500)
        for holder in _volume_nodes(state, node, volid.split(":", 1)[0]):
            state["volumes"][holder].pop(volid, None)


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
    tags: tuple[str, ...] = ()

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
            "tags": list(self.tags),
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
        _check_vmid_unused(state, vmid)
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


def _check_vmid_unused(state: dict[str, Any], vmid: str) -> None:
    """pve-cluster ``Cluster.pm``, ``check_vmid_unused``: VMIDs are unique across VMs and
    containers (the emulator's own and the seeded guests)."""
    found = state.get("guests", {}).get(vmid) or state["containers"].get(vmid)
    if found is not None:
        what = "VM" if found.get("type") == "qemu" else "CT"
        raise ProxmoxError(f"{what} {vmid} already exists on node '{found['node']}'", 500)


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
