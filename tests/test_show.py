"""``orbitlab show``: the allocation table and its JSON, planned as on an empty cluster or
against a cluster's SDN read through a stand-in Proxmox API (:mod:`tests.proxmox_api`)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netaddr import IPAddress, IPNetwork

from orbitlab.cli import main
from orbitlab.plan import StackPlan
from orbitlab.program import main as program_main
from orbitlab.stack import load_plan
from orbitlab.views.table import COLUMNS
from tests.proxmox_api import (
    SECRET,
    TOKEN,
    Cluster,
    api_environment,
    serve,
    vnet_entry,
    zone_entry,
)
from tests.pulumi_mocks import FakeCluster, run_program, stack_file_config, zone_record

REPO = Path(__file__).parent.parent
EXAMPLE = REPO / "stacks" / "Pulumi.example.yaml"
THREE = REPO / "tests" / "data" / "twin" / "Pulumi.three.yaml"
STACKS = [EXAMPLE, THREE]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    api_environment(monkeypatch)


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["show", *argv])
    out, err = capsys.readouterr()
    assert SECRET not in out + err, "the token's secret must never be printed"
    return code, out, err


def show_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = show(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


# --- JSON -------------------------------------------------------------------------------------


def assert_backplane_round_trips(document: dict[str, Any], plan: StackPlan) -> None:
    bp, plan_bp = document["backplane"], plan.backplane
    assert set(bp) == {"cidr", "gateway", "mtu", "asn", "primary_exit_node", "nodes"}
    assert IPNetwork(bp["cidr"]) == plan_bp.cidr
    assert IPAddress(bp["gateway"]) == plan_bp.gateway
    assert (bp["mtu"], bp["asn"]) == (plan_bp.mtu, plan_bp.asn)
    assert bp["primary_exit_node"] == plan_bp.primary_exit_node
    assert [(n["name"], IPAddress(n["address"]), n["mtu"]) for n in bp["nodes"]] == [
        (n.name, n.address, n.mtu) for n in plan_bp.nodes
    ]


def assert_sector_round_trips(item: dict[str, Any], sector: Any) -> None:
    assert set(item) == {
        *("name", "tag", "vnet_id", "zone_id", "vmids", "node", "subnets"),
        *("gateway", "dns", "dhcp_pool", "load_balancer"),
    }
    assert (item["name"], item["tag"], item["node"]) == (sector.name, sector.tag, sector.node)
    assert (item["vnet_id"], item["zone_id"]) == (sector.vnet_id, sector.zone_id)
    assert [IPNetwork(c) for c in item["subnets"]] == [s.cidr for s in sector.subnets]
    assert [IPAddress(a) for a in item["gateway"]["sector"]] == [s.gateway for s in sector.subnets]
    assert IPAddress(item["gateway"]["backplane"]) == sector.gateway.backplane_address
    assert IPAddress(item["dns"]["address"]) == sector.dns.sector_address
    assert item["vmids"]["gateway"] == sector.vmid("gateway")
    assert item["vmids"]["dns"] == sector.vmid("dns")
    if sector.dns.dhcp is None:
        assert item["dhcp_pool"] is None
    else:
        first, last = (IPAddress(a) for a in item["dhcp_pool"].split("-"))
        assert (first, last) == (sector.dns.dhcp.pool_start, sector.dns.dhcp.pool_end)
    lb = sector.load_balancer
    if lb is None:
        assert item["load_balancer"] is None and item["vmids"]["lb"] is None
    else:
        assert IPAddress(item["load_balancer"]["sector"]) == lb.sector_address
        assert IPAddress(item["load_balancer"]["backplane"]) == lb.backplane_address
        assert item["vmids"]["lb"] == lb.vmid


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.name)
def test_json_round_trips_the_plan_field_by_field(capsys, path):
    document = show_json(capsys, str(path))
    plan = load_plan(path)
    assert set(document) == {"stack", "planned_against", "backplane", "sectors"}
    assert (document["stack"], document["planned_against"]) == (plan.stack, None)
    assert_backplane_round_trips(document, plan)
    assert len(document["sectors"]) == len(plan.sectors)
    for item, sector in zip(document["sectors"], plan.sectors, strict=True):
        assert_sector_round_trips(item, sector)


def test_the_round_trip_check_sees_a_wrong_value(capsys):
    document = show_json(capsys, str(THREE))
    plan = load_plan(THREE)
    document["sectors"][0]["gateway"]["sector"].reverse()
    with pytest.raises(AssertionError):
        assert_sector_round_trips(document["sectors"][0], plan.sectors[0])


# --- text -------------------------------------------------------------------------------------


def split_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The header lines, then each table row cut at its header's column starts.

    Asserts that every cell starts exactly under its header, after a blank.
    """
    head, _, table = text.partition("\n\n")
    lines = table.splitlines()
    starts: list[int] = []
    for header, _ in COLUMNS:  # each header after the one before ("DNS" is in "VMIDS ...")
        starts.append(lines[0].index(header, starts[-1] + 1 if starts else 0))
    rows = []
    for line in lines:
        for start in starts[1:]:
            assert line[start - 1] == " " and line[start] != " ", (line, start)
        ends = [*starts[1:], None]
        rows.append([line[a:b].strip() for a, b in zip(starts, ends, strict=True)])
    return head.splitlines(), rows


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.name)
def test_text_has_a_header_and_one_aligned_row_per_sector(capsys, path):
    code, out, _ = show(capsys, str(path))
    assert code == 0
    plan = load_plan(path)
    bp = plan.backplane
    head, rows = split_table(out)
    assert head[0] == (
        f"Stack {plan.stack}: Backplane {bp.cidr}, gateway {bp.gateway}, MTU {bp.mtu}, ASN {bp.asn}"
    )
    assert f"{bp.primary_exit_node} " in head[1] and "primary exit node" in head[1]
    assert all(f"{n.name} {n.address} (MTU {n.mtu}" in head[1] for n in bp.nodes)
    assert head[2].startswith("Tags: planned as on an empty cluster")
    assert rows[0] == [header for header, _ in COLUMNS]
    assert len(rows) == 1 + len(plan.sectors)
    for row, sector in zip(rows[1:], plan.sectors, strict=True):
        cells = dict(zip(rows[0], row, strict=True))
        lb = sector.load_balancer
        assert cells == {
            "SECTOR": sector.name,
            "TAG": str(sector.tag),
            "VNET": sector.vnet_id,
            "ZONE": sector.zone_id,
            "VMIDS GW/DNS/LB": f"{sector.vmid('gateway')}/{sector.vmid('dns')}/"
            + (str(lb.vmid) if lb else "-"),
            "NODE": sector.node,
            "SUBNETS": ",".join(str(s.cidr) for s in sector.subnets),
            "GW SECTOR": ",".join(str(s.gateway) for s in sector.subnets),
            "GW BACKPLANE": str(sector.gateway.backplane_address),
            "DNS": str(sector.dns.sector_address),
            "DHCP POOL": sector.dns.dhcp.pool_text if sector.dns.dhcp else "-",
            "LB SECTOR": str(lb.sector_address) if lb else "-",
            "LB BACKPLANE": str(lb.backplane_address) if lb else "-",
        }


