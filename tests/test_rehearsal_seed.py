"""A rehearsal that starts from the user's existing cluster (``emulate start --seed``).

The seeded cluster holds, as a snapshot of a real one would: foreign VNets on tags
1001-1003, VMs on VMIDs 10011 and 10041 (tag 1004's gateway's), a ZFS install's storages
(``local`` and ``local-zfs``, no ``local-lvm``), and in the first case a foreign EVPN
controller with its zone. With the real Pulumi CLI:

- the foreign controller: ``pulumi preview`` fails naming it, and nothing changes;
- without it: ``pulumi up`` builds the example stack on tags 1005 and 1006, with the
  containers' disks on ``local-zfs``; the VMs and the foreign VNets are left as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orbitlab_lab.emulate import control
from orbitlab_lab.emulate.rehearsal import Rehearsal
from tests.pulumi_mocks import EXAMPLE_STACK

pytestmark = [
    pytest.mark.rehearsal,
    pytest.mark.skipif(
        not control.pulumi_built(),
        reason=f"the Pulumi CLI is not built in {control.pulumi_bin()} (orbitlab emulate build)",
    ),
]

FOREIGN_VNETS = [
    {"vnet": f"corp{tag}", "zone": "corpx", "tag": tag, "type": "vnet"}
    for tag in (1001, 1002, 1003)
]
CONTROLLER = {"controller": "corpevpn", "type": "evpn", "asn": 65000, "peers": "192.0.2.11"}
EVPN_ZONE = {"zone": "corp", "type": "evpn", "controller": "corpevpn", "vrf-vxlan": 5000}


def snapshot(with_controller: bool) -> dict[str, Any]:
    zones = [{"zone": "corpx", "type": "vxlan", "peers": "192.0.2.11,192.0.2.12"}]
    return {
        "format": 1,
        "sdn": {
            "controllers": [CONTROLLER] if with_controller else [],
            "zones": zones + ([EVPN_ZONE] if with_controller else []),
            "vnets": FOREIGN_VNETS,
            "subnets": [],
        },
        "guests": [
            {"vmid": 10011, "type": "qemu", "node": "pve1", "name": "legacy"},
            {"vmid": 10041, "type": "qemu", "node": "pve2", "name": "nas"},
        ],
        "storages": [
            {"storage": "local", "type": "dir", "content": "vztmpl,iso,backup"},
            {"storage": "local-zfs", "type": "zfspool", "content": "rootdir,images"},
        ],
    }


def seeded(tmp: Path, with_controller: bool) -> Rehearsal:
    seed = tmp / "seed.yaml"
    seed.write_text(yaml.safe_dump(snapshot(with_controller)))
    rehearsal = Rehearsal.create(tmp, EXAMPLE_STACK, apply_s=0.5, seed=seed)
    rehearsal.add_stack_file("example", EXAMPLE_STACK)
    rehearsal.init_stack("example")
    return rehearsal


@pytest.fixture
def with_controller(tmp_path: Path) -> Iterator[Rehearsal]:
    rehearsal = seeded(tmp_path, with_controller=True)
    yield rehearsal
    rehearsal.stop()


@pytest.fixture
def without_controller(tmp_path: Path) -> Iterator[Rehearsal]:
    rehearsal = seeded(tmp_path, with_controller=False)
    yield rehearsal
    rehearsal.stop()


def test_a_foreign_evpn_controller_fails_the_preview_and_nothing_changes(
    with_controller: Rehearsal,
) -> None:
    before = with_controller.store.read()
    done = with_controller.pulumi("preview", check=False)
    assert done.returncode != 0
    output = " ".join((done.stdout + done.stderr).split())
    assert "the cluster already has the EVPN controller 'corpevpn' (zone 'corp' uses it)" in output
    after = with_controller.store.read()
    assert after["sdn"] == before["sdn"] and after["containers"] == {}
    assert after["applies"] == []


def test_the_stack_is_built_beside_what_the_cluster_holds(without_controller: Rehearsal) -> None:
    without_controller.pulumi("up", "--yes", "--skip-preview")
    state = without_controller.store.read()
    running = state["sdn"]["running"]
    assert {v: running["vnets"][v]["tag"] for v in running["vnets"] if v.startswith("olvn")} == {
        "olvn1005": 1005,
        "olvn1006": 1006,
    }
    assert all(f"corp{tag}" in running["vnets"] for tag in (1001, 1002, 1003))
    containers = state["containers"]
    assert sorted(containers, key=int) == ["10051", "10052", "10053", "10061", "10062"]
    assert {c["storage"] for c in containers.values()} == {"local-zfs"}
    assert set(state["guests"]) == {"10011", "10041"}
    without_controller.pulumi("up", "--yes", "--expect-no-changes")
