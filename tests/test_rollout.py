"""Safe on a real cluster: SDN applies never overlap and happen as rarely as the design allows;
container work on a node is bounded (SPEC §12).

Proxmox holds a cluster-wide SDN lock while it applies, and every apply reloads every node's
network. These tests read the resource graph a program registers (under mocks) and check:

- every pair of SDN appliers (the applier and every finalizer) is ordered by a dependency
  path, for 1, 3 and 30 Sectors, a multi-subnet stack, an attached stack and the homelab
  example — so the engine can never run two at once;
- how many applies an ``up`` performs. For updates this uses a small model of the engine's
  rules (stated in :func:`applies`): creates and replacements run before deletions,
  dependents are deleted before what they depend on, ``deleted_with`` skips a delete.
  The rehearsal with the real engine checks the same counts;
- containers on one node form lanes: at most ``containers_per_node`` without an order.
"""

from __future__ import annotations

import copy
import itertools
import runpy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime import resource_cycle_breaker

from orbitlab.components import (
    ApplianceTemplates,
    ApplianceTemplatesArgs,
    Backplane,
    BackplaneArgs,
    Rollout,
    RolloutArgs,
    RolloutError,
    Sector,
    SectorArgs,
    backplane_facts,
)
from orbitlab.plan import plan_stack
from orbitlab.program import main
from orbitlab.stack import load_plan, settings_from_config
from tests.pulumi_mocks import (
    EXAMPLE_STACK,
    ROOT,
    ClusterMocks,
    FakeCluster,
    RecordingMonitor,
    Run,
    run_program,
    stack_file_config,
)

APPLIER = "proxmoxve:sdn/applier:Applier"
CONTAINER = "proxmoxve:index/containerLegacy:ContainerLegacy"
SDN_OBJECT = ("proxmoxve:sdn/zone/", "proxmoxve:sdn/vnet:", "proxmoxve:sdn/subnet:")


# --- graphs -----------------------------------------------------------------------------


class Graph:
    """The dependency closure of a run, as the engine sees it: depending on a component
    means depending on every resource under it."""

    def __init__(self, run: Run) -> None:
        self.run = run
        children: dict[str, list[str]] = {}
        for registration in run.registrations.values():
            children.setdefault(registration.parent, []).append(registration.urn)
        self._children = children
        self._closure: dict[str, frozenset[str]] = {}

    def _subtree(self, urn: str) -> list[str]:
        found = [urn]
        for child in self._children.get(urn, []):
            found += self._subtree(child)
        return found

    def closure(self, urn: str) -> frozenset[str]:
        """Everything ``urn`` waits for, directly or not."""
        if urn not in self._closure:
            self._closure[urn] = frozenset()  # cut cycles (there must be none)
            found: set[str] = set()
            for dep in self.run.registrations[urn].dependencies:
                for target in self._subtree(dep):
                    found.add(target)
                    if target in self.run.registrations:
                        found |= self.closure(target)
            self._closure[urn] = frozenset(found)
        return self._closure[urn]

    def ordered(self, a: str, b: str) -> bool:
        return b in self.closure(a) or a in self.closure(b)


def unordered_applier_pairs(run: Run) -> list[tuple[str, str]]:
    graph = Graph(run)
    appliers = [r.urn for r in run.of_type(APPLIER)]
    return [
        (a.rsplit("::", 1)[1], b.rsplit("::", 1)[1])
        for a, b in itertools.combinations(appliers, 2)
        if not graph.ordered(a, b)
    ]


def sectors_config(count: int, subnets: int = 1, with_lb: bool = True) -> dict[str, Any]:
    """A stack of ``count`` Sectors on two nodes (overlapping CIDRs, as users may)."""
    config = stack_file_config()
    config["orbitlab:sectors"] = [
        {
            "name": f"s{index:02d}",
            "subnets": [f"172.16.{n}.0/24" for n in range(subnets)],
            "hosts": [{"name": "app", "address": "172.16.0.20"}],
            **(
                {"load_balancer": {"listeners": [{"port": 80, "backends": ["app:8080"]}]}}
                if with_lb and index % 2 == 0
                else {}
            ),
        }
        for index in range(count)
    ]
    return config


