"""Containers of the emulated cluster as twin namespaces: exactly what was declared.

A ``ContainerLegacy`` the engine creates on the emulated cluster becomes a namespace on its
node (:class:`ContainerSpec` is what was declared for it):

- its name is found in the twin's topology (the stack file: what is expected). An
  appliance's hostname (``olvn<tag>-router|dns|lb``) names its Sector and role; a declared
  host's name names the host (in several Sectors: the one whose VNet its first NIC is on,
  else the one holding its address). It becomes that namespace (``olt-s.web.gateway``), so
  ``twin test`` probes it. Anything else stays a namespace of its own (``olt-c.<vmid>``);
- every declared NIC is a veth from the node's bridge (``veth<vmid>i<n>``, as Proxmox names
  it) to ``ethN`` inside, with the declared MAC (else a Proxmox-like ``bc:24:11:…``) and
  MTU (else the bridge's), its declared IPv4 address and gateway, or a DHCP client for
  ``ip=dhcp`` (on ``eth0``); its resolvers and search domain in ``/etc/resolv.conf``
  (none declared: the node's). A gateway that cannot be set (not on the NIC's network) is
  reported in the container's log, as a container still starts with it;
- its root: ``/etc`` and ``/var`` are overlays whose upper directories are the container's
  own (``root/etc``, ``root/var``: the host's files stay untouched), ``/run`` is its own
  (``root/run``, with the twin's directory bound at its place), and the OS stand-ins
  (:mod:`orbitlab_lab.twin.standins`) lie over ``/usr/local/sbin``;
- a plain host (not an appliance) runs the twin's echo service on the ports the stack
  expects of it (8080 for one the stack does not know), standing in for its apps;
- a container that starts boots: ``openrc boot`` then ``openrc default`` run what its own
  ``/etc/runlevels`` enable (nothing, the first time: provisioning enables it).

``pct exec <vmid> -- /bin/sh -s`` runs the script inside with the standard PATH, so it
finds the stand-ins: the provisioning runs in full. Daemons the stand-ins start write pid
files where :data:`~orbitlab_lab.twin.standins.PIDFILES` says; :func:`daemon_processes` reads
them so the twin's state records them.

    >>> spec = ContainerSpec(10011, "pve2", "olvn1001-router", (
    ...     Nic("eth0", "olvn1001", "02:4f:4c:10:03:e9", 1450, "172.16.0.1/24"),))
    >>> from orbitlab.stack import load_plan
    >>> from orbitlab_lab.twin.topology import build_topology
    >>> topology = build_topology(load_plan("stacks/Pulumi.example.yaml"))
    >>> place(topology, spec, set()).ns.name
    'olt-s.web.gateway'
    >>> place(topology, spec, {"olt-s.web.gateway"}).ns.name
    'olt-c.10011'
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from netaddr import IPAddress, IPNetwork

from orbitlab_lab.twin import TwinError, appliances, dhcp, fabric, guards, network, system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.standins import (
    PIDFILES,
    STANDARD_PATH,
    write_init_scripts,
    write_standins,
)
from orbitlab_lab.twin.state import TwinState, twin_dir
from orbitlab_lab.twin.topology import (
    CONTAINER_PREFIX,
    HOST_PORT,
    HostTwin,
    Namespace,
    SectorTwin,
    Topology,
)

DHCP = "dhcp"
#: Proxmox's prefix of the MACs it picks (a NIC declared without one).
PROXMOX_OUI = "bc:24:11"
#: How long a script may run in a container (the emulator's own bound of a node command).
SCRIPT_TIMEOUT_S = 300


@dataclass(frozen=True)
class Nic:
    """A declared NIC: bridge, MAC, MTU, IPv4 (``A.B.C.D/P``, ``dhcp`` or none), gateway."""

    name: str
    bridge: str
    mac: str | None = None
    mtu: int | None = None
    address: str | None = None
    gateway: str | None = None

    @property
    def static(self) -> IPNetwork | None:
        """The declared static address with its prefix, if any."""
        if self.address in (None, "", DHCP):
            return None
        return IPNetwork(str(self.address))


@dataclass(frozen=True)
class ContainerSpec:
    """What was declared for a container: its node, hostname, NICs and resolvers."""

    vmid: int
    node: str
    hostname: str
    nics: tuple[Nic, ...]
    nameservers: tuple[str, ...] = ()
    domain: str | None = None
    #: Whether its network namespace starts forwarding, as its node gives a new one (the
    #: node's ``ip_forward`` unless ``net.core.devconf_inherit_init_net`` is 2).
    forwarding: bool = False

    def veth(self, index: int) -> str:
        """The node side of NIC ``index``, as Proxmox names it (``veth10011i0``)."""
        return f"veth{self.vmid}i{index}"

    def mac(self, index: int) -> str:
        """The NIC's MAC: declared, else one like Proxmox's (stable for the VMID)."""
        declared = self.nics[index].mac
        if declared:
            return declared.lower()
        digest = hashlib.sha256(f"{self.vmid}:{index}".encode()).hexdigest()
        return f"{PROXMOX_OUI}:{digest[0:2]}:{digest[2:4]}:{digest[4:6]}"

    @property
    def bridges(self) -> tuple[str, ...]:
        return tuple(nic.bridge for nic in self.nics)

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        return tuple(nic.static.ip for nic in self.nics if nic.static is not None)

    @property
    def leases(self) -> bool:
        """Whether its first NIC takes its address by DHCP."""
        return bool(self.nics) and self.nics[0].address == DHCP

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContainerSpec:
        return cls(
            vmid=int(data["vmid"]),
            node=str(data["node"]),
            hostname=str(data["hostname"]),
            nics=tuple(Nic(**nic) for nic in data["nics"]),
            nameservers=tuple(data.get("nameservers") or ()),
            domain=data.get("domain"),
            forwarding=bool(data.get("forwarding", False)),
        )


@dataclass(frozen=True)
class Placement:
    """Where a container stands in the twin: its namespace and, if the stack expects it,
    its Sector and role (an appliance) or the declared host it is."""

    ns: Namespace
    sector: SectorTwin | None = None
    role: str | None = None
    host: HostTwin | None = None

    @property
    def expected(self) -> bool:
        return self.sector is not None


# --- naming (pure) ---------------------------------------------------------------------------


def place(topology: Topology, spec: ContainerSpec, taken: set[str]) -> Placement:
    """The namespace a container becomes: the appliance or declared host the stack expects
    by its hostname (not yet ``taken``), else one of its own (``olt-c.<vmid>``)."""
    for sector in topology.sectors:
        for role, ns in sector.appliances().items():
            if ns.hostname == spec.hostname and ns.name not in taken:
                return Placement(ns, sector, role)
    candidates = [
        (sector, host)
        for sector in topology.sectors
        for host in sector.hosts
        if host.name == spec.hostname and host.ns.name not in taken
    ]
    if len(candidates) > 1:
        candidates = _narrowed(candidates, spec)
    if candidates:
        sector, host = candidates[0]
        here = replace(host, node=spec.node, port=spec.veth(0))
        return Placement(host.ns, sector, None, here)
    return Placement(unexpected_namespace(spec), None, None, None)


def _narrowed(
    candidates: list[tuple[SectorTwin, HostTwin]], spec: ContainerSpec
) -> list[tuple[SectorTwin, HostTwin]]:
    """Several Sectors declare the hostname: the one whose VNet the first NIC is on, else
    the one whose host has one of the container's addresses."""
    first = spec.bridges[:1]
    on_vnet = [(s, h) for s, h in candidates if s.bridge in first]
    if on_vnet:
        return on_vnet
    by_address = [(s, h) for s, h in candidates if h.address in spec.addresses]
    return by_address or candidates


