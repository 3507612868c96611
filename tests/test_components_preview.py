"""The preview story: same config, same inputs; one Sector changed, only its resources change.

Pulumi's preview diffs each resource's inputs against its state, so comparing the inputs
two runs register is what a user would see in ``pulumi preview``.
"""

from __future__ import annotations

import dataclasses
import runpy
from typing import Any

import pulumi
import pytest
import yaml

from orbitlab.components import (
    ApplianceTemplates,
    ApplianceTemplatesArgs,
    Rollout,
    Sector,
    SectorArgs,
    backplane_facts,
    backplane_from_facts,
)
from orbitlab.program import main
from orbitlab.stack import load_plan
from tests.pulumi_mocks import (
    EXAMPLE_STACK,
    ROOT,
    ClusterMocks,
    FakeCluster,
    RecordingMonitor,
    Run,
    run_program,
    stack_file_config,
    unknown_paths,
)

CONTAINER = "proxmoxve:index/containerLegacy:ContainerLegacy"
COMMAND = "command:remote:Command"


def snapshot(run: Run) -> dict[str, Any]:
    return {
        urn: (r.inputs, r.replacement_trigger, r.protect, r.delete_before_replace)
        for urn, r in run.registrations.items()
    }


def changed(before: Run, after: Run) -> set[str]:
    """Names of resources added, removed or with different inputs/options."""
    old, new = snapshot(before), snapshot(after)
    urns = set(old) | set(new)
    return {urn.rsplit("::", 1)[1] for urn in urns if old.get(urn) != new.get(urn)}


def run_with(edit: Any = None) -> Run:
    config = stack_file_config()
    if edit is not None:
        edit(config)
    return run_program(main, config=config, cluster=FakeCluster())


@pytest.fixture(scope="module")
def baseline() -> Run:
    return run_with()


def test_running_twice_registers_identical_resources(baseline: Run) -> None:
    again = run_with()
    assert snapshot(again) == snapshot(baseline)
    assert changed(baseline, again) == set()


def test_a_new_host_changes_only_that_sectors_dns_provisioning(baseline: Run) -> None:
    def add_host(config: dict[str, Any]) -> None:
        config["orbitlab:sectors"][1]["hosts"].append({"name": "box3", "address": "172.16.0.23"})

    # The running DNS is re-provisioned in place: no container, no SDN object changes.
    after = run_with(add_host)
    assert changed(baseline, after) == {"lab-dns-provision"}
    # ... as an update of its stdin: pulumi-command replaces a command whose triggers change
    # (the rehearsal with the real engine showed it), so the script is not among them
    before_dns, after_dns = baseline.named("lab-dns-provision"), after.named("lab-dns-provision")
    assert before_dns.inputs["stdin"] != after_dns.inputs["stdin"]
    assert before_dns.inputs["triggers"] == after_dns.inputs["triggers"]


def test_a_listener_change_reaches_only_the_load_balancer(baseline: Run) -> None:
    def move_listener(config: dict[str, Any]) -> None:
        config["orbitlab:sectors"][0]["load_balancer"]["listeners"][1]["port"] = 5433

    assert changed(baseline, run_with(move_listener)) == {"web-lb-provision"}


def test_a_new_subnet_changes_only_that_sector_and_reapplies_its_sdn(baseline: Run) -> None:
    def add_subnet(config: dict[str, Any]) -> None:
        config["orbitlab:sectors"][1]["subnets"].append("172.16.9.0/24")

    after = run_with(add_subnet)
    diff = changed(baseline, after)
    # the one SDN applier is replaced (so SDN is applied) and every node checks the zones
    # again; nothing else outside the Sector
    applied = {"rollout-apply", "rollout-check-pve1", "rollout-check-pve2"}
    assert all(name.startswith("lab-") for name in diff - applied), diff
    assert {
        "lab-subnet-172-16-9-0-24",
        "lab-subnet-172-16-9-0-24-finalizer",
        "rollout-apply",
        "lab-bridges",
        "lab-gateway-provision",
    } <= diff
    assert "lab-zone" not in diff and "lab-vnet" not in diff and "web-bridges" not in diff
    assert (
        after.named("rollout-apply").replacement_trigger
        != baseline.named("rollout-apply").replacement_trigger
    )


def test_a_node_mtu_change_reapplies_the_backplane_and_every_sector(baseline: Run) -> None:
    def lower_mtu(config: dict[str, Any]) -> None:
        config["orbitlab:backplane"]["nodes"][1]["mtu"] = 1400

    after = run_with(lower_mtu)
    assert (
        after.named("rollout-apply").replacement_trigger
        != baseline.named("rollout-apply").replacement_trigger
    )
    # every Sector's SDN changed with it: each waits for its bridges again
    assert {"backplane-zone", "web-zone", "lab-zone", "web-bridges", "lab-bridges"} <= changed(
        baseline, after
    )
    assert after.named("backplane-zone").inputs["mtu"] == 1350
    assert after.named("web-gateway-ct").inputs["networkInterfaces"][0]["mtu"] == 1350


