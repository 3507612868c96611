"""The twin: the declared network running in namespaces, checked end to end.

Layout tests (no root) check how a plan becomes namespaces and links. The end-to-end tests
(``@pytest.mark.twin``, root) run the CLI as a user does: ``orbitlab twin up`` on the
example stack and on a three-Sector stack, ``twin test`` (every check passes), ``twin
exec`` / ``status``, a deliberately broken gateway that ``twin test`` must catch, and
``twin down`` — after which nothing of the twin is left and the root namespace is as it
was. Bring-up failures and interrupts must clean up too.

Every DHCP check is shown to fail when what it checks is broken (negative controls, run
in-process on the running twin and restored afterwards): a DHCP server with other options,
another pool and no reservations; a lease script that publishes every name and never
deletes one; a Sector DNS that does not read the names of leases; a DNS appliance that
loses its leases when it restarts; a client plugged into another Sector's VNet.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from netaddr import IPAddress

from orbitlab.plan import plan_stack
from orbitlab.rendering import DHCP_SCRIPT, DNSMASQ_CONF
from orbitlab.stack import load_plan, parse_settings
from orbitlab_lab.twin import TwinError, appliances, dhcp, network, system
from orbitlab_lab.twin.appliances import holder_script
from orbitlab_lab.twin.checks import lb as lb_checks
from orbitlab_lab.twin.checks import leases as dhcp_checks
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.network import node_commands
from orbitlab_lab.twin.probing import gateway_of, outcome_of, probe
from orbitlab_lab.twin.results import CheckResult, render_table
from orbitlab_lab.twin.runner import context_of
from orbitlab_lab.twin.state import require_state
from orbitlab_lab.twin.topology import GUI_PORT, HostTwin, Namespace, SectorTwin, build_topology

REPO = Path(__file__).parent.parent
EXAMPLE = REPO / "stacks" / "Pulumi.example.yaml"
THREE = REPO / "tests" / "data" / "twin" / "Pulumi.three.yaml"
TWIN_DIR = Path("/run/orbitlab-twin")
OUR_PREFIX = "olt-"
NFT_LOAD = ("nft", "-f", "-")
#: ``twin test`` without the checks that change the twin (for the negative controls)
QUICK_TEST = ("--skip-failover", "--skip-dhcp-changes")
#: Probes sent at once from one host to a rejected target.
BURST = 20


# --- layout (no root) -------------------------------------------------------------------


def test_example_topology_spreads_hosts_over_both_nodes():
    topology = build_topology(load_plan(str(EXAMPLE)))
    web = topology.sector("web")
    assert web.node == "pve2"
    assert {host.node for host in web.hosts} == {"pve1", "pve2"}
    assert topology.primary.name == "pve1"
    assert topology.external.resolver_addresses == (IPAddress("192.0.2.53"),)
    names = [ns.name for ns in topology.namespaces()]
    assert len(names) == len(set(names)) == 16
    assert all(name.startswith(OUR_PREFIX) for name in names)


def test_find_resolves_user_targets_and_explains_mistakes():
    topology = build_topology(load_plan(str(EXAMPLE)))
    assert topology.find("web/gateway").name == "olt-s.web.gateway"
    assert topology.find("web/lb").name == "olt-s.web.lb"
    assert topology.find("lab/box2").name == "olt-s.lab.box2"
    assert topology.find("node:pve1").name == "olt-n.pve1"
    assert topology.find("external:client").name == "olt-x.client"
    with pytest.raises(TwinError, match="no 'lb' in Sector 'lab'; choose one of: gateway, dns"):
        topology.find("lab/lb")
    with pytest.raises(TwinError, match="no Sector 'db'; Sectors: web, lab"):
        topology.find("db/app1")
    with pytest.raises(TwinError, match="expected SECTOR/HOST"):
        topology.find("web")


def test_twin_needs_two_nodes(raw_stack):
    raw_stack["backplane"]["nodes"] = raw_stack["backplane"]["nodes"][:1]
    plan = plan_stack("one", parse_settings(raw_stack))
    with pytest.raises(TwinError, match="at least two nodes"):
        build_topology(plan)


def test_interface_names_fit_the_kernel_limit_at_thirty_sectors(raw_stack):
    raw_stack["sectors"] = [
        {
            "name": f"sector{index:02d}",
            "subnets": ["172.16.0.0/24", "172.16.1.0/24"],
            "hosts": [{"name": "h1", "address": "172.16.0.21"}],
            "load_balancer": {"listeners": [{"port": 80, "backends": ["h1:8080"]}]},
        }
        for index in range(30)
    ]
    topology = build_topology(plan_stack("big", parse_settings(raw_stack)))
    for node in topology.nodes:
        for command in node_commands(topology, node):
            for name in re.findall(r"(?:link add|name) (\S+)", command):
                assert len(name) <= 15, command


def test_every_node_routes_remote_appliances_over_the_l3_vni():
    topology = build_topology(load_plan(str(EXAMPLE)))
    pve1 = node_commands(topology, topology.node("pve1"))
    pve2 = node_commands(topology, topology.node("pve2"))
    # both Sectors' appliances live on pve2: pve1 reaches them through the L3 VNI
    assert "route add 10.200.0.10/32 via 192.0.2.12 dev vrfvx_olbpz onlink" in pve1
    assert "route add 10.200.0.11/32 via 192.0.2.12 dev vrfvx_olbpz onlink" in pve1
    # pve2 is not the primary exit node: traffic leaving the Backplane goes to pve1
    assert "route add default via 192.0.2.11 dev vrfvx_olbpz onlink table 100" in pve2
    assert not any("table 100" in command for command in pve1)


def test_holder_overlays_the_appliance_root_on_etc(tmp_path):
    (tmp_path / "etc" / "frr").mkdir(parents=True)
    script = holder_script(
        Namespace("olt-s.web.gateway", "web/gateway", "olvn1001-router"),
        tmp_path,
        tmp_path / "resolv.conf",
    )
    assert f"mount -t overlay olt-etc -o lowerdir={tmp_path}/etc:/etc /etc" in script
    assert f"mount --bind {tmp_path}/resolv.conf /etc/resolv.conf" in script
    assert "hostname olvn1001-router" in script


def test_preflight_refuses_when_not_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(TwinError, match="must run as root"):
        system.preflight(system.CORE_TOOLS)


def test_preflight_names_missing_tools(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TwinError, match=r"missing tools: ip \(iproute2\).*coredns") as error:
        system.preflight(system.CORE_TOOLS)
    assert "scripts/setup.sh" in str(error.value)


def test_table_marks_failures():
    table = render_table(
        [
            CheckResult("egress SNAT", "web/app1", "203.0.113.10:80", "a", "a", True),
            CheckResult("isolation", "lab/box1", "10.200.0.10:22", "blocked", "ok", False),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["CHECK", "FROM", "TO", "EXPECTED", "GOT", "RESULT"]
    assert lines[2].endswith("PASS") and lines[3].endswith("FAIL")


def lb_rounds(monkeypatch, answers: Iterator[str], settle_s: float) -> set[str]:
    """What the lb ingress check concludes when a listener answers ``answers`` in turn; no
    twin needed."""

    def answer(*args: object, **kwargs: object) -> dict[str, str]:
        return {"result": "ok", "body": f"{next(answers)} 192.0.2.100"}

    monkeypatch.setattr(lb_checks, "probe", answer)
    monkeypatch.setattr(lb_checks, "LB_SETTLE_S", settle_s)
    monkeypatch.setattr(lb_checks.time, "sleep", lambda _: None)
    client = Namespace("olt-x.client", "external:client", "client")
    return lb_checks._lb_answers(None, client, "10.200.0.11", 80, "http", {"app1", "app2"})


def test_lb_ingress_waits_out_the_503s_of_backends_coming_up(monkeypatch):
    # HAProxy answers 503 until its health checks mark the backends up (just joined)
    coming_up = ["503", "503", "app1", "503", "app1", "app2"]
    answers = itertools.chain(coming_up, itertools.cycle(["app1", "app2"]))
    assert lb_rounds(monkeypatch, answers, settle_s=60) == {"app1", "app2"}


def test_lb_ingress_fails_a_listener_that_keeps_answering_503(monkeypatch):
    answers = itertools.cycle(["app1", "app2", "503"])
    assert lb_rounds(monkeypatch, answers, settle_s=0.2) == {"app1", "app2", "503"}


# --- end to end (root) ------------------------------------------------------------------

E2E_TOOLS = {**system.CORE_TOOLS, **system.TEST_TOOLS}
e2e = [
    pytest.mark.twin,
    pytest.mark.skipif(os.geteuid() != 0, reason="the twin needs root (network namespaces)"),
    pytest.mark.skipif(
        bool(system.missing_tools(E2E_TOOLS)),
        reason=f"missing tools (run scripts/setup.sh): {system.missing_tools(E2E_TOOLS)}",
    ),
]
CHECK_GROUPS = {
    "egress SNAT",
    "overlap",
    "isolation",
    "invalid pkts",
    "egress policy",
    "subnet routing",
    "dns forward",
    "dns reverse",
    "dns nxdomain",
    "dns forwarding",
    "lb ingress",
    "port forward",
    "failover",
    "dns spoofing",
    "lb client address",
    "icmp redirects",
    "gateway services",
    "mss clamp",
    "anti-spoofing",
    "directed broadcast",
    "ingress",
    "lb routing",
    "conntrack bound",
    "dhcp reserved",
    "dhcp pool",
    "dhcp options",
    "dhcp names",
    "dhcp sectors",
    "dhcp guard",
    "dhcp release",
    "dhcp restart",
    "rogue dhcp",
    "dhcp identity",
    "rogue ipv6",
}
#: The example stack has no DHCP reservation (its one dynamic host is app3).
EXAMPLE_GROUPS = CHECK_GROUPS - {"dhcp reserved", "dhcp identity"}


def orbitlab(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orbitlab.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def load_ruleset(target: str, ruleset: str) -> None:
    """Load a ruleset into a running appliance (``nft -f -`` inside it)."""
    loaded = subprocess.run(
        [sys.executable, "-m", "orbitlab.cli", "twin", "exec", target, "--", *NFT_LOAD],
        input=ruleset,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr


NAIVE_LEASE_SCRIPT = """#!/bin/sh
# publishes every name it is given and never removes one (a negative control)
case "$1" in add | old) ;; *) exit 0 ;; esac
[ -n "${{4:-}}" ] && echo "$3 $4.{domain}" >> /var/lib/misc/orbitlab-dhcp.hosts
exit 0
"""


def running_sector(name: str) -> tuple[TwinContext, SectorTwin]:
    """The running twin (as the CLI finds it) and one of its Sectors."""
    twin = context_of(require_state())
    return twin, twin.topology.sector(name)


def dns_file(twin: TwinContext, sector: SectorTwin, path: str) -> Path:
    """A file of the Sector DNS appliance, where its namespace reads it (its root)."""
    return twin.root_dir(sector.dns.name) / path.lstrip("/")


def serve_dhcp(twin: TwinContext, sector: SectorTwin, config: Path, content: str) -> None:
    """Restart the Sector DNS on ``content`` (written in place: the overlay keeps showing the
    same file) and have every client renew, or lease again if the server says no."""
    config.write_text(content)
    appliances.restart_dns(twin, sector)
    leases = {host: dhcp.read_lease(twin, host) for host in sector.dhcp_clients}
    for host in sector.dhcp_clients:
        dhcp.renew(twin, host)
    for host, lease in leases.items():
        dhcp.wait_bound(twin, host, after=lease.stamp if lease else 0)
    time.sleep(2)  # a renewal refused (NAK) leases again: let it settle
    for host in sector.dhcp_clients:
        dhcp.wait_bound(twin, host)


def names_resolve(twin: TwinContext, sector: SectorTwin) -> bool:
    """Whether every name from the Sector's leases resolves, within the time names take."""

    def named() -> bool:
        return all(r.ok for r in dhcp_checks.check_names(twin, sector))

    return dhcp_checks.poll(named, dhcp_checks.NAME_WAIT_S) is not None