def existing_backplane() -> FakeCluster:
    return FakeCluster().add_vnet(
        "olbpvn", "olbpz", 100, "orbitlab backplane 10.200.0.0/16", "evpn", vrf=10
    )


def attached_run() -> Run:
    config = copy.deepcopy(stack_file_config())
    config["orbitlab:backplane"]["stack"] = "me/orbitlab/home"
    plan = load_plan(str(EXAMPLE_STACK))
    return run_program(
        main,
        config=config,
        cluster=existing_backplane(),
        stack_outputs={"backplane": backplane_facts(plan.backplane)},
    )


def homelab_run(monkeypatch: pytest.MonkeyPatch) -> Run:
    example = ROOT / "examples" / "homelab"
    config = yaml.safe_load((example / "Pulumi.homelab.yaml").read_text())["config"]
    config["orbitlab:sectors"].append(
        {"name": "lab", "subnets": ["172.21.0.0/24", "172.21.1.0/24"]}
    )
    monkeypatch.chdir(example)
    return run_program(lambda: runpy.run_path("__main__.py"), config=config, stack="homelab")


PROGRAMS: dict[str, Callable[[], Run]] = {
    "1 Sector": lambda: run_program(main, config=sectors_config(1)),
    "3 Sectors": lambda: run_program(main, config=sectors_config(3)),
    "30 Sectors": lambda: run_program(main, config=sectors_config(30)),
    "multi-subnet": lambda: run_program(main, config=sectors_config(3, subnets=3)),
    "example stack": lambda: run_program(main, config=stack_file_config()),
    "attached stack": attached_run,
}


@pytest.fixture(scope="module")
def thirty() -> Run:
    return PROGRAMS["30 Sectors"]()


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_every_pair_of_sdn_appliers_is_ordered(program: str) -> None:
    run = PROGRAMS[program]()
    assert len(run.of_type(APPLIER)) >= 3
    assert unordered_applier_pairs(run) == []


def test_every_pair_of_sdn_appliers_is_ordered_in_the_homelab_example(monkeypatch) -> None:
    run = homelab_run(monkeypatch)
    assert {r.name for r in run.of_type(APPLIER) if r.inputs["onCreate"]} == {"rollout-apply"}
    assert unordered_applier_pairs(run) == []


def test_the_check_sees_appliers_that_could_run_at_once() -> None:
    """The ordering check is not vacuous: two Sectors in two rollouts are not ordered."""
    plan = load_plan(str(EXAMPLE_STACK))

    def program() -> None:
        templates = ApplianceTemplates(
            "templates", ApplianceTemplatesArgs(appliances=plan.appliances, nodes=("pve2",))
        )
        facts = backplane_facts(plan.backplane)
        for sector in plan.sectors:
            with Rollout(f"rollout-{sector.name}") as rollout:
                Sector(
                    sector.name,
                    SectorArgs(
                        sector=sector,
                        stack=plan,
                        backplane=facts,
                        template_file_id=templates.file_id("pve2"),
                        rollout=rollout,
                    ),
                )

    run = run_program(program, config={})
    pairs = {frozenset(pair) for pair in unordered_applier_pairs(run)}
    assert frozenset({"rollout-web-apply", "rollout-lab-apply"}) in pairs


# --- how many applies -------------------------------------------------------------------


@dataclass(frozen=True)
class Apply:
    """One ``PUT /cluster/sdn``: by which applier, and why."""

    applier: str
    why: str  # "create", "replace" or "delete"


