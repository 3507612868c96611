"""Isolation: what no Sector may ever reach.

- isolation: no Sector reaches another Sector's gateway/LB/hosts, the Backplane gateway, a
  node's address (GUI port), a protected network, or the upstream resolver directly (only
  its DNS may); the gateway rejects (ICMP admin-prohibited) what it must not forward, and
  another Sector's hosts answer their own Sector in the same run (a positive control);
- invalid pkts: SYN+FIN packets (conntrack-invalid) never reach a node or the Backplane,
  nor the internet the Sector otherwise reaches; controls from the home LAN client show the
  counters see them (run alone: it reads the nodes' counters).
"""

from __future__ import annotations

from collections.abc import Iterator

from netaddr import IPAddress

from orbitlab_lab.twin import network
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.probing import (
    REJECT_WAIT_S,
    MarkedProbe,
    egress_allowed,
    gateway_of,
    outcome_of,
    probe,
    retry_rejected,
    shown,
    source_of,
)
from orbitlab_lab.twin.results import CheckResult
from orbitlab_lab.twin.topology import (
    GUI_PORT,
    INTERNET_HOST,
    SERVICE_PORT,
    HostTwin,
    Namespace,
    SectorTwin,
)

INVALID_PROBES = 3


def _isolation_targets(
    twin: TwinContext, sector: SectorTwin
) -> Iterator[tuple[str, object, int, SectorTwin | None]]:
    """(what, address or host, TCP port, the other Sector for a host) a Sector must never
    reach. The gateway rejects the Backplane and every node address; other Sectors' hosts
    are simply not routed."""
    topology = twin.topology
    bp = topology.plan.backplane
    yield "Backplane gateway (node)", bp.gateway, GUI_PORT, None
    for node in topology.nodes:
        yield f"node {node.name} GUI", node.address, GUI_PORT, None
        for extra in node.other_addresses:
            yield f"node {node.name} {extra} (other NIC)", extra, GUI_PORT, None
    for protected, address in topology.protected_services:
        yield f"protected network {protected}", address, SERVICE_PORT, None
    own = [s.cidr for s in sector.plan.subnets]
    for other in topology.sectors:
        if other is sector:
            continue
        yield f"{other.name} gateway", other.plan.gateway.backplane_address, 22, None
        if other.plan.load_balancer is not None:
            lb = other.plan.load_balancer
            yield f"{other.name} LB", lb.backplane_address, lb.listeners[0].port, None
        for host in other.fixed_hosts:
            if not any(host.address in cidr for cidr in own):
                yield f"{other.name}/{host.name}", host, host.tcp_ports[0], other


def _own_host_reaches(twin: TwinContext, other: SectorTwin, target: HostTwin) -> str:
    """Positive control of a "not reached": the target answers a host of its own Sector."""
    peer = next((h for h in other.fixed_hosts if h is not target), None)
    ns = peer.ns if peer is not None else other.dns
    return shown(probe(twin, ns, "tcp", target.address, target.tcp_ports[0]))


