"""Template volumes no stack takes from another, or from the user, with the real Pulumi CLI.

The seeded cluster keeps its templates on shared storage (``nas``, one NFS export both
nodes see) and its disks on ``local-lvm``:

- two stacks, one template URL: each downloads its own file once (not once per node), and
  destroying one stack leaves the other's template, which the other then still finds;
- a file the user made under the stack's file name is not overwritten: the create fails
  with the provider's message, and the file stays;
- a stack made before (its template named after the URL, the name another stack or the
  user may share): the next ``up`` downloads its own file and deletes the old one, which
  its state owns, and no appliance is replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orbitlab_lab.emulate import cluster as c
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

TEMPLATE = "alpine-3.22-default_20250617_amd64.tar.xz"
SNAPSHOT = {
    "format": 1,
    "storages": [
        {"storage": "local", "type": "dir", "content": "iso,backup"},
        {"storage": "local-lvm", "type": "lvmthin", "content": "rootdir,images"},
        {"storage": "nas", "type": "nfs", "content": "vztmpl,iso", "shared": 1},
    ],
}


def volume(stack: str) -> str:
    return f"nas:vztmpl/orbitlab-{stack}-{TEMPLATE}"


def attach(config: dict[str, Any]) -> None:
    config["orbitlab:backplane"]["stack"] = "organization/orbitlab/example"
    config["orbitlab:sectors"] = [
        {"name": "ops", "subnets": ["192.168.50.0/24"], "hosts": [], "node": "pve1"}
    ]


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Rehearsal]:
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump(SNAPSHOT))
    rehearsal = Rehearsal.create(tmp_path, EXAMPLE_STACK, apply_s=0.5, seed=seed)
    rehearsal.add_stack_file("example", EXAMPLE_STACK)
    rehearsal.init_stack("example")
    yield rehearsal
    rehearsal.stop()


def volumes(rehearsal: Rehearsal) -> dict[str, set[str]]:
    return {node: set(found) for node, found in rehearsal.store.read()["volumes"].items()}


def test_two_stacks_on_shared_storage_keep_their_own_templates(shared: Rehearsal) -> None:
    shared.pulumi("up", "--yes", "--skip-preview")
    shared.add_stack_file("attached", EXAMPLE_STACK, attach)
    shared.init_stack("attached")
    shared.pulumi("up", "--yes", "--skip-preview", stack="attached")
    both = {volume("example"), volume("attached")}
    assert volumes(shared) == {"pve1": both, "pve2": both}  # one file each, seen by both nodes
    # example's appliances are on pve2, attached's on pve1: one download served each
    shared.pulumi("destroy", "--yes", "--skip-preview", stack="attached")
    assert volumes(shared) == {"pve1": {volume("example")}, "pve2": {volume("example")}}
    shared.pulumi("up", "--yes", "--expect-no-changes", stack="example")


def test_a_users_file_of_the_same_name_is_left_alone(shared: Rehearsal) -> None:
    c.create_volume(
        shared.store, "pve1", "nas", "vztmpl", f"orbitlab-example-{TEMPLATE}", "user", False
    )
    done = shared.pulumi("up", "--yes", "--skip-preview", check=False)
    assert done.returncode != 0
    assert "File already exists in the datastore, it was created outside of Terraform" in (
        " ".join(done.stdout.split())
    )
    assert shared.store.read()["volumes"]["pve2"][volume("example")] == {"url": "user"}
    assert shared.status()["containers"] == {}


def _as_made_before(rehearsal: Rehearsal) -> None:
    """As an OrbitLab before 0.3 left it: the template named after its URL, the containers
    made from that volume and without a replacement trigger."""
    old = f"nas:vztmpl/{TEMPLATE}"
    with rehearsal.store.change() as state:
        for node in state["volumes"]:
            state["volumes"][node] = {old: state["volumes"][node].pop(volume("example"))}
        for container in state["containers"].values():
            container["template"] = old
    exported = json.loads(rehearsal.pulumi("stack", "export").stdout)
    for resource in exported["deployment"]["resources"]:
        if resource["type"] == "proxmoxve:download/file:File":
            resource["id"] = old
            for part in ("inputs", "outputs"):
                resource[part]["fileName"] = TEMPLATE
                resource[part]["overwriteUnmanaged"] = True
            resource["outputs"]["id"] = old
        if resource["type"] == "proxmoxve:index/containerLegacy:ContainerLegacy":
            for part in ("inputs", "outputs"):
                resource[part]["operatingSystem"]["templateFileId"] = old
            resource.pop("replacementTrigger", None)
    path = rehearsal.project / "before.json"
    path.write_text(json.dumps(exported))
    rehearsal.pulumi("stack", "import", "--file", str(path))


def test_a_stack_made_before_gets_its_own_file_and_keeps_its_appliances(
    shared: Rehearsal,
) -> None:
    shared.pulumi("up", "--yes", "--skip-preview")
    _as_made_before(shared)
    assert shared.changes() == {"replace": ["templates-pve2"]}
    shared.pulumi("up", "--yes", "--skip-preview")
    assert volumes(shared)["pve2"] == {volume("example")}
    assert sorted(shared.status()["containers"]) == ["10011", "10012", "10013", "10021", "10022"]
    shared.pulumi("up", "--yes", "--expect-no-changes")