def applies(before: Run | None, after: Run) -> list[Apply]:
    """The SDN applies a ``pulumi up`` from ``before``'s state to ``after``'s program performs,
    in the engine's order (creates and replacements, then deletions).

    An applier applies when it is created or replaced (``onCreate``; replaced when its
    ``replacement_trigger`` changes) and a finalizer when it is deleted (``onDestroy``),
    unless the resource it is ``deleted_with`` is deleted in the same ``up``.
    """
    old = {r.urn: r for r in before.of_type(APPLIER)} if before else {}
    new = {r.urn: r for r in after.of_type(APPLIER)}
    found = []
    for urn, applier in new.items():
        previous = old.get(urn)
        if applier.inputs["onCreate"] and previous is None:
            found.append(Apply(applier.name, "create"))
        elif applier.inputs["onCreate"] and (
            previous.replacement_trigger != applier.replacement_trigger
        ):
            found.append(Apply(applier.name, "replace"))
    deleted = set(before.registrations) - set(after.registrations) if before else set()
    for urn in deleted & set(old):
        applier = old[urn]
        if applier.inputs["onDestroy"] and applier.deleted_with not in deleted:
            found.append(Apply(applier.name, "delete"))
    return found


def edited(edit: Callable[[dict[str, Any]], None], base: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(base)
    edit(config)
    return config


@pytest.mark.parametrize("count", [1, 3, 30])
def test_a_first_up_applies_sdn_once(count: int, thirty: Run) -> None:
    run = thirty if count == 30 else run_program(main, config=sectors_config(count))
    assert applies(None, run) == [Apply("rollout-apply", "create")]
    # ... after every SDN object of the Backplane and of every Sector
    graph = Graph(run)
    apply = run.named("rollout-apply").urn
    objects = [r.urn for r in run.registrations.values() if r.type.startswith(SDN_OBJECT)]
    assert len(objects) == 3 + 3 * count  # the Backplane's zone, VNet, subnet; per Sector
    assert all(urn in graph.closure(apply) for urn in objects)
    # ... and before any container
    for container in run.of_type(CONTAINER):
        assert apply in graph.closure(container.urn), container.name


def test_an_up_that_changes_every_sector_applies_once() -> None:
    base = sectors_config(3)

    def add_subnets(config: dict[str, Any]) -> None:
        for sector in config["orbitlab:sectors"]:
            sector["subnets"].append("172.16.99.0/24")

    before = run_program(main, config=base)
    after = run_program(main, config=edited(add_subnets, base))
    assert applies(before, after) == [Apply("rollout-apply", "replace")]


def test_a_second_up_with_no_change_applies_nothing() -> None:
    before = run_program(main, config=sectors_config(3))
    assert applies(before, run_program(main, config=sectors_config(3))) == []


def test_changing_one_sectors_subnet_still_applies() -> None:
    base = sectors_config(3, subnets=2)

    def move_subnet(config: dict[str, Any]) -> None:
        config["orbitlab:sectors"][1]["subnets"][1] = "172.16.7.0/24"

    before = run_program(main, config=base)
    after = run_program(main, config=edited(move_subnet, base))
    # the new subnet by the applier, the old one's deletion by its own finalizer
    assert applies(before, after) == [
        Apply("rollout-apply", "replace"),
        Apply("s01-subnet-172-16-1-0-24-finalizer", "delete"),
    ]
    old_subnet = before.named("s01-subnet-172-16-1-0-24")
    assert before.named("s01-subnet-172-16-1-0-24-finalizer").urn in old_subnet.dependencies
    # the other Sectors' bridge waits do not run again
    assert after.named("s00-bridges").inputs == before.named("s00-bridges").inputs


def test_removing_a_sector_applies_its_deletion_once() -> None:
    base = sectors_config(3, subnets=2)

    def remove(config: dict[str, Any]) -> None:
        del config["orbitlab:sectors"][1]

    before = run_program(main, config=base)
    after = run_program(main, config=edited(remove, base))
    # The applier's trigger covers the set of components, so it applies once more (before
    # the deletions, with nothing new pending); the Sector's finalizer applies its deletion.
    assert applies(before, after) == [
        Apply("rollout-apply", "replace"),
        Apply("s01-finalizer", "delete"),
    ]
    # its SDN objects are deleted before the finalizer applies (they depend on it) ...
    graph = Graph(before)
    final = before.named("s01-finalizer").urn
    for name in ("s01-zone", "s01-vnet", "s01-subnet-172-16-0-0-24", "s01-subnet-172-16-1-0-24"):
        assert final in graph.closure(before.named(name).urn), name
    # ... and its containers before its VNet
    vnet = before.named("s01-vnet").urn
    for role in ("gateway", "dns"):
        assert vnet in graph.closure(before.named(f"s01-{role}-ct").urn)


def test_removing_two_sectors_applies_twice_one_after_the_other() -> None:
    base = sectors_config(4)

    def remove(config: dict[str, Any]) -> None:
        del config["orbitlab:sectors"][1:3]

    before = run_program(main, config=base)
    after = run_program(main, config=edited(remove, base))
    assert sorted(a.applier for a in applies(before, after)) == [
        "rollout-apply",
        "s01-finalizer",
        "s02-finalizer",
    ]
    graph = Graph(before)
    assert graph.ordered(before.named("s01-finalizer").urn, before.named("s02-finalizer").urn)


def test_destroying_every_sector_applies_once() -> None:
    """``pulumi destroy --exclude-protected``: everything but the Backplane goes."""
    before = run_program(main, config=sectors_config(3, subnets=2))
    empty = copy.deepcopy(sectors_config(0))
    after = run_program(main, config=empty)
    # the rollout's finalizer is deleted too when nothing but the Backplane is left
    kept = {urn for urn, r in before.registrations.items() if r.protect}
    destroyed = Run({urn: before.registrations[urn] for urn in kept}, None, after.mocks)
    assert applies(before, destroyed) == [Apply("rollout-finalizer", "delete")]
    # with no Sector left in the config, the rollout's finalizer goes as well: once more
    assert applies(before, after) == [
        Apply("rollout-apply", "replace"),
        Apply("rollout-finalizer", "delete"),
    ]


# --- containers -------------------------------------------------------------------------


@pytest.mark.parametrize("per_node", [1, 2, 3])
def test_containers_on_a_node_form_lanes(per_node: int) -> None:
    plan = plan_stack("lanes", settings_from_config(sectors_config(5)))

    def program() -> None:
        templates = ApplianceTemplates(
            "templates",
            ApplianceTemplatesArgs(
                appliances=plan.appliances, nodes=tuple(sorted({s.node for s in plan.sectors}))
            ),
        )
        with Rollout("rollout", RolloutArgs(containers_per_node=per_node)) as rollout:
            backplane = Backplane("bp", BackplaneArgs(plan=plan.backplane, rollout=rollout))
            for sector in plan.sectors:
                Sector(
                    sector.name,
                    SectorArgs(
                        sector=sector,
                        stack=plan,
                        backplane=backplane,
                        template_file_id=templates.file_id(sector.node),
                        rollout=rollout,
                    ),
                )

    run = run_program(program, config={})
    graph = Graph(run)
    by_node: dict[str, list[str]] = {}
    for container in run.of_type(CONTAINER):  # registration order
        by_node.setdefault(container.inputs["nodeName"], []).append(container.urn)
    assert sum(len(c) for c in by_node.values()) == 5 * 2 + 3  # gateway + DNS, 3 LBs
    for containers in by_node.values():
        # any per_node + 1 containers of one node include two that are ordered ...
        for group in itertools.combinations(containers, per_node + 1):
            assert any(graph.ordered(a, b) for a, b in itertools.combinations(group, 2))
        # ... while the first per_node ones may start at once
        first = containers[:per_node]
        assert not any(graph.ordered(a, b) for a, b in itertools.combinations(first, 2))


def test_the_homelab_apps_take_their_places_in_the_lanes(monkeypatch) -> None:
    run = homelab_run(monkeypatch)
    graph = Graph(run)
    app = run.named("media-jellyfin")
    node = app.inputs["nodeName"]
    earlier = [
        c.urn for c in run.of_type(CONTAINER) if c.inputs["nodeName"] == node and c.urn != app.urn
    ]
    assert earlier and any(urn in graph.closure(app.urn) for urn in earlier)


# --- misuse -----------------------------------------------------------------------------


# --- the SDK's cycle check -------------------------------------------------------------


def longest_cycle_check_walk(count: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """The most resources the SDK's cycle check walks for one new dependency in a program
    of ``count`` Sectors (it walks all that the dependency depends on)."""
    walks: list[int] = []
    walk = resource_cycle_breaker._with_transitive_deps

    def counted(from_resource: Any, to_resource: Any) -> bool:
        reached = list(walk(from_resource, set()))
        walks.append(len(reached))
        return any(each is to_resource for each in reached)

    with monkeypatch.context() as patch:
        patch.setattr(resource_cycle_breaker, "_reachable", counted)
        run_program(main, config=sectors_config(count, subnets=2))
    return max(walks)


def test_the_cycle_check_walks_no_further_with_more_sectors(monkeypatch) -> None:
    """The rollout's edges (the finalizer chain, the lanes, "after the apply") reach the SDK
    by URN. Handed over as resources, the chain of ``3n`` finalizers made each new link walk
    all of it: quadratic in Sectors, and a RecursionError past about 1,000 links."""
    # from 3 Sectors on, every lane of the two nodes has a predecessor
    assert longest_cycle_check_walk(3, monkeypatch) == longest_cycle_check_walk(12, monkeypatch)


def _plan_and_templates() -> tuple[Any, Any]:
    plan = load_plan(str(EXAMPLE_STACK))
    templates = ApplianceTemplates(
        "templates", ApplianceTemplatesArgs(appliances=plan.appliances, nodes=("pve1", "pve2"))
    )
    return plan, templates


def _sector_args(plan: Any, templates: Any, backplane: Any, rollout: Rollout) -> SectorArgs:
    sector = plan.sector("lab")
    return SectorArgs(
        sector=sector,
        stack=plan,
        backplane=backplane,
        template_file_id=templates.file_id(sector.node),
        rollout=rollout,
    )


def _refused(program: Callable[[], None], message: str) -> None:
    monitor = RecordingMonitor(ClusterMocks(FakeCluster()))
    with pytest.raises((ValueError, RolloutError), match=message):
        run_program(program, config={}, monitor=monitor)
    # nothing of the refused Sector was declared
    assert not any(r.name.startswith("lab") for r in monitor.registrations.values())


def test_a_sector_outside_the_with_block_is_refused() -> None:
    def program() -> None:
        plan, templates = _plan_and_templates()
        with Rollout("rollout") as rollout:
            backplane = Backplane("bp", BackplaneArgs(plan=plan.backplane, rollout=rollout))
        Sector("lab", _sector_args(plan, templates, backplane, rollout))

    _refused(program, r"rollout: declare the Sector inside `with Rollout\(\.\.\.\) as rollout:`")


def test_a_backplane_from_another_rollout_is_refused() -> None:
    def program() -> None:
        plan, templates = _plan_and_templates()
        with Rollout("one") as one:
            backplane = Backplane("bp", BackplaneArgs(plan=plan.backplane, rollout=one))
        with Rollout("two") as two:
            Sector("lab", _sector_args(plan, templates, backplane, two))

    _refused(program, r"backplane: declared in another Rollout")


def test_the_backplane_comes_before_any_sector() -> None:
    def program() -> None:
        plan, templates = _plan_and_templates()
        facts = backplane_facts(plan.backplane)
        with Rollout("rollout") as rollout:
            Sector("lab", _sector_args(plan, templates, facts, rollout))
            Backplane("bp", BackplaneArgs(plan=plan.backplane, rollout=rollout))

    with pytest.raises(RolloutError, match=r"declare the Backplane before any Sector"):
        run_program(program, config={})


def test_a_rollout_is_used_once_and_bounds_are_checked() -> None:
    def reuse() -> None:
        rollout = Rollout("rollout")
        with rollout:
            pass
        with rollout:
            pass

    with pytest.raises(RolloutError, match=r"Rollout 'rollout' was already used"):
        run_program(reuse, config={})
    with pytest.raises(ValueError, match=r"containers_per_node: 0 is outside 1-64"):
        run_program(lambda: Rollout("r", RolloutArgs(containers_per_node=0)), config={})


def test_an_empty_rollout_declares_no_applier() -> None:
    def program() -> None:
        with Rollout("rollout") as rollout:
            pulumi.export("applied", rollout.applied_id)

    run = run_program(program, config={})
    assert run.of_type(APPLIER) == []