def unexpected_namespace(spec: ContainerSpec) -> Namespace:
    return Namespace(f"{CONTAINER_PREFIX}{spec.vmid}", f"ct:{spec.vmid}", spec.hostname)


def host_of(placement: Placement, spec: ContainerSpec) -> HostTwin:
    """The host a plain container is to the twin's helpers (echo service, DHCP client)."""
    if placement.host is not None:
        return placement.host
    return HostTwin(
        name=spec.hostname,
        address=None,
        subnet=None,
        node=spec.node,
        port=spec.veth(0),
        ns=placement.ns,
        tcp_ports=(HOST_PORT,),
        udp_ports=(),
        dhcp=spec.leases,
    )


def resolv_conf(spec: ContainerSpec, fallback: IPAddress | None) -> str:
    """The container's ``/etc/resolv.conf``: its declared resolvers and domain, else the
    node's resolver.

    >>> print(resolv_conf(ContainerSpec(1, "n", "h", (), ("172.16.0.2",), "web.internal"),
    ...                   None), end="")
    search web.internal
    nameserver 172.16.0.2
    """
    lines = [f"search {spec.domain}"] if spec.domain else []
    servers = list(spec.nameservers) or ([str(fallback)] if fallback is not None else [])
    lines += [f"nameserver {server}" for server in servers]
    return "".join(f"{line}\n" for line in lines)