def test_the_first_preview_shows_every_sdn_and_container_input(baseline: Run) -> None:
    monitor = RecordingMonitor(ClusterMocks(FakeCluster(), first_preview=True))
    preview = run_program(main, config=stack_file_config(), preview=True, monitor=monitor)
    unknown = {
        r.name: paths for r in preview.registrations.values() if (paths := unknown_paths(r.inputs))
    }
    # Only what a new resource's ID feeds is unknown: the template volume and the
    # container a provisioning run is bound to.
    assert unknown == {
        **{f"{c.name}": [".operatingSystem.templateFileId"] for c in baseline.of_type(CONTAINER)},
        **{
            f"{c.name}": [".triggers[0]"]
            for c in baseline.of_type(COMMAND)
            if c.name.endswith("-provision")
        },
    }
    assert preview.named("web-zone").inputs["peers"] == ["192.0.2.11", "192.0.2.12"]


def _sector_program(backplane: Any, name: str = "lab") -> Any:
    plan = load_plan(str(EXAMPLE_STACK))
    sector = plan.sector(name)
    templates = ApplianceTemplates(
        "templates", ApplianceTemplatesArgs(appliances=plan.appliances, nodes=(sector.node,))
    )
    with Rollout("rollout") as rollout:
        return Sector(
            name,
            SectorArgs(
                sector=sector,
                stack=plan,
                backplane=backplane,
                template_file_id=templates.file_id(sector.node),
                rollout=rollout,
            ),
        )


def test_a_sector_attaches_to_a_backplane_from_a_stack_reference() -> None:
    facts = backplane_facts(load_plan(str(EXAMPLE_STACK)).backplane)
    facts["mtu"] = float(facts["mtu"])  # numbers come back as floats

    def program() -> None:
        reference = pulumi.StackReference("me/orbitlab/home")
        _sector_program(reference.require_output("backplane"))

    run = run_program(program, config={}, stack_outputs={"backplane": facts})
    zone = run.named("lab-zone")
    assert zone.inputs["peers"] == ["192.0.2.11", "192.0.2.12"] and zone.inputs["mtu"] == 1450
    assert not any(r.type == "orbitlab:index:Backplane" for r in run.registrations.values())
    gateway = run.named("lab-gateway-ct").inputs
    assert gateway["networkInterfaces"][1]["bridge"] == "olbpvn"


def test_a_sector_refuses_a_referenced_backplane_it_was_not_planned_for() -> None:
    facts = backplane_facts(load_plan(str(EXAMPLE_STACK)).backplane)
    facts["cidr"], facts["gateway"] = "10.99.0.0/16", "10.99.0.1"

    def program() -> None:
        _sector_program(pulumi.StackReference("me/orbitlab/home").require_output("backplane"))

    with pytest.raises(
        Exception, match=r"cidr: planned 10\.200\.0\.0/16, the Backplane has 10\.99\.0\.0/16"
    ):
        run_program(program, config={}, stack_outputs={"backplane": facts})


def test_node_networks_travel_with_the_backplane_facts() -> None:
    planned = load_plan(str(EXAMPLE_STACK)).backplane
    facts = backplane_facts(planned)
    assert [node["networks"] for node in facts["nodes"]] == [["192.0.2.0/24"]] * 2
    assert backplane_from_facts(facts) == planned
    for node in facts["nodes"]:
        del node["networks"]  # the facts of an owner stack from before node networks
    assert backplane_from_facts(facts).node_broadcasts == ()


def test_a_sector_refuses_a_referenced_backplane_with_other_node_networks() -> None:
    facts = backplane_facts(load_plan(str(EXAMPLE_STACK)).backplane)
    facts["nodes"][1]["networks"] = []

    def program() -> None:
        _sector_program(pulumi.StackReference("me/orbitlab/home").require_output("backplane"))

    with pytest.raises(
        Exception,
        match=r"node networks: planned \[\('pve1', \['192\.0\.2\.0/24'\]\), \('pve2', "
        r"\['192\.0\.2\.0/24'\]\)\], the Backplane has \[.*\('pve2', \[\]\)\]",
    ):
        run_program(program, config={}, stack_outputs={"backplane": facts})


def test_invalid_sector_args_fail_before_any_child_is_declared() -> None:
    plan = load_plan(str(EXAMPLE_STACK))
    stray = dataclasses.replace(plan.sector("lab"), node="pve9")

    def program() -> None:
        with Rollout("rollout") as rollout:
            args = SectorArgs(
                sector=stray, stack=plan, backplane={}, template_file_id="x", rollout=rollout
            )
            Sector("lab", args)

    monitor = RecordingMonitor(ClusterMocks(FakeCluster()))
    with pytest.raises(
        ValueError, match=r"sector\.node: 'pve9' is not a Backplane node \(pve1, pve2\)"
    ):
        run_program(program, config={}, monitor=monitor)
    # at most the rollout (a component, nothing on the cluster) was declared
    assert not any(r.custom for r in monitor.registrations.values())


