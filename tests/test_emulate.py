"""The emulated cluster without the Pulumi CLI: Proxmox's rules, the SDN apply and its lock,
``pct exec``, the stand-ins' schema checks and secrets, and ``orbitlab emulate``.

The end-to-end rehearsal with the real CLI is in ``tests/test_rehearsal.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import shlex
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi_command
import pytest
from pulumi.provider.experimental import provider as p

from orbitlab.cli import main as cli_main
from orbitlab.components.sdn import bridge_wait_script, node_check_script
from orbitlab.rendering import provisioning_script, sector_bundles
from orbitlab.stack import load_plan
from orbitlab_lab.emulate import ProxmoxError, control
from orbitlab_lab.emulate import cluster as c
from orbitlab_lab.emulate.backend import FilesBackend
from orbitlab_lab.emulate.command import stand_in as command_stand_in
from orbitlab_lab.emulate.node import run_on_node
from orbitlab_lab.emulate.proxmoxve import stand_in as proxmoxve_stand_in
from orbitlab_lab.emulate.schema import SCHEMA_DIR, SCHEMA_FILES, compact_text, resource
from orbitlab_lab.emulate.store import Store
from orbitlab_lab.emulate.wire import Secret, from_plain_map
from tests.pulumi_mocks import EXAMPLE_STACK, ROOT

TOKEN = "orbitlab@pve!pulumi=5a1f0c8e-7d3b-4e29-9c61-0f2b8d4e6a17"
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
URN = "urn:pulumi:example::orbitlab::{type}::{name}"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "emulate")
    nodes = [
        c.Node("pve1", "192.0.2.11"),
        c.Node("pve2", "192.0.2.12", host_key="ssh-ed25519 AAAA"),
    ]
    c.create_cluster(store, nodes, apply_s=0.0, lock_wait_s=0.5)
    return store


def sector(store: Store, tag: int = 1001, node_apply: bool = True) -> None:
    """A VXLAN zone and VNet (and a subnet) like a Sector's, applied."""
    c.create_sdn(store, "zones", f"olvz{tag}", {"type": "vxlan", "peers": ["192.0.2.11"]})
    c.create_sdn(store, "vnets", f"olvn{tag}", {"zone": f"olvz{tag}", "tag": tag})
    c.create_sdn(
        store,
        "subnets",
        c.subnet_id(f"olvz{tag}", "172.16.0.0/24"),
        {"vnet": f"olvn{tag}", "cidr": "172.16.0.0/24", "gateway": "172.16.0.1"},
    )
    if node_apply:
        c.apply_sdn(store, "test", "create")


def template(store: Store, node: str = "pve1") -> str:
    return c.create_volume(store, node, "local", "vztmpl", "alpine.tar.xz", "http://x/a", True)


def container(vmid: int = 10011, node: str = "pve1", bridge: str = "olvn1001") -> c.Container:
    return c.Container(
        vmid=vmid,
        node=node,
        hostname="olvn1001-router",
        template="local:vztmpl/alpine.tar.xz",
        storage="local-lvm",
        nics=({"name": "eth0", "bridge": bridge, "mac": None, "mtu": 1450},),
    )


# --- Proxmox's rules ---------------------------------------------------------------------


def test_zones_vnets_tags_and_controllers_are_unique(store: Store) -> None:
    sector(store)
    with pytest.raises(ProxmoxError, match="sdn zone object ID 'olvz1001' already defined"):
        c.create_sdn(store, "zones", "olvz1001", {"type": "vxlan", "peers": ["192.0.2.11"]})
    c.create_sdn(store, "zones", "olvz1002", {"type": "vxlan", "peers": ["192.0.2.11"]})
    with pytest.raises(ProxmoxError, match="vxlan tag 1001 already exist in vnet olvn1001"):
        c.create_sdn(store, "vnets", "olvn1002", {"zone": "olvz1002", "tag": 1001})
    c.create_sdn(store, "controllers", "olbpc", {"type": "evpn", "asn": 65001, "peers": ["a"]})
    with pytest.raises(ProxmoxError, match="only 1 global evpn controller can be defined"):
        c.create_sdn(store, "controllers", "other", {"type": "evpn", "asn": 1, "peers": ["a"]})
    with pytest.raises(ProxmoxError, match="controller nope don't exist"):
        c.create_sdn(store, "zones", "olbpz", {"type": "evpn", "controller": "nope"})


def test_sdn_changes_stay_pending_until_an_apply(store: Store) -> None:
    sector(store, node_apply=False)
    state = store.read()
    assert c.sdn_listing(state, "vnets")[0][2] == "new"
    assert c.bridges(state, "pve1") == ["vmbr0"]
    template(store)
    with pytest.raises(ProxmoxError, match="bridge 'olvn1001' does not exist"):
        c.create_container(store, container())
    record = c.apply_sdn(store, "rollout-apply", "create")
    assert (record["n"], record["ok"], record["version"]) == (1, True, 1)
    state = store.read()
    assert c.sdn_listing(state, "vnets")[0][2] is None
    assert c.bridges(state, "pve2") == ["olvn1001", "vmbr0"]
    assert (store.node_dir("pve2") / "sys/class/net/olvn1001").exists()
    c.create_container(store, container())
    # a deletion is pending too: the bridge stays until the next apply
    c.delete_container(store, 10011)
    c.delete_sdn(store, "subnets", "olvz1001-172.16.0.0-24")
    c.delete_sdn(store, "vnets", "olvn1001")
    assert c.sdn_listing(store.read(), "vnets")[0][2] == "deleted"
    assert "olvn1001" in c.bridges(store.read(), "pve1")
    c.apply_sdn(store, "finalizer", "delete")
    assert c.bridges(store.read(), "pve1") == ["vmbr0"]