def holder_script(hostname: str, root: Path, work: Path, bin_dir: Path, twin_root: Path) -> str:
    """The holder of a container: its hostname, writable overlays of ``/etc`` and ``/var``
    (the container's own upper directories), its own ``/run`` with the twin's directory at
    its place, the OS stand-ins over ``/usr/local/sbin``; then it sleeps.

    >>> print(holder_script("r", Path("/t/root"), Path("/t/work"), Path("/t/bin"),
    ...                     Path("/run/orbitlab-twin")))
    set -e
    hostname r
    mount -t overlay olt-etc -o lowerdir=/etc,upperdir=/t/root/etc,workdir=/t/work/etc /etc
    mount -t overlay olt-var -o lowerdir=/var,upperdir=/t/root/var,workdir=/t/work/var /var
    mount -t overlay olt-sbin -o lowerdir=/t/bin:/usr/local/sbin /usr/local/sbin
    mkdir -p /t/root/run/orbitlab-twin
    mount --bind /run/orbitlab-twin /t/root/run/orbitlab-twin
    mount --rbind /t/root/run /run
    echo ready
    exec sleep infinity
    """
    q = shlex.quote
    lines = ["set -e", f"hostname {q(hostname)}"]
    for top in ("etc", "var"):
        options = f"lowerdir=/{top},upperdir={root / top},workdir={work / top}"
        lines.append(f"mount -t overlay olt-{top} -o {q(options)} /{top}")
    lines.append(
        f"mount -t overlay olt-sbin -o {q(f'lowerdir={bin_dir}:/usr/local/sbin')} /usr/local/sbin"
    )
    if twin_root.is_relative_to("/run"):
        inside = root / "run" / twin_root.relative_to("/run")
        lines += [
            f"mkdir -p {q(str(inside))}",
            f"mount --bind {q(str(twin_root))} {q(str(inside))}",
        ]
    lines += [f"mount --rbind {q(str(root / 'run'))} /run", "echo ready", "exec sleep infinity"]
    return "\n".join(lines)


def link_commands(
    spec: ContainerSpec, index: int, ns: str, mtu: int
) -> tuple[list[str], list[str]]:
    """``ip`` commands plugging NIC ``index`` in: on the node (the veth into the bridge) and
    inside the container (MAC, MTU, up, its static address).

    >>> spec = ContainerSpec(10012, "pve2", "d", (Nic("eth0", "olvn1001", None, 1450,
    ...                                               "172.16.0.2/24", "172.16.0.1"),))
    >>> node, inside = link_commands(spec, 0, "olt-s.web.dns", 1450)
    >>> node
    ['link add veth10012i0 mtu 1450 type veth peer name eth0 mtu 1450 netns olt-s.web.dns', \
'link set veth10012i0 master olvn1001 up']
    >>> inside[-1]
    'addr add 172.16.0.2/24 dev eth0'
    """
    nic = spec.nics[index]
    veth = spec.veth(index)
    node = [
        f"link add {veth} mtu {mtu} type veth peer name {nic.name} mtu {mtu} netns {ns}",
        f"link set {veth} master {nic.bridge} up",
    ]
    inside = [f"link set {nic.name} address {spec.mac(index)}", f"link set {nic.name} up"]
    if nic.static is not None:
        inside.append(f"addr add {nic.static} dev {nic.name}")
    return node, inside


# --- paths -----------------------------------------------------------------------------------


def bin_dir(twin: TwinContext, ns: str) -> Path:
    return twin.ns_dir(ns) / "bin"


def work_dir(twin: TwinContext, ns: str) -> Path:
    return twin.ns_dir(ns) / "work"


def spec_of(state: TwinState, ns: str) -> ContainerSpec:
    return ContainerSpec.from_json(state.containers[ns]["spec"])


def namespace_of(state: TwinState, vmid: int) -> str | None:
    """The namespace of container ``vmid`` (None if the twin has no such container)."""
    for ns, entry in state.containers.items():
        if int(entry["spec"]["vmid"]) == vmid:
            return ns
    return None


