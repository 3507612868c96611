"""The rehearsal: the real Pulumi CLI (built by `orbitlab emulate build`) runs the stack
program against the emulated cluster (``orbitlab emulate``).

Each module-scoped cluster tells one story in order (the tests of a story run in file
order and build on each other). The SDN applies the emulator saw are counted and compared
with docs/program.md's table "How many applies an `up` performs", which was written from a
model of the engine under mocks (tests/test_rollout.py).
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orbitlab_lab.emulate import control
from orbitlab_lab.emulate.rehearsal import DUMMY_KEY_BODY, DUMMY_TOKEN_SECRET, Rehearsal
from tests.pulumi_mocks import EXAMPLE_STACK, ROOT

THREE_STACK = ROOT / "tests" / "data" / "twin" / "Pulumi.three.yaml"
FAST_APPLY_S = 0.3

pytestmark = [
    pytest.mark.rehearsal,
    pytest.mark.skipif(
        not control.pulumi_built(),
        reason=f"the Pulumi CLI is not built in {control.pulumi_bin()} (orbitlab emulate build)",
    ),
]


def new_applies(rehearsal: Rehearsal, before: int) -> list[tuple[str, str]]:
    """The applies since ``before`` applies: (applier, why), in the order they ran."""
    return [(a["by"], a["why"]) for a in rehearsal.applies()[before:]]


def up(rehearsal: Rehearsal, *args: str, stack: str | None = None) -> list[tuple[str, str]]:
    """``pulumi up --yes``; returns the applies it performed (all of them succeeded)."""
    before = len(rehearsal.applies())
    rehearsal.pulumi("up", "--yes", "--skip-preview", *args, stack=stack)
    status = rehearsal.status()
    assert status["failed_tasks"] == []
    assert all(a["ok"] for a in status["applies"])
    return new_applies(rehearsal, before)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    rehearsal = Rehearsal.create(
        tmp_path_factory.mktemp("example"), EXAMPLE_STACK, apply_s=FAST_APPLY_S
    )
    rehearsal.add_stack_file("example", EXAMPLE_STACK)
    rehearsal.init_stack("example")
    yield rehearsal
    rehearsal.stop()


# --- the example stack, one story ----------------------------------------------------------


def test_preview_lists_every_create_and_changes_nothing(example: Rehearsal) -> None:
    changes = example.changes()
    assert list(changes) == ["create"]
    created = changes["create"]
    assert len(created) == 49
    assert {"rollout-apply", "backplane-vnet", "web-zone", "lab-dns-provision"} <= set(created)
    # the Sector guards, one per Sector and node
    assert {"web-guard-pve1", "web-guard-pve2", "lab-guard-pve1", "lab-guard-pve2"} <= set(created)
    status = example.status()
    assert status["applies"] == [] and status["containers"] == {}
    assert status["sdn"]["vnets"] == {}


def test_up_creates_everything_with_one_sdn_apply(example: Rehearsal) -> None:
    assert up(example) == [("rollout-apply", "create")]
    status = example.status()
    assert sorted(status["containers"]) == ["10011", "10012", "10013", "10021", "10022"]
    assert set(status["sdn"]["vnets"].values()) == {"running"}
    assert sorted(status["sdn"]["vnets"]) == ["olbpvn", "olvn1001", "olvn1002"]
    assert "olvn1001" in status["nodes"]["pve2"]["bridges"]
    # every appliance was provisioned in its container, after its Sector's bridge wait
    provisioned = {r["vmid"] for r in status["runs"] if r["vmid"]}
    assert provisioned == {10011, 10012, 10013, 10021, 10022}
    gateway = example.store.node_dir("pve2") / "ct" / "10011" / "rootfs"
    assert "table inet" in (gateway / "etc" / "nftables.nft").read_text()


def test_a_second_up_changes_nothing(example: Rehearsal) -> None:
    assert up(example, "--expect-no-changes") == []


def test_the_secrets_never_appear_in_plain_text(example: Rehearsal) -> None:
    state = example.state_text("example")
    assert "ciphertext" in state  # the secrets are there, encrypted
    for text in (state, example.logs(), example.store.state_path.read_text()):
        assert DUMMY_TOKEN_SECRET not in text
        assert DUMMY_KEY_BODY not in text


def add_host(config: dict[str, Any]) -> None:
    config["orbitlab:sectors"][0]["hosts"].append({"name": "app4", "address": "172.16.0.24"})


def test_a_new_host_updates_only_that_sectors_dns_provisioning(example: Rehearsal) -> None:
    example.edit("example", add_host)
    assert example.changes() == {"update": ["web-dns-provision"]}
    before = len(example.store.read()["runs"])
    assert up(example) == []
    runs = example.store.read()["runs"][before:]
    # the DNS appliance alone ran its script again: its forward and reverse zones changed,
    # and its lease script, which keeps DHCP clients off the declared names
    assert [(r["vmid"], r["wrote"]) for r in runs] == [
        (
            10012,
            [
                "/etc/coredns/db.web.internal",
                "/etc/coredns/db.0.16.172.in-addr.arpa",
                "/etc/orbitlab/dhcp-names.sh",
            ],
        )
    ]
    dns = example.store.node_dir("pve2") / "ct" / "10012" / "rootfs"
    assert "app4" in (dns / "etc/coredns/db.web.internal").read_text()


def add_subnet(config: dict[str, Any]) -> None:
    config["orbitlab:sectors"][1]["subnets"].append("172.16.9.0/24")


def test_a_new_subnet_is_created_and_applied_once(example: Rehearsal) -> None:
    example.edit("example", add_subnet)
    changes = example.changes()
    assert changes["create"] == ["lab-subnet-172-16-9-0-24", "lab-subnet-172-16-9-0-24-finalizer"]
    # SDN applied again, and every node checks the zones again
    assert changes["replace"] == [
        "lab-bridges",
        "rollout-apply",
        "rollout-check-pve1",
        "rollout-check-pve2",
    ]
    assert "web-bridges" not in str(changes)
    assert up(example) == [("rollout-apply", "create")]
    assert example.status()["sdn"]["subnets"]["olvz1002-172.16.9.0-24"] == "running"


def test_removing_a_subnet_applies_the_change_then_the_deletion(example: Rehearsal) -> None:
    example.edit("example", lambda c: c["orbitlab:sectors"][1]["subnets"].remove("172.16.9.0/24"))
    assert up(example) == [
        ("rollout-apply", "create"),
        ("lab-subnet-172-16-9-0-24-finalizer", "delete"),
    ]
    assert "olvz1002-172.16.9.0-24" not in example.status()["sdn"]["subnets"]


def test_removing_a_sector_deletes_its_containers_then_its_sdn_then_applies(
    example: Rehearsal,
) -> None:
    example.edit("example", lambda c: c["orbitlab:sectors"].pop(1))
    log_start = len(example.store.log_path.read_text())
    assert up(example) == [("rollout-apply", "create"), ("lab-finalizer", "delete")]
    status = example.status()
    assert sorted(status["containers"]) == ["10011", "10012", "10013"]
    assert "olvn1002" not in status["sdn"]["vnets"] and "olvz1002" not in status["sdn"]["zones"]
    assert "olvn1002" not in status["nodes"]["pve2"]["bridges"]
    log = example.store.log_path.read_text()[log_start:]
    order = [
        "deleted CT 10021",
        "deleted subnet olvz1002-172.16.0.0-24",
        "deleted vnet olvn1002",
        "deleted zone olvz1002",
        "lab-finalizer: applied SDN",
    ]
    positions = [log.index(line) for line in order]
    assert positions == sorted(positions), log


def test_destroy_is_refused_by_the_protected_backplane(example: Rehearsal) -> None:
    before = len(example.applies())
    done = example.pulumi("destroy", "--yes", check=False)
    assert done.returncode != 0
    assert "because it is protected" in done.stdout + done.stderr
    assert len(example.applies()) == before
    assert sorted(example.status()["containers"]) == ["10011", "10012", "10013"]


def test_destroy_exclude_protected_leaves_only_the_backplane(example: Rehearsal) -> None:
    before = len(example.applies())
    example.pulumi("destroy", "--yes", "--exclude-protected")
    assert new_applies(example, before) == [("rollout-finalizer", "delete")]
    kept = set(example.resources("example"))
    assert kept - {"orbitlab-example"} == {
        "backplane",
        "backplane-finalizer",
        "backplane-controller",
        "backplane-zone",
        "backplane-vnet",
        "backplane-subnet",
    } | {name for name in kept if name.startswith("default_")}
    status = example.status()
    assert status["containers"] == {} and status["volumes"] == {"pve1": [], "pve2": []}
    assert sorted(status["sdn"]["vnets"]) == ["olbpvn"]


def attach(config: dict[str, Any]) -> None:
    config["orbitlab:backplane"]["stack"] = "organization/orbitlab/example"
    config["orbitlab:sectors"] = [
        {"name": "ops", "subnets": ["192.168.50.0/24"], "hosts": []},
    ]


def test_a_second_stack_attaches_to_the_backplane_by_stack_reference(example: Rehearsal) -> None:
    example.add_stack_file("attached", EXAMPLE_STACK, attach)
    example.init_stack("attached")
    assert up(example, stack="attached") == [("rollout-apply", "create")]
    status = example.status()
    assert status["sdn"]["vnets"] == {"olbpvn": "running", "olvn1001": "running"}
    gateway = status["containers"]["10011"]
    assert [nic["bridge"] for nic in gateway["nics"]] == ["olvn1001", "olbpvn"]
    assert "backplane-vnet" not in example.resources("attached")
    before = len(example.applies())
    example.pulumi("destroy", "--yes", stack="attached")
    assert new_applies(example, before) == [("rollout-finalizer", "delete")]
    assert sorted(example.status()["sdn"]["vnets"]) == ["olbpvn"]


# --- the three-Sector stack ----------------------------------------------------------------


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    rehearsal = Rehearsal.create(
        tmp_path_factory.mktemp("three"), THREE_STACK, apply_s=FAST_APPLY_S
    )
    rehearsal.add_stack_file("three", THREE_STACK)
    rehearsal.init_stack("three", endpoint="https://192.0.2.21:8006/")
    yield rehearsal
    rehearsal.stop()


def test_three_sectors_are_created_with_one_apply_and_stay_unchanged(three: Rehearsal) -> None:
    changes = three.changes()
    assert list(changes) == ["create"]
    assert {"shop-subnet-10-20-2-0-26", "red-lb-ct", "blue-dns-provision"} <= set(changes["create"])
    assert up(three) == [("rollout-apply", "create")]
    assert len(three.status()["containers"]) == 8
    assert up(three, "--expect-no-changes") == []


def test_a_change_of_every_sector_applies_once(three: Rehearsal) -> None:
    def mtu(config: dict[str, Any]) -> None:
        config["orbitlab:backplane"]["mtu"] = 1400

    three.edit("three", mtu)
    assert up(three) == [("rollout-apply", "create")]
    zones = three.store.read()["sdn"]["running"]["zones"]
    assert {zone["mtu"] for zone in zones.values()} == {1400}


def test_removing_two_sectors_applies_once_plus_once_each(three: Rehearsal) -> None:
    three.edit("three", lambda c: c["orbitlab:sectors"].__delitem__(slice(1, 3)))
    applies = up(three)
    assert applies[0] == ("rollout-apply", "create")
    assert sorted(applies[1:]) == [("blue-finalizer", "delete"), ("red-finalizer", "delete")]
    assert sorted(three.status()["sdn"]["zones"]) == ["olbpz", "olvz1001"]


def test_destroy_exclude_protected_applies_once(three: Rehearsal) -> None:
    before = len(three.applies())
    three.pulumi("destroy", "--yes", "--exclude-protected")
    assert new_applies(three, before) == [("rollout-finalizer", "delete")]


# --- an SSH user other than root ------------------------------------------------------------


def as_orbitlab(config: dict[str, Any]) -> None:
    config["orbitlab:appliances"]["ssh_user"] = "orbitlab"


def test_a_user_other_than_root_provisions_through_sudo(tmp_path: Path) -> None:
    """pct runs only as root: the provisioning of a non-root SSH user goes through
    ``sudo -n``, and the emulated node refuses a plain ``pct`` to it."""
    rehearsal = Rehearsal.create(tmp_path, EXAMPLE_STACK, apply_s=FAST_APPLY_S)
    try:
        rehearsal.add_stack_file("example", EXAMPLE_STACK, as_orbitlab)
        rehearsal.init_stack("example")
        up(rehearsal)
        provisioning = [r for r in rehearsal.status()["runs"] if r["vmid"]]
        assert len(provisioning) == 5
        assert all(r["command"].startswith("sudo -n pct exec") for r in provisioning)
        assert all(r["status"] == 0 for r in provisioning)
    finally:
        rehearsal.stop()


# --- parallelism ---------------------------------------------------------------------------


def ten_sectors(config: dict[str, Any]) -> None:
    config["orbitlab:sectors"] = [
        {
            "name": f"s{index:02d}",
            "subnets": [f"172.16.{index}.0/24"],
            **(
                {
                    "load_balancer": {
                        "listeners": [{"port": 80, "backends": [f"172.16.{index}.20:80"]}]
                    }
                }
                if index % 2 == 0
                else {}
            ),
        }
        for index in range(10)
    ]


def test_ten_sectors_with_the_engines_default_parallelism_meet_no_sdn_lock_error(
    tmp_path: Path,
) -> None:
    rehearsal = Rehearsal.create(tmp_path, EXAMPLE_STACK)  # the default apply time
    try:
        rehearsal.add_stack_file("ten", EXAMPLE_STACK, ten_sectors)
        rehearsal.init_stack("ten")
        assert up(rehearsal) == [("rollout-apply", "create")]
        assert len(rehearsal.status()["containers"]) == 25
    finally:
        rehearsal.stop()


TWO_ROLLOUTS = textwrap.dedent(
    """
    from orbitlab.components import (
        ApplianceTemplates, ApplianceTemplatesArgs, Backplane, BackplaneArgs, Rollout, Sector,
        SectorArgs, backplane_facts,
    )
    from orbitlab.program import stack_config
    from orbitlab.plan import plan_stack
    from orbitlab.stack import settings_from_config

    plan = plan_stack("example", settings_from_config(stack_config()))
    templates = ApplianceTemplates("templates", ApplianceTemplatesArgs(
        appliances=plan.appliances, nodes=("pve2",)))
    with Rollout("backplane-rollout") as rollout:
        Backplane("backplane", BackplaneArgs(plan=plan.backplane, rollout=rollout))
    # Wrong on purpose: each Sector in a rollout of its own, so their appliers are unordered.
    for sector in plan.sectors:
        with Rollout(f"rollout-{sector.name}") as rollout:
            Sector(sector.name, SectorArgs(
                sector=sector, stack=plan, backplane=backplane_facts(plan.backplane),
                template_file_id=templates.file_id("pve2"), rollout=rollout))
    """
)


def test_a_program_whose_appliers_are_unordered_has_its_reloads_meet(tmp_path: Path) -> None:
    """The negative control of the test above: applies at once do meet in the emulator. As
    on Proxmox VE 9 each one commits under the lock and succeeds; their node reloads meet
    (ifupdown2 runs once per node), which the reload tasks only warn about."""
    program = tmp_path / "program"
    program.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", program / "Pulumi.yaml")
    (program / "__main__.py").write_text(TWO_ROLLOUTS)
    rehearsal = Rehearsal.create(tmp_path / "run", EXAMPLE_STACK, program=program)
    try:
        rehearsal.add_stack_file("example", EXAMPLE_STACK)
        rehearsal.init_stack("example")
        rehearsal.pulumi("up", "--yes", "--skip-preview", check=False)
        applies = rehearsal.applies()
        assert len(applies) == 3 and all(a["ok"] for a in applies)
        busy = [t for t in rehearsal.status()["failed_tasks"] if "Another instance" in t["error"]]
        assert busy and sum(len(a["warnings"]) for a in applies) == len(busy)
    finally:
        rehearsal.stop()


def test_the_stack_files_in_the_repository_are_left_alone(example: Rehearsal) -> None:
    assert "encryptionsalt" not in EXAMPLE_STACK.read_text()
    assert "encryptionsalt" not in THREE_STACK.read_text()
    assert not (ROOT / "Pulumi.example.yaml").exists()
