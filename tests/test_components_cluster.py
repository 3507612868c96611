"""What the program reads from the cluster: tags in use, existing Sectors, the Backplane.

Invokes (``sdn.get_vnets()``, ``sdn.get_zones()``) are answered by a fake cluster.
"""

from __future__ import annotations

import pulumi
import pytest

from orbitlab.cluster import ClusterFacts, VnetFact, ZoneFact, check_backplane
from orbitlab.components import Backplane, BackplaneArgs, Rollout
from orbitlab.errors import BackplaneImmutableError, SettingsError
from orbitlab.plan import plan_stack
from orbitlab.program import main
from orbitlab.stack import settings_from_config
from tests.pulumi_mocks import (
    ClusterMocks,
    FakeCluster,
    RecordingMonitor,
    Run,
    run_program,
    stack_file_config,
)

VNET = "proxmoxve:sdn/vnet:Vnet"
CONTAINER = "proxmoxve:index/containerLegacy:ContainerLegacy"


def sector_tags(run: Run) -> dict[str, int]:
    return {
        r.name.removesuffix("-vnet"): int(r.inputs["tag"])
        for r in run.of_type(VNET)
        if r.name != "backplane-vnet"
    }


def existing_backplane(cidr: str = "10.200.0.0/16", old_alias: bool = False) -> FakeCluster:
    """A cluster holding a Backplane, its alias in today's form or in the form before 0.2
    (with the CIDR's ``/``, which bpg's provider refuses at plan time)."""
    recorded = cidr if old_alias else cidr.replace("/", "-")
    return FakeCluster().add_vnet(
        "olbpvn", "olbpz", 100, f"orbitlab backplane {recorded}", zone_type="evpn", vrf=10
    )


def test_new_sectors_get_the_lowest_free_tags_on_the_cluster() -> None:
    cluster = FakeCluster().add_vnet("other1", "otherz", 1001).add_vnet("other3", "otherz", 1003)
    run = run_program(main, config=stack_file_config(), cluster=cluster)
    assert sector_tags(run) == {"web": 1002, "lab": 1004}
    assert run.named("web-zone").inputs["resourceId"] == "olvz1002"
    gateway = run.named("lab-gateway-ct").inputs
    assert gateway["vmId"] == 10041 and gateway["initialization"]["hostname"] == "olvn1004-router"


def test_evpn_vrf_tags_count_as_taken_and_vlan_tags_do_not() -> None:
    cluster = FakeCluster().add_vnet("vlan1001", "vlanz", 1001, zone_type="vlan")
    cluster.zones.append({**cluster.zones[0], "id": "evz", "type": "evpn", "vrfVxlan": 1002.0})
    run = run_program(main, config=stack_file_config(), cluster=cluster)
    assert sector_tags(run) == {"web": 1001, "lab": 1003}


def test_an_existing_sector_keeps_its_tag_found_by_its_stack_scoped_alias() -> None:
    cluster = existing_backplane().add_vnet("olvn1007", "olvz1007", 1007, "ol example lab")
    # Another stack's Sector of the same name is not adopted.
    cluster.add_vnet("olvn1001", "olvz1001", 1001, "ol other web")
    run = run_program(main, config=stack_file_config(), cluster=cluster)
    assert sector_tags(run) == {"web": 1002, "lab": 1007}
    assert run.named("lab-vnet").inputs["alias"] == "ol example lab"


def test_a_sector_keeps_its_tag_when_sectors_are_added_before_it() -> None:
    first = run_program(main, config=stack_file_config(), cluster=FakeCluster())
    cluster = existing_backplane()
    for name, tag in sector_tags(first).items():
        cluster.add_vnet(f"olvn{tag}", f"olvz{tag}", tag, f"ol example {name}")
    config = stack_file_config()
    config["orbitlab:sectors"].insert(0, {"name": "new", "subnets": ["172.30.0.0/24"]})
    second = run_program(main, config=config, cluster=cluster)
    assert sector_tags(second) == {**sector_tags(first), "new": 1003}


def test_a_backplane_cidr_change_is_refused_before_anything_is_declared() -> None:
    cluster = existing_backplane("10.99.0.0/16")
    with pytest.raises(pulumi.RunError) as caught:
        run_program(main, config=stack_file_config(), cluster=cluster)
    message = str(caught.value)
    assert "10.99.0.0/16" in message and "10.200.0.0/16" in message
    assert "wipe and re-initialize" in message and "orbitlab:backplane.cidr" in message


def test_refusal_declares_nothing() -> None:
    monitor = RecordingMonitor(ClusterMocks(existing_backplane("10.99.0.0/16")))
    with pytest.raises(pulumi.RunError):
        run_program(main, config=stack_file_config(), monitor=monitor)
    assert monitor.registrations == {}


@pytest.mark.parametrize("old_alias", [False, True], ids=["alias", "alias before 0.2"])
def test_the_same_backplane_is_accepted_although_its_tags_are_in_use(old_alias: bool) -> None:
    cluster = existing_backplane(old_alias=old_alias)
    run = run_program(main, config=stack_file_config(), cluster=cluster)
    # An alias of the old form is read back, and the program declares today's form.
    assert run.named("backplane-vnet").inputs["alias"] == "orbitlab backplane 10.200.0.0-16"