def find_target(twin: TwinContext, target: str) -> str:
    """The namespace of an ``exec`` target: ``ct:VMID`` (a container of the emulated
    cluster) or whatever :meth:`~orbitlab_lab.twin.topology.Topology.find` resolves."""
    kind, colon, rest = target.partition(":")
    if not (colon and kind == "ct"):
        return twin.topology.find(target).name
    ns = namespace_of(twin.state, int(rest)) if rest.isdigit() else None
    if ns is None or not twin.state.containers[ns]["running"]:
        vmids = sorted(
            int(e["spec"]["vmid"]) for e in twin.state.containers.values() if e["running"]
        )
        known = ", ".join(map(str, vmids)) or "none"
        raise TwinError(f"no running container {rest!r} in the twin; containers: {known}")
    return ns


# --- bringing a container up and down (system) -------------------------------------------


def claim(state: TwinState, topology: Topology, spec: ContainerSpec) -> Placement:
    """Choose the container's namespace and record it (under the state lock: two containers
    never take one name)."""
    placement = place(topology, spec, set(state.namespaces))
    entry = {
        "spec": spec.to_json(),
        "running": True,
        "label": placement.ns.label,
        "expected": placement.expected,
    }
    state.containers[placement.ns.name] = entry
    state.add_namespace(placement.ns.name)
    return placement


def start(twin: TwinContext, spec: ContainerSpec, placement: Placement) -> None:
    """Bring a claimed container up: namespace (forwarding as its node starts one), root,
    holder, NICs, addresses, its plain host's services, then boot what its own runlevels
    enable."""
    ns = placement.ns.name
    system.run(["ip", "netns", "add", ns])
    _prepare_root(twin, spec, placement)
    forwarding = {"net.ipv4.ip_forward": int(spec.forwarding)}
    system.sysctl(ns, {**forwarding, **network.NO_IPV6, **network.EVERY_ICMP})
    script = holder_script(
        spec.hostname,
        twin.root_dir(ns),
        work_dir(twin, ns),
        bin_dir(twin, ns),
        twin_dir().resolve(),
    )
    appliances.spawn_holders(twin, [(placement.ns, script)])
    plug(twin, spec, ns)
    if placement.role is None:
        host = host_of(placement, spec)
        appliances.start_echo(twin, ns, spec.hostname, host.tcp_ports, host.udp_ports)
        if spec.leases:
            dhcp.start_client(twin, host, spec.hostname)
    boot(twin, ns)


def _prepare_root(twin: TwinContext, spec: ContainerSpec, placement: Placement) -> None:
    ns = placement.ns.name
    root = twin.root_dir(ns)
    for top in ("etc", "var", "run"):
        (root / top).mkdir(parents=True, exist_ok=True)
    for top in ("etc", "var"):
        (work_dir(twin, ns) / top).mkdir(parents=True, exist_ok=True)
    twin.run_dir(ns).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "hostname").write_text(f"{spec.hostname}\n")
    fallback = twin.topology.node(spec.node).ns.resolver
    (root / "etc" / "resolv.conf").write_text(resolv_conf(spec, fallback))
    write_standins(bin_dir(twin, ns), twin.run_dir(ns), root)
    write_init_scripts(root / "etc")


def bridge_mtu(node_ns: str, bridge: str) -> int:
    """A bridge's MTU on a node (a NIC without a declared MTU takes it, as LXC does)."""
    listing = system.run(["ip", "-n", node_ns, "-j", "link", "show", "dev", bridge]).stdout
    return int(json.loads(listing)[0]["mtu"])


def plug(twin: TwinContext, spec: ContainerSpec, ns: str) -> None:
    """Plug every NIC in and configure it as declared; then the gateways (best effort)."""
    node_ns = twin.topology.node(spec.node).ns.name
    node_side, inside = [], ["link set lo up"]
    for index, nic in enumerate(spec.nics):
        mtu = nic.mtu or bridge_mtu(node_ns, nic.bridge)
        here, there = link_commands(spec, index, ns, mtu)
        node_side += here
        inside += there
    system.ip_batch(node_ns, node_side)
    system.ip_batch(ns, inside)
    guards.refresh(node_ns)
    set_gateways(twin, spec, ns)


