"""``pulumi up`` (the real CLI) on the emulated cluster backed by the twin, then ``twin test``:
what the engine created is the network that is probed.

Each module-scoped cluster tells one story in order (root, the built CLI, one twin per
machine). The twin's expectations come from the stack file, reality from what the program
declared: the appliances and hosts are the containers the engine created, with their
declared NICs, addresses and gateways, provisioned in full by ``pct exec``.

- the example stack: every check passes (its hosts joined by hand, as VMs outside Pulumi);
  a changed port forward reaches the running gateway without restarting it; a stopped
  container goes and comes back from its own root; ``destroy`` removes the containers;
- the three-Sector stack: every check but the gateway failure and the DHCP lease changes
  (both run on the example stack; here they would double the time);
- examples/homelab: its app containers (a static one, a DHCP one) are the Sector's hosts,
  reachable by name and through the load balancer, and no host needs joining;
- negative controls: a program that puts web's DNS appliance on the Backplane VNet and gives
  lab's gateway a wrong Backplane address fails exactly the matching checks.

Select them with ``-m cluster`` (or leave them out with ``-m "not cluster"``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from netaddr import IPAddress

from orbitlab.rendering import provisioning_script, sector_bundles
from orbitlab.stack import load_plan
from orbitlab_lab.emulate import cluster as c
from orbitlab_lab.emulate import control
from orbitlab_lab.emulate.node import run_on_node
from orbitlab_lab.emulate.rehearsal import Rehearsal
from orbitlab_lab.twin import outage, runner, system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.state import load_state
from orbitlab_lab.twin.topology import INTERNET_HOST
from tests.pulumi_mocks import EXAMPLE_STACK, ROOT
from tests.test_twin import (
    CHECK_GROUPS,
    E2E_TOOLS,
    EXAMPLE_GROUPS,
    TWIN_DIR,
    assert_nothing_left,
    our_namespaces,
    root_namespace_snapshot,
    table_rows,
)

THREE_STACK = ROOT / "tests" / "data" / "twin" / "Pulumi.three.yaml"
HOSTS = {"gateway": "router", "dns": "dns", "lb": "lb"}
HOMELAB = ROOT / "examples" / "homelab"
FAST_APPLY_S = 0.3
#: Leaves out what the example stack's run covers already (see the module docstring).
QUICK = ("--skip-failover", "--skip-dhcp-changes")

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.twin,
    pytest.mark.rehearsal,
    pytest.mark.skipif(os.geteuid() != 0, reason="the twin needs root (network namespaces)"),
    pytest.mark.skipif(
        bool(system.missing_tools(E2E_TOOLS)),
        reason=f"missing tools (run scripts/setup.sh): {system.missing_tools(E2E_TOOLS)}",
    ),
    pytest.mark.skipif(
        not control.pulumi_built(),
        reason=f"the Pulumi CLI is not built in {control.pulumi_bin()} (orbitlab emulate build)",
    ),
]


def on_twin(
    workdir: Path,
    stack_file: Path,
    stack: str,
    program: Path = ROOT,
    endpoint: str | None = None,
) -> Iterator[Rehearsal]:
    """An emulated cluster backed by the twin, its stack initialized; everything removed at
    the end, and the root namespace as it was."""
    if TWIN_DIR.exists() or our_namespaces():
        pytest.fail("a twin is already up on this machine; run `orbitlab twin down` first")
    before = root_namespace_snapshot()
    rehearsal = Rehearsal.create(
        workdir, stack_file, apply_s=FAST_APPLY_S, twin_stack=stack, program=program
    )
    try:
        rehearsal.init_stack(stack, endpoint=endpoint)
        yield rehearsal
    finally:
        rehearsal.stop()
    assert_nothing_left(before)


def up(rehearsal: Rehearsal, *args: str) -> None:
    rehearsal.pulumi("up", "--yes", "--skip-preview", *args)
    assert all(a["ok"] for a in rehearsal.applies())


def twin_test(rehearsal: Rehearsal, *args: str) -> tuple[int, str, list[tuple[str, str]]]:
    done = rehearsal.orbitlab("twin", "test", *args, timeout=900)
    return done.returncode, done.stdout + done.stderr, table_rows(done.stdout)


def rows_of(output: str, check: str, source: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(rf"^{check}\s+{source}\s", line)]


def probe(rehearsal: Rehearsal, target: str, *args: str) -> dict[str, str]:
    argv = ["twin", "exec", target, "--", sys.executable, "-m", "orbitlab_lab.twin.probe", *args]
    return json.loads(rehearsal.orbitlab(*argv, check=True).stdout)


def live(ns: str, *argv: str) -> str:
    return system.run(["ip", "-n", ns, *argv]).stdout


INHERIT = "net.core.devconf_inherit_init_net"
WINDOW_TABLE = "olt_window"


def urn_of(rehearsal: Rehearsal, name: str) -> str:
    exported = json.loads(rehearsal.pulumi("stack", "export").stdout)
    resources = exported["deployment"]["resources"]
    return next(r["urn"] for r in resources if r["urn"].endswith(f"::{name}"))


@contextlib.contextmanager
def routed_through_gateway(twin: TwinContext, sector_name: str) -> Iterator[Callable[[], int]]:
    """Datagrams every 20 ms from the Sector gateway's node to an address of the Sector's
    first subnet that nobody has, routed through the gateway's Backplane address; yields a
    function that counts the gateway's ARP requests for it on the node's Sector bridge (each
    one a packet the gateway routed)."""
    sector = twin.topology.sector(sector_name)
    node = twin.topology.node(sector.node).ns.name
    target = IPAddress(sector.plan.subnets[0].cidr.last - 1)
    counter = (
        f"table bridge {WINDOW_TABLE} {{\n\tchain pre {{\n"
        "\t\ttype filter hook prerouting priority -300; policy accept;\n"
        f"\t\tarp operation request arp daddr ip {target} counter\n\t}}\n}}\n"
    )
    system.nft(node, counter)
    via = ["via", str(sector.plan.gateway.backplane_address), "dev", twin.topology.backplane_bridge]
    system.run(["ip", "-n", node, "route", "replace", f"{target}/32", *via])
    flood = ["hping3", "-q", "-2", "-p", "9", "-i", "u20000", str(target)]
    sender = subprocess.Popen(
        system.in_netns(node, flood), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def arps() -> int:
        table = ["nft", "list", "table", "bridge", WINDOW_TABLE]
        listing = system.run(system.in_netns(node, table))
        found = re.search(r"counter packets (\d+)", listing.stdout)
        return int(found.group(1)) if found else 0

    try:
        yield arps
    finally:
        sender.kill()
        sender.wait()
        system.run(["ip", "-n", node, "route", "del", f"{target}/32"], check=False)
        system.run(system.in_netns(node, ["nft", "delete", "table", "bridge", WINDOW_TABLE]))


# --- the example stack, one story ------------------------------------------------------------


@pytest.fixture(scope="class")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    yield from on_twin(tmp_path_factory.mktemp("example-twin"), EXAMPLE_STACK, "example")


def forward_2022(config: dict[str, Any]) -> None:
    config["orbitlab:sectors"][0]["port_forwards"] = [{"port": 2022, "to": "app1:22"}]


def more_memory(config: dict[str, Any]) -> None:
    config["orbitlab:appliances"]["memory_mib"] = 192


#: A port the internet host serves lines on while an outage is watched.
OUTAGE_PORT = 9099


def lab_without_dhcp(config: dict[str, Any]) -> None:
    config["orbitlab:sectors"][1]["dhcp"] = {"enabled": False}


def started(rehearsal: Rehearsal, vmid: int, on: bool) -> None:
    """Stop or start a container as the provider does (``started`` changed in place)."""
    record = rehearsal.store.read()["containers"][str(vmid)]
    container = c.Container(
        vmid=vmid,
        node=record["node"],
        hostname=record["hostname"],
        template=record["template"],
        storage=record["storage"],
        nics=tuple(record["nics"]),
        started=on,
        dns=record["dns"],
        disk_gib=record["disk_gib"],
        tags=tuple(record["tags"]),
    )
    c.update_container(rehearsal.store, container)


class TestExampleStack:
    """The example stack: its appliances from the engine, its hosts joined by hand."""

    def test_up_makes_every_container_a_namespace_with_its_declared_nics(
        self, example: Rehearsal
    ) -> None:
        up(example)
        gateway = live("olt-s.web.gateway", "-j", "addr", "show")
        nics = {link["ifname"]: link for link in json.loads(gateway)}
        assert nics["eth0"]["address"] == "02:4f:4c:10:03:e9" and nics["eth0"]["mtu"] == 1450
        assert nics["eth1"]["address"] == "02:4f:4c:11:03:e9"
        addresses = {f"{a['local']}/{a['prefixlen']}" for a in nics["eth1"]["addr_info"]}
        assert addresses == {"10.200.0.10/16"}
        assert "default via 10.200.0.1 dev eth1" in live("olt-s.web.gateway", "route")
        # the node side is Proxmox's veth, in the VNet's bridge
        port = live("olt-n.pve2", "-o", "link", "show", "veth10011i0")
        assert "master olvn1001" in port
        # provisioned in full: its services enabled and running, from its own /etc
        status = example.orbitlab("twin", "status", check=True).stdout
        assert re.search(r"web/gateway CT 10011 .*10\.200\.0\.10/16\s+zebra staticd", status)
        assert re.search(r"lab/dns CT 10022 .*coredns dnsmasq", status)
        runlevels = example.orbitlab("twin", "exec", "web/lb", "--", "ls", "/etc/runlevels/default")
        assert runlevels.stdout.split() == ["haproxy", "local", "nftables"]
        host = Path("/etc/runlevels")
        assert not (host / "default" / "haproxy").exists()  # the host's /etc is untouched

    def test_provisioning_again_changes_nothing(self, example: Rehearsal) -> None:
        """Idempotent in full: no file written, no service started or reloaded."""
        plan = load_plan(str(example.project / "Pulumi.example.yaml"))
        before = load_state()
        assert before is not None
        for role, vmid in (("gateway", 10011), ("dns", 10012), ("lb", 10013)):
            script = provisioning_script(sector_bundles(plan, plan.sector("web"))[role])
            again = run_on_node(
                example.store, "pve2", f"pct exec {vmid} -- /bin/sh -s", script, "t"
            )
            assert again.status == 0, again.stderr
            assert again.stderr.splitlines() == [f"orbitlab[olvn1001-{HOSTS[role]}]: provisioned"]
        after = load_state()
        assert after is not None and set(after.processes) == set(before.processes)

    def test_the_declared_hosts_join_by_hand_and_every_check_passes(
        self, example: Rehearsal
    ) -> None:
        joined = example.orbitlab("emulate", "join", check=True)
        assert "joined 5 host(s) by hand: web/app1, web/app2, web/app3, lab/box1, lab/box2" in (
            joined.stderr
        )
        code, output, rows = twin_test(example)
        assert code == 0, output
        assert {check for check, _ in rows} == EXAMPLE_GROUPS
        assert all(outcome == "PASS" for _, outcome in rows), output

    def test_a_changed_port_forward_reaches_the_running_gateway(self, example: Rehearsal) -> None:
        before = load_state()
        assert before is not None
        daemons = {(p.what, p.pid) for p in before.processes_in("olt-s.web.gateway")}
        holder = before.holders["olt-s.web.gateway"].pid
        example.edit("example", forward_2022)
        assert example.changes() == {"update": ["web-gateway-provision"]}
        runs = len(example.store.read()["runs"])
        up(example)
        ran = example.store.read()["runs"][runs:]
        assert [(r["vmid"], r["wrote"]) for r in ran] == [(10011, ["/etc/nftables.nft"])]
        after = load_state()
        assert after is not None and after.holders["olt-s.web.gateway"].pid == holder
        assert {(p.what, p.pid) for p in after.processes_in("olt-s.web.gateway")} == daemons
        code, output, _ = twin_test(example, "--sector", "web", "--check", "port forward")
        assert code == 0, output
        assert "web 10.200.0.10:2022/tcp -> 172.16.0.21:22" in output
        assert probe(example, "external:client", "tcp", "10.200.0.10", "2222")["result"] != "ok"

    def test_a_change_the_provider_reboots_for_reboots_the_appliances(
        self, example: Rehearsal
    ) -> None:
        """More memory: bpg's provider updates every appliance and reboots it. The preview
        says so; the gateway's namespace and daemons go and come back from its own root; a
        connection through it and new ones are watched from a host, and everything passes
        right after."""
        before = load_state()
        assert before is not None
        gateway = "olt-s.web.gateway"
        daemons = {p.what: p.pid for p in before.processes_in(gateway)}
        example.edit("example", more_memory)
        preview = example.pulumi("preview").stdout
        assert (
            "web-gateway will be rebooted (CT 10011 olvn1001-router on pve2): "
            "memory.dedicated 128 -> 192." in " ".join(preview.split())
        ), preview
        twin = runner.context_of(before)
        with (
            outage.serving(twin, "external:inet", OUTAGE_PORT),
            outage.watching(twin, "web/app1", str(INTERNET_HOST), OUTAGE_PORT) as watch,
        ):
            up(example)
            report = watch()
        after = load_state()
        assert after is not None
        assert after.holders[gateway].pid != before.holders[gateway].pid  # a new namespace
        restarted = {p.what: p.pid for p in after.processes_in(gateway)}
        assert set(restarted) == set(daemons)
        assert not set(restarted.values()) & set(daemons.values())  # every daemon restarted
        reboots = example.store.read()["reboots"]
        assert sorted(r["vmid"] for r in reboots) == [10011, 10012, 10013, 10021, 10022]
        # the Sector was cut off while its gateway booted, and came back
        print(f"reboot outage seen from web/app1: {report}")
        assert report["failures"] > 0 and report["outage_s"] > 0 and not report["still_failing"]
        code, output, _ = twin_test(example, *QUICK)
        assert code == 0, output

    def test_a_stopped_container_goes_and_starts_again_from_its_own_root(
        self, example: Rehearsal
    ) -> None:
        started(example, 10021, False)
        assert "olt-s.lab.gateway" not in our_namespaces()
        status = example.orbitlab("twin", "status", check=True).stdout
        assert "CT 10021 (lab/gateway) is stopped" in status
        code, output, _ = twin_test(example, "--sector", "lab", "--check", "egress SNAT")
        assert code == 1 and "olt-s.lab.gateway is not there" in output
        started(example, 10021, True)
        code, output, _ = twin_test(example, "--sector", "lab", "--check", "egress SNAT")
        assert code == 0, output  # its services came back from its own /etc/runlevels

    def test_turning_dhcp_off_stops_and_disables_the_running_dnsmasq(
        self, example: Rehearsal
    ) -> None:
        example.edit("example", lab_without_dhcp)
        up(example)
        status = example.orbitlab("twin", "status", check=True).stdout
        assert re.search(r"lab/dns CT 10022 .*172\.16\.0\.2/24\s+coredns$", status, re.M), status
        enabled = example.orbitlab("twin", "exec", "lab/dns", "--", "ls", "/etc/runlevels/default")
        assert enabled.stdout.split() == ["coredns"]

    def test_a_replaced_gateway_routes_nothing_before_its_ruleset_is_loaded(
        self, example: Rehearsal
    ) -> None:
        """lab's gateway replaced (a new container), probed the whole time from its node:
        datagrams routed through its Backplane address to an address of lab's subnet. A
        gateway that routes makes its ARP request for that address, seen on the node's
        bridge. With docs/prerequisites.md's setting (``devconf_inherit_init_net`` 2) it never
        does, the old gateway's teardown included. On a node that gives new containers its
        forwarding (0) the new gateway routes before provisioning loads its ruleset: the negative
        control."""
        urn = urn_of(example, "lab-gateway-ct")
        seen = {}
        # 2 first: an ARP request the gateway of a window sent goes on being retransmitted
        # (3 in all, 1 s apart) into the next probe
        try:
            for inherit in ("2", "0"):
                example.orbitlab("emulate", "sysctl", "pve2", f"{INHERIT}={inherit}", check=True)
                with routed_through_gateway(runner.context_of(load_state()), "lab") as arps:
                    up(example, "--replace", urn)
                    seen[inherit] = arps()
        finally:
            example.orbitlab("emulate", "sysctl", "pve2", f"{INHERIT}=2", check=True)
        print(f"ARP requests of the new gateway for the probed address: {seen}")
        assert seen["0"] > 0, "no window seen: the probe cannot see one"
        assert seen["2"] == 0
        code, output, _ = twin_test(example, "--sector", "lab", "--check", "egress SNAT")
        assert code == 0, output

    def test_destroy_removes_the_containers(self, example: Rehearsal) -> None:
        example.pulumi("destroy", "--yes", "--exclude-protected")
        left = [ns for ns in our_namespaces() if ns.endswith((".gateway", ".dns", ".lb"))]
        assert left == []
        state = load_state()
        assert state is not None and state.containers == {}
        bridges = live("olt-n.pve1", "-o", "link", "show", "type", "bridge")
        assert "olbpvn" in bridges and "olvn1001" not in bridges


# --- the three-Sector stack ------------------------------------------------------------------


def red_forwards_to_its_own_resolver(config: dict[str, Any]) -> None:
    """red (deny by default) forwards to a resolver that is not the appliances' nameserver:
    its gateway lets its DNS appliance reach that one only."""
    config["orbitlab:sectors"][1]["dns"] = {"forwarders": ["192.0.2.53"]}


@pytest.fixture(scope="class")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    yield from on_twin(
        tmp_path_factory.mktemp("three-twin"),
        THREE_STACK,
        "three",
        endpoint="https://192.0.2.21:8006/",
    )


class TestThreeSectors:
    """The three-Sector stack."""

    def test_three_sectors_built_by_the_engine_pass_the_checks(self, three: Rehearsal) -> None:
        three.edit("three", red_forwards_to_its_own_resolver)
        up(three)
        joined = three.orbitlab("emulate", "join", check=True)
        assert "joined 10 host(s) by hand" in joined.stderr
        code, output, rows = twin_test(three, *QUICK)
        assert code == 0, output
        groups = CHECK_GROUPS - {"failover", "dhcp guard", "dhcp release", "dhcp restart"}
        assert {check for check, _ in rows} == groups
        assert all(outcome == "PASS" for _, outcome in rows), output
        # deny by default, a forwarder of its own: the DNS appliance resolves through it
        own = [line for line in rows_of(output, "gateway services", "red/dns") if "own" in line]
        assert len(own) == 1 and own[0].endswith("PASS"), output


# --- examples/homelab ------------------------------------------------------------------------


@pytest.fixture(scope="class")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    yield from on_twin(
        tmp_path_factory.mktemp("homelab-twin"),
        HOMELAB / "Pulumi.homelab.yaml",
        "homelab",
        program=HOMELAB,
    )


class TestHomelab:
    """examples/homelab: a program of its own, its app containers the hosts."""

    def test_homelabs_app_containers_are_its_hosts(self, homelab: Rehearsal) -> None:
        up(homelab)
        joined = homelab.orbitlab("emulate", "join", check=True)
        assert "joined 0 host(s) by hand: none missing" in joined.stderr
        status = homelab.orbitlab("twin", "status", check=True).stdout
        assert re.search(r"media/jellyfin @pve\d CT 100150 .*172\.20\.0\.20/24\s+echo", status)
        assert re.search(r"media/tools @pve\d dhcp CT 100151 .*echo udhcpc", status)
        code, output, rows = twin_test(homelab, *QUICK)
        assert code == 0, output
        assert all(outcome == "PASS" for _, outcome in rows), output
        # by name (the static one from the zone, the DHCP one from its lease) and through the LB
        assert rows_of(output, "dns forward", "media/jellyfin") and all(
            line.endswith("PASS") for line in rows_of(output, "dhcp names", r"\S+")
        )
        assert re.search(
            r"^lb ingress .*media LB 10\.200\.0\.11:8096 .*jellyfin\s+PASS$", output, re.M
        )


# --- negative controls -----------------------------------------------------------------------

MISWIRED = textwrap.dedent(
    """
    '''The stack program with two wiring mistakes, a negative control of twin test: web's DNS
    appliance on the Backplane VNet, lab's gateway with a wrong Backplane address.'''
    from dataclasses import replace

    import orbitlab.components.sector as sector_module
    from orbitlab.program import main

    declared = sector_module.appliance_nics


    def miswired(sector, backplane):
        nics = declared(sector, backplane)
        if sector.name == "web":
            nics["dns"] = (replace(nics["dns"][0], bridge=backplane.vnet_id),)
        if sector.name == "lab":
            eth0, eth1 = nics["gateway"]
            nics["gateway"] = (eth0, replace(eth1, address="10.200.0.99/16"))
        return nics


    sector_module.appliance_nics = miswired
    main()
    """
)


@pytest.fixture(scope="class")
def miswired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    program = tmp_path_factory.mktemp("miswired-program")
    shutil.copy(ROOT / "Pulumi.yaml", program / "Pulumi.yaml")
    (program / "__main__.py").write_text(MISWIRED)
    workdir = tmp_path_factory.mktemp("miswired-twin")
    yield from on_twin(workdir, EXAMPLE_STACK, "example", program=program)


class TestMiswiredProgram:
    """Negative controls: what a wrong declaration does to twin test."""

    def test_a_miswired_program_fails_exactly_the_matching_checks(
        self, miswired: Rehearsal
    ) -> None:
        up(miswired)
        # the hosts these checks start from (static: web's DHCP is not on web's VNet either)
        miswired.orbitlab("emulate", "join", "web/app1", "web/app2", "lab/box1", check=True)
        code, output, _ = twin_test(miswired, "--check", "dns forward", "--check", "egress SNAT")
        assert code == 1
        # web's DNS is not on web's VNet: its names do not answer; lab's do (the control)
        web_dns = rows_of(output, "dns forward", "web/app1")
        assert web_dns and all(line.endswith("FAIL") for line in web_dns), output
        assert all(line.endswith("PASS") for line in rows_of(output, "dns forward", "lab/box1"))
        # lab's gateway masquerades to the address it was given, not its allocated one
        lab_snat = rows_of(output, "egress SNAT", "lab/box1")
        assert len(lab_snat) == 1 and lab_snat[0].endswith("FAIL"), output
        assert "gateway NAT to 10.200.0.99" in lab_snat[0]
        assert all(line.endswith("PASS") for line in rows_of(output, "egress SNAT", "web/app\\d"))