def test_a_backplane_with_the_old_alias_keeps_its_cidr_immutable() -> None:
    cluster = existing_backplane("10.99.0.0/16", old_alias=True)
    with pytest.raises(pulumi.RunError, match=r"Backplane is 10\.99\.0\.0/16 and cannot change"):
        run_program(main, config=stack_file_config(), cluster=cluster)


@pytest.mark.parametrize(
    ("cluster", "taken"),
    [
        (FakeCluster().add_vnet("foreign", "fz", 100), "100 is"),
        (FakeCluster().add_vnet("foreign", "fevpn", 4000, zone_type="evpn", vrf=10), "10 is"),
    ],
)
def test_backplane_tags_taken_at_first_creation_are_refused(
    cluster: FakeCluster, taken: str
) -> None:
    with pytest.raises(pulumi.RunError) as caught:
        run_program(main, config=stack_file_config(), cluster=cluster)
    message = str(caught.value)
    assert f"{taken} already in use" in message and "VRF-VXLAN tag 10 and VNet tag 100" in message


def test_a_foreign_vnet_holding_the_backplane_id_is_refused() -> None:
    cluster = FakeCluster().add_vnet("olbpvn", "somez", 100, "my own network")
    with pytest.raises(
        pulumi.RunError, match="'my own network' does not record an OrbitLab Backplane"
    ):
        run_program(main, config=stack_file_config(), cluster=cluster)


def test_the_backplane_component_enforces_immutability_itself() -> None:
    settings = settings_from_config(stack_file_config())
    plan = plan_stack("example", settings)
    facts = ClusterFacts(
        vnets=(VnetFact("olbpvn", "olbpz", 100, "orbitlab backplane 172.31.0.0/16"),),
        zones=(ZoneFact("olbpz", "evpn", 10),),
    )

    def program() -> None:
        with Rollout("rollout") as rollout:
            Backplane(
                "backplane", BackplaneArgs(plan=plan.backplane, rollout=rollout, cluster=facts)
            )

    monitor = RecordingMonitor(ClusterMocks(FakeCluster()))
    with pytest.raises(BackplaneImmutableError, match=r"172\.31\.0\.0/16 .* 10\.200\.0\.0/16"):
        run_program(program, config={}, monitor=monitor)
    assert not any(r.custom for r in monitor.registrations.values())
    with pytest.raises(SettingsError):
        check_backplane(plan.backplane, ClusterFacts(zones=(ZoneFact("z", "evpn", 10),)))


def test_cluster_facts_from_invoke_shapes() -> None:
    facts = ClusterFacts(
        vnets=(
            VnetFact("a", "vx", 1001, "ol home web"),
            VnetFact("b", "vl", 1002),
            VnetFact("c", "gone", 1003),  # zone unknown: counted, to be safe
        ),
        zones=(ZoneFact("vx", "vxlan"), ZoneFact("vl", "vlan"), ZoneFact("ev", "evpn", 20)),
    )
    assert facts.in_use_tags == {1001, 1003, 20}
    assert facts.sector_tags("home") == {"web": 1001}
    assert facts.sector_tags("hom") == {}
    assert facts.backplane_cidr is None


def attaching_config(owner: str = "me/orbitlab/home") -> dict:
    config = stack_file_config()
    config["orbitlab:backplane"]["stack"] = owner
    return config


def test_a_stack_attaches_its_sectors_to_another_stacks_backplane() -> None:
    from orbitlab.components.backplane import backplane_facts
    from orbitlab.plan import plan_backplane

    settings = settings_from_config(attaching_config())
    facts = backplane_facts(plan_backplane(settings))
    run = run_program(
        main,
        config=attaching_config(),
        cluster=existing_backplane(),
        stack_outputs={"backplane": facts},
    )
    types = {r.type for r in run.registrations.values()}
    assert "orbitlab:index:Backplane" not in types
    assert not run.of_type("proxmoxve:sdn/controller/evpn:Evpn")
    assert run.named("web-zone").inputs["peers"] == ["192.0.2.11", "192.0.2.12"]
    assert run.named("web-gateway-ct").inputs["networkInterfaces"][1]["bridge"] == "olbpvn"


def test_attaching_before_the_owner_stack_created_the_backplane_is_refused() -> None:
    monitor = RecordingMonitor(ClusterMocks(FakeCluster()))
    with pytest.raises(
        Exception,
        match=r"orbitlab:backplane\.stack: .*'me/orbitlab/home'.*"
        r"the cluster has no Backplane yet; `pulumi up` that stack first",
    ):
        run_program(main, config=attaching_config(), monitor=monitor)
    assert not [r for r in monitor.registrations.values() if r.custom]


def test_an_invalid_owner_stack_name_is_refused() -> None:
    with pytest.raises(
        SettingsError,
        match=r"orbitlab:backplane\.stack: 'me/orbitlab home' is "
        r"not a stack name; expected org/project/stack",
    ):
        settings_from_config(attaching_config("me/orbitlab home"))


def test_the_ssh_key_config_is_program_config_not_a_typo() -> None:
    config = {**stack_file_config(), "orbitlab:sshPrivateKey": {"secure": "v1:abc"}}
    assert settings_from_config(config).backplane.stack is None