def set_gateways(twin: TwinContext, spec: ContainerSpec, ns: str) -> None:
    """The declared gateways as default routes. One that cannot be set is logged in the
    container's ``network.log`` (the container starts anyway, as on Proxmox)."""
    for nic in spec.nics:
        if nic.gateway and nic.static is not None:
            argv = ["ip", "-n", ns, "route", "replace", "default", "via", nic.gateway]
            done = system.run([*argv, "dev", nic.name], check=False)
            if done.returncode != 0:
                with (twin.run_dir(ns) / "network.log").open("a") as log:
                    log.write(f"{nic.name}: gateway {nic.gateway}: {done.stderr.strip()}\n")


def boot(twin: TwinContext, ns: str) -> subprocess.CompletedProcess[str]:
    """What the container runs when it starts: a fresh ``/run``, then its runlevels."""
    script = "rm -rf /run/openrc /run/orbitlab-pending; openrc boot; openrc default"
    done = twin.run(ns, [*_clean_env(), "sh", "-c", script], check=False, timeout=120)
    with (twin.run_dir(ns) / "boot.log").open("a") as log:
        log.write(done.stdout + done.stderr)
    return done


def _clean_env() -> list[str]:
    return ["env", "-i", f"PATH={STANDARD_PATH}", "HOME=/root", "LC_ALL=C"]