def test_the_pool_column_shows_an_explicit_range_and_dhcp_off(capsys, tmp_path):
    stack = tmp_path / "Pulumi.pools.yaml"
    text = THREE.read_text()
    assert "dhcp: {range: [10.20.1.100, 10.20.1.149], lease_time: 30m}" in text
    # blue without DHCP, and so without its dynamic host (the last host of the file)
    blue_off = text.replace("dns: {forwarders: [192.0.2.53]}", "dhcp: {enabled: false}")
    stack.write_text(blue_off.rsplit("        - {name: dev}\n", 1)[0])
    _, out, _ = show(capsys, str(stack))
    _, rows = split_table(out)
    pools = {row[0]: row[rows[0].index("DHCP POOL")] for row in rows[1:]}
    assert pools == {
        "shop": "10.20.1.100-10.20.1.149",
        "red": "172.20.0.128-172.20.0.254",
        "blue": "-",
    }
    assert show_json(capsys, str(stack))["sectors"][2]["dhcp_pool"] is None


def test_the_docs_show_the_current_table(capsys):
    _, out, _ = show(capsys, str(EXAMPLE))
    assert out in (REPO / "docs" / "see-the-network.md").read_text()


def test_a_stack_without_sectors(capsys, tmp_path):
    stack = tmp_path / "Pulumi.empty.yaml"
    stack.write_text(EXAMPLE.read_text().split("  orbitlab:sectors:")[0])
    code, out, _ = show(capsys, str(stack))
    assert code == 0
    assert out.endswith("\n\nNo Sectors.\n")
    assert show_json(capsys, str(stack))["sectors"] == []


