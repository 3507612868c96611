"""Checks of the appliances' own rules: what each rule of the gateway's and the load
balancer's rulesets is there for, seen from outside.

- gateway services: hosts ping their gateway and are rejected on any other port; a node
  pings its Backplane address and gets no answer on any other; the gateway reaches its own
  loopback and, for its own needs, the upstream resolver; the Sector DNS's own lookups (its
  resolv.conf: its upstream, e.g. for its packages) get through the gateway;
- MSS clamping: a SYN offering an MSS larger than the path arrives clamped;
- anti-spoofing: a Sector host sending with a foreign source address, through the gateway
  or to it, is dropped: never forwarded, never answered (an answer would go to the address
  it forged);
- conntrack bound: a flood of SYNs from one host to an address that never answers leaves
  at most the gateway's per-host bound of them tracked (one Sector at a time: it fills the
  host's share for a moment);
- ingress: only declared port forwards enter a Sector, even when a node routes to a Sector
  address through the gateway (run one Sector at a time: it changes a node's routes);
- load balancer: its forwarding is off, and its forward chain drops even with forwarding
  forced on (one Sector at a time too).

    >>> str(foreign_source([IPNetwork("203.0.113.192/27")]))
    '203.0.113.224'
"""

from __future__ import annotations

from collections.abc import Iterable

from netaddr import IPAddress, IPNetwork

from orbitlab.rendering import GATEWAY_LIMITS
from orbitlab_lab.twin import system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.probing import (
    MarkedProbe,
    count_output,
    egress_allowed,
    gateway_of,
    outcome_of,
    probe,
    retry_rejected,
    shown,
)
from orbitlab_lab.twin.results import CheckResult, dig
from orbitlab_lab.twin.topology import (
    GUI_PORT,
    INTERNET_HOST,
    INTERNET_NAME,
    INTERNET_SILENT,
    SERVICE_PORT,
    Namespace,
    SectorTwin,
)

#: Unused ports: nothing listens there, so only the rules decide what comes back.
CLOSED_PORT = 179
FOREIGN_SOURCES = tuple(IPAddress(f"203.0.113.{n}") for n in range(200, 250))
UNCLAMPED_MSS = 1460


def ping(twin: TwinContext, ns: Namespace, address: object) -> str:
    result = twin.run(ns.name, ["ping", "-c", "1", "-W", "1", str(address)], check=False)
    return "answers" if result.returncode == 0 else "no answer"


def _row(check: str, source: str, target: str, expected: str, got: str) -> CheckResult:
    return CheckResult(check, source, target, expected, got, got == expected)