def run_script(twin: TwinContext, ns: str, script: str) -> subprocess.CompletedProcess[str]:
    """``pct exec <vmid> -- /bin/sh -s``: the script on stdin, inside the container."""
    argv = twin.command(ns, [*_clean_env(), "sh", "-s"])
    try:
        return subprocess.run(
            argv,
            input=script,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {SCRIPT_TIMEOUT_S} s")


def daemon_processes(twin: TwinContext, ns: str) -> list[system.Proc]:
    """The daemons the stand-ins started in ``ns`` and that run now (from their pid files)."""
    found = []
    for what, relative in PIDFILES.items():
        path = twin.run_dir(ns) / relative
        try:
            pid = int(path.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        begun = system.start_time(pid)
        if begun is not None and what.encode() in cmdline:
            found.append(system.Proc(pid, begun, ns, what))
    return found


def record_daemons(state: TwinState, ns: str, daemons: Iterable[system.Proc]) -> None:
    """Replace the recorded daemons of ``ns`` by those running now."""
    kept = [p for p in state.processes if not (p.ns == ns and p.what in PIDFILES)]
    state.processes = [*kept, *daemons]


def stop(twin: TwinContext, ns: str, keep_root: bool) -> None:
    """Stop everything in the container and remove its namespace (a stopped container keeps
    its root: its disk)."""
    holder = twin.state.holders.get(ns)
    system.stop_processes([*twin.state.processes_in(ns), *([holder] if holder else [])])
    present = set(system.netns_list())
    if ns in present:
        system.kill_pids(system.netns_pids(ns))
        system.run(["ip", "netns", "del", ns], check=False)
    directory = twin.ns_dir(ns)
    if keep_root:
        for entry in directory.iterdir() if directory.exists() else ():
            if entry.name != "root":
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
    else:
        shutil.rmtree(directory, ignore_errors=True)


def unplug(twin: TwinContext, spec: ContainerSpec) -> None:
    """Remove the node side of the container's NICs (gone with its namespace anyway)."""
    node_ns = twin.topology.node(spec.node).ns.name
    for index in range(len(spec.nics)):
        system.run(["ip", "-n", node_ns, "link", "del", spec.veth(index)], check=False)


def backplane_members(state: TwinState, evpn_bridges: set[str]) -> list[fabric.Member]:
    """Every running container's NICs on an EVPN VNet (their addresses, nodes, ports)."""
    members = []
    for entry in state.containers.values():
        if not entry["running"]:
            continue
        spec = ContainerSpec.from_json(entry["spec"])
        for index, nic in enumerate(spec.nics):
            if nic.bridge in evpn_bridges:
                address = nic.static.ip if nic.static is not None else None
                members.append(fabric.Member(address, spec.node, spec.veth(index)))
    return members


# --- a change of a running container: hotplug, as Proxmox does ---------------------------


def hotplug(twin: TwinContext, old: ContainerSpec, new: ContainerSpec, ns: str) -> None:
    """Apply a changed declaration to a running container without restarting it: NICs
    moved to another bridge, MAC, MTU, addresses and gateways changed, NICs added or
    removed, resolvers rewritten (what Proxmox hot-plugs into a running LXC)."""
    node_ns = twin.topology.node(new.node).ns.name
    for index in range(max(len(old.nics), len(new.nics))):
        before = old.nics[index] if index < len(old.nics) else None
        after = new.nics[index] if index < len(new.nics) else None
        if before == after:
            continue
        if after is None:
            system.run(["ip", "-n", node_ns, "link", "del", new.veth(index)], check=False)
        elif before is None:
            mtu = after.mtu or bridge_mtu(node_ns, after.bridge)
            here, there = link_commands(new, index, ns, mtu)
            system.ip_batch(node_ns, here)
            system.ip_batch(ns, there)
        else:
            _change_nic(new, index, before, after, node_ns, ns)
    set_gateways(twin, new, ns)
    if (old.nameservers, old.domain) != (new.nameservers, new.domain):
        fallback = twin.topology.node(new.node).ns.resolver
        twin.run(ns, ["sh", "-c", "cat > /etc/resolv.conf"], stdin=resolv_conf(new, fallback))


def _change_nic(
    spec: ContainerSpec, index: int, before: Nic, after: Nic, node_ns: str, ns: str
) -> None:
    veth = spec.veth(index)
    node_side, inside = [], []
    if before.bridge != after.bridge:
        node_side.append(f"link set {veth} master {after.bridge}")
    if before.mtu != after.mtu and after.mtu:
        node_side.append(f"link set {veth} mtu {after.mtu}")
        inside.append(f"link set {after.name} mtu {after.mtu}")
    if before.mac != after.mac:
        inside.append(f"link set {after.name} address {spec.mac(index)}")
    if before.static != after.static:
        if before.static is not None:
            inside.append(f"addr del {before.static} dev {before.name}")
        if after.static is not None:
            inside.append(f"addr add {after.static} dev {after.name}")
    system.ip_batch(node_ns, node_side)
    system.ip_batch(ns, inside)


# --- restarting an appliance container (twin test's failover and DHCP restart) ------------


def restart(twin: TwinContext, ns: str) -> None:
    """Start a container's network and services again, as its start would: links up, its
    declared addresses and gateways, a fresh ``/run``, its runlevels; the daemons recorded."""
    spec = spec_of(twin.state, ns)
    links = [f"link set {nic.name} up" for nic in spec.nics]
    addresses = [f"addr replace {nic.static} dev {nic.name}" for nic in spec.nics if nic.static]
    system.ip_batch(ns, [*links, *addresses])
    set_gateways(twin, spec, ns)
    done = boot(twin, ns)
    if done.returncode != 0:
        raise TwinError(f"{ns}: its services did not start again: {done.stderr.strip()[-300:]}")
    record_daemons(twin.state, ns, daemon_processes(twin, ns))
    twin.save()


# --- hosts joined by hand (VMs outside Pulumi) ---------------------------------------------


def join_host(twin: TwinContext, host: HostTwin, mtu: int) -> None:
    """A declared host no container provides, joined to its Sector by hand as docs/joining.md
    says (the twin's own host, as ``twin up`` makes it): its VNet's bridge must exist on
    its node."""
    sector = next(s for s in twin.topology.sectors if host in s.hosts)
    node_ns = twin.topology.node(host.node).ns.name
    present = system.run(["ip", "-n", node_ns, "link", "show", "dev", sector.bridge], check=False)
    if present.returncode != 0:
        raise TwinError(
            f"{host.ns.label}: the VNet {sector.bridge} is not on node {host.node} (yet): "
            "`pulumi up` creates and applies it first"
        )
    ns = host.ns.name
    system.run(["ip", "netns", "add", ns])
    twin.state.add_namespace(ns)
    twin.run_dir(ns).mkdir(parents=True, exist_ok=True)
    system.sysctl(ns, {**network.NOT_ROUTING, **network.NO_IPV6})
    appliances.start_holders(twin, [host.ns], {})
    system.ip_batch(
        node_ns,
        [
            f"link add {host.port} mtu {mtu} type veth peer name eth0 mtu {mtu} netns {ns}",
            f"link set {host.port} master {sector.bridge} up",
        ],
    )
    guards.refresh(node_ns)
    system.ip_batch(ns, network.host_commands(host, mtu))
    appliances.start_host(twin, host)
    if host.dhcp:
        dhcp.start_client(twin, host)
    twin.save()


def missing_hosts(twin: TwinContext, present: set[str]) -> list[HostTwin]:
    """Declared hosts that have no namespace (no container and not joined)."""
    return [
        host
        for sector in twin.topology.sectors
        for host in sector.hosts
        if host.ns.name not in present
    ]
