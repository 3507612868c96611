"""Rendering, driven by data files: each stack under tests/data/render renders to exactly
the files under its ``expected/`` directory, byte for byte, with the same modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orbitlab.plan import plan_stack
from orbitlab.rendering import SYSCTL_FILE, sector_bundles
from orbitlab.stack import load_plan, parse_settings
from tests.golden import cases, render_case, stack_file


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(path.relative_to(root)): (path.stat().st_mode & 0o777, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_renders_exactly_the_expected_files(case: Path, tmp_path: Path):
    render_case(case, tmp_path)
    rendered, expected = tree(tmp_path), tree(case / "expected")
    assert sorted(rendered) == sorted(expected)
    for name, (mode, content) in expected.items():
        assert rendered[name][1].decode() == content.decode(), name
        assert rendered[name][0] == mode, name


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_rendering_is_deterministic(case: Path, tmp_path: Path):
    render_case(case, tmp_path / "a")
    render_case(case, tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_example_layout_matches_the_cli_contract(tmp_path: Path):
    render_case(cases()[[c.name for c in cases()].index("example")], tmp_path)
    for path in (
        "web/gateway/etc/nftables.nft",
        "web/gateway/etc/frr/frr.conf",
        "web/dns/etc/coredns/Corefile",
        "web/lb/etc/haproxy/haproxy.cfg",
        "web/provision-gateway.sh",
        "lab/gateway/etc/nftables.nft",
    ):
        assert (tmp_path / path).is_file(), path
    assert not (tmp_path / "lab" / "lb").exists()  # no load balancer declared for lab


def example_plan():
    return load_plan(str(stack_file(next(c for c in cases() if c.name == "example"))))


def test_gateway_holds_every_subnet_and_routes_via_the_backplane():
    plan = example_plan()
    frr = sector_bundles(plan, plan.sector("web"))["gateway"].file("/etc/frr/frr.conf").content
    assert "hostname olvn1001-router" in frr
    assert " ip address 172.16.0.1/24\n ip address 172.16.1.1/24\n" in frr
    assert " ip address 10.200.0.10/16" in frr
    assert "ip route 0.0.0.0/0 10.200.0.1" in frr


def test_overlapping_sectors_render_side_by_side():
    plan = example_plan()
    web, lab = plan.sector("web"), plan.sector("lab")
    assert web.subnets[0].cidr == lab.subnets[0].cidr
    web_nft = sector_bundles(plan, web)["gateway"].file("/etc/nftables.nft").content
    lab_nft = sector_bundles(plan, lab)["gateway"].file("/etc/nftables.nft").content
    assert "define gateway_backplane = 10.200.0.10" in web_nft
    assert "define gateway_backplane = 10.200.0.12" in lab_nft
    assert "ip daddr 192.168.0.0/16 reject" in lab_nft
    assert "192.168.0.0/16" not in web_nft


def test_every_appliance_turns_ipv6_off_and_loads_its_sysctl_file():
    plan = load_plan(str(Path(__file__).parent.parent / "stacks" / "Pulumi.example.yaml"))
    for sector in plan.sectors:
        for role, bundle in sector_bundles(plan, sector).items():
            sysctl = bundle.file(SYSCTL_FILE).content
            assert "net.ipv6.conf.all.disable_ipv6 = 1" in sysctl, role
            assert "net.ipv6.conf.default.disable_ipv6 = 1" in sysctl, role
            assert f"sysctl -q -p {SYSCTL_FILE}" in bundle.commands, role


def gateway_ruleset(raw_stack: dict, sector: str = "web") -> str:
    plan = plan_stack("dev", parse_settings(raw_stack))
    return sector_bundles(plan, plan.sector(sector))["gateway"].file("/etc/nftables.nft").content


def test_node_broadcasts_are_sorted_unique_and_leave_out_31_and_32(raw_stack: dict):
    nodes = raw_stack["backplane"]["nodes"]
    nodes[0]["networks"] = ["192.0.2.0/24", "172.20.0.0/16", "198.51.100.0/31"]
    nodes[1]["networks"] = ["192.0.2.0/24", "172.3.0.0/24", "203.0.113.9/32"]
    backplane = plan_stack("dev", parse_settings(raw_stack)).backplane
    assert [str(address) for address in backplane.node_broadcasts] == [
        "172.3.0.255",
        "172.20.255.255",
        "192.0.2.255",
    ]


def test_directed_broadcasts_to_node_networks_are_dropped_before_egress(raw_stack: dict):
    raw_stack["backplane"]["nodes"][0]["networks"] = ["192.0.2.0/24", "198.51.100.0/25"]
    raw_stack["backplane"]["nodes"][1]["networks"] = ["192.0.2.0/24"]
    raw_stack["sectors"][1]["egress"] = {"default": "deny", "allow": ["203.0.113.0/24"]}
    rule = 'iifname "eth0" ip daddr $node_broadcasts drop'
    for sector in ("web", "lab"):
        nft = gateway_ruleset(raw_stack, sector)
        assert "define node_broadcasts = { 192.0.2.255, 198.51.100.127 }\n" in nft
        forward = nft.split("chain forward", 1)[1]
        assert forward.count(rule) == 1
        egress = [line for line in forward.splitlines() if 'oifname "eth1"' in line]
        assert egress and all(line.endswith("accept") for line in egress)
        assert all(forward.index(rule) < forward.index(line) for line in egress), sector


def test_without_node_networks_there_is_no_broadcast_set(raw_stack: dict):
    raw_stack["backplane"]["nodes"][0]["networks"] = ["198.51.100.0/31"]  # no broadcast
    nft = gateway_ruleset(raw_stack)
    assert "node_broadcasts" not in nft


def test_the_load_balancer_forwards_nothing_so_needs_no_broadcast_rule(raw_stack: dict):
    raw_stack["backplane"]["nodes"][0]["networks"] = ["192.0.2.0/24"]
    plan = plan_stack("dev", parse_settings(raw_stack))
    lb = sector_bundles(plan, plan.sector("web"))["lb"].file("/etc/nftables.nft").content
    forward = lb.split("chain forward", 1)[1]
    assert forward.split("\n", 3)[1:3] == [
        "\t\ttype filter hook forward priority filter; policy drop;",
        "\t}",
    ]