# --- against a cluster ------------------------------------------------------------------------


@dataclass(frozen=True)
class SdnObject:
    """A VNet (and its zone) on the cluster, or a zone alone (``vnet`` None)."""

    vnet: str | None
    zone: str
    tag: int | None = None
    alias: str | None = None
    zone_type: str = "vxlan"
    vrf: int | None = None


#: The Backplane exists; another stack has a Sector named like one of ours; our Sector
#: ``red`` exists with tag 1007; an EVPN zone's VRF holds 1002; a VLAN tag 1003 doesn't count.
CLUSTER = (
    SdnObject("olbpvn", "olbpz", 100, "orbitlab backplane 10.210.0.0/16", "evpn", 10),
    SdnObject("olvn1001", "olvz1001", 1001, "ol other shop"),
    SdnObject("olvn1007", "olvz1007", 1007, "ol three red"),
    SdnObject(None, "tenant", zone_type="evpn", vrf=1002),
    SdnObject("vlan1003", "lan", 1003, zone_type="vlan"),
)
EXPECTED_TAGS = {"shop": 1003, "red": 1007, "blue": 1004}


def api_cluster(objects: tuple[SdnObject, ...]) -> Cluster:
    cluster = Cluster()
    for o in objects:
        if o.vnet is not None and o.tag is not None:
            cluster.vnets.append(vnet_entry(o.vnet, o.zone, o.tag, o.alias))
        if not any(z["zone"] == o.zone for z in cluster.zones):
            extra = {"vrf_vxlan": o.vrf} if o.vrf else {}
            cluster.zones.append(zone_entry(o.zone, o.zone_type, **extra))
    return cluster


def invoke_cluster(objects: tuple[SdnObject, ...]) -> FakeCluster:
    """The same objects as the Pulumi program's invokes return them."""
    cluster = FakeCluster()
    for o in objects:
        if o.vnet is not None and o.tag is not None:
            cluster.add_vnet(o.vnet, o.zone, o.tag, o.alias or "", o.zone_type, o.vrf)
        elif not any(z["id"] == o.zone for z in cluster.zones):
            cluster.zones.append(zone_record(o.zone, o.zone_type, o.vrf))
    return cluster


@pytest.fixture
def cluster() -> Cluster:
    return api_cluster(CLUSTER)


@pytest.fixture
def endpoint(cluster: Cluster) -> Iterator[str]:
    yield from serve(cluster)


def test_cluster_tags_in_use_are_skipped_and_existing_sectors_keep_theirs(
    capsys, cluster, endpoint
):
    document = show_json(capsys, str(THREE), "--endpoint", endpoint)
    assert {s["name"]: s["tag"] for s in document["sectors"]} == EXPECTED_TAGS
    assert document["planned_against"] == endpoint + "api2/json"
    assert {path for path, _ in cluster.requests} == {
        "/api2/json/cluster/sdn/vnets",
        "/api2/json/cluster/sdn/zones",
        "/api2/json/cluster/resources?type=vm",
        "/api2/json/storage",  # the storages the program chooses from
    }
    assert {auth for _, auth in cluster.requests} == {f"PVEAPIToken={TOKEN}"}
    red = next(s for s in document["sectors"] if s["name"] == "red")
    assert red["gateway"]["backplane"] == "10.210.0.22"  # network + 10 + 2 * (1007 - 1001)