def test_a_container_needs_its_template_storage_node_and_a_free_vmid(store: Store) -> None:
    sector(store)
    with pytest.raises(ProxmoxError, match=r"volume 'local:vztmpl/alpine.tar.xz' does not exist"):
        c.create_container(store, container())
    template(store)
    with pytest.raises(ProxmoxError, match="no such cluster node 'pve9'"):
        c.create_container(store, container(node="pve9"))
    c.create_container(store, container())
    template(store, "pve2")
    with pytest.raises(ProxmoxError, match="CT 10011 already exists on node 'pve1'"):
        c.create_container(store, container(node="pve2"))
    with pytest.raises(ProxmoxError, match="storage 'nfs' does not exist"):
        c.create_volume(store, "pve1", "nfs", "vztmpl", "a.tar.xz", "http://x/a", True)


@pytest.mark.parametrize(
    ("kind", "object_id", "message"),
    [
        ("zones", "olvz1001", "zone olvz1001 is used by vnet olvn1001"),
        ("vnets", "olvn1001", "vnet: Can't delete vnet if subnets exists"),
        ("controllers", "olbpc", "controller olbpc is used by olbpz"),
    ],
)
def test_sdn_objects_in_use_cannot_be_deleted(store: Store, kind, object_id, message) -> None:
    sector(store)
    c.create_sdn(store, "controllers", "olbpc", {"type": "evpn", "asn": 65001, "peers": ["a"]})
    c.create_sdn(store, "zones", "olbpz", {"type": "evpn", "controller": "olbpc", "vrfVxlan": 10})
    with pytest.raises(ProxmoxError, match=message):
        c.delete_sdn(store, kind, object_id)


def test_a_vnet_a_container_is_on_and_its_template_may_go_as_on_proxmox(store: Store) -> None:
    """Proxmox does not look at guests when an SDN object or a template is deleted
    (pve-network ``VnetPlugin.pm`` ``on_delete_hook``): the NIC is then on no bridge, and
    every later change of the container, or its start, fails."""
    sector(store)
    volid = template(store)
    c.create_container(store, container())
    c.delete_sdn(store, "subnets", "olvz1001-172.16.0.0-24")
    c.delete_sdn(store, "vnets", "olvn1001")
    c.delete_volume(store, "pve1", volid)
    c.apply_sdn(store, "finalizer", "delete")
    assert c.bridges(store.read(), "pve1") == ["vmbr0"]
    assert store.read()["containers"]["10011"]["status"] == "running"  # on, cut off
    changed = replace(container(), hostname="renamed")
    with pytest.raises(ProxmoxError, match="bridge 'olvn1001' does not exist"):
        c.update_container(store, changed)
    assert store.read()["containers"]["10011"]["hostname"] == "renamed"  # written first
    c.update_container(store, replace(changed, nics=(), started=False))
    with pytest.raises(ProxmoxError, match="bridge 'olvn1001' does not exist"):
        c.update_container(store, replace(changed, started=True))


def test_a_nic_with_an_mtu_needs_its_bridge_and_must_fit_it(store: Store) -> None:
    sector(store, node_apply=False)
    template(store)
    with pytest.raises(ProxmoxError, match=r"^bridge 'olvn1001' does not exist$"):
        c.create_container(store, container())
    assert store.read()["containers"] == {}
    c.apply_sdn(store, "rollout-apply", "create")
    too_big = ({"name": "eth0", "bridge": "olvn1001", "mac": None, "mtu": 1500},)
    bigger = "net0: MTU size '1500' is bigger than bridge MTU '1450'"
    with pytest.raises(ProxmoxError, match=bigger):
        c.create_container(store, replace(container(), nics=too_big))


def test_a_nic_without_an_mtu_on_a_missing_bridge_is_created_and_does_not_start(
    store: Store,
) -> None:
    template(store)
    nic = ({"name": "eth0", "bridge": "olvn1001", "mac": None, "mtu": None},)
    with pytest.raises(ProxmoxError, match="bridge 'olvn1001' does not exist"):
        c.create_container(store, replace(container(), nics=nic))
    assert store.read()["containers"]["10011"]["status"] == "stopped"


def test_a_disk_grows_in_place_and_never_shrinks(store: Store) -> None:
    sector(store)
    template(store)
    c.create_container(store, replace(container(), disk_gib=4))
    c.update_container(store, replace(container(), disk_gib=8))
    assert store.read()["containers"]["10011"]["disk_gib"] == 8
    with pytest.raises(
        ProxmoxError, match=r"new disk size \(4G\) has to be greater than the current disk \(8G\)"
    ):
        c.update_container(store, replace(container(), disk_gib=4))
    assert store.read()["containers"]["10011"]["disk_gib"] == 8