def check_isolation(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """The gateway rejects (ICMP admin-prohibited from its own address, not a silent drop)
    the Backplane, the nodes and direct queries to the upstream resolver; other Sectors'
    hosts are never reached, while their own Sector reaches them in the same run."""
    ns, address = source_of(sector)
    gateway = gateway_of(sector, address)
    rejected = f"rejected by {gateway}"
    results = []
    for kind, target, port, other in _isolation_targets(twin, sector):
        if other is None:
            got = retry_rejected(
                lambda a=target, p=port: outcome_of(probe(twin, ns, "tcp", a, p, REJECT_WAIT_S))
            )
            results.append(
                CheckResult(
                    "isolation", ns.label, f"{kind} {target}:{port}", rejected, got, got == rejected
                )
            )
            continue
        got = probe(twin, ns, "tcp", target.address, port)["result"]
        control = _own_host_reaches(twin, other, target)
        results.append(
            CheckResult(
                "isolation",
                ns.label,
                f"{kind} {target.address}:{port}",
                f"not reached (its own Sector: {target.name} answers)",
                f"{got} (its own Sector: {control.split()[0] if control else control})",
                got in ("rejected", "timeout", "unreachable")
                and control.split()[:1] == [target.name],
            )
        )
    for resolver in twin.topology.external.resolver_addresses:
        got = retry_rejected(
            lambda r=resolver: outcome_of(probe(twin, ns, "udp", r, 53, REJECT_WAIT_S))
        )
        results.append(
            CheckResult(
                "isolation",
                ns.label,
                f"upstream resolver {resolver}:53 directly",
                f"{rejected} (only the DNS may)",
                got,
                got == rejected,
            )
        )
    return results


def _invalid_targets(twin: TwinContext, sector: SectorTwin) -> list[object]:
    topology = twin.topology
    targets: list[object] = [topology.plan.backplane.gateway]
    targets += [
        address for node in topology.nodes for address in (node.address, *node.other_addresses)
    ]
    targets += [
        other.plan.gateway.backplane_address for other in topology.sectors if other is not sector
    ]
    return targets


def _syn_fin(twin: TwinContext, ns: Namespace, targets: list[object]) -> int:
    """Send SYN+FIN probes from ``ns``; return how many the nodes' counters saw."""
    before = network.watch_count(twin.topology)
    for target in targets:
        argv = ["hping3", "-q", "-c", str(INVALID_PROBES), "-i", "u10000", "-S", "-F"]
        twin.run(ns.name, [*argv, "-p", str(GUI_PORT), str(target)], check=False, timeout=20)
    return network.watch_count(twin.topology) - before


def check_invalid(twin: TwinContext, sectors: tuple[SectorTwin, ...]) -> list[CheckResult]:
    """SYN+FIN (conntrack-invalid) from each Sector: none reaches a node or the Backplane,
    nor the internet that its egress otherwise reaches. The controls (from the home LAN
    client, through no filter of ours) show the counters do see them."""
    client = twin.topology.external.client
    primary = twin.topology.primary
    seen = _syn_fin(twin, client, [primary.address])
    results = [
        CheckResult(
            "invalid pkts",
            client.label,
            f"node {primary.name} {primary.address}:{GUI_PORT} (control)",
            f"{INVALID_PROBES} SYN+FIN counted",
            f"{seen} counted",
            seen >= INVALID_PROBES,
        ),
        _invalid_to_internet(twin, client, "(control)", INVALID_PROBES),
    ]
    for sector in sectors:
        ns, _ = source_of(sector)
        targets = _invalid_targets(twin, sector)
        seen = _syn_fin(twin, ns, targets)
        results.append(
            CheckResult(
                "invalid pkts",
                ns.label,
                f"{len(targets)} node/Backplane addresses :{GUI_PORT}, SYN+FIN",
                "0 reach a node or the Backplane",
                f"{seen} reached",
                seen == 0,
            )
        )
        if egress_allowed(sector, INTERNET_HOST):
            results.append(_invalid_to_internet(twin, ns, "(egress allowed)", 0))
    return results


def _invalid_to_internet(twin: TwinContext, ns: Namespace, note: str, wanted: int) -> CheckResult:
    """SYN+FIN with a payload marker to the internet host, counted where it arrives."""
    marked = MarkedProbe.new("tcp", INTERNET_HOST, SERVICE_PORT)
    read = marked.count_in(twin, twin.topology.external.inet)
    marked.send(twin, ns, flags=("-S", "-F"))
    arrived = read()
    expected = f"{wanted} SYN+FIN arrive"
    return CheckResult(
        "invalid pkts",
        ns.label,
        f"internet {INTERNET_HOST}:{SERVICE_PORT} {note}",
        expected,
        f"{arrived} arrive",
        arrived == 0 if wanted == 0 else arrived >= wanted,
    )


def never_reached(twin: TwinContext, address: IPAddress) -> bool:
    """The Backplane, every node address and the protected networks: no Sector, ever."""
    bp = twin.topology.plan.backplane
    return (
        address in bp.cidr
        or address in bp.node_addresses
        or any(address in network for network in bp.protected_networks)
    )
