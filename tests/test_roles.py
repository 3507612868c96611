"""The role registry: said once, agreeing with allocation, read wherever roles are listed."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest
from netaddr import IPAddress, IPNetwork

from orbitlab import allocation, rendering, roles
from orbitlab.facts import ClusterFacts, GuestFact
from orbitlab.model import reserved_addresses
from orbitlab.plan import StackPlan
from orbitlab.rendering import ALPINE, Bundle, protected_names, sector_bundles
from orbitlab.roles import (
    BACKPLANE_ROLES,
    DNS,
    GATEWAY,
    LOAD_BALANCER,
    ROLE_NAMES,
    ROLES,
    Role,
    role,
    roles_of,
)
from orbitlab.settings import RESERVED_HOST_NAMES, SectorSettings
from orbitlab.stack import load_plan, load_stack_file

PACKAGE = Path(roles.__file__).resolve().parent
EXAMPLE = "stacks/Pulumi.example.yaml"
#: Templates that belong to no appliance role: the script around every bundle, the node guard.
NODE_TEMPLATES = {
    "provision.sh.j2",
    "sector-guard.nft.j2",
    "guard-install.sh.j2",
    "guard-remove.sh.j2",
    "node-check.sh.j2",
}


@pytest.fixture(scope="module")
def plan() -> StackPlan:
    return load_plan(EXAMPLE)


def test_the_registry_is_ordered_and_looked_up_by_name():
    assert ROLE_NAMES == ("gateway", "dns", "lb")
    assert [role(name) for name in ROLE_NAMES] == list(ROLES)
    with pytest.raises(KeyError, match="roles: gateway, dns, lb"):
        role("proxy")


def test_a_role_registered_twice_is_refused():
    twin = Role(**{**vars(DNS), "name": "dns2", "short": "d2", "hostname_suffix": "dns2"})
    with pytest.raises(ValueError, match="vmid_suffix"):
        roles._registry(GATEWAY, DNS, twin)


@pytest.mark.parametrize("tag", [1001, 1002, 4242, 9999])
@pytest.mark.parametrize("each", ROLES, ids=ROLE_NAMES)
def test_the_registry_agrees_with_allocation(each: Role, tag: int):
    subnet = IPNetwork("172.16.0.0/24")
    assert allocation.vmid(tag, each.name) == each.vmid(tag) == tag * 10 + each.vmid_suffix
    assert allocation.sector_infra_address(subnet, each.name) == subnet[each.sector_offset]
    mac = allocation.appliance_mac(tag, each.name, 1)
    assert int(mac.split(":")[3], 16) == each.vmid_suffix * 16 + 1


@pytest.mark.parametrize("tag", [1001, 1002, 4242])
def test_the_backplane_addresses_follow_the_roles_offsets(tag: int):
    cidr = IPNetwork("10.200.0.0/16")
    gateway, lb = allocation.appliance_backplane_addresses(cidr, tag)
    pair = cidr.first + allocation.APPLIANCE_OFFSET + len(BACKPLANE_ROLES) * (tag - 1001)
    assert int(gateway) == pair + GATEWAY.backplane_offset
    assert int(lb) == pair + LOAD_BALANCER.backplane_offset
    assert DNS.backplane_offset is None and BACKPLANE_ROLES == (GATEWAY, LOAD_BALANCER)


def test_the_plan_reads_hostnames_vmids_and_addresses_from_the_registry(plan: StackPlan):
    for sector in plan.sectors:
        for each in roles_of(sector):
            appliance = sector.appliance(each.name)
            assert appliance.hostname == each.hostname(sector.tag)
            assert appliance.vmid == each.vmid(sector.tag) == sector.vmid(each.name)
            assert appliance.sector_address == sector.first_subnet.cidr[each.sector_offset]


def test_which_sectors_have_which_roles(plan: StackPlan):
    web, lab = plan.sector("web"), plan.sector("lab")
    assert web.load_balancer is not None and lab.load_balancer is None
    assert web.roles == ROLE_NAMES
    assert lab.roles == ("gateway", "dns")
    assert [each.name for each in roles_of(lab)] == list(lab.roles)


def test_every_module_that_lists_roles_lists_the_registrys(plan: StackPlan):
    """Each place that names the roles names exactly the registry's, in its order."""
    from orbitlab.components.sector import appliance_resolvers
    from orbitlab.views.dot import COLOURS, LEG_KINDS
    from orbitlab_lab.twin.appliances import APPLIANCE_DAEMONS
    from orbitlab_lab.twin.topology import ROLES as TWIN_ROLES
    from orbitlab_lab.twin.topology import build_topology

    web = plan.sector("web")
    assert set(ROLE_NAMES) == RESERVED_HOST_NAMES
    assert tuple(sector_bundles(plan, web)) == web.roles == ROLE_NAMES
    assert tuple(appliance_resolvers(web, plan)) == ROLE_NAMES
    assert protected_names(web)[: len(ROLES)] == list(ROLE_NAMES)
    assert {name: ALPINE.packages[name] for name in ROLE_NAMES} == {
        each.name: each.packages for each in ROLES
    }
    assert {each.name: each.daemons for each in ROLES} == APPLIANCE_DAEMONS
    assert TWIN_ROLES == ROLE_NAMES
    twin = next(s for s in build_topology(plan).sectors if s.plan.name == "web")
    assert tuple(twin.appliances()) == ROLE_NAMES
    assert tuple(each.name for each in BACKPLANE_ROLES) == LEG_KINDS
    assert set(ROLE_NAMES) <= set(COLOURS)
    owners = set(reserved_addresses(_settings_of("web")).values())
    assert owners == {"the gateway", "the Sector DNS", "the Sector LB"}