def check_gateway_services(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """What the gateway (and the LB) answer themselves, and what they reach for their own
    needs."""
    plan = sector.plan
    node = twin.topology.node(sector.node).ns
    results = []
    if sector.fixed_hosts:
        host = sector.fixed_hosts[0]
        gateway = gateway_of(sector, host.address)
        results.append(
            _row(
                "gateway services",
                host.ns.label,
                f"ping {gateway}",
                "answers",
                ping(twin, host.ns, gateway),
            )
        )
        got = retry_rejected(
            lambda: outcome_of(probe(twin, host.ns, "tcp", gateway, CLOSED_PORT, 1.0))
        )
        results.append(
            _row(
                "gateway services",
                host.ns.label,
                f"gateway {gateway}:{CLOSED_PORT}",
                f"rejected by {gateway}",
                got,
            )
        )
    backplane = plan.gateway.backplane_address
    results.append(
        _row(
            "gateway services",
            node.label,
            f"ping {backplane}",
            "answers",
            ping(twin, node, backplane),
        )
    )
    found = probe(twin, node, "tcp", backplane, 22, 1.0)
    results.append(
        _row("gateway services", node.label, f"gateway {backplane}:22", "timeout", shown(found))
    )
    results.append(
        _row(
            "gateway services",
            sector.gateway.label,
            "ping 127.0.0.1 (its loopback)",
            "answers",
            ping(twin, sector.gateway, "127.0.0.1"),
        )
    )
    upstream = twin.topology.external.resolver_addresses[0]
    answer = dig(twin, sector.gateway, f"@{upstream}", INTERNET_NAME)
    results.append(
        _row(
            "gateway services",
            sector.gateway.label,
            f"its own DNS query to {upstream}",
            str(INTERNET_HOST),
            answer.show(),
        )
    )
    own = dig(twin, sector.dns, INTERNET_NAME)
    results.append(
        _row(
            "gateway services",
            sector.dns.label,
            "its own lookup (its resolv.conf, through the gateway)",
            str(INTERNET_HOST),
            own.show(),
        )
    )
    lb = plan.load_balancer
    if sector.lb is not None and lb is not None:
        results.append(
            _row(
                "gateway services",
                sector.lb.label,
                "ping 127.0.0.1 (its loopback)",
                "answers",
                ping(twin, sector.lb, "127.0.0.1"),
            )
        )
        found = probe(twin, node, "tcp", lb.backplane_address, CLOSED_PORT, 1.0)
        results.append(
            _row(
                "gateway services",
                node.label,
                f"LB {lb.backplane_address}:{CLOSED_PORT} (no listener)",
                "timeout",
                shown(found),
            )
        )
    return results


def check_mss(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """A SYN offering a 1460-byte MSS leaves the Sector clamped to the path (MTU - 40)."""
    if not sector.fixed_hosts or not egress_allowed(sector, INTERNET_HOST):
        return []
    host = sector.fixed_hosts[0]
    inet = twin.topology.external.inet
    marked = MarkedProbe.new("tcp", INTERNET_HOST, SERVICE_PORT, mss=UNCLAMPED_MSS)
    read_all = marked.count_in(twin, inet)
    read_unclamped = marked.count_in(twin, inet, also=f"tcp option maxseg size {UNCLAMPED_MSS}")
    marked.send(twin, host.ns)
    arrived, unclamped = read_all(), read_unclamped()
    clamped = sector.plan.mtu - 40
    return [
        CheckResult(
            "mss clamp",
            host.ns.label,
            f"SYN MSS {UNCLAMPED_MSS} to {INTERNET_HOST}:{SERVICE_PORT}",
            f"arrive clamped to {clamped}",
            f"{arrived} arrive, {unclamped} unclamped",
            arrived > 0 and unclamped == 0,
        )
    ]


def foreign_source(subnets: Iterable[IPNetwork]) -> IPAddress:
    """An address outside every subnet of a Sector, to send from as a spoofer would."""
    cidrs = list(subnets)
    return next(a for a in FOREIGN_SOURCES if not any(a in cidr for cidr in cidrs))


def check_foreign_source(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Packets with a source outside the Sector's subnets reach the gateway and are dropped
    there: none is forwarded (counted at the destination), none is answered (the gateway
    sends nothing to the forged address), whether it goes through the gateway or to it."""
    if not sector.fixed_hosts:
        return []
    host = sector.fixed_hosts[0]
    source = foreign_source(subnet.cidr for subnet in sector.plan.subnets)
    through = MarkedProbe.new("tcp", INTERNET_HOST, SERVICE_PORT)
    to_gateway = MarkedProbe.new("tcp", sector.plan.subnets[0].gateway, GUI_PORT)
    results = []
    for what, marked, at in (
        (f"{INTERNET_HOST}:{SERVICE_PORT}", through, twin.topology.external.inet),
        (f"the gateway {to_gateway.address}:{GUI_PORT}", to_gateway, None),
    ):
        arrived = marked.count_in(twin, at) if at is not None else (lambda: 0)
        reached = marked.count_in(twin, sector.gateway)
        answers = count_output(twin, sector.gateway, f"ip daddr {source}")
        marked.send(twin, host.ns, spoof=source)
        got_arrived, got_reached, got_answers = arrived(), reached(), answers()
        results.append(
            CheckResult(
                "anti-spoofing",
                f"{host.ns.label} as {source}",
                what,
                "reach the gateway; 0 arrive, 0 answers",
                f"{got_reached} reach the gateway; {got_arrived} arrive, {got_answers} answers",
                got_reached > 0 and got_arrived == 0 and got_answers == 0,
            )
        )
    return results


#: The port the directed broadcasts go to (discard: nothing answers them).
BROADCAST_PORT = 9


def check_directed_broadcasts(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Datagrams to the broadcast address of each node network reach the gateway and stop
    there: none arrives at any node (where it would be a broadcast of the node's LAN)."""
    if not sector.fixed_hosts:
        return []
    host = sector.fixed_hosts[0]
    results = []
    for broadcast in twin.topology.plan.backplane.node_broadcasts:
        marked = MarkedProbe.new("udp", broadcast, BROADCAST_PORT)
        at_nodes = [marked.count_in(twin, node.ns) for node in twin.topology.nodes]
        reached = marked.count_in(twin, sector.gateway)
        marked.send(twin, host.ns)
        got_reached, got_arrived = reached(), sum(count() for count in at_nodes)
        results.append(
            CheckResult(
                "directed broadcast",
                host.ns.label,
                f"{broadcast}:{BROADCAST_PORT}/udp (a node network's broadcast)",
                "reach the gateway; 0 arrive at the nodes",
                f"{got_reached} reach the gateway; {got_arrived} arrive at the nodes",
                got_reached > 0 and got_arrived == 0,
            )
        )
    return results


#: SYNs past the bound that the conntrack bound check sends.
FLOOD_OVER = 1000


def check_conntrack_bound(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """A host sends the gateway's per-host bound and ``FLOOD_OVER`` more SYNs (20 000 a
    second) to an internet address that never answers: each would stay tracked (SYN_SENT)
    for two minutes; the gateway tracks at most the bound of them (less the host's other
    connections, which count too; at least half, or the flood did not happen) and drops
    the rest. The host's
    entries are deleted afterwards, so the other checks from it are not held back."""
    if not sector.fixed_hosts or not egress_allowed(sector, INTERNET_SILENT):
        return []
    host = sector.fixed_hosts[0]
    bound = GATEWAY_LIMITS.connections_per_host
    flow = ["-s", str(host.address), "-d", str(INTERNET_SILENT)]
    flood = ["hping3", "-q", "-S", "-p", "9", "-i", "u50", "-c", str(bound + FLOOD_OVER)]
    twin.run(host.ns.name, [*flood, str(INTERNET_SILENT)], check=False, timeout=120)
    try:
        listed = twin.run(sector.gateway.name, ["conntrack", "-L", *flow], check=False).stdout
    finally:
        twin.run(sector.gateway.name, ["conntrack", "-D", *flow], check=False)
    tracked = sum(1 for line in listed.splitlines() if line.startswith("tcp"))
    return [
        CheckResult(
            "conntrack bound",
            host.ns.label,
            f"{bound + FLOOD_OVER} SYNs to {INTERNET_SILENT} (never answered)",
            f"at most {bound} tracked (its other connections count too), the rest dropped",
            f"{tracked} tracked",
            bound // 2 <= tracked <= bound,
        )
    ]


def check_ingress(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """A node that routes a Sector address through the gateway does not get in: only
    declared port forwards enter. It changes the node's routes for a moment: run it alone."""
    if not sector.fixed_hosts:
        return []
    host = sector.fixed_hosts[0]
    node = twin.topology.node(sector.node).ns
    route = f"{host.address}/32 via {sector.plan.gateway.backplane_address}"
    system.ip_batch(node.name, [f"route replace {route}"])
    try:
        found = probe(twin, node, "tcp", host.address, host.tcp_ports[0], 1.0)
    finally:
        system.ip_batch(node.name, [f"route del {route}"])
    peer = next((h for h in sector.fixed_hosts if h is not host), None)
    control = shown(
        probe(twin, peer.ns if peer else sector.dns, "tcp", host.address, host.tcp_ports[0])
    )
    return [
        CheckResult(
            "ingress",
            node.label,
            f"{host.ns.label} {host.address}:{host.tcp_ports[0]} via the gateway",
            f"not reached (its own Sector: {host.name} answers)",
            f"{found['result']} (its own Sector: {control.split()[0] if control else control})",
            found["result"] in ("timeout", "rejected", "unreachable")
            and control.split()[:1] == [host.name],
        )
    ]


def check_lb_routing(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """The LB never routes: forwarding is off, and its forward chain drops even with
    forwarding forced on (a host routing the internet through the LB gets nowhere). It
    changes the LB and a host for a moment: run it alone."""
    lb = sector.plan.load_balancer
    if sector.lb is None or lb is None or not sector.fixed_hosts:
        return []
    forwarding = twin.run(sector.lb.name, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip()
    results = [
        CheckResult(
            "lb routing", sector.lb.label, "net.ipv4.ip_forward", "0", forwarding, forwarding == "0"
        )
    ]
    host = sector.fixed_hosts[0]
    route = f"{INTERNET_HOST}/32 via {lb.sector_address}"
    marked = MarkedProbe.new("tcp", INTERNET_HOST, SERVICE_PORT)
    arrived = marked.count_in(twin, twin.topology.external.inet)
    twin.run(sector.lb.name, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    system.ip_batch(host.ns.name, [f"route replace {route}"])
    try:
        marked.send(twin, host.ns)
    finally:
        system.ip_batch(host.ns.name, [f"route del {route}"])
        twin.run(sector.lb.name, ["sysctl", "-q", "-w", f"net.ipv4.ip_forward={forwarding}"])
    got = arrived()
    results.append(
        CheckResult(
            "lb routing",
            host.ns.label,
            f"{INTERNET_HOST}:{SERVICE_PORT} via the LB, its forwarding forced on",
            "0 arrive",
            f"{got} arrive",
            got == 0,
        )
    )
    return results
