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
- DHCP: see :mod:`orbitlab.twin.dhcp_checks`.

Results are :class:`~orbitlab.twin.results.CheckResult` rows, printed by
:func:`~orbitlab.twin.results.render_table`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from netaddr import IPAddress

from orbitlab.twin import TwinError, appliances, dhcp_checks, network, system
from orbitlab.twin.context import TwinContext
from orbitlab.twin.results import Check, CheckResult, dig
from orbitlab.twin.topology import (
    GUI_PORT,
    INTERNET_HOST,
    INTERNET_NAME,
    SERVICE_PORT,
    Namespace,
    SectorTwin,
)

PROBE_TIMEOUT_S = 2.0
INVALID_PROBES = 3
WORKERS = 8
LB_SETTLE_S = 15
REJECT_RETRY_S = 1.5
REJECT_WAIT_S = 1.0
NXDOMAIN_NAME = "no-such-host-twin"
SPOOF_PROBES = 3
MIRROR_PORTS = (80, 443)
COUNT_TABLE = "olt_count"
MARKER_BYTES = 8
#: Where the payload starts, in bits from the transport header (hping3 sends no options).
PAYLOAD_OFFSET = {"udp": 64, "tcp": 160}


# --- probes ---------------------------------------------------------------------------


def probe(
    twin: TwinContext,
    ns: Namespace,
    protocol: str,
    address: object,
    port: int,
    timeout: float = PROBE_TIMEOUT_S,
) -> dict[str, str]:
    """Run :mod:`orbitlab.twin.probe` in ``ns``; ``{"result": ..., "body": ...}``."""
    target = [protocol, str(address), str(port), "--timeout", str(timeout)]
    argv = twin.python(ns.name, "orbitlab.twin.probe", *target)
    result = system.run(argv, check=False, timeout=timeout + 10)
    try:
        return json.loads(result.stdout)
    except ValueError:
        return {"result": "error", "body": result.stderr.strip()[-80:]}


def shown(found: dict[str, str]) -> str:
    return found["body"] if found["result"] == "ok" else found["result"]


def source_of(sector: SectorTwin) -> tuple[Namespace, IPAddress]:
    """Where a Sector's traffic starts: its first host with a fixed address, or its DNS if
    it declares none."""
    for host in sector.fixed_hosts:
        if host.address is not None:
            return host.ns, host.address
    return sector.dns, sector.plan.dns_address


# --- checks ---------------------------------------------------------------------------


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
        masqueraded = f"dst={gateway_bp} " in conntrack
        got = f"seen as {seen}; gateway NAT {'to ' + str(gateway_bp) if masqueraded else 'none'}"
        results.append(
            CheckResult(
                "egress SNAT",
                ns.label,
                f"{INTERNET_HOST}:{SERVICE_PORT}",
                f"seen as {primary}; gateway NAT to {gateway_bp}",
                got,
                seen == str(primary) and masqueraded,
            )
        )
    return results


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
) -> Iterator[tuple[str, bool, object, int]]:
    """(what, must be rejected, address, TCP port) a Sector must never reach. The gateway
    rejects the Backplane and the nodes; other Sectors' hosts are simply not routed."""
    topology = twin.topology
    bp = topology.plan.backplane
    yield "Backplane gateway (node)", True, bp.gateway, GUI_PORT
    for node in topology.nodes:
        yield f"node {node.name} GUI", True, node.address, GUI_PORT
    own = [s.cidr for s in sector.plan.subnets]
    for other in topology.sectors:
        if other is sector:
            continue
        yield f"{other.name} gateway", True, other.plan.gateway_backplane, 22
        if other.plan.load_balancer is not None:
            lb = other.plan.load_balancer
            yield f"{other.name} LB", True, lb.backplane_address, lb.listeners[0].port
        for host in other.fixed_hosts:
            if not any(host.address in cidr for cidr in own):
                yield f"{other.name}/{host.name}", False, host.address, host.tcp_ports[0]


def _rejected(attempt: Callable[[], str]) -> str:
    """Run ``attempt`` (returning an outcome) again after a pause if it timed out: the
    gateway's ICMP rejects are rate-limited per host, so a burst may see one dropped."""
    outcome = attempt()
    if outcome in ("timeout", "timed out"):
        time.sleep(REJECT_RETRY_S)
        outcome = attempt()
    return outcome