def test_a_reboot_is_recorded_for_a_running_container_only(store: Store) -> None:
    sector(store)
    template(store)
    c.create_container(store, container())
    renamed = replace(container(), hostname="r2")
    c.update_container(store, renamed, reboot=("initialization.hostname",))
    c.update_container(store, replace(container(), started=False))
    c.update_container(store, replace(container(), hostname="r3", started=False), reboot=("x",))
    reboots = store.read()["reboots"]
    assert [(r["vmid"], r["hostname"], r["why"]) for r in reboots] == [
        (10011, "r2", ["initialization.hostname"])
    ]


def test_a_vnet_changes_its_zone_in_place_while_it_has_no_subnets(store: Store) -> None:
    sector(store)
    c.create_sdn(store, "zones", "olvz1002", {"type": "vxlan", "peers": ["192.0.2.11"]})
    with pytest.raises(ProxmoxError, match="zone: can't change zone if subnets exist"):
        c.update_sdn(store, "vnets", "olvn1001", {"zone": "olvz1002", "tag": 1001})
    c.delete_sdn(store, "subnets", "olvz1001-172.16.0.0-24")
    c.update_sdn(store, "vnets", "olvn1001", {"zone": "olvz1002", "tag": 1001})
    assert store.read()["sdn"]["config"]["vnets"]["olvn1001"]["zone"] == "olvz1002"


# --- the apply and its lock ----------------------------------------------------------------


