"""``twin status``: what runs in each namespace, with its live addresses.

>>> print(format_row("web/gateway", "olt-s.web.gateway", "eth0 172.16.0.1/24", "zebra"))
  web/gateway         olt-s.web.gateway         eth0 172.16.0.1/24  zebra
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from orbitlab_lab.twin import system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.topology import Namespace


def format_row(label: str, ns: str, addresses: str, processes: str) -> str:
    return f"  {label:<19} {ns:<25} {addresses}  {processes}".rstrip()


def live_addresses(ns: str) -> str:
    """``dev address/prefix`` of every IPv4 address in the namespace but loopback."""
    result = system.run(["ip", "-n", ns, "-4", "-br", "addr", "show"], check=False)
    found = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] != "lo":
            found += [f"{fields[0].split('@')[0]} {a}" for a in fields[2:]]
    return ", ".join(found) or "-"


def _processes(twin: TwinContext, ns: str) -> str:
    names = []
    for proc in twin.state.processes_in(ns):
        names.append(proc.what if proc.alive() else f"{proc.what}(DEAD)")
    return " ".join(names)


def _row(twin: TwinContext, ns: Namespace, label: str | None = None) -> str:
    label = label or ns.label
    entry = twin.state.containers.get(ns.name)
    if entry is not None:
        label += f" CT {entry['spec']['vmid']}"
    if twin.state.kind == "cluster" and ns.name not in twin.state.namespaces:
        return format_row(label, ns.name, "(not there: no container, not joined)", "")
    return format_row(label, ns.name, live_addresses(ns.name), _processes(twin, ns.name))


def container_lines(twin: TwinContext) -> Iterator[str]:
    """Containers of the emulated cluster the stack does not expect, and stopped ones."""
    unexpected = [(ns, e) for ns, e in twin.state.containers.items() if not e["expected"]]
    if unexpected:
        yield "containers the stack does not expect:"
    for ns, entry in unexpected:
        spec = entry["spec"]
        where = f"{entry['label']} {spec['hostname']} @{spec['node']}"
        if not entry["running"]:
            yield format_row(where, ns, "(stopped)", "")
        else:
            yield format_row(where, ns, live_addresses(ns), _processes(twin, ns))
    for entry in twin.state.containers.values():
        if entry["expected"] and not entry["running"]:
            yield f"  CT {entry['spec']['vmid']} ({entry['label']}) is stopped"


def status_lines(twin: TwinContext) -> Iterator[str]:
    topology, state = twin.topology, twin.state
    plan = topology.plan
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.created))
    if state.kind == "cluster":
        yield (
            f"twin of the emulated cluster in {state.emulate_dir} (expected: {state.source}, "
            f"stack {plan.stack}), up since {since}"
        )
    else:
        yield f"twin of {state.source} (stack {plan.stack}), up since {since}"
    bp = plan.backplane
    yield (
        f"Backplane {bp.cidr}, gateway {bp.gateway} (anycast on every node), MTU {bp.mtu}, "
        f"primary exit node {bp.primary_exit_node}"
    )
    yield "nodes:"
    for node in topology.nodes:
        yield _row(twin, node.ns, node.name + (" (primary)" if node.primary else ""))
    yield "external:"
    for ns in topology.external_namespaces():
        yield _row(twin, ns)
    for sector in topology.sectors:
        p = sector.plan
        yield (
            f"Sector {p.name}: tag {p.tag}, VNet {p.vnet_id}, appliances on {p.node}, "
            f"domain {p.domain}"
        )
        for ns in sector.appliances().values():
            yield _row(twin, ns)
        for host in sector.hosts:
            leased = " dhcp" if host.dhcp else ""
            entry = state.containers.get(host.ns.name)
            node = entry["spec"]["node"] if entry is not None else host.node
            yield _row(twin, host.ns, f"{host.ns.label} @{node}{leased}")
    yield from container_lines(twin)
    dead = [proc for proc in state.processes if not proc.alive()]
    yield f"{len(state.processes) - len(dead)} processes running, {len(dead)} exited"