def check_isolation(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """The gateway rejects (not silently drops) the Backplane, the nodes and direct queries
    to the upstream resolver; other Sectors' hosts are never reached."""
    ns, _ = source_of(sector)
    results = []
    for kind, must_reject, address, port in _isolation_targets(twin, sector):
        if must_reject:
            outcome = _rejected(
                lambda a=address, p=port: probe(twin, ns, "tcp", a, p, REJECT_WAIT_S)["result"]
            )
            ok = outcome == "rejected"
        else:
            outcome = probe(twin, ns, "tcp", address, port)["result"]
            ok = outcome in ("rejected", "timeout")
        expected = "rejected" if must_reject else "not reached"
        results.append(
            CheckResult("isolation", ns.label, f"{kind} {address}:{port}", expected, outcome, ok)
        )
    for resolver in twin.topology.external.resolver_addresses:
        outcome = _rejected(lambda r=resolver: dig(twin, ns, f"@{r}", INTERNET_NAME).show())
        results.append(
            CheckResult(
                "isolation",
                ns.label,
                f"upstream resolver {resolver}:53 directly",
                "rejected (only the DNS may)",
                outcome,
                outcome == "host unreachable",
            )
        )
    return results


def _invalid_targets(twin: TwinContext, sector: SectorTwin) -> list[object]:
    topology = twin.topology
    targets: list[object] = [topology.plan.backplane.gateway]
    targets += [node.address for node in topology.nodes]
    targets += [other.plan.gateway_backplane for other in topology.sectors if other is not sector]
    return targets


def _syn_fin(twin: TwinContext, ns: Namespace, targets: list[object]) -> int:
    """Send SYN+FIN probes from ``ns``; return how many the nodes' counters saw."""
    before = network.watch_count(twin.topology)
    for target in targets:
        argv = ["hping3", "-q", "-c", str(INVALID_PROBES), "-i", "u10000", "-S", "-F"]
        twin.run(ns.name, [*argv, "-p", str(GUI_PORT), str(target)], check=False, timeout=20)
    return network.watch_count(twin.topology) - before


def check_invalid(twin: TwinContext) -> list[CheckResult]:
    """SYN+FIN (conntrack-invalid) from each Sector: none reaches a node or the Backplane.
    The control (from the home LAN client to a node) shows the counters do see them."""
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
        )
    ]
    for sector in twin.topology.sectors:
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
    return results


def _egress_allowed(sector: SectorTwin, address: IPAddress) -> bool:
    egress = sector.plan.egress
    if any(address in cidr for cidr in egress.deny):
        return False
    return egress.default == "allow" or any(address in cidr for cidr in egress.allow)