def _applies_at_once(store: Store) -> list[BaseException | dict[str, Any]]:
    outcomes: list[BaseException | dict[str, Any]] = []

    def one(by: str) -> None:
        try:
            outcomes.append(c.apply_sdn(store, by, "create"))
        except ProxmoxError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=one, args=(f"applier-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _cluster(tmp_path: Path, pve: int, **settings: float) -> Store:
    store = Store(tmp_path / "e")
    nodes = [c.Node("pve1", "192.0.2.11"), c.Node("pve2", "192.0.2.12")]
    c.create_cluster(store, nodes, pve=pve, **settings)  # type: ignore[arg-type]
    return store


@pytest.mark.parametrize("pve", [9, 8])
def test_two_applies_at_once_both_succeed_and_a_busy_reload_is_a_warning(
    tmp_path: Path, pve: int
) -> None:
    """As pve-network's reload: the commit (under the lock on VE 9, without one on VE 8),
    then a task reloads the nodes one by one; a node still reloading for the other apply
    fails its reload (ifupdown2's one instance), which the task only warns about."""
    store = _cluster(tmp_path, pve, apply_s=0.8, lock_wait_s=10)
    outcomes = _applies_at_once(store)
    assert [o["ok"] for o in outcomes if isinstance(o, dict)] == [True, True]
    state = store.read()
    busy = [t for t in state["failed_tasks"] if t["error"] == c.IFRELOAD_BUSY]
    assert busy and all(t["task"] == "srvreload" for t in busy)
    assert sorted(w for a in state["applies"] for w in a["warnings"]) == sorted(
        f"{t['node']}: {c.IFRELOAD_BUSY}" for t in busy
    )


def test_an_apply_whose_reload_meets_another_leaves_that_node_behind(tmp_path: Path) -> None:
    """A node still reloading for one apply (ifreload reads what was generated when it
    started) refuses the next apply's reload: that node's config says the new version, its
    bridges are the old ones, and it reports the new zone ``error`` — while both applies
    succeed, as on Proxmox."""
    store = _cluster(tmp_path, 9, apply_s=1.0)
    first = threading.Thread(target=sector, args=(store,))  # olvz1001, applied
    first.start()
    time.sleep(0.2)  # its reload of pve1 runs
    sector(store, tag=1002)
    first.join()
    state = store.read()
    assert all(a["ok"] for a in state["applies"])
    assert {"zone": "olvz1002", "status": "error"} in c.zone_status(state, "pve1")
    assert {"zone": "olvz1002", "status": "available"} in c.zone_status(state, "pve2")


def test_on_ve9_a_commit_waits_for_the_lock_and_gives_up_as_proxmox_does(tmp_path: Path) -> None:
    store = _cluster(tmp_path, 9, apply_s=0, lock_wait_s=0.2)
    with c.domain_lock(store, 1), pytest.raises(ProxmoxError) as raised:  # another holds it
        c.apply_sdn(store, "a", "create")
    assert str(raised.value) == c.LOCK_TIMEOUT
    assert store.read()["applies"] == []  # nothing committed


def test_on_ve8_a_commit_takes_no_lock(tmp_path: Path) -> None:
    store = _cluster(tmp_path, 8, apply_s=0, lock_wait_s=0.2)
    with c.domain_lock(store, 1):
        assert c.apply_sdn(store, "a", "create")["ok"]


def test_a_node_whose_reload_fails_is_a_warning_and_reports_its_zones(tmp_path: Path) -> None:
    store = _cluster(tmp_path, 9, apply_s=0)
    c.fail_reload(store, "pve2", "error: netlink: olvn1001: operation failed")
    sector(store)  # applies: the zone and its VNet are new
    record = store.read()["applies"][-1]
    assert record["ok"] and record["warnings"] == [
        "pve2: error: netlink: olvn1001: operation failed"
    ]
    state = store.read()
    assert c.zone_status(state, "pve1") == [{"zone": "olvz1001", "status": "available"}]
    # the config was generated (the node's version is new), its bridges are the old ones
    assert c.zone_status(state, "pve2") == [{"zone": "olvz1001", "status": "error"}]
    c.fail_reload(store, "pve2", None)
    c.apply_sdn(store, "by hand", "pvesh set /cluster/sdn")
    assert c.zone_status(store.read(), "pve2") == [{"zone": "olvz1001", "status": "available"}]


def test_a_node_behind_the_running_config_reports_its_zones_pending(store: Store) -> None:
    sector(store)
    with store.change() as state:
        state["nodes"]["pve2"]["sdn_version"] -= 1  # its reload never ran
    assert c.zone_status(store.read(), "pve2") == [{"zone": "olvz1001", "status": "pending"}]


def test_on_ve9_a_held_lock_refuses_every_sdn_write_until_released(tmp_path: Path) -> None:
    """``POST /cluster/sdn/lock``, as an admin holds it in the web UI: bpg's provider sends no
    lock token, so its writes fail with Proxmox's message until the lock goes."""
    store = _cluster(tmp_path, 9, apply_s=0)
    token = c.hold_lock(store)
    with pytest.raises(ProxmoxError) as raised:
        c.create_sdn(store, "zones", "olvz1001", {"type": "vxlan", "peers": ["192.0.2.11"]})
    assert str(raised.value) == "create sdn zone object failed: invalid lock token provided!"
    with pytest.raises(ProxmoxError, match=r"^could not commit SDN config: invalid lock token"):
        c.apply_sdn(store, "rollout-apply", "create")
    with pytest.raises(ProxmoxError, match=r"^could not acquire lock for SDN config: invalid"):
        c.hold_lock(store)
    with pytest.raises(ProxmoxError, match=r"^could not release lock: invalid lock token"):
        c.release_lock(store, "not-the-token")
    c.release_lock(store, token)
    sector(store)  # writes and applies again
    c.create_sdn(store, "zones", "olvz1002", {"type": "vxlan", "peers": ["192.0.2.11"]})
    with pytest.raises(ProxmoxError, match="configuration has pending changes"):
        c.hold_lock(store)
    c.release_lock(store, c.hold_lock(store, allow_pending=True))


def test_on_ve8_there_is_no_sdn_lock_api(tmp_path: Path) -> None:
    store = _cluster(tmp_path, 8, apply_s=0)
    with pytest.raises(ProxmoxError, match="Proxmox VE 8 has no SDN lock API"):
        c.hold_lock(store)


def test_the_node_check_waits_for_every_zone_and_names_a_node_that_failed(tmp_path: Path) -> None:
    store = _cluster(tmp_path, 9, apply_s=0)
    sector(store)
    check = node_check_script("pve2", ["olvz1001"], "root", timeout_s=5)
    ok = run_on_node(store, "pve2", check, None, "rollout-check-pve2")
    assert ok.status == 0, ok.stderr
    c.fail_reload(store, "pve2", "error: netlink: olvn1002: operation failed")
    sector(store, tag=1002)
    check = node_check_script("pve2", ["olvz1001", "olvz1002"], "orbitlab", timeout_s=5)
    failed = run_on_node(store, "pve2", check, None, "rollout-check-pve2", user="orbitlab")
    assert failed.status == 1
    assert "orbitlab: node pve2 did not apply SDN: zone(s) olvz1002 (error);" in failed.stderr
    plain = check.replace("sudo -n pvesh", "pvesh")
    refused = run_on_node(store, "pve2", plain, None, "c", user="orbitlab")
    assert "orbitlab: pvesh on node pve2: please run as root" in refused.stderr


@pytest.mark.parametrize(
    ("settings", "passes"),
    [
        ({}, True),  # docs/prerequisites.md's: new containers start with forwarding off
        ({"net.core.devconf_inherit_init_net": "0"}, False),
        ({"net.core.devconf_inherit_init_net": "1"}, False),
        ({"net.core.devconf_inherit_init_net": "0", "net.ipv4.ip_forward": "0"}, True),
    ],
)
def test_a_node_hosting_appliances_must_start_containers_with_forwarding_off(
    tmp_path: Path, settings: dict[str, str], passes: bool
) -> None:
    store = _cluster(tmp_path, 9, apply_s=0)
    sector(store)
    for key, value in settings.items():
        c.set_sysctl(store, "pve2", key, value)
    check = node_check_script("pve2", ["olvz1001"], "orbitlab", 5, hosts_appliances=True)
    found = run_on_node(store, "pve2", check, None, "rollout-check-pve2", user="orbitlab")
    assert (found.status == 0) is passes, found.stderr
    if not passes:
        inherit = settings["net.core.devconf_inherit_init_net"]
        assert found.stderr.strip() == (
            f"orbitlab: node pve2: net.core.devconf_inherit_init_net is {inherit} and "
            "net.ipv4.ip_forward is 1, so a new container starts with forwarding on and a new "
            "Sector Gateway or LB routes before its ruleset is loaded; set "
            "net.core.devconf_inherit_init_net = 2 on the node (e.g. in "
            "/etc/sysctl.d/90-orbitlab.conf, then sysctl --system) and run pulumi up again"
        )
    # a node without appliances is not asked
    plain = node_check_script("pve2", ["olvz1001"], "orbitlab", 5)
    assert run_on_node(store, "pve2", plain, None, "c", user="orbitlab").status == 0


def test_emulate_sysctl_refuses_what_is_not_a_setting_or_a_node(tmp_path, monkeypatch, capsys):
    store = _cluster(tmp_path, 9, apply_s=0)
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(store.root))
    assert cli_main(["emulate", "sysctl", "pve1", "net.ipv4.ip_forward"]) == 1
    assert "'net.ipv4.ip_forward' is not KEY=VALUE" in capsys.readouterr().err
    assert cli_main(["emulate", "sysctl", "pve9", "net.ipv4.ip_forward=0"]) == 1
    assert "no node 'pve9' in the emulated cluster (pve1, pve2)" in capsys.readouterr().err
    assert cli_main(["emulate", "sysctl", "pve1", "net.ipv4.ip_forward=0"]) == 0
    assert store.read()["nodes"]["pve1"]["sysctls"] == {"net.ipv4.ip_forward": "0"}


