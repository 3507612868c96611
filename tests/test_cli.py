"""The command line as a user runs it: ``orbitlab validate`` and ``orbitlab render``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).parent.parent
EXAMPLE = REPO / "stacks" / "Pulumi.example.yaml"


def orbitlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orbitlab.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_validate_accepts_the_example():
    result = orbitlab("validate", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "valid - 2 node(s), 2 Sector(s), Backplane 10.200.0.0/16 (MTU 1450)" in result.stdout


def test_validate_warns_of_allowed_egress_without_protected_networks(tmp_path):
    result = orbitlab("validate", str(EXAMPLE))
    assert result.stderr == (
        "warning: Sector(s) web, lab may reach the LAN (egress: allow) as the primary exit "
        "node pve1's address (192.0.2.11), and orbitlab:backplane.protected_networks is "
        "empty: a LAN service that trusts the node (an NFS export to it, a backup server) "
        "trusts those Sectors too; list such servers there (`orbitlab discover` proposes the "
        "cluster's storage servers)\n"
    )
    document = yaml.safe_load(EXAMPLE.read_text())
    document["config"]["orbitlab:backplane"]["protected_networks"] = ["198.51.100.20/32"]
    stack = tmp_path / "Pulumi.safe.yaml"
    stack.write_text(yaml.safe_dump(document))
    assert orbitlab("validate", str(stack)).stderr == ""
    del document["config"]["orbitlab:backplane"]["protected_networks"]
    for sector in document["config"]["orbitlab:sectors"]:
        sector["egress"] = {"default": "deny"}
    stack.write_text(yaml.safe_dump(document))
    assert orbitlab("validate", str(stack)).stderr == ""


def test_validate_warns_of_nodes_without_networks_and_of_an_address_outside_them(tmp_path):
    document = yaml.safe_load(EXAMPLE.read_text())
    document["config"]["orbitlab:backplane"]["protected_networks"] = ["198.51.100.20/32"]
    nodes = document["config"]["orbitlab:backplane"]["nodes"]
    del nodes[0]["networks"]
    nodes[1]["networks"] = ["198.51.100.0/24", "203.0.113.0/24"]
    stack = tmp_path / "Pulumi.open.yaml"
    stack.write_text(yaml.safe_dump(document))
    result = orbitlab("validate", str(stack))
    assert result.returncode == 0, result.stderr  # a warning, not a refusal
    assert result.stderr == (
        "warning: directed broadcasts to node pve1's networks are not refused; add "
        "backplane.nodes[].networks (orbitlab discover fills them in)\n"
        "warning: node pve2's address 192.0.2.12 lies in none of its networks "
        "(198.51.100.0/24, 203.0.113.0/24); backplane.nodes[].networks should hold vmbr0's "
        "network first (orbitlab discover fills them in)\n"
    )


def test_validate_lists_every_problem_and_fails(tmp_path):
    document = yaml.safe_load(EXAMPLE.read_text())
    document["config"]["orbitlab:sectors"][1]["subnets"] = ["10.200.1.0/24"]
    document["config"]["orbitlab:backplane"]["asn"] = 0
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump(document))
    result = orbitlab("validate", str(stack))
    assert result.returncode == 2
    assert "invalid stack (1 problem(s))" in result.stderr  # field errors come first
    assert "orbitlab:backplane.asn: 0 is invalid" in result.stderr
    document["config"]["orbitlab:backplane"]["asn"] = 65001
    stack.write_text(yaml.safe_dump(document))
    result = orbitlab("validate", str(stack))
    assert result.returncode == 2
    assert "orbitlab:sectors[1].subnets[0]: 10.200.1.0/24 overlaps the Backplane" in result.stderr


def test_validate_reports_a_missing_or_broken_file(tmp_path):
    result = orbitlab("validate", str(tmp_path / "Pulumi.none.yaml"))
    assert result.returncode == 2
    assert "cannot read the stack file" in result.stderr
    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_text("config: [unclosed\n")
    assert "not valid YAML" in orbitlab("validate", str(broken)).stderr
    empty = tmp_path / "Pulumi.empty.yaml"
    empty.write_text("encryptionsalt: x\n")
    assert (
        "expected a stack file with a 'config:' mapping" in orbitlab("validate", str(empty)).stderr
    )


def test_render_writes_the_tree_and_scripts(tmp_path):
    result = orbitlab("render", str(EXAMPLE), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "for 2 Sector(s)" in result.stdout
    assert (tmp_path / "web/gateway/etc/nftables.nft").read_text().startswith("#!/usr/sbin/nft -f")
    assert "hostname olvn1001-router" in (tmp_path / "web/gateway/etc/frr/frr.conf").read_text()
    assert "bind 10.200.0.11:80" in (tmp_path / "web/lb/etc/haproxy/haproxy.cfg").read_text()
    assert "bind 172.16.0.2" in (tmp_path / "lab/dns/etc/coredns/Corefile").read_text()
    script = tmp_path / "lab/provision-gateway.sh"
    assert script.stat().st_mode & 0o111
    assert script.read_text().startswith("#!/bin/sh")