def check_egress_policy(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """The home-LAN service: reachable unless the Sector's egress settings deny it."""
    ns, _ = source_of(sector)
    target = twin.topology.external.client_lan
    allowed = _egress_allowed(sector, target)
    found = probe(twin, ns, "http", target, SERVICE_PORT)
    reached = found["result"] == "ok"
    return [
        CheckResult(
            "egress policy",
            ns.label,
            f"home LAN service {target}:{SERVICE_PORT}",
            "answers" if allowed else "blocked (egress settings)",
            shown(found),
            reached == allowed,
        )
    ]


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
    upstream = dig(twin, ns, INTERNET_NAME)
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
            INTERNET_NAME,
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
    return results


def _lb_answers(
    twin: TwinContext,
    client: Namespace,
    address: object,
    port: int,
    protocol: str,
    wanted: set[str],
) -> set[str]:
    """Who answers a listener, asking until every backend did or the time is up: a backend
    HAProxy marked down (e.g. while its gateway was stopped) comes back after its checks."""
    answered: set[str] = set()
    deadline = time.monotonic() + LB_SETTLE_S
    while True:
        for _ in range(2 * len(wanted)):
            found = probe(twin, client, protocol, address, port)
            answered.add(found["body"].split()[0] if found["result"] == "ok" else found["result"])
        if answered >= wanted or time.monotonic() > deadline:
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


def check_failover(twin: TwinContext) -> list[CheckResult]:
    """Stop the first Sector's gateway: only that Sector loses egress; restart: it is back."""
    sectors = twin.topology.sectors
    failing = sectors[0]
    results = []
    appliances.stop_gateway(twin, failing)
    try:
        for sector in sectors:
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
        for sector in sectors[1:]:
            for row in check_lb(twin, sector):
                target = f"{row.target}, {failing.name} gateway stopped"
                results.append(replace(row, check="failover", target=target))
    finally:
        appliances.restart_gateway(twin, failing)
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


@dataclass(frozen=True)
class MarkedProbe:
    """Packets carrying a random payload marker, counted where they would arrive (in the
    receiver's namespace, before anything else sees them): NAT keeps a payload intact."""

    protocol: str
    address: object
    port: int
    marker: bytes

    @classmethod
    def new(cls, protocol: str, address: object, port: int) -> MarkedProbe:
        return cls(protocol, address, port, secrets.token_bytes(MARKER_BYTES))

    @property
    def match(self) -> str:
        offset = PAYLOAD_OFFSET[self.protocol]
        return (
            f"{self.protocol} dport {self.port} "
            f"@th,{offset},{MARKER_BYTES * 8} 0x{self.marker.hex()}"
        )

    def count_in(self, twin: TwinContext, ns: Namespace) -> Callable[[], int]:
        """Start counting in ``ns``; return a function that reads the count and stops it."""
        setup = (
            f"add table inet {COUNT_TABLE}\n"
            f"add chain inet {COUNT_TABLE} pre {{ type filter hook prerouting priority -300; }}\n"
        )
        twin.run(ns.name, ["nft", "-f", "-"], stdin=setup)
        chain = ["inet", COUNT_TABLE, "pre"]
        add = ["nft", "--echo", "--handle", "add", "rule", *chain, *self.match.split(), "counter"]
        added = twin.run(ns.name, add).stdout
        found = re.search(r"# handle (\d+)", added)
        if found is None:
            raise TwinError(f"{ns.label}: nft did not report the counter's handle: {added}")
        handle = found.group(1)

        def read() -> int:
            listing = twin.run(ns.name, ["nft", "-a", "list", "chain", *chain]).stdout
            counted = re.search(rf"counter packets (\d+) bytes \d+ # handle {handle}\b", listing)
            twin.run(ns.name, ["nft", "delete", "rule", *chain, "handle", handle])
            return int(counted.group(1)) if counted else 0

        return read

    def send(self, twin: TwinContext, ns: Namespace, spoof: object | None = None) -> None:
        """``SPOOF_PROBES`` TCP SYNs or UDP datagrams with the marker, from ``spoof`` if given."""
        marker = twin.run_dir(ns.name) / f"marker-{self.marker.hex()}"
        marker.write_bytes(self.marker)
        argv = ["hping3", "-q", "-c", str(SPOOF_PROBES), "-i", "u20000"]
        argv += ["-2"] if self.protocol == "udp" else ["-S"]
        argv += ["-d", str(MARKER_BYTES), "-E", str(marker)]
        if spoof is not None:
            argv += ["-a", str(spoof)]
        try:
            twin.run(ns.name, [*argv, "-p", str(self.port), str(self.address)], check=False)
        finally:
            marker.unlink(missing_ok=True)


def _spoof_targets(
    twin: TwinContext, sector: SectorTwin
) -> Iterator[tuple[str, Namespace, IPAddress, str, int]]:
    """(what, receiving namespace, address, protocol, port) the Sector DNS is exempted for:
    its resolvers (53), and mirror ports (80, 443) where the egress policy says no."""
    ext = twin.topology.external
    forwarders = sector.plan.forwarders or ext.resolver_addresses
    for resolver in forwarders:
        for protocol in ("udp", "tcp"):
            yield "upstream resolver", ext.resolver, IPAddress(resolver), protocol, 53
    for what, ns, address in (
        ("home LAN", ext.client, ext.client_lan),
        ("internet", ext.inet, INTERNET_HOST),
    ):
        if not _egress_allowed(sector, IPAddress(address)):
            for port in MIRROR_PORTS:
                yield f"{what} (mirror port)", ns, IPAddress(address), "tcp", port


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


def parallel_checks(twin: TwinContext) -> list[Check]:
    """Checks that do not disturb each other, in table order."""
    checks: list[Check] = []
    per_sector = (
        check_egress,
        check_isolation,
        check_egress_policy,
        check_routing,
        check_dns,
        check_lb,
        check_port_forwards,
        check_dns_spoofing,
    )
    for check in per_sector:
        checks += [lambda c=check, s=sector: c(twin, s) for sector in twin.topology.sectors]
        if check is check_egress:
            checks += [
                lambda a=a, b=b: check_overlap(twin, a, b) for a, b in _overlapping_pairs(twin)
            ]
    checks += dhcp_checks.parallel_checks(twin)
    return checks


def run_checks(
    twin: TwinContext,
    skip_failover: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    skip_dhcp_changes: bool = False,
) -> list[CheckResult]:
    """Run every check; the independent ones in parallel, then those that change the twin
    (invalid-packet counters, DHCP leases per Sector, gateway failure) one after the other."""
    checks = parallel_checks(twin)
    progress(f"running {len(checks)} check groups ({WORKERS} at a time)...")
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = [row for rows in pool.map(lambda check: check(), checks) for row in rows]
    progress("sending invalid packets (SYN+FIN)...")
    results += check_invalid(twin)
    if not skip_dhcp_changes:
        progress("releasing, renaming and renewing DHCP leases, restarting each Sector DNS...")
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            changed = pool.map(lambda s: dhcp_checks.lifecycle(twin, s), twin.topology.sectors)
            results += [row for rows in changed for row in rows]
    if not skip_failover and twin.topology.sectors:
        progress(f"stopping and restarting the {twin.topology.sectors[0].name} gateway...")
        results += check_failover(twin)
    return results