def test_applies_one_after_the_other_all_succeed(store: Store) -> None:
    for n in range(3):
        c.apply_sdn(store, f"a{n}", "create")
    assert [a["ok"] for a in store.read()["applies"]] == [True, True, True]
    assert store.read()["failed_tasks"] == []


# --- commands on nodes ---------------------------------------------------------------------


def test_pct_exec_runs_the_provisioning_files_part_in_the_container(store: Store) -> None:
    plan = load_plan(str(EXAMPLE_STACK))
    web = plan.sector("web")
    script = provisioning_script(sector_bundles(plan, web)["gateway"])
    sector(store)
    template(store)
    c.create_container(store, container())
    first = run_on_node(store, "pve1", "pct exec 10011 -- /bin/sh -s", script, "web-gw")
    assert first.status == 0, first.stderr
    root = FilesBackend(store.cluster_dir).rootfs("pve1", 10011)
    assert "table inet" in (root / "etc/nftables.nft").read_text()
    again = run_on_node(store, "pve1", "pct exec 10011 -- /bin/sh -s", script, "web-gw")
    runs = store.read()["runs"]
    assert "/etc/nftables.nft" in runs[0]["wrote"] and runs[1]["wrote"] == []
    assert again.status == 0 and "stdin" not in runs[0]
    with pytest.raises(ProxmoxError, match=r"Configuration file 'nodes/pve2/lxc/10011.conf'"):
        run_on_node(store, "pve2", "pct exec 10011 -- /bin/sh -s", script, "x")
    with pytest.raises(ProxmoxError, match="the emulated node runs only"):
        run_on_node(store, "pve1", "pct destroy 10011", None, "x")


def test_the_bridge_wait_sees_the_bridges_an_apply_made_on_the_node(store: Store) -> None:
    sector(store)
    ok = run_on_node(store, "pve1", bridge_wait_script(["olvn1001", "vmbr0"], "pve1"), None, "w")
    assert ok.status == 0, ok.stderr
    missing = run_on_node(
        store, "pve1", bridge_wait_script(["olvn1002"], "pve1", timeout_s=0), None, "w"
    )
    assert missing.status == 1
    assert "bridge olvn1002 did not appear on node pve1 within 0 s" in missing.stderr


# --- the stand-ins -------------------------------------------------------------------------


def _check(stand_in: Any, token: str, inputs: dict[str, Any]) -> list[tuple[str, str]]:
    request = p.CheckRequest(URN.format(type=token, name="x"), {}, from_plain_map(inputs), b"")
    response = asyncio.run(stand_in.check(request))
    return [(f.property, f.reason) for f in response.failures or []]


def test_every_input_is_checked_against_the_provider_schema() -> None:
    failures = _check(
        proxmoxve_stand_in(),
        "proxmoxve:sdn/vnet:Vnet",
        {"resourceId": "olvn1001", "tag": "1001", "zonee": "olvz1001"},
    )
    assert ("zone", "required input missing") in failures
    assert ("tag", "expected integer, got '1001'") in failures
    assert any(path == "zonee" and "unknown property" in why for path, why in failures)
    nested = _check(
        proxmoxve_stand_in(),
        "proxmoxve:index/containerLegacy:ContainerLegacy",
        {"nodeName": "pve1", "networkInterfaces": [{"bridge": "olvn1001"}]},
    )
    assert nested == [("networkInterfaces[0].name", "required input missing")]
    command = _check(
        command_stand_in(), "command:remote:Command", {"connection": {"port": 22}, "create": 1}
    )
    assert ("connection.host", "required input missing") in command
    assert ("create", "expected string, got 1.0") in command


