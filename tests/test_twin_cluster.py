"""The emulated cluster backed by the twin, without a twin: how a container is named and
described, what an applied VNet declares, the appliance OS's stand-ins, and the messages a
user can cause. The end-to-end runs (real ``pulumi up``, then ``twin test``) are in
``tests/test_twin_cluster_e2e.py``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from netaddr import IPAddress, IPNetwork

from orbitlab.cli import main as cli_main
from orbitlab.stack import load_plan
from orbitlab_lab.emulate import ProxmoxError, control
from orbitlab_lab.emulate import cluster as c
from orbitlab_lab.emulate.proxmoxve import container_of
from orbitlab_lab.emulate.store import Store
from orbitlab_lab.emulate.twin_backend import TwinBackend, spec_of, vnet_of
from orbitlab_lab.twin import TwinError, fabric
from orbitlab_lab.twin.containers import (
    ContainerSpec,
    Nic,
    find_target,
    holder_script,
    place,
    resolv_conf,
)
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.standins import standin_scripts
from orbitlab_lab.twin.state import TwinState
from orbitlab_lab.twin.topology import build_topology
from tests.pulumi_mocks import EXAMPLE_STACK, ROOT

THREE_STACK = ROOT / "tests" / "data" / "twin" / "Pulumi.three.yaml"


def spec(hostname: str, bridge: str, address: str | None = None, vmid: int = 999) -> ContainerSpec:
    return ContainerSpec(vmid, "alpha", hostname, (Nic("eth0", bridge, address=address),))


# --- naming: reality found in the expectations --------------------------------------------


def test_an_appliance_is_named_after_its_hostname_whatever_vnet_it_is_on() -> None:
    topology = build_topology(load_plan(str(EXAMPLE_STACK)))
    on_wrong_vnet = spec("olvn1001-dns", "olbpvn", "172.16.0.2/24")
    placement = place(topology, on_wrong_vnet, set())
    assert (placement.ns.name, placement.role) == ("olt-s.web.dns", "dns")
    assert placement.sector is not None and placement.sector.name == "web"


def test_a_host_declared_in_two_sectors_is_told_apart_by_its_vnet_then_its_address() -> None:
    topology = build_topology(load_plan(str(THREE_STACK)))
    red, blue = topology.sector("red"), topology.sector("blue")
    assert place(topology, spec("ci", blue.bridge), set()).ns.name == "olt-s.blue.ci"
    assert place(topology, spec("ci", red.bridge), set()).ns.name == "olt-s.red.ci"
    # on neither VNet: the address does not tell them apart either (both 172.20.0.50)
    assert place(topology, spec("ci", "olbpvn", "172.20.0.50/24"), set()).ns.name == (
        "olt-s.red.ci"
    )
    host = place(topology, spec("ci", blue.bridge), set()).host
    assert host is not None and host.port == "veth999i0" and host.node == "alpha"


def test_a_container_the_stack_does_not_expect_stays_a_namespace_of_its_own() -> None:
    topology = build_topology(load_plan(str(EXAMPLE_STACK)))
    stranger = place(topology, spec("grafana", "olvn1001", vmid=4242), set())
    assert (stranger.ns.name, stranger.ns.label, stranger.expected) == (
        "olt-c.4242",
        "ct:4242",
        False,
    )
    # a second container with an appliance's hostname: the name is taken
    second = place(topology, spec("olvn1001-router", "olvn1001", vmid=77), {"olt-s.web.gateway"})
    assert second.ns.name == "olt-c.77"


# --- what was declared --------------------------------------------------------------------


def test_the_declaration_reaches_the_twin_as_pulumi_sent_it() -> None:
    inputs = {
        "nodeName": "pve2",
        "vmId": 10011.0,
        "initialization": {
            "hostname": "olvn1001-router",
            "ipConfigs": [
                {"ipv4": {"address": "172.16.0.1/24"}},
                {"ipv4": {"address": "10.200.0.10/16", "gateway": "10.200.0.1"}},
            ],
            "dns": {"domain": "web.internal", "servers": ["192.0.2.53"]},
        },
        "operatingSystem": {"templateFileId": "local:vztmpl/alpine.tar.xz"},
        "networkInterfaces": [
            {
                "name": "eth0",
                "bridge": "olvn1001",
                "macAddress": "02:4f:4c:10:03:e9",
                "mtu": 1450.0,
            },
            {"name": "eth1", "bridge": "olbpvn", "mtu": 1450.0},
        ],
    }
    declared = spec_of(10011, container_of(inputs).record())
    assert declared.nics == (
        Nic("eth0", "olvn1001", "02:4f:4c:10:03:e9", 1450, "172.16.0.1/24", None),
        Nic("eth1", "olbpvn", None, 1450, "10.200.0.10/16", "10.200.0.1"),
    )
    assert (declared.nameservers, declared.domain) == (("192.0.2.53",), "web.internal")
    assert declared.mac(0) == "02:4f:4c:10:03:e9"
    assert declared.mac(1).startswith("bc:24:11:") and declared.mac(1) == declared.mac(1)
    assert declared.addresses == (IPAddress("172.16.0.1"), IPAddress("10.200.0.10"))
    assert resolv_conf(declared, None) == "search web.internal\nnameserver 192.0.2.53\n"


def test_applied_vnets_reach_the_twin_with_their_zones_declarations(tmp_path: Path) -> None:
    store = Store(tmp_path)
    c.create_cluster(store, [c.Node("pve1", "192.0.2.11", 1500), c.Node("pve2", "192.0.2.12")])
    c.create_sdn(
        store, "controllers", "olbpc", {"type": "evpn", "peers": ["192.0.2.11", "192.0.2.12"]}
    )
    evpn = {"type": "evpn", "controller": "olbpc", "vrfVxlan": 10, "mtu": 1450}
    c.create_sdn(store, "zones", "olbpz", {**evpn, "primaryExitNode": "pve2"})
    c.create_sdn(store, "vnets", "olbpvn", {"zone": "olbpz", "tag": 100})
    subnet = {"vnet": "olbpvn", "cidr": "10.200.0.0/16", "gateway": "10.200.0.1", "snat": True}
    c.create_sdn(store, "subnets", "olbpz-10.200.0.0-16", subnet)
    c.create_sdn(store, "zones", "olvz1001", {"type": "vxlan", "peers": ["192.0.2.11"]})
    c.create_sdn(store, "vnets", "olvn1001", {"zone": "olvz1001", "tag": 1001})
    c.apply_sdn(store, "test", "create")
    bridges = {b.name: b for b in c.node_bridges(store.read(), "pve1")}
    assert sorted(bridges) == ["olbpvn", "olvn1001", "vmbr0"]
    backplane = vnet_of(bridges["olbpvn"])
    assert backplane is not None and backplane.evpn and backplane.vni == 100
    assert backplane.peers == (IPAddress("192.0.2.11"), IPAddress("192.0.2.12"))
    assert backplane.gateways == (IPNetwork("10.200.0.1/16"),)
    assert (backplane.snat, backplane.vrf_vni, backplane.primary_exit) == (
        (IPNetwork("10.200.0.0/16"),),
        10,
        "pve2",
    )
    sector = vnet_of(bridges["olvn1001"])
    # a VXLAN zone without an MTU: Proxmox's default, vmbr0's minus 50
    assert sector is not None and (sector.mtu, sector.gateways, sector.evpn) == (1450, (), False)
    assert vnet_of(bridges["vmbr0"]) is None


def test_a_changed_vnet_is_changed_in_place_and_floods_to_its_new_peers() -> None:
    topology = build_topology(load_plan(str(EXAMPLE_STACK)))
    pve1 = topology.node("pve1")
    peers = (IPAddress("192.0.2.11"), IPAddress("192.0.2.12"))
    old = fabric.VnetBridge("olvn1001", 1001, 1450, peers)
    new = fabric.VnetBridge("olvn1001", 1001, 1400, (*peers, IPAddress("192.0.2.13")))
    assert fabric.change_commands(old, new, pve1) == [
        "link set vxlan_olvn1001 mtu 1400",
        "link set olvn1001 mtu 1400",
    ]
    assert fabric.flood_commands(new, pve1, old.peers) == [
        "fdb append 00:00:00:00:00:00 dev vxlan_olvn1001 dst 192.0.2.13"
    ]
    retagged = fabric.VnetBridge("olvn1001", 1009, 1450, peers)
    assert fabric.change_commands(old, retagged, pve1)[0] == "link del vxlan_olvn1001"


def test_the_backplane_routes_and_snat_follow_the_zones_primary_exit_node() -> None:
    topology = build_topology(load_plan(str(EXAMPLE_STACK)))
    backplane = fabric.VnetBridge(
        "olbpvn",
        100,
        1450,
        (),
        evpn=True,
        zone="olbpz",
        gateways=(IPNetwork("10.200.0.1/16"),),
        snat=(IPNetwork("10.200.0.0/16"),),
        vrf_vni=10,
        primary_exit="pve2",
    )
    pve1, pve2 = topology.node("pve1"), topology.node("pve2")
    assert "masquerade" in fabric.snat_ruleset(backplane, pve2, topology)
    assert "masquerade" not in fabric.snat_ruleset(backplane, pve1, topology)
    assert "route add default via 192.0.2.12 dev vrfvx_olbpz onlink table 100" in (
        fabric.l3_commands(backplane, pve1, topology)
    )
    assert not any("table 100" in line for line in fabric.l3_commands(backplane, pve2, topology))


# --- the container's root and the OS stand-ins ----------------------------------------------


def test_the_container_root_is_its_own_and_the_twin_directory_stays_where_it_is() -> None:
    script = holder_script("h", Path("/r/root"), Path("/r/work"), Path("/r/bin"), Path("/srv/t"))
    assert "upperdir=/r/root/etc" in script and "upperdir=/r/root/var" in script
    assert "lowerdir=/r/bin:/usr/local/sbin" in script
    # a twin directory outside /run needs no bind into the container's own /run
    assert "mount --bind" not in script and "mount --rbind /r/root/run /run" in script


@pytest.fixture
def standins(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, text in standin_scripts(tmp_path / "run", tmp_path / "root").items():
        (directory / name).write_text(text.replace("REAL=/usr/sbin/sysctl", "REAL=/bin/echo"))
        (directory / name).chmod(0o755)
    return directory


def run(standins: Path, name: str, *args: str, path: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{path}:/usr/bin:/bin" if path else "/usr/bin:/bin"}
    return subprocess.run(
        ["/bin/sh", str(standins / name), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_every_standin_is_valid_sh(standins: Path) -> None:
    for script in standins.iterdir():
        checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert checked.returncode == 0, (script.name, checked.stderr)


def test_apk_reports_what_this_machine_has_and_installs_nothing(
    standins: Path, tmp_path: Path
) -> None:
    programs = tmp_path / "programs"
    programs.mkdir()
    (programs / "coredns").write_text("#!/bin/sh\n")
    (programs / "coredns").chmod(0o755)
    here = str(programs)
    assert run(standins, "apk", "info", "-e", "coredns", path=here).returncode == 0
    assert run(standins, "apk", "add", "--quiet", "coredns", path=here).returncode == 0
    assert run(standins, "apk", "update", "--quiet", path=here).returncode == 0
    # /usr/bin and /bin have no coredns of their own here
    missing = run(standins, "apk", "add", "coredns", "left-pad")
    assert missing.returncode == 1
    assert "ERROR: unable to select packages:" in missing.stderr
    assert "  left-pad (no such package: the OrbitLab twin installs none)" in missing.stderr
    assert run(standins, "apk", "info", "-e", "left-pad").returncode == 1
    odd = run(standins, "apk", "search", "frr")
    assert odd.returncode == 1 and "'search' is not emulated" in odd.stderr


def test_sysctl_sets_only_the_containers_network_settings(standins: Path, tmp_path: Path) -> None:
    ok = run(standins, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    assert ok.returncode == 0 and ok.stdout.strip() == "-q -w net.ipv4.ip_forward=1"
    refused = run(standins, "sysctl", "-w", "kernel.hostname=nope")
    assert refused.returncode == 1
    assert "kernel.hostname: a container may set only net.ipv4.* and net.ipv6.*" in (refused.stderr)
    conf = tmp_path / "90.conf"
    conf.write_text("# fine\nnet.ipv4.conf.all.send_redirects = 0\nfs.protected_regular = 0\n")
    from_file = run(standins, "sysctl", "-q", "-p", str(conf))
    assert from_file.returncode == 1 and "fs.protected_regular" in from_file.stderr
    assert "this machine's /etc/sysctl.conf" in run(standins, "sysctl", "-p").stderr
    assert "--system" in run(standins, "sysctl", "--system").stderr
    assert run(standins, "sysctl", "-n", "kernel.ostype").returncode == 0  # reading is free


def test_openrc_commands_name_what_does_not_exist(standins: Path) -> None:
    service = run(standins, "rc-service", "no-such-service", "start")
    assert service.returncode == 1
    assert "rc-service: service `no-such-service' does not exist" in service.stderr
    update = run(standins, "rc-update", "add", "no-such-service", "default")
    assert update.returncode == 1
    assert "rc-update: service `no-such-service' does not exist" in update.stderr
    assert "usage: rc-service SERVICE" in run(standins, "rc-service", "frr").stderr


# --- messages a user can cause ------------------------------------------------------------


def test_join_needs_a_cluster_backed_by_the_twin(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(tmp_path / "emu"))
    monkeypatch.setattr(control, "ensure_pulumi", lambda: tmp_path)
    assert cli_main(["emulate", "start", str(EXAMPLE_STACK), "--apply-seconds", "0"]) == 0
    capsys.readouterr()
    assert cli_main(["emulate", "join"]) == 1
    assert "start the cluster with `orbitlab emulate start STACKFILE --twin`" in (
        capsys.readouterr().err
    )
    assert cli_main(["emulate", "stop"]) == 0


def test_start_with_the_twin_needs_root(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(tmp_path / "emu"))
    monkeypatch.setattr(control, "ensure_pulumi", lambda: tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli_main(["emulate", "start", str(EXAMPLE_STACK), "--twin"]) == 1
    assert "must run as root" in capsys.readouterr().err
    assert not Store(tmp_path / "emu").exists


def test_the_backend_never_works_on_another_twin(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ORBITLAB_TWIN_DIR", str(tmp_path / "twin"))
    TwinState(tmp_path / "twin" / "work", EXAMPLE_STACK, source="someone's twin").save()
    backend = TwinBackend(Store(tmp_path / "emu"))
    with pytest.raises(ProxmoxError, match=r"not this emulated cluster.s .*someone.s twin"):
        backend.exec_in_container("pve1", 10011, "true")
    (tmp_path / "twin" / "state.json").unlink()
    with pytest.raises(ProxmoxError, match=r"the twin of the emulated cluster in .* is gone"):
        backend.container_deleted("pve1", 10011)
    assert not control.owns_twin(Store(tmp_path / "emu"))


def test_an_unknown_backend_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown emulator backend 'vm' \(known: files, twin\)"):
        c.backend_for(Store(tmp_path), "vm")


def test_exec_names_the_containers_there_are() -> None:
    topology = build_topology(load_plan(str(EXAMPLE_STACK)))
    state = TwinState(Path("/tmp/x"), EXAMPLE_STACK, kind="cluster")
    state.containers["olt-c.4242"] = {
        "spec": spec("grafana", "olvn1001", vmid=4242).to_json(),
        "running": True,
        "label": "ct:4242",
        "expected": False,
    }
    twin = TwinContext(topology, state)
    assert find_target(twin, "ct:4242") == "olt-c.4242"
    assert find_target(twin, "web/gateway") == "olt-s.web.gateway"
    with pytest.raises(TwinError, match=r"no running container '7' in the twin; containers: 4242"):
        find_target(twin, "ct:7")
    with pytest.raises(TwinError, match=r"olt-s.web.dns is not there: no container"):
        state.holder("olt-s.web.dns")