def _settings_of(name: str) -> SectorSettings:
    _, settings = load_stack_file(EXAMPLE)
    return next(sector for sector in settings.sectors if sector.name == name)


def test_the_guest_that_holds_a_vmid_is_named_by_its_role():
    guests = tuple(GuestFact(each.vmid(1001 + i), "pve1", "x") for i, each in enumerate(ROLES))
    blocked = ClusterFacts(guests=guests).blocked_tags
    for i, each in enumerate(ROLES):
        assert f"(its {each.name}'s)" in blocked[1001 + i]


def _templates_rendered(work: Callable[[], Bundle], monkeypatch: pytest.MonkeyPatch) -> set[str]:
    seen: set[str] = set()
    real = rendering.render_template

    def spy(name: str, **context: object) -> str:
        seen.add(name)
        return real(name, **context)

    with monkeypatch.context() as patch:
        patch.setattr(rendering, "render_template", spy)
        work()
    return seen


def test_each_role_renders_exactly_its_registered_templates(
    plan: StackPlan, monkeypatch: pytest.MonkeyPatch
):
    web = plan.sector("web")
    assert web.dns.dhcp is not None, "the example's web Sector serves DHCP (every DNS template)"
    builders: dict[Role, Callable[[], Bundle]] = {
        GATEWAY: lambda: rendering.gateway_bundle(plan.backplane, web, ALPINE),
        DNS: lambda: rendering.dns_bundle(web, ALPINE),
        LOAD_BALANCER: lambda: rendering.lb_bundle(web, ALPINE),
    }
    assert set(builders) == set(ROLES)
    for each, build in builders.items():
        assert _templates_rendered(build, monkeypatch) == set(each.templates), each.name
    on_disk = {path.name for path in (PACKAGE / "templates").glob("*.j2")}
    registered = {name for each in ROLES for name in each.templates}
    assert on_disk == registered | NODE_TEMPLATES


def _role_lists(tree: ast.AST) -> list[int]:
    """Lines of literals (tuple, list, set, dict keys) that hold the role names and nothing
    else: a list of the roles (a palette keyed by roles and other kinds is not one)."""
    names = set(ROLE_NAMES)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [key for key in node.keys if key is not None]
        else:
            continue
        values = {item.value for item in items if isinstance(item, ast.Constant)}
        if values == names:
            found.append(node.lineno)
    return found


def test_no_module_but_the_registry_spells_out_the_roles():
    """A new role is registered in one place: no other module lists the roles itself."""
    spelled = {
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "roles.py"
        for line in _role_lists(ast.parse(path.read_text()))
    }
    assert spelled == set()


def test_the_source_scan_sees_a_role_list():
    assert _role_lists(ast.parse('ROLES = ("lb", "dns", "gateway")')) == [1]
    assert _role_lists(ast.parse('x = {"gateway": 1, "dns": 2, "lb": 3}')) == [1]
    assert _role_lists(ast.parse('x = ("gateway", "dns")')) == []
    assert _role_lists(ast.parse('x = {"gateway": 1, "dns": 2, "lb": 3, "node": 4}')) == []


def test_an_address_is_an_ip_of_the_first_subnet(plan: StackPlan):
    web = plan.sector("web")
    assert web.appliance("dns").sector_address == IPAddress("172.16.0.2")
