"""Bring-up and complete cleanup of the twin.

``up`` builds in steps and prints progress; if a step fails or the user interrupts
(Ctrl-C, SIGTERM, SIGHUP), everything built so far is removed before the error is shown.
``down`` stops every recorded process, removes every namespace of the twin (those in the
state file and any left with the twin's name prefix) and deletes the working files::

    orbitlab twin up stacks/Pulumi.example.yaml
    orbitlab twin down
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import TypeVar

from orbitlab.stack import load_plan
from orbitlab_lab.twin import TwinError, appliances, dhcp, fabric, network, system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.state import TwinState, load_state, lock_path, state_path, twin_dir
from orbitlab_lab.twin.topology import (
    GUI_PORT,
    INTERNET_HOST,
    INTERNET_NAME,
    OUR_PREFIXES,
    SERVICE_PORT,
    WILDCARD_ANSWER,
    SectorTwin,
    Topology,
    build_topology,
)

Say = Callable[[str], None]
READY_TIMEOUT_S = 15
PARALLEL = 4
T = TypeVar("T")
R = TypeVar("R")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    del frame
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGHUP interrupt like Ctrl-C, so cleanup runs for them too."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """Cleanup runs to the end: Ctrl-C and SIGTERM wait until it is done."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def our_namespaces() -> list[str]:
    """Namespaces on the machine that carry the twin's name prefixes."""
    return [name for name in system.netns_list() if name.startswith(OUR_PREFIXES)]


def load_topology(state: TwinState) -> Topology:
    return build_topology(load_plan(str(state.stack_file)))


def context_of(state: TwinState, say: Say | None = None) -> TwinContext:
    twin = TwinContext(load_topology(state), state)
    if say is not None:
        twin.say = say
    return twin


class Steps:
    """Numbered progress lines with timings: ``[2/8] namespaces: 14 created (0.05s)``."""

    def __init__(self, say: Say, total: int) -> None:
        self.say = say
        self.total = total
        self.done = 0

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[list[str]]:
        self.done += 1
        began = time.monotonic()
        notes: list[str] = []
        yield notes
        detail = f": {', '.join(notes)}" if notes else ""
        elapsed = time.monotonic() - began
        self.say(f"[{self.done}/{self.total}] {title}{detail} ({elapsed:.2f}s)")


