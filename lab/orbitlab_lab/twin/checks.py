"""``twin test``: what the running twin proves, one row per check, printed as a table.

Every check sends real traffic between namespaces and compares what came back with what
the stack declares (SPEC §6, §7, §9):

- egress: every Sector reaches the "internet"; the gateway masquerades to its Backplane
  address (its conntrack shows it) and the primary exit node SNATs to its LAN address
  (the internet host sees it);
- overlap: Sectors with overlapping CIDRs reach out at the same time, each Sector's DNS
  (same address) answering its own names;
- isolation: no Sector reaches another Sector's gateway/LB/hosts, the Backplane gateway,
  a node's address (GUI port), or the upstream resolver directly (only its DNS may);
  SYN+FIN packets (conntrack-invalid) never reach a node or the Backplane;
- egress policy: a home-LAN service is reachable unless the Sector's egress denies it;
- routing: hosts in different subnets of one Sector reach each other un-NATed;
- DNS: forward and reverse names of every host, NXDOMAIN for unknown names in the domain
  (the upstream stand-in answers every name, so a forwarded query would be seen), and
  forwarding of other names;
- LB: every listener answers the home LAN client, spreading over its backends;
- port forwards: each answers from the declared host with the client's address kept;
  an undeclared port does not;
- failover: a stopped gateway cuts only its own Sector; after a restart it works again;
- DNS spoofing: a host that takes the Sector DNS's address (not its pinned MAC) gets none of
  its exemptions — its packets to the upstream resolvers and to package-mirror ports
  outside the egress policy are counted where they would arrive (none may), beside the
  same packets from the real Sector DNS (which must arrive);
- DHCP: see :mod:`orbitlab_lab.twin.dhcp_checks`;
- the Sector guard (rogue DHCP servers, DHCP requests naming another host's NIC, rogue IPv6
  routers): see :mod:`orbitlab_lab.twin.guard_checks`.

Results are :class:`~orbitlab_lab.twin.results.CheckResult` rows, printed by
:func:`~orbitlab_lab.twin.results.render_table`.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from netaddr import IPAddress

from orbitlab_lab.twin import (
    TwinError,
    appliance_checks,
    dhcp,
    dhcp_checks,
    guard_checks,
    lifecycle,
    network,
)
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.probing import (
    REJECT_RETRY_S,
    REJECT_WAIT_S,
    SPOOF_PROBES,
    MarkedProbe,
    count_output,
    dns_allowed,
    egress_allowed,
    gateway_of,
    outcome_of,
    probe,
    retry_rejected,
    shown,
    source_of,
)
from orbitlab_lab.twin.results import Check, CheckResult, dig
from orbitlab_lab.twin.topology import (
    GUI_PORT,
    INTERNET_HOST,
    INTERNET_NAME,
    INTERNET_OTHER,
    SERVICE_PORT,
    HostTwin,
    Namespace,
    SectorTwin,
)

INVALID_PROBES = 3
WORKERS = 8
LB_SETTLE_S = 15
NXDOMAIN_NAME = "no-such-host-twin"


# --- probes ---------------------------------------------------------------------------


def check_egress(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """From a host of every subnet that has one: the internet answers, seen from the
    primary exit node's address; the gateway's conntrack shows its masquerade."""
    primary = twin.topology.primary.address
    gateway_bp = sector.plan.gateway_backplane
    sources: list[tuple[Namespace, IPAddress]] = []
    for subnet in sector.plan.subnets:
        host = next((h for h in sector.fixed_hosts if h.subnet == subnet), None)
        if host is not None and host.address is not None:
            sources.append((host.ns, host.address))
    sources = sources or [source_of(sector)]
    results = []
    for ns, address in sources:
        found = probe(twin, ns, "http", INTERNET_HOST, SERVICE_PORT)
        seen = found["body"].split()[-1] if found["result"] == "ok" else found["result"]
        conntrack = twin.run(
            sector.gateway.name,
            ["conntrack", "-L", "-p", "tcp", "-s", str(address), "-d", str(INTERNET_HOST)],
            check=False,
        ).stdout
        nat = masquerade_address(conntrack, address)
        got = f"seen as {seen}; gateway NAT {'to ' + nat if nat else 'none'}"
        results.append(
            CheckResult(
                "egress SNAT",
                ns.label,
                f"{INTERNET_HOST}:{SERVICE_PORT}",
                f"seen as {primary}; gateway NAT to {gateway_bp}",
                got,
                seen == str(primary) and nat == str(gateway_bp),
            )
        )
    return results


def masquerade_address(conntrack: str, source: IPAddress) -> str | None:
    """The address a flow from ``source`` was masqueraded to, from ``conntrack -L`` (the
    reply's destination), or None when it was not translated.

    >>> masquerade_address("tcp 6 src=172.16.0.21 dst=203.0.113.10 sport=1 dport=80 "
    ...                    "src=203.0.113.10 dst=10.200.0.10 sport=80 dport=1", "172.16.0.21")
    '10.200.0.10'
    """
    for line in conntrack.splitlines():
        destinations = re.findall(r"dst=(\S+)", line)
        if len(destinations) >= 2 and destinations[1] != str(source):
            return destinations[1]
    return None


def check_overlap(twin: TwinContext, a: SectorTwin, b: SectorTwin) -> list[CheckResult]:
    """Two Sectors sharing address space: both egress at once, each DNS its own names."""
    (ns_a, addr_a), (ns_b, addr_b) = source_of(a), source_of(b)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(probe, twin, ns, "http", INTERNET_HOST, SERVICE_PORT) for ns in (ns_a, ns_b)
        ]
        egress = [future.result() for future in futures]
    own = []
    for sector, ns in ((a, ns_a), (b, ns_b)):
        answer = dig(twin, ns, f"@{sector.plan.dns_address}", f"dns.{sector.plan.domain}")
        own.append(answer.answers == (str(sector.plan.dns_address),))
    overlap = sorted(str(x) for x, _ in _shared_subnets(a, b))
    got = f"egress {shown(egress[0])} | {shown(egress[1])}; own DNS {own[0]} | {own[1]}"
    return [
        CheckResult(
            "overlap",
            f"{ns_a.label} ({addr_a}) + {ns_b.label} ({addr_b})",
            f"internet at once; DNS {a.plan.dns_address} ({', '.join(overlap)})",
            "both answered; each its own DNS",
            got,
            all(e["result"] == "ok" for e in egress) and all(own),
        )
    ]


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
        yield f"{other.name} gateway", other.plan.gateway_backplane, 22, None
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
    targets += [other.plan.gateway_backplane for other in topology.sectors if other is not sector]
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


def _policy_targets(twin: TwinContext) -> list[tuple[str, IPAddress, int]]:
    ext = twin.topology.external
    targets = [
        ("home LAN service", IPAddress(ext.client_lan), SERVICE_PORT),
        ("internet service", INTERNET_HOST, SERVICE_PORT),
        ("internet service", INTERNET_OTHER, SERVICE_PORT),
    ]
    if ext.mirror is not None:
        targets.append(("package mirror", ext.mirror[0], ext.mirror[1]))
    return targets


def check_egress_policy(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """The egress settings, from a host and from the Sector DNS appliance: each target
    answers when the policy allows it, and is rejected by the gateway otherwise (an
    explicit deny wins, for the appliance too)."""
    sources: list[tuple[Namespace, IPAddress, bool]] = []
    if sector.fixed_hosts:
        sources.append((sector.fixed_hosts[0].ns, sector.fixed_hosts[0].address, False))
    sources.append((sector.dns, sector.plan.dns_address, True))
    results = []
    for ns, address, is_dns in sources:
        rejected = f"rejected by {gateway_of(sector, address)}"
        for what, target, port in _policy_targets(twin):
            allowed = (
                dns_allowed(twin, sector, target, port)
                if is_dns
                else egress_allowed(sector, target)
            )
            found = probe(twin, ns, "http", target, port)
            if found["result"] == "timeout" and not allowed:
                time.sleep(REJECT_RETRY_S)  # a reject missed on a busy machine: ask once more
                found = probe(twin, ns, "http", target, port)
            got = outcome_of(found)
            results.append(
                CheckResult(
                    "egress policy",
                    ns.label,
                    f"{what} {target}:{port}",
                    "answers" if allowed else rejected,
                    got,
                    found["result"] == "ok" if allowed else got == rejected,
                )
            )
    return results


def check_routing(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Hosts in different subnets of one Sector reach each other (un-NATed) and its DNS."""
    results = []
    hosts = sector.fixed_hosts
    for a in hosts:
        for b in hosts:
            if a is b or a.subnet == b.subnet:
                continue
            found = probe(twin, a.ns, "tcp", b.address, b.tcp_ports[0])
            results.append(
                CheckResult(
                    "subnet routing",
                    a.ns.label,
                    f"{b.ns.label} {b.address}:{b.tcp_ports[0]}",
                    f"{b.name} {a.address}",
                    shown(found),
                    found.get("body") == f"{b.name} {a.address}",
                )
            )
        if a.subnet != sector.plan.first_subnet:
            answer = dig(twin, a.ns, f"dns.{sector.plan.domain}")
            results.append(
                CheckResult(
                    "subnet routing",
                    a.ns.label,
                    f"Sector DNS {sector.plan.dns_address} (other subnet)",
                    str(sector.plan.dns_address),
                    answer.show(),
                    answer.answers == (str(sector.plan.dns_address),),
                )
            )
    return results


def _redirects_allowed(twin: TwinContext, ns: Namespace) -> list[str]:
    """Interfaces of ``ns`` (and ``all``, ``default``) that would send ICMP redirects; the
    loopback forwards nothing, so it is not counted."""
    listing = twin.run(
        ns.name, ["sh", "-c", "grep -H . /proc/sys/net/ipv4/conf/*/send_redirects"]
    ).stdout
    return sorted(
        name
        for line in listing.splitlines()
        if not line.endswith(":0") and (name := line.split("/")[-2]) != "lo"
    )


def check_redirects(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """No ICMP redirects: every interface of the gateway and the LB has them off, and the
    gateway sends none while hosts of different subnets (one L2) talk through it."""
    results = []
    for ns in (sector.gateway, sector.lb):
        if ns is None:
            continue
        allowed = _redirects_allowed(twin, ns)
        results.append(
            CheckResult(
                "icmp redirects",
                ns.label,
                "send_redirects of every interface",
                "off everywhere",
                "on: " + ", ".join(allowed) if allowed else "off everywhere",
                not allowed,
            )
        )
    pairs = [(a, b) for a in sector.fixed_hosts for b in sector.fixed_hosts if a.subnet != b.subnet]
    if pairs:
        read = count_output(twin, sector.gateway, "icmp type redirect")
        for a, b in pairs:
            probe(twin, a.ns, "tcp", b.address, b.tcp_ports[0])
        sent = read()
        results.append(
            CheckResult(
                "icmp redirects",
                sector.gateway.label,
                f"{len(pairs)} flows between subnets through it",
                "0 redirects sent",
                f"{sent} redirects sent",
                sent == 0,
            )
        )
    return results


def check_dns(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Through the host's own resolver (the Sector DNS): forward, reverse, NXDOMAIN, upstream."""
    ns, _ = source_of(sector)
    domain = sector.plan.domain
    results = []
    names = [(host.name, host.address) for host in sector.fixed_hosts] or [
        ("dns", sector.plan.dns_address)
    ]
    for name, address in names:
        forward = dig(twin, ns, f"{name}.{domain}")
        reverse = dig(twin, ns, "-x", str(address))
        fqdn = f"{name}.{domain}"
        forward_ok = forward.answers == (str(address),)
        reverse_ok = reverse.answers == (f"{fqdn}.",)
        results.append(
            CheckResult("dns forward", ns.label, fqdn, str(address), forward.show(), forward_ok)
        )
        results.append(
            CheckResult(
                "dns reverse", ns.label, str(address), f"{fqdn}.", reverse.show(), reverse_ok
            )
        )
    unknown = dig(twin, ns, f"{NXDOMAIN_NAME}.{domain}")
    # a name never asked before: a cached answer would hide a broken path to the resolver
    fresh = f"q{secrets.token_hex(4)}.{INTERNET_NAME}"
    upstream = dig(twin, ns, fresh)
    results.append(
        CheckResult(
            "dns nxdomain",
            ns.label,
            f"{NXDOMAIN_NAME}.{domain}",
            "NXDOMAIN (not forwarded)",
            unknown.show(),
            unknown.status == "NXDOMAIN" and not unknown.answers,
        )
    )
    results.append(
        CheckResult(
            "dns forwarding",
            ns.label,
            fresh,
            str(INTERNET_HOST),
            upstream.show(),
            upstream.answers == (str(INTERNET_HOST),),
        )
    )
    return results


def check_lb(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Every listener answers the home LAN client; requests spread over all backends."""
    lb = sector.plan.load_balancer
    if lb is None:
        return []
    client = twin.topology.external.client
    results = []
    for listener in lb.listeners:
        protocol = "http" if listener.mode == "http" else "tcp"
        wanted = {b.host or str(b.address) for b in listener.backends}
        answered = _lb_answers(twin, client, lb.backplane_address, listener.port, protocol, wanted)
        results.append(
            CheckResult(
                "lb ingress",
                client.label,
                f"{sector.name} LB {lb.backplane_address}:{listener.port} ({listener.mode})",
                "answered by " + ", ".join(sorted(wanted)),
                ", ".join(sorted(answered)),
                answered == wanted,
            )
        )
        results.append(_client_address_row(twin, sector, listener))
    return results


def _passed_on(body: str) -> dict[str, str]:
    """``xff=`` and ``proxy=`` entries of an echo answer."""
    return dict(part.split("=", 1) for part in body.split()[2:] if "=" in part)


def _client_address_row(twin: TwinContext, sector: SectorTwin, listener: Any) -> CheckResult:
    """What the backend learns of the client: an HTTP listener sets X-Forwarded-For to the
    client's address (the client claims another one in its own header: it is replaced), a
    PROXY-protocol listener sends PROXY v2; a plain TCP listener passes on nothing."""
    lb = sector.plan.load_balancer
    assert lb is not None
    client = twin.topology.external
    protocol = "http-forged" if listener.mode == "http" else "tcp"
    found = probe(twin, client.client, protocol, lb.backplane_address, listener.port)
    passed = _passed_on(found.get("body", "")) if found["result"] == "ok" else {}
    expected = {}
    if listener.mode == "http":
        expected["xff"] = str(client.client_lan)
    if listener.proxy_protocol:
        expected["proxy"] = str(client.client_lan)
    shown_as = " ".join(f"{k}={v}" for k, v in sorted(passed.items())) or "nothing"
    wanted = " ".join(f"{k}={v}" for k, v in sorted(expected.items())) or "nothing"
    return CheckResult(
        "lb client address",
        client.client.label,
        f"{sector.name} LB :{listener.port} -> backend",
        wanted,
        shown_as if found["result"] == "ok" else shown(found),
        found["result"] == "ok" and passed == expected,
    )


def _lb_answers(
    twin: TwinContext,
    client: Namespace,
    address: object,
    port: int,
    protocol: str,
    wanted: set[str],
) -> set[str]:
    """Who answers a round of requests to a listener, asking again until a round reaches
    every backend and nothing else, or the time is up: a backend HAProxy marked down (while
    its gateway was stopped, or before a host joined) comes back after its checks, and until
    then HAProxy may answer 503. The last round is the answer."""
    deadline = time.monotonic() + LB_SETTLE_S
    while True:
        answered: set[str] = set()
        for _ in range(2 * len(wanted)):
            found = probe(twin, client, protocol, address, port)
            answered.add(found["body"].split()[0] if found["result"] == "ok" else found["result"])
        if answered == wanted or time.monotonic() > deadline:
            return answered
        time.sleep(1)


def check_port_forwards(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Declared forwards answer from their host with the client's address; others don't."""
    client = twin.topology.external.client
    address = sector.plan.gateway_backplane
    results = []
    for forward in sector.plan.port_forwards:
        found = probe(twin, client, forward.protocol, address, forward.port)
        name = forward.to.host or str(forward.to.address)
        expected = f"{name} {twin.topology.external.client_lan}"
        results.append(
            CheckResult(
                "port forward",
                client.label,
                f"{sector.name} {address}:{forward.port}/{forward.protocol} -> "
                f"{forward.to.address}:{forward.to.port}",
                expected,
                shown(found),
                found.get("body") == expected,
            )
        )
    declared = {forward.port for forward in sector.plan.port_forwards}
    undeclared = next(port for port in range(2223, 65535) if port not in declared)
    found = probe(twin, client, "tcp", address, undeclared)
    results.append(
        CheckResult(
            "port forward",
            client.label,
            f"{sector.name} {address}:{undeclared}/tcp (undeclared)",
            "blocked",
            found["result"],
            found["result"] in ("rejected", "timeout"),
        )
    )
    return results


def _egress_ok(twin: TwinContext, sector: SectorTwin) -> dict[str, str]:
    ns, _ = source_of(sector)
    return probe(twin, ns, "http", INTERNET_HOST, SERVICE_PORT)


def check_failover(twin: TwinContext, failing: SectorTwin) -> list[CheckResult]:
    """Stop a Sector's gateway: only that Sector loses egress; restart: it is back."""
    sectors = twin.topology.sectors
    results = []
    lifecycle.stop_gateway(twin, failing)
    try:
        for sector in sectors:
            if not egress_allowed(sector, INTERNET_HOST):
                continue
            found = _egress_ok(twin, sector)
            down = sector is failing
            results.append(
                CheckResult(
                    "failover",
                    source_of(sector)[0].label,
                    f"internet, {failing.name} gateway stopped",
                    "fails" if down else "still answers",
                    shown(found),
                    (found["result"] != "ok") if down else (found["result"] == "ok"),
                )
            )
        for sector in (s for s in sectors if s is not failing):
            for row in check_lb(twin, sector):
                target = f"{row.target}, {failing.name} gateway stopped"
                results.append(replace(row, check="failover", target=target))
    finally:
        lifecycle.restart_gateway(twin, failing)
    found = _egress_ok(twin, failing)
    results.append(
        CheckResult(
            "failover",
            source_of(failing)[0].label,
            f"internet, {failing.name} gateway restarted",
            "answers again",
            shown(found),
            found["result"] == "ok",
        )
    )
    return results


def _spoof_targets(
    twin: TwinContext, sector: SectorTwin
) -> Iterator[tuple[str, Namespace, IPAddress, str, int]]:
    """(what, receiving namespace, address, protocol, port) the Sector DNS is exempted for:
    its resolvers (53), and, under deny by default, the package mirror."""
    ext = twin.topology.external
    forwarders = sector.plan.forwarders or ext.resolver_addresses
    for resolver in forwarders:
        for protocol in ("udp", "tcp"):
            yield "upstream resolver", ext.resolver, IPAddress(resolver), protocol, 53
    mirror = ext.mirror
    exempt = (
        mirror is not None
        and not egress_allowed(sector, mirror[0])
        and dns_allowed(twin, sector, mirror[0], mirror[1])
    )
    if mirror is not None and exempt:
        yield "package mirror", ext.resolver, mirror[0], "tcp", mirror[1]


def check_dns_spoofing(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """A Sector host sending as the Sector DNS (its address, the host's own MAC) reaches no
    destination the DNS alone is exempted for; the real DNS's packets do arrive."""
    if not sector.fixed_hosts:
        return []
    host = sector.fixed_hosts[0]
    dns_address = sector.plan.dns_address
    results = []
    for what, receiver, address, protocol, port in _spoof_targets(twin, sector):
        spoofed = MarkedProbe.new(protocol, address, port)
        control = MarkedProbe.new(protocol, address, port)
        read_spoofed = spoofed.count_in(twin, receiver)
        read_control = control.count_in(twin, receiver)
        spoofed.send(twin, host.ns, spoof=dns_address)
        control.send(twin, sector.dns)
        got_spoofed, got_control = read_spoofed(), read_control()
        results.append(
            CheckResult(
                "dns spoofing",
                f"{host.ns.label} as {dns_address}",
                f"{what} {address}:{port}/{protocol}",
                f"0 arrive (real DNS: {SPOOF_PROBES})",
                f"{got_spoofed} arrive (real DNS: {got_control})",
                got_spoofed == 0 and got_control >= 1,
            )
        )
    return results


def _overlapping_pairs(twin: TwinContext) -> Iterator[tuple[SectorTwin, SectorTwin]]:
    sectors = twin.topology.sectors
    for i, a in enumerate(sectors):
        for b in sectors[i + 1 :]:
            if _shared_subnets(a, b):
                yield a, b


def _shared_subnets(a: SectorTwin, b: SectorTwin) -> list[tuple[object, object]]:
    """Pairs of overlapping subnets of two Sectors."""
    return [
        (x.cidr, y.cidr)
        for x in a.plan.subnets
        for y in b.plan.subnets
        if x.cidr in y.cidr or y.cidr in x.cidr
    ]


SectorCheck = Callable[[TwinContext, SectorTwin], list[CheckResult]]

#: Checks that do not disturb each other, in table order, and the groups their rows carry.
PARALLEL: tuple[tuple[SectorCheck, tuple[str, ...]], ...] = (
    (check_egress, ("egress SNAT",)),
    (check_isolation, ("isolation",)),
    (check_egress_policy, ("egress policy",)),
    (check_routing, ("subnet routing",)),
    (check_dns, ("dns forward", "dns reverse", "dns nxdomain", "dns forwarding")),
    (check_lb, ("lb ingress", "lb client address")),
    (check_port_forwards, ("port forward",)),
    (check_dns_spoofing, ("dns spoofing",)),
    (check_redirects, ("icmp redirects",)),
    (appliance_checks.check_gateway_services, ("gateway services",)),
    (appliance_checks.check_mss, ("mss clamp",)),
    (appliance_checks.check_foreign_source, ("anti-spoofing",)),
    (appliance_checks.check_directed_broadcasts, ("directed broadcast",)),
    (dhcp_checks.check_reserved, ("dhcp reserved",)),
    (dhcp_checks.check_pool, ("dhcp pool",)),
    (dhcp_checks.check_options, ("dhcp options",)),
    (dhcp_checks.check_names, ("dhcp names",)),
    (dhcp_checks.check_sectors, ("dhcp sectors",)),
    (guard_checks.check_rogue_dhcp, ("rogue dhcp",)),
    (guard_checks.check_dhcp_identity, ("dhcp identity",)),
    (guard_checks.check_rogue_ipv6, ("rogue ipv6",)),
)
#: Checks that change the twin for a moment (routes, sysctls): one Sector at a time.
SEQUENTIAL: tuple[tuple[SectorCheck, tuple[str, ...]], ...] = (
    (appliance_checks.check_ingress, ("ingress",)),
    (appliance_checks.check_lb_routing, ("lb routing",)),
    (appliance_checks.check_conntrack_bound, ("conntrack bound",)),
)
#: Checks that change a Sector's DHCP leases (per Sector, the Sectors side by side).
DHCP_LIFECYCLE = ("dhcp guard", "dhcp release", "dhcp restart")
GROUPS = (
    *(group for _, groups in PARALLEL for group in groups),
    "overlap",
    "invalid pkts",
    *(group for _, groups in SEQUENTIAL for group in groups),
    *DHCP_LIFECYCLE,
    "failover",
)


def parallel_checks(
    twin: TwinContext, sectors: tuple[SectorTwin, ...], groups: frozenset[str]
) -> list[Check]:
    """The independent checks of the chosen Sectors and groups, in table order."""
    checks: list[Check] = []
    for check, its_groups in PARALLEL:
        if groups.isdisjoint(its_groups):
            continue
        group = next(g for g in its_groups if g in groups)
        checks += [
            guarded(lambda c=check, s=sector: c(twin, s), group, sector.name) for sector in sectors
        ]
        if check is check_egress and "overlap" in groups:
            checks += [
                guarded(lambda a=a, b=b: check_overlap(twin, a, b), "overlap", f"{a.name}+{b.name}")
                for a, b in _overlapping_pairs(twin)
                if a in sectors or b in sectors
            ]
    return checks


def guarded(check: Check, group: str, where: str) -> Check:
    """``check``, with an error that stops it (a namespace that is not there, a command
    that fails) reported as a failed row of its group instead of ending the whole run.

    >>> def broken():
    ...     raise TwinError("olt-s.web.dns is not there" + chr(10) + "more")
    >>> guarded(broken, "dns forward", "web")()[0].got
    'olt-s.web.dns is not there'
    """

    def run() -> list[CheckResult]:
        try:
            return check()
        except (TwinError, OSError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            return [CheckResult(group, where, "(the check could not run)", "runs", reason, False)]

    return run


def select_sectors(twin: TwinContext, names: Sequence[str] = ()) -> tuple[SectorTwin, ...]:
    """The Sectors to check: all of them, or those named (each must exist)."""
    if not names:
        return twin.topology.sectors
    known = {sector.name: sector for sector in twin.topology.sectors}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise TwinError(
            f"no Sector {', '.join(map(repr, unknown))} in the twin; Sectors: {', '.join(known)}"
        )
    return tuple(known[name] for name in dict.fromkeys(names))


def select_groups(names: Sequence[str] = ()) -> frozenset[str]:
    """The check groups to run: all of them, or those named (each must exist).

    >>> sorted(select_groups(["isolation"]))
    ['isolation']
    """
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        raise TwinError(f"no check {', '.join(map(repr, unknown))}; checks: {', '.join(GROUPS)}")
    return frozenset(names or GROUPS)


def run_checks(
    twin: TwinContext,
    skip_failover: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    sectors: Sequence[str] = (),
    checks: Sequence[str] = (),
    skip_dhcp_changes: bool = False,
) -> list[CheckResult]:
    """Run the checks (of the named Sectors and groups, or all); the independent ones in
    parallel, then those that change the twin (counters, routes, DHCP leases, a gateway
    failure) one after the other."""
    chosen = select_sectors(twin, sectors)
    groups = select_groups(checks)
    if twin.state.kind == "cluster":
        present = set(twin.state.namespaces)
        for sector in chosen:
            for host in dhcp.unbound(twin, sector, present):
                progress(f"{host.ns.label} has no DHCP lease yet (its checks will say so)")
    independent = parallel_checks(twin, chosen, groups)
    progress(f"running {len(independent)} check groups ({WORKERS} at a time)...")
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = [row for rows in pool.map(lambda check: check(), independent) for row in rows]
    if "invalid pkts" in groups:
        progress("sending invalid packets (SYN+FIN)...")
        results += guarded(lambda: check_invalid(twin, chosen), "invalid pkts", "all")()
    for check, its_groups in SEQUENTIAL:
        if not groups.isdisjoint(its_groups):
            for sector in chosen:
                run = guarded(lambda c=check, s=sector: c(twin, s), its_groups[0], sector.name)
                results += run()
    if not skip_dhcp_changes and not groups.isdisjoint(DHCP_LIFECYCLE):
        progress("releasing, renaming and renewing DHCP leases, restarting each Sector DNS...")
        group = next(g for g in DHCP_LIFECYCLE if g in groups)
        lifecycles = [
            guarded(lambda s=s: dhcp_checks.lifecycle(twin, s), group, s.name) for s in chosen
        ]
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            changed = pool.map(lambda check: check(), lifecycles)
            results += [row for rows in changed for row in rows if row.check in groups]
    if not skip_failover and chosen and "failover" in groups:
        progress(f"stopping and restarting the {chosen[0].name} gateway...")
        results += guarded(lambda: check_failover(twin, chosen[0]), "failover", chosen[0].name)()
    return results