def test_a_resource_type_the_emulator_lacks_is_a_check_failure() -> None:
    failures = _check(proxmoxve_stand_in(), "proxmoxve:index/vm:Vm", {"nodeName": "pve1"})
    assert failures[0][1].startswith(
        "the emulated cluster does not emulate proxmoxve:index/vm:Vm (it emulates "
    )


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_secrets_never_reach_the_state_or_the_log(store: Store, monkeypatch) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(store.root))
    proxmoxve = proxmoxve_stand_in()
    config = from_plain_map({"apiToken": Secret(TOKEN), "endpoint": "https://192.0.2.11:8006/"})
    _run(proxmoxve.configure(p.ConfigureRequest({}, config, True, True)))
    zone = URN.format(type="proxmoxve:sdn/zone/vxlan:Vxlan", name="web-zone")
    inputs = {"resourceId": "olvz1001", "peers": ["192.0.2.11"]}
    _run(proxmoxve.create(p.CreateRequest(zone, from_plain_map(inputs), 60, False)))
    command = command_stand_in()
    urn = URN.format(type="command:remote:Command", name="web-bridges")
    connection = Secret({"host": "192.0.2.11", "user": "root", "privateKey": KEY})
    inputs = {"connection": connection, "create": "test -e /sys/class/net/vmbr0"}
    created = _run(command.create(p.CreateRequest(urn, from_plain_map(inputs), 60, False)))
    assert created.properties["connection"].is_secret
    text = store.state_path.read_text() + store.log_path.read_text()
    assert "web-zone: created zone olvz1001" in text
    assert "5a1f0c8e" not in text and "b3BlbnNzaC1rZXkt" not in text


def test_the_providers_refuse_what_a_real_cluster_would(store: Store, monkeypatch) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(store.root))
    proxmoxve = proxmoxve_stand_in()
    _run(proxmoxve.configure(p.ConfigureRequest({}, from_plain_map({}), True, True)))
    zone = URN.format(type="proxmoxve:sdn/zone/vxlan:Vxlan", name="z")
    request = p.CreateRequest(zone, from_plain_map({"resourceId": "olvz1", "peers": []}), 60, False)
    with pytest.raises(ProxmoxError, match="the Proxmox VE API token is missing"):
        _run(proxmoxve.create(request))
    command = command_stand_in()
    urn = URN.format(type="command:remote:Command", name="c")
    for connection, message in [
        ({"host": "192.0.2.99", "privateKey": KEY}, "dial tcp 192.0.2.99:22: connect"),
        ({"host": "192.0.2.11", "privateKey": "nope"}, "ssh: no key found"),
        ({"host": "192.0.2.12", "privateKey": KEY, "hostKey": "ssh-ed25519 BBBB"}, "mismatch"),
    ]:
        inputs = from_plain_map({"connection": Secret(connection), "create": "true"})
        with pytest.raises(ProxmoxError, match=message):
            _run(command.create(p.CreateRequest(urn, inputs, 60, False)))
    failing = from_plain_map(
        {"connection": Secret({"host": "192.0.2.11", "privateKey": KEY}), "create": "exit 3"}
    )
    with pytest.raises(ProxmoxError, match="Process exited with status 3"):
        _run(command.create(p.CreateRequest(urn, failing, 60, False)))


def test_pct_runs_only_as_root_or_through_sudo(store: Store, monkeypatch) -> None:
    """pct refuses anyone but root (pve-common ``RESTEnvironment``): "please run as root"."""
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(store.root))
    sector(store)
    template(store)
    c.create_container(store, container())
    command = command_stand_in()
    urn = URN.format(type="command:remote:Command", name="p")

    def run(user: str, line: str) -> Any:
        connection = Secret({"host": "192.0.2.11", "user": user, "privateKey": KEY})
        inputs = from_plain_map({"connection": connection, "create": line, "stdin": "true\n"})
        return _run(command.create(p.CreateRequest(urn, inputs, 60, False)))

    with pytest.raises(ProxmoxError, match="Process exited with status 255\nplease run as root"):
        run("orbitlab", "pct exec 10011 -- /bin/sh -s")
    run("orbitlab", "sudo -n pct exec 10011 -- /bin/sh -s")
    run("root", "pct exec 10011 -- /bin/sh -s")
    runs = store.read()["runs"]
    assert [(r["command"].split()[0], r["status"]) for r in runs] == [
        ("pct", 255),
        ("sudo", 0),
        ("pct", 0),
    ]


def test_a_changed_trigger_replaces_a_command_and_other_changes_update_it() -> None:
    command = command_stand_in()
    urn = URN.format(type="command:remote:Command", name="c")
    olds = {"connection": Secret({"host": "h"}), "stdin": "a", "triggers": ["1"]}

    def diff(**news: Any) -> p.DiffResponse:
        request = p.DiffRequest(urn, "id", from_plain_map(olds), from_plain_map(news), [])
        return _run(command.diff(request))

    assert diff(**{**olds, "stdin": "b"}).replaces == []
    assert diff(**{**olds, "stdin": "b"}).diffs == ["stdin"]
    assert diff(**{**olds, "triggers": ["2"]}).replaces == ["triggers"]
    assert diff(**olds).changes is False