def each(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``work`` on every item, a few at a time (mostly waiting on commands); the first
    error is raised once the running ones finished.

    >>> each(lambda n: n * 2, [1, 2, 3])
    [2, 4, 6]
    """
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(work, items))


def _check_can_start(stack_file: str) -> Topology:
    """Everything that can refuse ``up`` before anything is created."""
    system.preflight(system.CORE_TOOLS)
    existing = load_state()
    if existing is not None:
        raise TwinError(
            f"a twin is already up (from {existing.source}); run `orbitlab twin down` first"
        )
    leftovers = our_namespaces()
    if leftovers:
        raise TwinError(
            f"namespaces of an earlier twin remain ({', '.join(leftovers[:3])}...); "
            "run `orbitlab twin down` first"
        )
    return build_topology(load_plan(stack_file))


def _create_state(stack_file: str) -> TwinState:
    """The state file and working directory, with a copy of the stack file."""
    workdir = twin_dir() / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(stack_file).resolve()
    copy = workdir / source.name
    shutil.copyfile(source, copy)
    state = TwinState(workdir=workdir, stack_file=copy, source=str(source))
    state.save()
    return state


def _build(twin: TwinContext) -> None:
    topology, state = twin.topology, twin.state
    steps = Steps(twin.say, 9)
    with steps.step("namespaces") as notes:
        for name in network.create_namespaces(topology):
            state.add_namespace(name)
            twin.run_dir(name).mkdir(parents=True, exist_ok=True)
        twin.save()
        network.set_sysctls(topology)
        notes.append(f"{len(state.namespaces)} created")
    with steps.step("appliance roots from the provisioning scripts (--root)") as notes:
        files = sum(each(lambda sector: appliances.materialize(twin, sector), topology.sectors))
        notes.append(f"{files} files")
    with steps.step("mount namespaces (appliance /etc and state, private resolv.conf)"):
        roots = {
            ns: dirs
            for s in topology.sectors
            for ns, dirs in appliances.state_dirs(twin, s).items()
        }
        appliances.start_holders(twin, list(topology.namespaces()), roots)
    with steps.step("external side (home router, LAN client, resolver, internet)"):
        network.build_external(topology)
    with steps.step("nodes (Backplane VNI 100, L3 VNI, SNAT, Sector VXLANs)") as notes:
        network.build_nodes(topology)
        notes.append(f"{len(topology.nodes)} nodes, {len(topology.sectors)} Sector VNets")
    with steps.step("Sector links and addresses"):
        network.build_sectors(topology)
    with steps.step("Sector guards on every node (DHCP servers, IPv6 routers)"):
        network.load_guards(topology)
    with steps.step("daemons (FRR, nftables, CoreDNS, dnsmasq, HAProxy, DHCP clients)") as notes:
        _start_services(twin)
        clients = sum(len(sector.dhcp_clients) for sector in topology.sectors)
        notes.append(f"{len(state.processes)} processes, DHCP leases: {clients}")
    with steps.step("waiting until every Sector DNS answers"):
        _wait_ready(twin)
    state.ready = True
    twin.save()


def _start_services(twin: TwinContext) -> None:
    """Start every daemon and service, in an order where each finds what it needs: the
    services first (so the LB's first health checks succeed), then gateways and DNS (with
    the DHCP server), the DHCP clients once the gateways route (a lease in another subnet
    than the DNS's is renewed through the gateway), and the load balancers once every host
    has its address (their backends in other subnets, or reserved by DHCP)."""
    topology = twin.topology
    ready = _start_external_services(twin)
    for sector in topology.sectors:
        for host in sector.hosts:
            ready.append(appliances.start_host(twin, host))

    def start_routing(sector: SectorTwin) -> None:
        appliances.start_gateway(twin, sector)
        appliances.start_dns(twin, sector)

    each(start_routing, topology.sectors)
    twin.save()
    for sector in topology.sectors:
        system.wait_until(
            f"{sector.gateway.label} to have its addresses and default route (FRR)",
            lambda s=sector: appliances.gateway_routed(twin, s),
            READY_TIMEOUT_S,
        )
    clients = [host for sector in topology.sectors for host in sector.dhcp_clients]
    for host in clients:
        dhcp.start_client(twin, host)
    twin.save()
    for path in ready:
        system.wait_until(f"the service behind {path}", path.exists, READY_TIMEOUT_S)
    for sector in topology.sectors:
        for host in sector.dhcp_clients:
            dhcp.wait_bound(twin, host, timeout=dhcp.lease_budget(sector))
    each(lambda sector: appliances.start_lb(twin, sector), topology.sectors)
    twin.save()


def _start_external_services(twin: TwinContext) -> list[Path]:
    """The upstream resolver, and the echo services of the internet, the home LAN client,
    the package mirror and every node's GUI port; returns the files each writes once up."""
    topology = twin.topology
    ext = topology.external
    _start_resolver(twin)
    ready = [
        appliances.start_echo(twin, ext.inet.name, "internet", (SERVICE_PORT,)),
        appliances.start_echo(twin, ext.client.name, "home-client", (SERVICE_PORT,)),
    ]
    if ext.mirror is not None:
        ready.append(appliances.start_echo(twin, ext.resolver.name, "mirror", (ext.mirror[1],)))
    ready += [appliances.start_echo(twin, n.ns.name, n.name, (GUI_PORT,)) for n in topology.nodes]
    return ready


def resolver_corefile(topology: Topology) -> str:
    """The upstream resolver stand-in: ``internet.test`` and a wildcard answer for any other
    name, so a name that should have stayed inside a Sector is seen if it is forwarded."""
    binds = " ".join(str(a) for a in topology.external.resolver_addresses)

    def server(zone: str, answer: str) -> str:
        return (
            f"{zone} {{\n\tbind {binds}\n\ttemplate IN A {{\n"
            f'\t\tanswer "{{{{ .Name }}}} 60 IN A {answer}"\n\t}}\n}}\n'
        )

    return server(INTERNET_NAME, str(INTERNET_HOST)) + server(".", str(WILDCARD_ANSWER))


def _start_resolver(twin: TwinContext) -> None:
    ns = twin.topology.external.resolver.name
    corefile = twin.ns_dir(ns) / "Corefile"
    corefile.write_text(resolver_corefile(twin.topology))
    twin.start(ns, ["coredns", "-conf", str(corefile)], "coredns")


def _wait_ready(twin: TwinContext) -> None:
    for sector in twin.topology.sectors:
        system.wait_until(
            f"{sector.dns.label} to answer (CoreDNS)",
            lambda s=sector: appliances.dns_answers(twin, s),
            READY_TIMEOUT_S,
        )
        system.wait_until(
            f"{sector.dns.label} to serve DHCP (dnsmasq)",
            lambda s=sector: appliances.dhcp_serves(twin, s),
            READY_TIMEOUT_S,
        )
    dead = [f"{p.what} in {p.ns}" for p in twin.state.processes if not p.alive()]
    if dead:
        logs = twin.state.workdir / "ns"
        raise TwinError(f"exited after start: {', '.join(dead)} (logs under {logs})")


def up(stack_file: str, say: Say) -> TwinContext:
    """Build the twin of a stack file. On failure or interrupt, remove it all and re-raise."""
    return _bring_up(stack_file, say, lambda: _create_state(stack_file), _build)


def _bring_up(
    stack_file: str,
    say: Say,
    create_state: Callable[[], TwinState],
    build: Callable[[TwinContext], None],
) -> TwinContext:
    """Check that a twin can start, then build it; on failure or interrupt, remove all that
    was built and re-raise."""
    with interruptible():
        topology = _check_can_start(stack_file)
        try:
            twin = TwinContext(topology, create_state(), say)
            build(twin)
        except BaseException as error:
            reason = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            say(f"bring-up {reason}; removing everything it built")
            down(say)
            raise
    return twin


def _create_cluster_state(stack_file: str, emulate_dir: str) -> TwinState:
    """The state of a twin of an emulated cluster: its stack file is read where it is."""
    workdir = twin_dir() / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(stack_file).resolve()
    state = TwinState(
        workdir=workdir,
        stack_file=source,
        source=str(source),
        kind="cluster",
        emulate_dir=emulate_dir,
    )
    state.save()
    return state


def _build_cluster_base(twin: TwinContext) -> None:
    """The external side and the nodes with vmbr0 only: what is there before the emulated
    cluster's plugins declare anything."""
    topology, state = twin.topology, twin.state
    steps = Steps(twin.say, 4)
    base = [*topology.external_namespaces(), *(node.ns for node in topology.nodes)]
    with steps.step("namespaces (external side, nodes)") as notes:
        system.run(["ip", "-batch", "-"], stdin="".join(f"netns add {ns.name}\n" for ns in base))
        for ns in base:
            state.add_namespace(ns.name)
            twin.run_dir(ns.name).mkdir(parents=True, exist_ok=True)
        twin.save()
        network.set_base_sysctls(topology)
        appliances.start_holders(twin, base, {})
        notes.append(f"{len(base)} created")
    with steps.step("external side (home router, LAN client, resolver, internet)"):
        network.build_external(topology)
    with steps.step("nodes (vmbr0; SDN applies add the VNets)") as notes:
        for node in topology.nodes:
            fabric.build_node_base(topology, node)
        notes.append(f"{len(topology.nodes)} nodes")
    with steps.step("services (resolver, internet, home LAN, node GUIs)"):
        for path in _start_external_services(twin):
            system.wait_until(f"the service behind {path}", path.exists, READY_TIMEOUT_S)
    state.ready = True
    twin.save()


def up_cluster(stack_file: str, emulate_dir: str, say: Say) -> TwinContext:
    """The twin of an emulated cluster (``orbitlab emulate start --twin``): the external side
    and the nodes of the stack file; the cluster's plugins build VNets and containers as the
    engine declares them. On failure or interrupt, remove it all and re-raise."""
    return _bring_up(
        stack_file, say, lambda: _create_cluster_state(stack_file, emulate_dir), _build_cluster_base
    )


def down(say: Say) -> list[str]:
    """Stop every process and remove every namespace and file of the twin; returns what was
    removed. Safe to run when nothing (or only part of a twin) is up."""
    with uninterruptible():
        state = load_state_leniently()
        removed: list[str] = []
        if state is not None:
            system.stop_processes([*state.processes, *state.holders.values()])
        names = list(dict.fromkeys([*(state.namespaces if state else []), *our_namespaces()]))
        present = set(system.netns_list())
        for name in names:
            if name in present:
                system.kill_pids(system.netns_pids(name))
                system.run(["ip", "netns", "del", name], check=False)
                removed.append(name)
        _remove_files(state)
        left = our_namespaces()
        if left:
            raise TwinError(f"could not remove namespaces: {', '.join(left)}")
        say(f"twin down: {len(removed)} namespaces removed, processes stopped, files deleted")
        return removed


def load_state_leniently() -> TwinState | None:
    try:
        return load_state()
    except TwinError:
        return None


def _remove_files(state: TwinState | None) -> None:
    base = twin_dir()
    if state is not None and state.workdir.is_relative_to(base):
        shutil.rmtree(state.workdir, ignore_errors=True)
    shutil.rmtree(base / "work", ignore_errors=True)
    state_path().unlink(missing_ok=True)
    for leftover in (state_path().with_suffix(".tmp"), lock_path()):
        leftover.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        base.rmdir()
