"""An existing cluster: what it already holds is avoided or refused at preview, before
anything is declared; a snapshot of it (``discover --snapshot``) seeds an emulated cluster.

- guests (VMs and containers) hold VMIDs, unique across both on Proxmox: a new Sector skips
  a tag whose appliance VMIDs a guest holds; an explicit tag or a new appliance of an
  existing Sector that would need one is refused, naming the guest;
- an EVPN controller that is not the Backplane's (a zone uses it): Proxmox allows one, so
  the program refuses at preview, naming the controller and its zones;
- the snapshot file: its shape checked with messages naming the entry; written from the
  API; read back by the emulator, whose cluster then holds the same objects.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pulumi
import pytest
import yaml

from orbitlab import discover
from orbitlab.cli import main as cli_main
from orbitlab.facts import ClusterFacts, GuestFact
from orbitlab.program import main
from orbitlab.settings import DEFAULT_TEMPLATE_URL
from orbitlab.snapshot import SnapshotError, load_snapshot, parse_snapshot
from orbitlab_lab.emulate import ProxmoxError, control
from orbitlab_lab.emulate import cluster as c
from orbitlab_lab.emulate.proxmoxve import container_of, get_containers, get_vms
from orbitlab_lab.emulate.seed import seed_state
from orbitlab_lab.emulate.store import Store
from tests import proxmox_api
from tests.pulumi_mocks import (
    EXAMPLE_STACK,
    ClusterMocks,
    FakeCluster,
    RecordingMonitor,
    run_program,
    stack_file_config,
    zone_record,
)

VNET = "proxmoxve:sdn/vnet:Vnet"
CONTAINER = "proxmoxve:index/containerLegacy:ContainerLegacy"


def vmids(run) -> dict[str, int]:
    return {r.name: int(r.inputs["vmId"]) for r in run.of_type(CONTAINER)}


def foreign_tags() -> FakeCluster:
    """Foreign VNets on tags 1001-1003, a VM with VMID 10041 (tag 1004's gateway's)."""
    cluster = FakeCluster()
    for tag in (1001, 1002, 1003):
        cluster.add_vnet(f"corp{tag}", "corpz", tag)
    return cluster.add_guest(10041, "pve1", "legacy")


def test_new_sectors_skip_tags_whose_vmids_a_guest_holds() -> None:
    run = run_program(main, config=stack_file_config(), cluster=foreign_tags())
    assert vmids(run) == {
        "web-gateway-ct": 10051,
        "web-dns-ct": 10052,
        "web-lb-ct": 10053,
        "lab-gateway-ct": 10061,
        "lab-dns-ct": 10062,
    }


def test_an_explicit_tag_whose_vmid_a_guest_holds_is_refused_naming_it() -> None:
    config = stack_file_config()
    config["orbitlab:sectors"][0]["tag"] = 1004
    monitor = RecordingMonitor(ClusterMocks(foreign_tags()))
    with pytest.raises(pulumi.RunError) as caught:
        run_program(main, config=config, monitor=monitor)
    assert (
        "orbitlab:sectors[0].tag: tag 1004 cannot be used: VMID 10041 (its gateway's) is "
        "held by VM 10041 'legacy' on pve1; choose a free tag in 1001-9999 or leave it out"
    ) in str(caught.value)
    assert not any(r.custom for r in monitor.registrations.values())


def test_a_new_appliance_of_an_existing_sector_on_a_guests_vmid_is_refused() -> None:
    # web exists on tag 1001 (its VNet carries the stack's alias); a VM sits on its LB's VMID
    cluster = FakeCluster().add_vnet("olvn1001", "olvz1001", 1001, "ol example web")
    cluster.add_guest(10013, "pve2", "nas", kind="qemu")
    monitor = RecordingMonitor(ClusterMocks(cluster))
    with pytest.raises(pulumi.RunError) as caught:
        run_program(main, config=stack_file_config(), monitor=monitor)
    assert (
        "orbitlab:sectors[0] (web): its lb container needs VMID 10013, which VM 10013 'nas' "
        "on pve2 already has (VMIDs are unique across VMs and containers); move or renumber "
        "that guest"
    ) in str(caught.value)
    assert not any(r.custom for r in monitor.registrations.values())


def test_the_stacks_own_appliances_are_not_a_clash() -> None:
    cluster = FakeCluster().add_vnet("olvn1001", "olvz1001", 1001, "ol example web")
    for vmid in (10011, 10012, 10013):
        cluster.add_guest(vmid, "pve1", f"olvn1001-{vmid}", kind="lxc", tags=("orbitlab",))
    run = run_program(main, config=stack_file_config(), cluster=cluster)
    assert vmids(run)["web-lb-ct"] == 10013


def test_a_container_without_the_orbitlab_tag_is_a_clash() -> None:
    facts = ClusterFacts(guests=(GuestFact(10013, "pve1", "mine", "lxc", ("web",)),))
    assert not facts.guests[0].is_appliance
    assert facts.blocked_tags == {1001: "VMID 10013 (its lb's) is held by CT 10013 'mine' on pve1"}


def test_guests_on_other_vmids_block_nothing() -> None:
    facts = ClusterFacts(guests=(GuestFact(100, "pve1"), GuestFact(10014, "pve1")))
    assert facts.blocked_tags == {}


def test_a_foreign_evpn_controller_is_refused_at_preview_naming_it() -> None:
    cluster = FakeCluster()
    cluster.zones.append({**zone_record("corp", "evpn", 5000), "controller": "corpevpn"})
    monitor = RecordingMonitor(ClusterMocks(cluster))
    with pytest.raises(pulumi.RunError) as caught:
        run_program(main, config=stack_file_config(), monitor=monitor, preview=True)
    assert (
        "orbitlab:backplane: the cluster already has the EVPN controller 'corpevpn' (zone "
        "'corp' uses it), and Proxmox allows one EVPN controller per cluster; the Backplane "
        "needs its own ('olevpn'): remove that controller and its zones first, or run "
        "OrbitLab on a cluster without one"
    ) in str(caught.value)
    assert not any(r.custom for r in monitor.registrations.values())


def test_zones_on_the_backplanes_own_controller_are_not_foreign() -> None:
    cluster = FakeCluster()
    cluster.zones.append({**zone_record("mine", "evpn", 5000), "controller": "olevpn"})
    run_program(main, config=stack_file_config(), cluster=cluster)


# --- the snapshot file -----------------------------------------------------------------------

SNAPSHOT = {
    "format": 1,
    "sdn": {
        "controllers": [
            {"controller": "corpevpn", "type": "evpn", "asn": 65000, "peers": "192.0.2.11"}
        ],
        "zones": [
            {"zone": "corp", "type": "evpn", "controller": "corpevpn", "vrf-vxlan": 5000},
            {"zone": "corpx", "type": "vxlan", "peers": "192.0.2.11,192.0.2.12"},
        ],
        "vnets": [
            {"vnet": f"corp{tag}", "zone": "corpx", "tag": tag, "type": "vnet"}
            for tag in (1001, 1002, 1003)
        ],
        "subnets": [
            {
                "subnet": "corpx-10.9.0.0-24",
                "vnet": "corp1001",
                "cidr": "10.9.0.0/24",
                "gateway": "10.9.0.1",
                "type": "subnet",
                "zone": "corpx",
            }
        ],
    },
    "guests": [{"vmid": 10011, "type": "qemu", "node": "pve1", "name": "legacy"}],
    "storages": [
        {"storage": "local", "type": "dir", "content": "vztmpl,iso,backup"},
        {"storage": "local-zfs", "type": "zfspool", "content": "rootdir,images"},
        {"storage": "nas", "type": "nfs", "content": "vztmpl,rootdir", "shared": 1},
        {"storage": "pve2-only", "type": "dir", "content": "rootdir", "nodes": "pve2"},
    ],
}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "seed.yaml: expected a mapping with format: 1"),
        ({"format": 2}, "seed.yaml: format 2 is not a snapshot format this version reads"),
        ({"format": 1, "vms": []}, "seed.yaml: unknown keys ['vms'] (known: sdn, guests,"),
        ({"format": 1, "sdn": {"zones": [{"type": "vxlan"}]}},
         "seed.yaml: sdn.zones[0]: expected an object with 'zone'"),
        ({"format": 1, "guests": {"vmid": 1}}, "seed.yaml: guests: expected a list of objects"),
        ({"format": 1, "guests": [{"vmid": 101, "type": "vm", "node": "pve1"}]},
         "seed.yaml: guests[0].type: 'vm' is not a guest type (qemu or lxc)"),
        ({"format": 1, "guests": [{"vmid": 7, "type": "qemu"}]},
         "seed.yaml: guests[0].vmid: 7 is outside 100-999999999"),
        ({"format": 1, "guests": [{"vmid": 101, "type": "qemu"}, {"vmid": 101, "type": "lxc"}]},
         "seed.yaml: guests[1].vmid: 101 repeats guests[0]"),
    ],
)  # fmt: skip
def test_a_bad_snapshot_is_refused_naming_the_entry(document: object, message: str) -> None:
    with pytest.raises(SnapshotError) as caught:
        parse_snapshot(document, "seed.yaml")
    assert message in str(caught.value)


def test_an_unreadable_snapshot_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot read the snapshot"):
        load_snapshot(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("format: [1\n")
    with pytest.raises(SnapshotError, match=r"bad\.yaml: not YAML"):
        load_snapshot(tmp_path / "bad.yaml")


@pytest.fixture
def api() -> Iterator[tuple[proxmox_api.Cluster, str]]:
    sdn = SNAPSHOT["sdn"]
    cluster = proxmox_api.Cluster(
        nodes=[proxmox_api.node_entry("pve1")],
        bridges={"pve1": {"vmbr0": proxmox_api.bridge("192.0.2.11/24")}},
        controllers=sdn["controllers"],
        zones=sdn["zones"],
        vnets=sdn["vnets"],
        subnets={"corp1001": sdn["subnets"]},
        guests=[
            {**SNAPSHOT["guests"][0], "id": "qemu/10011", "status": "running"},
            {"id": "node/pve1", "type": "node", "node": "pve1"},  # not a guest: left out
        ],
        storages=SNAPSHOT["storages"],
    )
    server = proxmox_api.serve(cluster)
    yield cluster, next(server)
    server.close()


def test_discover_writes_a_snapshot_the_emulator_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], api
) -> None:
    cluster, endpoint = api
    monkeypatch.setenv(discover.TOKEN_ENV, proxmox_api.TOKEN)
    path = tmp_path / "seed.yaml"
    args = argparse.Namespace(
        endpoint=endpoint, insecure=False, ca_file=None, timeout=5.0, stack_file=None,
        snapshot=str(path),
    )  # fmt: skip
    assert discover.cmd_discover(args) == 0
    assert (
        f"wrote {path}: 1 controllers, 2 zones, 3 vnets, 1 subnets, 1 guests, 4 storages"
        in capsys.readouterr().err
    )
    written = yaml.safe_load(path.read_text())
    assert written == {**SNAPSHOT, "guests": [{**SNAPSHOT["guests"][0]}]}
    assert {p for p, _ in cluster.requests} >= {
        "/api2/json/cluster/sdn/controllers",
        "/api2/json/cluster/sdn/vnets/corp1001/subnets",
        "/api2/json/cluster/resources?type=vm",
        "/api2/json/storage",
    }
    snapshot = load_snapshot(path)
    assert [g.vmid for g in snapshot.guests] == [10011]


def seeded_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "emulate")
    store.root.mkdir(parents=True)
    nodes = [c.Node("pve1", "192.0.2.11"), c.Node("pve2", "192.0.2.12")]
    c.create_cluster(
        store, nodes, apply_s=0, seed=seed_state(parse_snapshot(SNAPSHOT), ["pve1", "pve2"])
    )
    return store


def test_a_seeded_cluster_holds_the_snapshots_objects_applied(tmp_path: Path) -> None:
    state = seeded_store(tmp_path).read()
    running = state["sdn"]["running"]
    assert running == state["sdn"]["config"]
    assert running["controllers"]["corpevpn"] == {
        "type": "evpn", "asn": 65000, "peers": ["192.0.2.11"]
    }  # fmt: skip
    assert running["zones"]["corpx"] == {"type": "vxlan", "peers": ["192.0.2.11", "192.0.2.12"]}
    assert running["vnets"]["corp1001"] == {"zone": "corpx", "tag": 1001}
    assert running["subnets"]["corpx-10.9.0.0-24"] == {
        "vnet": "corp1001", "cidr": "10.9.0.0/24", "gateway": "10.9.0.1"
    }  # fmt: skip
    assert c.bridges(state, "pve1") == ["corp1001", "corp1002", "corp1003", "vmbr0"]
    assert state["nodes"]["pve1"]["storages"] == {
        "local": ["backup", "iso", "vztmpl"],
        "local-zfs": ["images", "rootdir"],
        "nas": ["rootdir", "vztmpl"],
    }
    assert "pve2-only" in state["nodes"]["pve2"]["storages"]


class Call:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.config = {"endpoint": "https://192.0.2.11:8006/"}


def test_a_seeded_guest_holds_its_vmid_and_is_listed(tmp_path: Path) -> None:
    store = seeded_store(tmp_path)
    call = Call(store)
    assert get_vms(call, {})["vms"] == [
        {"vmId": 10011, "nodeName": "pve1", "name": "legacy", "tags": [], "status": "running",
         "template": False}
    ]  # fmt: skip
    assert get_containers(call, {})["containers"] == []
    c.create_volume(store, "pve1", "local", "vztmpl", "t.tar.xz", "https://x/t.tar.xz", False)
    inputs = {
        "vmId": 10011.0,
        "nodeName": "pve1",
        "operatingSystem": {"templateFileId": "local:vztmpl/t.tar.xz"},
        "disk": {"datastoreId": "local-zfs", "size": 1.0},
        "tags": ["orbitlab"],
    }
    with pytest.raises(ProxmoxError, match="VM 10011 already exists on node 'pve1'"):
        c.create_container(store, container_of(inputs))
    c.create_container(store, container_of({**inputs, "vmId": 10021.0}))
    listed = get_containers(call, {})["containers"]
    assert [(g["vmId"], g["tags"]) for g in listed] == [(10021, ["orbitlab"])]


def test_a_volume_on_shared_storage_is_on_every_node(tmp_path: Path) -> None:
    store = seeded_store(tmp_path)
    volid = c.create_volume(store, "pve1", "nas", "vztmpl", "t.tar.xz", "https://x/t.tar.xz", False)
    volumes = store.read()["volumes"]
    assert volid in volumes["pve1"] and volid in volumes["pve2"]
    # the same file name from the other node is the same file: Proxmox refuses to overwrite
    with pytest.raises(ProxmoxError, match=r"refusing to override existing file 't\.tar\.xz'"):
        c.create_volume(store, "pve2", "nas", "vztmpl", "t.tar.xz", "https://x/t.tar.xz", False)
    c.delete_volume(store, "pve2", volid)
    volumes = store.read()["volumes"]
    assert volid not in volumes["pve1"] and volid not in volumes["pve2"]
    local = c.create_volume(store, "pve1", "local", "vztmpl", "t.tar.xz", "https://x/t", False)
    assert local not in store.read()["volumes"]["pve2"]


# --- storages ----------------------------------------------------------------------------------

DOWNLOAD = "proxmoxve:download/file:File"


def zfs_cluster() -> FakeCluster:
    """Both nodes as a ZFS install has them: ``local`` and ``local-zfs``, no ``local-lvm``."""
    cluster = FakeCluster()
    for node in ("pve1", "pve2"):
        cluster.add_datastore(node, "local", ("backup", "iso", "vztmpl"))
        cluster.add_datastore(node, "local-zfs", ("images", "rootdir"))
    return cluster


def test_a_zfs_install_gets_its_root_disks_on_local_zfs() -> None:
    run = run_program(main, config=stack_file_config(), cluster=zfs_cluster())
    disks = {r.inputs["disk"]["datastoreId"] for r in run.of_type(CONTAINER)}
    assert disks == {"local-zfs"}
    assert {r.inputs["datastoreId"] for r in run.of_type(DOWNLOAD)} == {"local"}


def storage_error(cluster: FakeCluster, **appliances: str) -> str:
    config = stack_file_config()
    config["orbitlab:appliances"] = {**config.get("orbitlab:appliances", {}), **appliances}
    monitor = RecordingMonitor(ClusterMocks(cluster))
    with pytest.raises(pulumi.RunError) as caught:
        run_program(main, config=config, monitor=monitor, preview=True)
    assert not any(r.custom for r in monitor.registrations.values())
    return " ".join(str(caught.value).split())


def test_a_configured_storage_the_node_lacks_is_refused_at_preview() -> None:
    message = storage_error(zfs_cluster(), storage="local-lvm")
    assert (
        "orbitlab:appliances.storage: 'local-lvm' is not a storage of node pve2 (its "
        "storages: local (backup, iso, vztmpl), local-zfs (images, rootdir)); choose one "
        "that holds rootdir, or leave it unset to have one chosen"
    ) in message


def test_a_configured_storage_without_the_content_type_is_refused_at_preview() -> None:
    message = storage_error(zfs_cluster(), template_storage="local-zfs")
    assert (
        "orbitlab:appliances.template_storage: storage 'local-zfs' of node pve2 does not hold "
        "container templates ('vztmpl') (its storages: local (backup, iso, vztmpl), local-zfs "
        "(images, rootdir)); choose another, or add the content type: pvesm set local-zfs "
        "--content <its content>,vztmpl"
    ) in message


def test_a_node_without_a_root_disk_storage_is_refused_at_preview() -> None:
    cluster = FakeCluster()
    for node in ("pve1", "pve2"):
        cluster.add_datastore(node, "local", ("iso", "vztmpl"))
    message = storage_error(cluster)
    assert (
        "orbitlab:appliances.storage: no storage of node pve2 holds container root disks "
        "('rootdir'; its storages: local (iso, vztmpl)); add the content type to one (pvesm "
        "set <storage> --content ...,rootdir) or set orbitlab:appliances.storage"
    ) in message


def test_a_shared_template_storage_is_downloaded_to_once() -> None:
    cluster = FakeCluster()
    for node in ("pve1", "pve2"):
        cluster.add_datastore(node, "local-lvm", ("images", "rootdir"))
        cluster.add_datastore(node, "nas", ("rootdir", "vztmpl"), shared=True)
    config = stack_file_config()
    config["orbitlab:sectors"][0]["node"] = "pve1"  # appliances on both nodes
    run = run_program(main, config=config, cluster=cluster)
    downloads = run.of_type(DOWNLOAD)
    assert [(d.inputs["nodeName"], d.inputs["datastoreId"]) for d in downloads] == [("pve1", "nas")]
    templates = {r.inputs["operatingSystem"]["templateFileId"] for r in run.of_type(CONTAINER)}
    assert len(templates) == 1  # every node's appliances are made from the one volume
    disks = {r.inputs["disk"]["datastoreId"] for r in run.of_type(CONTAINER)}
    assert disks == {"local-lvm"}  # local-lvm first; the shared one is not preferred for disks


# --- templates -------------------------------------------------------------------------------


def test_each_stack_downloads_its_own_template_and_never_overwrites_a_file() -> None:
    for stack in ("home", "lab"):
        run = run_program(main, config=stack_file_config(), stack=stack)
        (download,) = run.of_type(DOWNLOAD)
        assert download.inputs["fileName"] == (
            f"orbitlab-{stack}-alpine-3.22-default_20250617_amd64.tar.xz"
        )
        assert download.inputs["overwriteUnmanaged"] is False


def test_the_template_not_its_volume_id_decides_an_appliances_rebuild() -> None:
    run = run_program(main, config=stack_file_config())
    # the scheme is no part of the template: the default's move to https replaced nothing
    assert DEFAULT_TEMPLATE_URL.startswith("https://")
    for container in run.of_type(CONTAINER):
        assert container.ignore_changes == ("operatingSystem",)
        assert container.replacement_trigger == DEFAULT_TEMPLATE_URL.replace("https", "http", 1)
    config = stack_file_config()
    config["orbitlab:appliances"] = {
        **config.get("orbitlab:appliances", {}),
        "template_url": "https://mirror.example/alpine-3.23-default_20260101_amd64.tar.xz",
    }
    changed = run_program(main, config=config)
    assert {c.replacement_trigger for c in changed.of_type(CONTAINER)} == {
        "http://mirror.example/alpine-3.23-default_20260101_amd64.tar.xz"
    }


def test_emulate_start_seed_from_the_cli(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(tmp_path / "emu"))
    monkeypatch.setattr(control, "ensure_pulumi", lambda: tmp_path)
    argv = ["emulate", "start", str(EXAMPLE_STACK), "--apply-seconds", "0", "--seed"]
    assert cli_main([*argv, str(tmp_path / "none.yaml")]) == 1
    assert "none.yaml: cannot read the snapshot" in capsys.readouterr().err
    assert not (tmp_path / "emu").exists()  # nothing was started
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump(SNAPSHOT))
    assert cli_main([*argv, str(seed)]) == 0
    capsys.readouterr()
    assert cli_main(["emulate", "status"]) == 0
    out = capsys.readouterr().out
    assert "the cluster's own guests: VM 10011 on pve1" in out
    assert "shared storages: nas" in out
    assert "  vnet corp1001: running" in out
    assert cli_main(["emulate", "stop"]) == 0