# --- orbitlab emulate ------------------------------------------------------------------------


def test_emulate_start_env_status_stop(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(tmp_path / "emu"))
    monkeypatch.setattr(control, "ensure_pulumi", lambda: tmp_path)
    assert cli_main(["emulate", "start", str(EXAMPLE_STACK), "--apply-seconds", "0"]) == 0
    assert cli_main(["emulate", "start", str(EXAMPLE_STACK)]) == 1
    assert "already runs in" in capsys.readouterr().err
    assert cli_main(["emulate", "env"]) == 0
    env = capsys.readouterr().out
    assert f"export PULUMI_BACKEND_URL=file://{tmp_path}/emu/backend" in env
    assert "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true" in env
    assert f'export PATH="{tmp_path}/emu/bin:' in env
    assert (tmp_path / "emu/bin/pulumi-resource-proxmoxve").stat().st_mode & 0o111
    assert cli_main(["emulate", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert sorted(status["nodes"]) == ["pve1", "pve2"] and status["applies"] == []
    assert cli_main(["emulate", "stop"]) == 0
    assert not (tmp_path / "emu").exists()
    assert cli_main(["emulate", "status"]) == 1
    assert "no emulated cluster in" in capsys.readouterr().err


def test_emulate_lock_unlock_fail_reload_and_apply(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(tmp_path / "emu"))
    monkeypatch.setattr(control, "ensure_pulumi", lambda: tmp_path)
    argv = ["emulate", "start", str(EXAMPLE_STACK), "--apply-seconds", "0", "--pve", "9"]
    assert cli_main(argv) == 0
    assert "(Proxmox VE 9)" in capsys.readouterr().err
    assert cli_main(["emulate", "lock"]) == 0
    token = capsys.readouterr().out.strip()
    assert cli_main(["emulate", "apply"]) == 1
    assert "could not commit SDN config: invalid lock token provided!" in capsys.readouterr().err
    assert cli_main(["emulate", "unlock", "--token", "nope"]) == 1
    assert "could not release lock: invalid lock token provided!" in capsys.readouterr().err
    assert cli_main(["emulate", "unlock", "--token", token]) == 0
    assert cli_main(["emulate", "fail-reload", "pve9"]) == 1
    assert "no such cluster node 'pve9'" in capsys.readouterr().err
    assert cli_main(["emulate", "fail-reload", "pve2", "--message", "boom"]) == 0
    capsys.readouterr()
    assert cli_main(["emulate", "apply"]) == 0
    assert "SDN applied: version 1; WARNING pve2: boom" in capsys.readouterr().err
    assert cli_main(["emulate", "status"]) == 0
    assert "pve2 192.0.2.12 (bridges: vmbr0; SDN version 1; reloads fail: boom)" in (
        capsys.readouterr().out
    )
    assert cli_main(["emulate", "stop"]) == 0


def test_emulate_start_refuses_a_proxmox_it_does_not_emulate(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(tmp_path / "emu"))
    with pytest.raises(SystemExit):
        cli_main(["emulate", "start", str(EXAMPLE_STACK), "--pve", "7"])
    assert "invalid choice: 7 (choose from 8, 9)" in capsys.readouterr().err


# --- schemas and the build -----------------------------------------------------------------


def test_the_emulators_schema_is_the_provider_schema_subset_without_descriptions() -> None:
    full = json.loads((ROOT / "tests" / "data" / "proxmoxve-schema-subset.json").read_text())
    packaged = (SCHEMA_DIR / SCHEMA_FILES["proxmoxve"]).read_text()
    assert packaged == compact_text(full), (
        "refresh it: python -m orbitlab_lab.emulate.schema tests/data/proxmoxve-schema-subset.json"
    )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_the_command_schema_has_every_input_of_the_pinned_sdk() -> None:
    sdk_inputs = {
        _camel(name)
        for name in inspect.signature(pulumi_command.remote.Command._internal_init).parameters
        if name not in ("__self__", "resource_name", "opts", "__props__")
    }
    schema = resource("command", "command:remote:Command")
    assert set(schema["inputProperties"]) == sdk_inputs
    connection = {
        _camel(name) for name in inspect.signature(pulumi_command.remote.ConnectionArgs).parameters
    }
    types = json.loads((SCHEMA_DIR / SCHEMA_FILES["command"]).read_text())["types"]
    assert set(types["command:remote:Connection"]["properties"]) == connection


def test_the_build_script_puts_the_cli_where_the_emulator_looks(monkeypatch) -> None:
    monkeypatch.delenv("ORBITLAB_PULUMI_DIR", raising=False)
    printed = subprocess.run(
        ["bash", str(control.BUILD_SCRIPT), "--print"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(printed) == control.pulumi_bin()
    assert control.pulumi_bin().parent.name == control.PULUMI_VERSION


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"endpoint": "https://192.0.2.11:8006/"}, "the Proxmox VE API token is missing: set it"),
        (
            {"apiToken": Secret("root@pam=abc"), "endpoint": "https://192.0.2.11:8006/"},
            "the Proxmox VE API token is not 'user@realm!tokenid=secret'",
        ),
        ({"apiToken": Secret(TOKEN)}, "the Proxmox VE endpoint is missing: set proxmoxve:endpoint"),
        (
            {"apiToken": Secret(TOKEN), "endpoint": "https://192.0.2.99:8006/"},
            "dial tcp 192.0.2.99:8006: connect: connection refused (the endpoint reaches no node",
        ),
        (
            {"apiToken": Secret(TOKEN), "endpoint": "https://pve9.home.arpa:8006/"},
            "dial tcp pve9.home.arpa:8006: connect: connection refused (the endpoint reaches no",
        ),
    ],
)
def test_the_provider_config_is_checked_with_a_message(
    store: Store, monkeypatch, config: dict[str, Any], message: str
) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(store.root))
    monkeypatch.delenv("PROXMOX_VE_API_TOKEN", raising=False)
    proxmoxve = proxmoxve_stand_in()
    _run(proxmoxve.configure(p.ConfigureRequest({}, from_plain_map(config), True, True)))
    urn = URN.format(type="proxmoxve:sdn/zone/vxlan:Vxlan", name="z")
    inputs = from_plain_map({"resourceId": "olvz1001", "peers": ["192.0.2.11"]})
    with pytest.raises(ProxmoxError) as raised:
        _run(proxmoxve.create(p.CreateRequest(urn, inputs, 60, False)))
    assert message in str(raised.value)


