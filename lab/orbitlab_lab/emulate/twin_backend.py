"""The emulated cluster backed by the twin: what the engine creates is a working network.

``orbitlab emulate start STACKFILE --twin`` builds the twin's external side and the stack
file's nodes (``vmbr0`` only, :func:`orbitlab_lab.twin.runner.up_cluster`); from then on the
stand-in plugins make real what the engine declares, through this backend:

- an SDN apply reloads every node's network into the running SDN config: each VNet a
  bridge with its VXLAN (VNI = its tag, MTU and peers as its zone declares), the EVPN
  VNet with its gateways, L3 VNI and SNAT (:mod:`orbitlab_lab.twin.fabric`);
- a created container becomes a namespace on its node with exactly its declared NICs,
  MACs, MTUs, addresses, gateways and resolvers, named as the stack file expects it
  (:mod:`orbitlab_lab.twin.containers`); a changed one is hot-plugged, or rebooted (it goes
  and boots again from its root), a stopped one goes (its root kept), a deleted one goes
  with its root;
- ``pct exec <vmid> -- /bin/sh -s`` runs the script in the container in full, with the
  appliance OS's commands stood in (:mod:`orbitlab_lab.twin.standins`); any other command runs
  in a shell in the node's namespace (its ``/sys/class/net`` shows the node's bridges:
  how the bridge wait sees them).

The plugins are several processes with several threads: every change of the twin's state
happens under its lock (:func:`orbitlab_lab.twin.state.changing_state`); the slow parts (a
container's namespace and holder, a script) run outside it. A failure of the twin reaches
the engine as a Proxmox error naming the container.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from netaddr import IPAddress, IPNetwork

from orbitlab.errors import OrbitLabError
from orbitlab.stack import load_plan
from orbitlab_lab.emulate import EmulateError, ProxmoxError
from orbitlab_lab.emulate.backend import Bridge, Result, run_command
from orbitlab_lab.emulate.store import Store
from orbitlab_lab.emulate.sysctl import node_sysctls, starts_forwarding
from orbitlab_lab.twin import TwinError, containers, dhcp, fabric, system
from orbitlab_lab.twin.containers import ContainerSpec, Nic
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.state import TwinState, changing_state, load_state, state_lock
from orbitlab_lab.twin.topology import HostTwin, Topology, build_topology

_TOPOLOGIES: dict[tuple[str, int], Topology] = {}


def spec_of(vmid: int, record: Mapping[str, Any], forwarding: bool = False) -> ContainerSpec:
    """A container's declaration, as the emulator recorded it.

    >>> spec_of(10012, {"node": "pve2", "hostname": "olvn1001-dns", "nics": [{"name": "eth0",
    ...     "bridge": "olvn1001", "mac": None, "mtu": 1450, "ipv4": {"address": "172.16.0.2/24",
    ...     "gateway": "172.16.0.1"}}], "dns": {"domain": "web.internal", "servers": []}}).nics
    (Nic(name='eth0', bridge='olvn1001', mac=None, mtu=1450, address='172.16.0.2/24', \
gateway='172.16.0.1'),)
    """
    nics = []
    for nic in record.get("nics", []):
        ipv4 = nic.get("ipv4") or {}
        nics.append(
            Nic(
                name=nic["name"],
                bridge=nic["bridge"],
                mac=nic.get("mac"),
                mtu=nic.get("mtu"),
                address=ipv4.get("address"),
                gateway=ipv4.get("gateway"),
            )
        )
    dns = record.get("dns") or {}
    return ContainerSpec(
        vmid=vmid,
        node=str(record["node"]),
        hostname=str(record["hostname"]),
        nics=tuple(nics),
        nameservers=tuple(dns.get("servers") or ()),
        domain=dns.get("domain"),
        forwarding=forwarding,
    )


def vnet_of(bridge: Bridge) -> fabric.VnetBridge | None:
    """What an applied VNet makes on a node (None for ``vmbr0`` and zones not emulated).

    >>> vnet_of(Bridge("olvn1001", "olvz1001", "vxlan", 1001, 1450, ("192.0.2.11",))).vni
    1001
    >>> vnet_of(Bridge("vmbr0")) is None
    True
    """
    if bridge.zone_type not in ("vxlan", "evpn") or bridge.tag is None or bridge.mtu is None:
        return None
    return fabric.VnetBridge(
        name=bridge.name,
        vni=int(bridge.tag),
        mtu=int(bridge.mtu),
        peers=tuple(IPAddress(peer) for peer in bridge.peers),
        evpn=bridge.zone_type == "evpn",
        zone=bridge.zone,
        gateways=tuple(IPNetwork(g) for g in bridge.gateways) if bridge.zone_type == "evpn" else (),
        snat=tuple(IPNetwork(cidr) for cidr in bridge.snat),
        vrf_vni=bridge.vrf_tag,
        primary_exit=bridge.primary_exit_node,
    )


def topology_of(state: TwinState) -> Topology:
    """The twin's expectations: its stack file's topology (read again when it changes)."""
    path = Path(state.stack_file)
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _TOPOLOGIES:
        _TOPOLOGIES.clear()
        _TOPOLOGIES[key] = build_topology(load_plan(path))
    return _TOPOLOGIES[key]


@contextlib.contextmanager
def twin_errors(what: str) -> Iterator[None]:
    """A failure of the twin, as the emulated Proxmox reports it."""
    try:
        yield
    except (TwinError, OrbitLabError, OSError) as error:
        raise ProxmoxError(f"{what}: the twin failed: {error}") from None


class TwinBackend:
    """Nodes as twin nodes, VNets as bridges and VXLANs, containers as namespaces."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- state -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def state(self) -> Iterator[TwinState]:
        """The twin's state under its lock, saved afterwards; it must be this cluster's."""
        try:
            with changing_state() as state:
                self._check(state)
                yield state
        except TwinError as error:
            raise ProxmoxError(str(error)) from None

    def snapshot(self) -> TwinState:
        with state_lock():
            state = load_state()
        if state is None:
            raise ProxmoxError(self._gone())
        self._check(state)
        return state

    def _check(self, state: TwinState) -> None:
        if state.kind != "cluster" or state.emulate_dir != str(self.store.root):
            raise ProxmoxError(
                f"the twin on this machine is not this emulated cluster's (it is from "
                f"{state.source}); {self._gone()}"
            )

    def _gone(self) -> str:
        return (
            f"the twin of the emulated cluster in {self.store.root} is gone; run "
            "`orbitlab emulate stop`, then `orbitlab emulate start STACKFILE --twin` again"
        )

    def _context(self, state: TwinState) -> TwinContext:
        with twin_errors("the stack file"):
            return TwinContext(topology_of(state), state)

    # --- nodes -------------------------------------------------------------------------------

    def node_reloaded(self, node: str, bridges: Sequence[Bridge]) -> None:
        vnets = [vnet for vnet in map(vnet_of, bridges) if vnet is not None]
        with self.state() as state, twin_errors(f"reloading the network of node {node}"):
            twin = self._context(state)
            fabric.reload_node(twin.topology, state.workdir, twin.topology.node(node), vnets)
            self._sync_routes(twin)

    def _sync_routes(self, twin: TwinContext) -> None:
        nodes = list(twin.topology.nodes)
        evpn = {
            vnet.name
            for node in nodes
            for vnet in fabric.load_network(twin.state.workdir, node).vnets.values()
            if vnet.evpn
        }
        members = containers.backplane_members(twin.state, evpn)
        fabric.sync_backplane(twin.topology, twin.state.workdir, members, nodes)

    def run_on_node(
        self, node: str, command: str, stdin: str | None, env: Mapping[str, str]
    ) -> Result:
        """A shell in the node's network namespace (``/sys`` showing its links)."""
        workdir = self.store.node_dir(node)
        workdir.mkdir(parents=True, exist_ok=True)
        argv = system.in_netns(f"olt-n.{node}", ["sh", "-c", command])
        return run_command(argv, stdin, workdir, env)

    # --- containers --------------------------------------------------------------------------

    def starts_forwarding(self, node: str) -> bool:
        """Whether a container's namespace starts forwarding on ``node`` (its sysctls)."""
        return starts_forwarding(node_sysctls(self.store.read(), node))

    def container_created(self, node: str, vmid: int, record: Mapping[str, Any]) -> None:
        spec = spec_of(vmid, record, self.starts_forwarding(node))
        with self.state() as state:
            twin = self._context(state)
            placement = containers.claim(state, twin.topology, spec)
            copy = TwinState.from_json(state.to_json())
        ns = placement.ns.name
        local = TwinContext(twin.topology, copy)
        try:
            with twin_errors(f"CT {vmid} ({spec.hostname})"):
                containers.start(local, spec, placement)
        except BaseException:
            containers.stop(local, ns, keep_root=False)
            with self.state() as state:
                state.drop_namespace(ns)
            raise
        with self.state() as state:
            self._adopt(state, local, ns)
            if record.get("status") == "stopped":
                containers.stop(local, ns, keep_root=True)
                self._stopped(state, ns)
            self._sync_routes(self._context(state))

    def _adopt(self, state: TwinState, local: TwinContext, ns: str) -> None:
        """What was started for ``ns`` outside the lock, into the shared state."""
        if ns in local.state.holders:
            state.holders[ns] = local.state.holders[ns]
        known = set(state.processes)
        state.processes += [p for p in local.state.processes_in(ns) if p not in known]

    def _stopped(self, state: TwinState, ns: str) -> None:
        entry = state.containers[ns]
        state.drop_namespace(ns)
        state.containers[ns] = {**entry, "running": False}

    def container_updated(
        self, node: str, vmid: int, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        before = spec_of(vmid, old)
        after = spec_of(vmid, new, self.starts_forwarding(node))
        running = new.get("status") != "stopped"
        snapshot = self.snapshot()
        ns = containers.namespace_of(snapshot, vmid)
        if ns is None:
            raise ProxmoxError(f"CT {vmid}: the twin has no such container")
        was_running = snapshot.containers[ns]["running"]
        local = self._context(snapshot)
        with twin_errors(f"CT {vmid} ({after.hostname})"):
            if was_running and not running:
                containers.stop(local, ns, keep_root=True)
                with self.state() as state:
                    self._stopped(state, ns)
                    state.containers[ns]["spec"] = after.to_json()
            elif running and not was_running:
                self._restart_stopped(ns, after)
            elif running:
                containers.hotplug(local, before, after, ns)
                with self.state() as state:
                    state.containers[ns]["spec"] = after.to_json()
            with self.state() as state:
                self._sync_routes(self._context(state))

    def container_rebooted(
        self, node: str, vmid: int, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """A reboot: the container's namespace and daemons go, then it boots again from its
        own root with what is declared now; connection tracking starts empty."""
        before = spec_of(vmid, old)
        after = spec_of(vmid, new, self.starts_forwarding(node))
        snapshot = self.snapshot()
        ns = containers.namespace_of(snapshot, vmid)
        if ns is None:
            raise ProxmoxError(f"CT {vmid}: the twin has no such container")
        with twin_errors(f"CT {vmid} ({after.hostname})"):
            if snapshot.containers[ns]["running"]:
                local = self._context(snapshot)
                containers.stop(local, ns, keep_root=True)
                # the kernel takes the old namespace's NICs down in the background: its
                # node-side veths go now, before the new ones take their names
                containers.unplug(local, before)
                with self.state() as state:
                    self._stopped(state, ns)
            self._restart_stopped(ns, after)
            with self.state() as state:
                self._sync_routes(self._context(state))

    def _restart_stopped(self, ns: str, spec: ContainerSpec) -> None:
        """A stopped container starts again, from its own root (its disk)."""
        with self.state() as state:
            twin = self._context(state)
            entry = state.containers.pop(ns)
            placement = containers.claim(state, twin.topology, spec)
            if placement.ns.name != ns:
                twin.ns_dir(ns).rename(twin.ns_dir(placement.ns.name))
            state.containers[placement.ns.name] = {**entry, **state.containers[placement.ns.name]}
            copy = TwinState.from_json(state.to_json())
        local = TwinContext(twin.topology, copy)
        containers.start(local, spec, placement)
        with self.state() as state:
            self._adopt(state, local, placement.ns.name)
            containers.record_daemons(
                state, placement.ns.name, containers.daemon_processes(local, placement.ns.name)
            )

    def container_deleted(self, node: str, vmid: int) -> None:
        snapshot = self.snapshot()
        ns = containers.namespace_of(snapshot, vmid)
        if ns is None:
            return
        with twin_errors(f"CT {vmid}"):
            containers.stop(self._context(snapshot), ns, keep_root=False)
        with self.state() as state:
            state.drop_namespace(ns)
            self._sync_routes(self._context(state))

    def exec_in_container(self, node: str, vmid: int, script: str) -> Result:
        """``pct exec <vmid> -- /bin/sh -s``: the script in full, inside the container."""
        snapshot = self.snapshot()
        ns = containers.namespace_of(snapshot, vmid)
        if ns is None or not snapshot.containers[ns]["running"]:
            raise ProxmoxError(f"CT {vmid} not running (the twin has no namespace for it)")
        twin = self._context(snapshot)
        done = containers.run_script(twin, ns, script)
        with self.state() as state:
            containers.record_daemons(state, ns, containers.daemon_processes(twin, ns))
        return Result(done.returncode, done.stdout, done.stderr)


def join_hosts(store: Store, targets: Sequence[str] = ()) -> list[str]:
    """Join declared hosts to their Sector by hand, as VMs outside Pulumi join (docs/joining.md's
    "Joining a Sector"): ``targets`` (``SECTOR/HOST``), or every declared host that has no
    namespace yet (no container became it). Returns the labels joined."""
    backend = TwinBackend(store)
    try:
        with backend.state() as state:
            twin = backend._context(state)
            hosts = _hosts_to_join(twin, targets)
            mtu = twin.topology.plan.backplane.mtu
            for host in hosts:
                with twin_errors(f"joining {host.ns.label}"):
                    containers.join_host(twin, host, mtu)
    except ProxmoxError as error:
        raise EmulateError(str(error)) from None
    _wait_leases(backend, hosts)
    return [host.ns.label for host in hosts]


def _wait_leases(backend: TwinBackend, hosts: list[HostTwin]) -> None:
    """Hosts joined with DHCP have their lease before ``join`` returns (as ``twin up``)."""
    twin = backend._context(backend.snapshot())
    present = set(twin.state.namespaces)
    waiting = []
    for sector in twin.topology.sectors:
        if any(host in sector.hosts for host in hosts):
            waiting += [h for h in dhcp.unbound(twin, sector, present) if h in hosts]
    if waiting:
        names = ", ".join(host.ns.label for host in waiting)
        raise EmulateError(
            f"joined, but no DHCP lease yet for {names}: is its Sector DNS provisioned "
            "(`pulumi up`)? See `orbitlab twin status`"
        )


def _hosts_to_join(twin: TwinContext, targets: Sequence[str]) -> list[HostTwin]:
    present = set(twin.state.namespaces)
    if not targets:
        return containers.missing_hosts(twin, present)
    hosts = []
    for target in targets:
        with twin_errors(target):
            ns = twin.topology.find(target)
        host = next(
            (h for s in twin.topology.sectors for h in s.hosts if h.ns.name == ns.name), None
        )
        if host is None:
            raise ProxmoxError(f"{target}: not a declared host (appliances come from `pulumi up`)")
        if ns.name in present:
            raise ProxmoxError(f"{target}: already there (a container or a joined host)")
        hosts.append(host)
    return hosts