def test_show_plans_exactly_as_the_pulumi_program_does(capsys, endpoint):
    document = show_json(capsys, str(THREE), "--endpoint", endpoint)
    run = run_program(
        program_main,
        config=stack_file_config(THREE),
        cluster=invoke_cluster(CLUSTER),
        stack="three",
    )
    declared = {
        r.name.removesuffix("-vnet"): int(r.inputs["tag"])
        for r in run.of_type("proxmoxve:sdn/vnet:Vnet")
        if r.name != "backplane-vnet"
    }
    assert declared == {s["name"]: s["tag"] for s in document["sectors"]} == EXPECTED_TAGS


def test_the_endpoint_can_come_from_the_stack_file(capsys, endpoint, tmp_path):
    stack = tmp_path / "Pulumi.three.yaml"
    stack.write_text(f"{THREE.read_text()}\n  proxmoxve:endpoint: {endpoint}\n")
    code, out, err = show(capsys, str(stack), "--cluster")
    assert code == 0, err
    assert f"Tags: planned against the tags in use at {endpoint}api2/json" in out


def test_without_cluster_flags_no_request_is_made(capsys, cluster, endpoint, monkeypatch):
    monkeypatch.setenv("PROXMOX_VE_ENDPOINT", endpoint)
    document = show_json(capsys, str(THREE))
    assert [s["tag"] for s in document["sectors"]] == [1001, 1002, 1003]
    assert cluster.requests == []


def unreachable() -> str:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/"


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ("wrong token", 1, "the Proxmox API refused the token (HTTP 401 authentication failure)"),
        ("no token", 1, "PROXMOX_VE_API_TOKEN is not set"),
        ("no token", 1, "SDN.Audit on /sdn"),
        ("forbidden", 1, "permission denied for GET /cluster/sdn/vnets (HTTP 403)"),
        ("forbidden", 1, "SDN.Audit on /sdn"),
        ("unreachable", 1, "cannot reach the Proxmox API at http://127.0.0.1:"),
        ("other cidr", 1, "the cluster's Backplane is 10.99.0.0/16 and cannot change to"),
        ("tag 10 taken", 2, "the Backplane needs VRF-VXLAN tag 10 and VNet tag 100, but 10 is"),
        ("no endpoint", 1, "no Proxmox endpoint: pass --endpoint"),
    ],
)
def test_cluster_errors_a_user_can_cause(
    capsys, monkeypatch, cluster, endpoint, change, code, message
):
    argv = [str(THREE), "--endpoint", endpoint]
    if change == "wrong token":
        monkeypatch.setenv("PROXMOX_VE_API_TOKEN", TOKEN + "x")
    elif change == "no token":
        monkeypatch.delenv("PROXMOX_VE_API_TOKEN")
    elif change == "forbidden":
        cluster.forbidden = True
    elif change == "unreachable":
        argv = [str(THREE), "--endpoint", unreachable(), "--timeout", "2"]
    elif change == "other cidr":
        cluster.vnets[0]["alias"] = "orbitlab backplane 10.99.0.0/16"
    elif change == "tag 10 taken":
        del cluster.vnets[0]
    elif change == "no endpoint":
        argv = [str(THREE), "--cluster"]
    actual, out, err = show(capsys, *argv)
    assert (actual, out) == (code, "")
    assert message in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["stacks/Pulumi.none.yaml"], 2, "stacks/Pulumi.none.yaml: cannot read the stack file"),
        (["tests/data/README.md"], 2, "not valid YAML"),
        ([str(EXAMPLE), "--jsn"], 2, "unrecognized arguments: --jsn"),
    ],
)
def test_stack_errors_a_user_can_cause(capsys, argv, code, message):
    try:
        assert main(["show", *argv]) == code
    except SystemExit as exit:  # argparse refuses bad options itself
        assert exit.code == code
    assert message in capsys.readouterr().err


def test_an_invalid_stack_lists_its_problems(capsys, tmp_path):
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(EXAMPLE.read_text().replace("asn: 65001", "asn: 0"))
    code, out, err = show(capsys, str(stack))
    assert (code, out) == (2, "")
    assert "invalid stack (1 problem(s))" in err
    assert "orbitlab:backplane.asn: 0 is invalid" in err