def test_a_plugin_without_a_started_cluster_says_how_to_start_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(tmp_path / "none"))
    with pytest.raises(ProxmoxError, match=r"run `orbitlab emulate start STACKFILE` and `eval"):
        proxmoxve_stand_in().store()


def test_emulate_start_refuses_negative_times(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(tmp_path / "emu"))
    argv = ["emulate", "start", str(EXAMPLE_STACK), "--apply-seconds", "-1"]
    assert cli_main(argv) == 1
    assert "--apply-seconds and --lock-wait-seconds must not be negative" in capsys.readouterr().err


def _guard_of(node: str) -> tuple[str, str]:
    from orbitlab.components.guard import install_script, remove_script

    web = load_plan(str(EXAMPLE_STACK)).sector("web")
    return install_script(web, node), remove_script(web)


def test_the_sector_guard_is_checked_kept_for_boot_loaded_and_removed(store: Store) -> None:
    install, remove = _guard_of("pve1")
    node_dir = store.node_dir("pve1")
    first = run_on_node(store, "pve1", "sh -s", install, "web-guard-pve1")
    assert first.status == 0, first.stderr
    kept = node_dir / "etc/orbitlab/guard/olvn1001.nft"
    assert "udp sport 67 udp dport 68 ether saddr != 02:4f:4c:20:03:e9" in kept.read_text()
    wants = node_dir / "etc/systemd/system/multi-user.target.wants/orbitlab-guard.service"
    assert wants.is_symlink() and wants.resolve().name == "orbitlab-guard.service"
    listed = run_on_node(store, "pve1", "nft list table bridge orbitlab_guard_olvn1001", None, "l")
    assert listed.status == 0 and "nd-router-advert" in listed.stdout, listed.stderr
    # again: the same table, replaced in one transaction (still one of it)
    assert run_on_node(store, "pve1", "sh -s", install, "web-guard-pve1").status == 0
    ruleset = run_on_node(store, "pve1", "nft list ruleset", None, "l").stdout
    assert ruleset.count("table bridge orbitlab_guard_olvn1001") == 1
    gone = run_on_node(store, "pve1", f"sh -c {shlex.quote(remove)}", None, "web-guard-pve1")
    assert gone.status == 0, gone.stderr
    assert not kept.exists()
    assert "orbitlab_guard" not in run_on_node(store, "pve1", "nft list ruleset", None, "l").stdout
    # removing what is not there changes nothing and does not fail
    assert run_on_node(store, "pve1", f"sh -c {shlex.quote(remove)}", None, "again").status == 0


def test_a_guard_that_nft_refuses_is_neither_kept_nor_loaded(store: Store) -> None:
    install, _ = _guard_of("pve1")
    broken = install.replace("counter drop", "counter dorp", 1)
    failed = run_on_node(store, "pve1", "sh -s", broken, "web-guard-pve1")
    assert failed.status == 1 and "dorp" in failed.stderr
    assert not (store.node_dir("pve1") / "etc/orbitlab/guard/olvn1001.nft").exists()
    assert "orbitlab_guard" not in run_on_node(store, "pve1", "nft list ruleset", None, "l").stdout


def test_a_node_without_nft_fails_the_guard_naming_the_package(store: Store) -> None:
    install, _ = _guard_of("pve2")
    failed = run_on_node(store, "pve2", "PATH=/bin /bin/sh -s", install, "web-guard-pve2")
    assert failed.status == 1
    assert failed.stderr.strip() == (
        "orbitlab: node pve2 has no nft, so the guard of Sector web (VNet olvn1001) cannot be "
        "loaded; install nftables on the node (apt install nftables) and run pulumi up again"
    )