def plug(twin: TwinContext, host: HostTwin, bridge: str) -> None:
    """Move a host's NIC to another bridge of its node (another Sector's VNet)."""
    node = twin.topology.node(host.node).ns.name
    system.run(["ip", "-n", node, "link", "set", host.port, "master", bridge])


def our_namespaces() -> list[str]:
    return [name for name in system.netns_list() if name.startswith(OUR_PREFIX)]


def twin_processes() -> list[str]:
    """Command lines of processes that belong to a twin (its files or helper modules)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(TWIN_DIR) in cmdline or "orbitlab_lab.twin.echo" in cmdline:
            found.append(cmdline)
    return found


def root_namespace_snapshot() -> dict[str, str]:
    """What the twin must never change in the root namespace."""
    commands = {
        "links": ["ip", "-o", "link", "show"],
        "addresses": ["ip", "-o", "addr", "show"],
        "routes": ["ip", "route", "show", "table", "all"],
        "rules": ["ip", "rule", "show"],
        "nftables": ["nft", "list", "ruleset"],
    }
    snapshot = {key: system.run(argv).stdout for key, argv in commands.items()}
    # address lifetimes and route expiry count down by themselves
    for key in ("addresses", "routes"):
        snapshot[key] = re.sub(r"(valid|preferred)_lft \S+|expires \S+", "", snapshot[key])
    for key in ("ip_forward", "conf/all/rp_filter", "conf/default/rp_filter"):
        snapshot[key] = Path(f"/proc/sys/net/ipv4/{key}").read_text()
    return snapshot


def assert_nothing_left(before: dict[str, str]) -> None:
    assert our_namespaces() == []
    assert twin_processes() == []
    assert not TWIN_DIR.exists()
    assert root_namespace_snapshot() == before


def table_rows(output: str) -> list[tuple[str, str]]:
    """(check, PASS|FAIL) of every row of the ``twin test`` table."""
    rows = []
    for line in output.splitlines():
        match = re.match(r"^(\S+(?: \S+){0,2})\s{2,}.*\s(PASS|FAIL)$", line)
        if match:
            rows.append((match.group(1), match.group(2)))
    return rows


def refuse_a_running_twin() -> None:
    """The tests bring up and take down the machine's one twin: never someone else's."""
    if TWIN_DIR.exists() or our_namespaces():
        pytest.fail("a twin is already up on this machine; run `orbitlab twin down` first")


@pytest.fixture(scope="class")
def twin_up(request) -> Iterator[tuple[subprocess.CompletedProcess[str], dict[str, str]]]:
    """Bring up the twin of the class's ``stack``; yield the ``up`` result and the root
    namespace as it was before. Always ``down`` at the end."""
    refuse_a_running_twin()
    before = root_namespace_snapshot()
    result = orbitlab("twin", "up", str(request.cls.stack))
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield result, before
    finally:
        orbitlab("twin", "down")


@pytest.mark.usefixtures("twin_up")
class TestExampleStack:
    stack = EXAMPLE
    pytestmark = e2e

    def test_up_reports_progress_and_builds_every_namespace(self, twin_up):
        result, _ = twin_up
        assert "[1/9] namespaces: 16 created" in result.stdout
        assert "twin up in" in result.stdout
        assert len(our_namespaces()) == 16

    def test_a_second_up_is_refused(self):
        result = orbitlab("twin", "up", str(THREE))
        assert result.returncode == 1
        assert "a twin is already up" in result.stderr
        assert len(our_namespaces()) == 16

    def test_every_check_passes(self):
        result = orbitlab("twin", "test")
        assert result.returncode == 0, result.stdout + result.stderr
        rows = table_rows(result.stdout)
        assert {check for check, _ in rows} == EXAMPLE_GROUPS
        assert all(outcome == "PASS" for _, outcome in rows)
        assert re.search(r"^\d+ passed, 0 failed$", result.stdout, re.MULTILINE)
        # app3 joined with DHCP: an address from web's pool, named by its lease
        assert re.search(r"^dhcp names .* app3\.web\.internal .*PASS$", result.stdout, re.M)

    def test_appliances_run_the_rendered_files(self):
        frr = orbitlab("twin", "exec", "web/gateway", "--", "cat", "/etc/frr/frr.conf")
        assert "hostname olvn1001-router" in frr.stdout
        nft = orbitlab("twin", "exec", "web/gateway", "--", "nft", "list", "ruleset")
        assert "table inet orbitlab" in nft.stdout
        assert "dnat ip to 172.16.0.21:22" in nft.stdout
        routes = orbitlab("twin", "exec", "web/lb", "--", "ip", "route")
        assert "172.16.1.0/24 via 172.16.0.1 dev eth1" in routes.stdout
        forward = orbitlab("twin", "exec", "web/lb", "--", "sysctl", "net.ipv4.ip_forward")
        assert forward.stdout.strip() == "net.ipv4.ip_forward = 0"

    def test_a_burst_of_rejects_gets_every_icmp(self):
        """twin test names each rejection by its ICMP, many at once from one host: the twin's
        gateways send every one (with the kernel's default, 2 of 20 came back)."""
        twin, web = running_sector("web")
        host = next(h for h in web.fixed_hosts if h.address is not None)
        rejected = f"rejected by {gateway_of(web, host.address)}"
        gui = twin.topology.nodes[0].address
        with ThreadPoolExecutor(BURST) as pool:
            got = list(
                pool.map(lambda _: probe(twin, host.ns, "tcp", gui, GUI_PORT, 1.0), range(BURST))
            )
        assert [outcome_of(found) for found in got] == [rejected] * BURST

    def test_exec_runs_in_a_host_with_the_sector_resolver(self):
        result = orbitlab("twin", "exec", "web/app2", "--", "dig", "+short", "app1.web.internal")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "172.16.0.21"
        assert orbitlab("twin", "exec", "web/app2", "--", "false").returncode == 1
        missing = orbitlab("twin", "exec", "web/nope", "--", "true")
        assert missing.returncode == 1
        assert "no 'nope' in Sector 'web'" in missing.stderr

    def test_status_shows_what_runs_and_where(self):
        result = orbitlab("twin", "status")
        assert result.returncode == 0, result.stderr
        gateway = (
            r"web/gateway .*eth0 172\.16\.0\.1/24, eth0 172\.16\.1\.1/24, eth1 10\.200\.0\.10/16"
        )
        assert re.search(gateway + r"\s+zebra staticd", result.stdout)
        assert re.search(r"web/lb .*haproxy", result.stdout)
        assert re.search(r"lab/box1 @pve1 .*172\.16\.0\.21/24\s+echo", result.stdout)
        assert re.search(
            r"web/app3 @pve1 dhcp .*eth0 172\.16\.0\.\d+/24\s+echo udhcpc", result.stdout
        )
        assert re.search(r"web/dns .*coredns dnsmasq", result.stdout)
        assert "0 exited" in result.stdout

    def test_a_gateway_without_its_rules_fails_the_checks(self):
        flushed = orbitlab("twin", "exec", "lab/gateway", "--", "nft", "flush", "ruleset")
        assert flushed.returncode == 0, flushed.stderr
        try:
            result = orbitlab("twin", "test", *QUICK_TEST, "--sector", "lab")
        finally:
            restore = ["nft", "-f", "/etc/nftables.nft"]
            assert orbitlab("twin", "exec", "lab/gateway", "--", *restore).returncode == 0
        assert result.returncode == 1
        failed = {check for check, outcome in table_rows(result.stdout) if outcome == "FAIL"}
        assert {"egress SNAT", "isolation", "invalid pkts"} <= failed

    def test_down_leaves_nothing(self, twin_up):
        _, before = twin_up
        result = orbitlab("twin", "down")
        assert result.returncode == 0, result.stderr
        assert "16 namespaces removed" in result.stdout
        assert_nothing_left(before)
        again = orbitlab("twin", "status")
        assert again.returncode == 1
        assert "no twin is up" in again.stderr


@pytest.mark.usefixtures("twin_up")
class TestThreeSectors:
    """Three Sectors: one with three subnets, two sharing 172.20.0.0/24 (and a host
    address); the primary exit node is the second node; resolvers on and off the LAN."""

    stack = THREE
    pytestmark = e2e

    def test_every_check_passes(self):
        result = orbitlab("twin", "test")
        assert result.returncode == 0, result.stdout + result.stderr
        rows = table_rows(result.stdout)
        assert {check for check, _ in rows} == CHECK_GROUPS
        assert all(outcome == "PASS" for _, outcome in rows)
        # every pair of the three subnets routed, both ways
        assert sum(1 for check, _ in rows if check == "subnet routing") == 8

    # --- negative controls of the DHCP checks (in-process, on the running twin) ---------

    def test_dhcp_checks_see_other_options_another_pool_and_no_reservations(self):
        twin, shop = running_sector("shop")
        config = dns_file(twin, shop, DNSMASQ_CONF)
        good = config.read_text()
        broken = good.replace("option:mtu,1450", "option:mtu,1400")
        broken = broken.replace("option:router,10.20.1.1", "option:router,10.20.1.254")
        broken = broken.replace("10.20.1.100,10.20.1.149", "10.20.1.150,10.20.1.199")
        broken = re.sub(r"(?m)^dhcp-host=.*,10\.20\.[02]\.\d+,.*\n", "", broken)
        assert broken.count("dhcp-host=") == 1  # till's name binding stays
        try:
            serve_dhcp(twin, shop, config, broken)
            options = dhcp_checks.check_options(twin, shop)
            pool = dhcp_checks.check_pool(twin, shop)
            reserved = dhcp_checks.check_reserved(twin, shop)
        finally:
            serve_dhcp(twin, shop, config, good)
        assert [r.ok for r in options] == [False] * 4, options
        assert all("MTU 1400 (eth0 1400)" in r.got for r in options)
        assert any("router 10.20.1.254" in r.got for r in options)
        assert [(r.source, r.ok) for r in pool] == [("shop/cart", False), ("shop/till", False)]
        assert [(r.source, r.ok) for r in reserved] == [("shop/front", False), ("shop/db", False)]
        # ... and with the rendered config back, every one of them holds again
        for check in (
            dhcp_checks.check_options,
            dhcp_checks.check_pool,
            dhcp_checks.check_reserved,
        ):
            assert all(r.ok for r in check(twin, shop)), check(twin, shop)

    def test_dhcp_checks_see_a_lease_script_that_publishes_every_name(self):
        twin, red = running_sector("red")
        script = dns_file(twin, red, DHCP_SCRIPT)
        good = script.read_text()
        try:
            script.write_text(NAIVE_LEASE_SCRIPT.format(domain=red.plan.domain))
            guard = dhcp_checks.check_guard(twin, red)
            release = dhcp_checks.check_release(twin, red)
        finally:
            script.write_text(good)
            appliances.restart_dns(twin, red)  # every lease's name checked again
        # the rogue names are published (and the client's address answers every name it sent)
        assert [(r.target, r.ok) for r in guard[:3]] == [
            ("gateway.red.internal", False),
            ("wpad.red.internal", False),
            ("ci.red.internal", False),
        ], guard
        # the released name stays (forward and reverse)
        assert not release[0].ok and "dev.red.internal." in release[0].got, release
        # the restarted dnsmasq runs the script for its leases after it answers, and CoreDNS
        # re-reads the hosts file a second later: the rogue names go within a few seconds
        system.wait_until(
            "the rogue names to go",
            lambda: (
                dhcp_checks.forward(twin, red, "gateway").answers
                == (str(red.plan.gateway_address),)
            ),
            10,
        )
        assert all(r.ok for r in dhcp_checks.check_guard(twin, red))
        assert all(r.ok for r in dhcp_checks.check_release(twin, red))

    def test_dhcp_names_see_a_sector_dns_that_does_not_read_the_leases(self):
        twin, red = running_sector("red")
        corefile = dns_file(twin, red, "/etc/coredns/Corefile")
        good = corefile.read_text()
        without_hosts = re.sub(r"\thosts [^\n]*\{\n(?:\t\t[^\n]*\n)*\t\}\n", "", good)
        assert "\thosts " not in without_hosts and without_hosts.count("\tfile ") == 2
        try:
            corefile.write_text(without_hosts)
            appliances.restart_dns(twin, red)
            names = dhcp_checks.check_names(twin, red)
        finally:
            corefile.write_text(good)
            appliances.restart_dns(twin, red)
        assert [(r.target, r.ok) for r in names] == [("dev.red.internal", False)], names
        assert names[0].got.startswith("NXDOMAIN;")
        assert names_resolve(twin, red)

    def test_dhcp_restart_sees_leases_that_do_not_survive(self):
        twin, blue = running_sector("blue")

        def restart_losing_leases(twin: TwinContext, sector: SectorTwin) -> None:
            system.stop_processes(twin.forget(sector.dns.name, "dnsmasq"))
            dhcp.lease_file(twin, sector).write_text("")
            appliances.restart_dns(twin, sector)

        lost = dhcp_checks.check_restart(twin, blue, restart=restart_losing_leases)
        assert [(r.source, r.ok) for r in lost] == [("blue/dev", False)], lost
        assert "(lease lost on disk)" in lost[0].got
        assert all(r.ok for r in dhcp_checks.check_restart(twin, blue))

    def test_dhcp_sectors_see_a_client_on_another_sectors_vnet(self):
        twin, red = running_sector("red")
        blue = twin.topology.sector("blue")
        dev = red.host("dev")
        try:
            plug(twin, dev, blue.bridge)
            dhcp_checks.rejoin(twin, dev)
            blue_leases = dhcp_checks.check_sectors(twin, blue)
            options = dhcp_checks.check_options(twin, red)
        finally:
            dhcp.release(twin, dev)  # blue forgets the stray lease
            time.sleep(1)
            plug(twin, dev, red.bridge)
            dhcp_checks.rejoin(twin, dev)
            # the stray client took blue's name 'dev' (the last claimant of a free name gets
            # it); blue's own dev claims it back with its next lease
            dhcp_checks.rejoin(twin, blue.host("dev"))
        assert not blue_leases[0].ok and "red/dev" in blue_leases[0].got, blue_leases
        assert "domain blue.internal" in options[0].got and not options[0].ok
        for sector in (red, blue):
            assert all(r.ok for r in dhcp_checks.check_sectors(twin, sector))
            assert names_resolve(twin, sector)
        assert all(r.ok for r in dhcp_checks.check_options(twin, red))

    def test_nodes_without_the_sector_guard_let_rogue_servers_and_impostors_through(self):
        """Negative control: with the guards unloaded from both nodes, the rogue DHCP
        server's offers, the impostor's offers and the rogue IPv6 router's messages reach
        the other hosts; with them loaded again, none does."""
        groups = ("rogue dhcp", "dhcp identity", "rogue ipv6")
        guard_checks = [arg for group in groups for arg in ("--check", group)]
        twin = context_of(require_state())
        for node in twin.topology.nodes:
            for sector in twin.topology.sectors:
                table = ["bridge", f"orbitlab_guard_{sector.bridge}"]
                system.run(system.in_netns(node.ns.name, ["nft", "delete", "table", *table]))
        try:
            without = orbitlab("twin", "test", *QUICK_TEST, *guard_checks)
        finally:
            network.load_guards(twin.topology)
        rows = table_rows(without.stdout)
        assert {check for check, _ in rows} == set(groups)
        assert rows and all(outcome == "FAIL" for _, outcome in rows), without.stdout
        again = orbitlab("twin", "test", *QUICK_TEST, *guard_checks)
        assert again.returncode == 0 and all(o == "PASS" for _, o in table_rows(again.stdout))

    def test_a_host_taking_the_dns_address_gets_none_of_its_exemptions(self):
        """Negative control: red's gateway without the MAC match lets the spoofer through."""
        live = orbitlab("twin", "exec", "red/gateway", "--", "cat", "/etc/nftables.nft").stdout
        without_mac = re.sub(r"ether saddr \$sector_dns_mac ", "", live)
        without_mac = without_mac.replace(
            "ether saddr . ip saddr != { $sector_dns_mac . $sector_dns }",
            "ip saddr != $sector_dns",
        )
        assert "sector_dns_mac" not in without_mac.split("define sector_dns_mac", 1)[1]
        load_ruleset("red/gateway", without_mac)
        spoofing_only = (*QUICK_TEST, "--check", "dns spoofing")
        try:
            result = orbitlab("twin", "test", *spoofing_only)
        finally:
            restore = ["nft", "-f", "/etc/nftables.nft"]
            assert orbitlab("twin", "exec", "red/gateway", "--", *restore).returncode == 0
        spoofing = [line for line in result.stdout.splitlines() if line.startswith("dns spoofing")]
        failed = [line for line in spoofing if line.endswith("FAIL")]
        # the resolver (udp, tcp) and the package mirror outside red's egress policy
        assert len(failed) == 3 and all("red/ci as 172.20.0.2" in line for line in failed)
        assert all(line.endswith("PASS") for line in spoofing if "red/ci" not in line)
        # ... and with the rule back, the spoofer is stopped again
        again = orbitlab("twin", "test", *spoofing_only)
        assert "FAIL" not in again.stdout and "dns spoofing" in again.stdout, again.stdout

    def test_a_reload_that_removes_a_forward_cuts_its_flows(self):
        """Provisioning flushes connection tracking after a reload of the gateway's rules:
        without it, a UDP flow through a removed forward would go on."""
        flow = ["--", sys.executable, "-m", "orbitlab_lab.twin.probe", "udp"]
        flow += ["10.210.0.10", "5353", "--sport", "40555", "--timeout", "1"]

        def send() -> str:
            return json.loads(orbitlab("twin", "exec", "external:client", *flow).stdout)["result"]

        live = orbitlab("twin", "exec", "shop/gateway", "--", "cat", "/etc/nftables.nft").stdout
        without = "\n".join(line for line in live.splitlines() if "5353" not in line) + "\n"
        assert send() == "ok"
        try:
            load_ruleset("shop/gateway", without)
            assert send() == "ok"  # the established flow outlives the removed rules...
            flush = orbitlab("twin", "exec", "shop/gateway", "--", "conntrack", "-F")
            assert flush.returncode == 0, flush.stderr
            assert send() != "ok"  # ... until connection tracking is flushed
        finally:
            restore = ["nft", "-f", "/etc/nftables.nft"]
            assert orbitlab("twin", "exec", "shop/gateway", "--", *restore).returncode == 0
            orbitlab("twin", "exec", "shop/gateway", "--", "conntrack", "-F")
        assert send() == "ok"

    def test_overlapping_sectors_are_distinct_hosts(self):
        red = orbitlab("twin", "exec", "red/ci", "--", "hostname")
        blue = orbitlab("twin", "exec", "blue/ci", "--", "hostname")
        assert red.stdout == blue.stdout == "ci\n"
        red_dns = orbitlab("twin", "exec", "red/ci", "--", "dig", "+short", "-x", "172.20.0.50")
        blue_dns = orbitlab("twin", "exec", "blue/ci", "--", "dig", "+short", "-x", "172.20.0.50")
        assert red_dns.stdout.strip() == "ci.red.internal."
        assert blue_dns.stdout.strip() == "ci.blue.internal."

    def test_down_leaves_nothing(self, twin_up):
        _, before = twin_up
        result = orbitlab("twin", "down")
        assert result.returncode == 0, result.stderr
        assert_nothing_left(before)


class TestCleanupOnFailure:
    pytestmark = e2e

    @pytest.fixture(autouse=True)
    def no_twin_before(self) -> None:
        refuse_a_running_twin()

    def test_interrupted_up_removes_everything(self):
        before = root_namespace_snapshot()
        process = subprocess.Popen(
            [sys.executable, "-m", "orbitlab.cli", "twin", "up", str(THREE)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C as a terminal sends it, even when the tests run in the background
            # (where the shell has the children ignore SIGINT)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("[5/9]"):
                process.send_signal(signal.SIGINT)
                break
        out, err = process.communicate(timeout=60)
        assert process.returncode == 130, out + err
        assert "bring-up interrupted; removing everything it built" in out
        assert "interrupted: the twin was removed" in err
        assert_nothing_left(before)

    def test_failed_up_removes_everything(self, monkeypatch, capsys):
        from orbitlab_lab.twin import appliances, runner

        def broken(twin, sector):
            raise TwinError(f"{sector.name}: load balancer failed to start (test)")

        before = root_namespace_snapshot()
        monkeypatch.setattr(appliances, "start_lb", broken)
        with pytest.raises(TwinError, match="load balancer failed to start"):
            runner.up(str(EXAMPLE), print)
        assert "bring-up failed; removing everything it built" in capsys.readouterr().out
        assert_nothing_left(before)

    def test_down_without_a_twin_is_harmless(self):
        result = orbitlab("twin", "down")
        assert result.returncode == 0, result.stderr
        assert "0 namespaces removed" in result.stdout