def test_homelab_example_uses_the_components_next_to_its_own_resources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = ROOT / "examples" / "homelab"
    config = yaml.safe_load((example / "Pulumi.homelab.yaml").read_text())["config"]
    monkeypatch.chdir(example)
    run = run_program(lambda: runpy.run_path("__main__.py"), config=config, stack="homelab")
    app = run.named("media-jellyfin")
    assert "::pulumi:pulumi:Stack::" in app.parent  # the program's own, not a component's
    assert app.inputs["networkInterfaces"][0] == {"name": "eth0", "bridge": "olvn1001", "mtu": 1450}
    assert app.inputs["initialization"]["ipConfigs"][0]["ipv4"] == {
        "address": "172.20.0.20/24",
        "gateway": "172.20.0.1",
    }
    assert app.inputs["initialization"]["dns"]["servers"] == ["172.20.0.2"]
    tools = run.named("media-tools")  # declared without an address: ip=dhcp
    assert tools.inputs["initialization"]["ipConfigs"][0]["ipv4"] == {"address": "dhcp"}
    # The app waits for its Sector (bridge present, gateway provisioned).
    assert run.depends_on(app.urn, run.named("media-bridges").urn)
    assert run.depends_on(app.urn, run.named("media-gateway-provision").urn)


# --- reboots the provider does: named in the preview ------------------------------------


def _warnings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    warned: list[tuple[str, str]] = []

    def warn(message: str, resource: Any = None, **_: Any) -> None:
        name = resource._name if resource is not None else ""
        warned.append((name, message))

    monkeypatch.setattr("pulumi.log.warn", warn)
    return warned


def _deployed() -> dict[str, Any]:
    """The ``appliances`` output of the example stack, as a first ``up`` exports it (plain
    values, no Output inside)."""
    return run_with().result.outputs()["appliances"]


@pytest.mark.parametrize(
    ("edit", "rebooted"),
    [
        (
            lambda c: c["orbitlab:appliances"].update(memory_mib=256),
            {"web-gateway", "web-dns", "web-lb", "lab-gateway", "lab-dns"},
        ),
        # (neither Sector names forwarders: their DNS appliances resolve through these too)
        (lambda c: c["orbitlab:appliances"].update(nameservers=["192.0.2.54"]), None),
        (lambda c: c["orbitlab:backplane"].update(mtu=1400), None),
    ],
    ids=["memory", "nameserver", "mtu"],
)
def test_a_change_the_provider_reboots_for_is_named_in_the_preview(
    monkeypatch: pytest.MonkeyPatch, edit: Any, rebooted: set[str] | None
) -> None:
    deployed = _deployed()
    warned = _warnings(monkeypatch)
    config = stack_file_config()
    edit(config)
    run_program(main, config=config, stack_outputs={"appliances": deployed}, preview=True)
    reboots = {
        name.removesuffix("-ct"): text for name, text in warned if "will be rebooted" in text
    }
    if rebooted is None:  # every appliance
        rebooted = set(deployed)
    assert set(reboots) == rebooted
    gateway = reboots["web-gateway"]
    assert gateway.startswith("web-gateway will be rebooted (CT 10011 olvn1001-router on pve2): ")
    expected = {
        "memory": "memory.dedicated 128 -> 256",
        "nameserver": "initialization.dns.servers[0] 192.0.2.53 -> 192.0.2.54",
        "mtu": "networkInterfaces[0].mtu 1450 -> 1400, networkInterfaces[1].mtu 1450 -> 1400",
    }
    assert any(part in gateway for part in expected.values()), gateway


def test_no_reboot_is_named_without_a_change_or_before_the_first_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployed = _deployed()
    warned = _warnings(monkeypatch)
    outputs = {"appliances": deployed}
    run_program(main, config=stack_file_config(), stack_outputs=outputs, preview=True)
    run_program(main, config=stack_file_config(), stack_outputs={}, preview=True)
    config = stack_file_config()
    config["orbitlab:sectors"][0]["hosts"].append({"name": "app4", "address": "172.16.0.24"})
    run_program(main, config=config, stack_outputs=outputs, preview=True)
    assert [text for _, text in warned if "will be rebooted" in text] == []


def test_the_stack_is_read_back_in_a_preview_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """In an update the engine rewrites the stack's checkpoint: no reference to it then."""
    deployed = _deployed()
    warned = _warnings(monkeypatch)
    references: list[str] = []
    real = pulumi.StackReference.__init__

    def reference(self: Any, name: str, *args: Any, **kwargs: Any) -> None:
        references.append(name)
        real(self, name, *args, **kwargs)

    monkeypatch.setattr(pulumi.StackReference, "__init__", reference)
    config = stack_file_config()
    config["orbitlab:appliances"]["memory_mib"] = 256
    outputs = {"appliances": deployed}
    run_program(main, config=config, stack_outputs=outputs, preview=True)
    assert references == ["deployed"] and len(warned) > 5
    run_program(main, config=config, stack_outputs=outputs)
    assert references == ["deployed"]  # none in the update
    assert len([text for _, text in warned if "will be rebooted" in text]) == 5
