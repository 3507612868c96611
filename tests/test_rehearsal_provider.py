"""The real provider's rules at preview, with the real Pulumi CLI against the emulated cluster.

- a program that sends what the real provider refuses fails ``pulumi preview`` with the
  provider's message, one rule family after another (the values each broken on purpose,
  by a program that wraps the stack program);
- a Backplane made with the alias of OrbitLab before 0.2 (``orbitlab backplane
  10.200.0.0/16``, which today's provider refuses) keeps its CIDR: one ``up`` updates the
  alias in place and re-applies SDN, changing nothing else; a second ``up`` is a no-op;
- the stack file as the user has it: an endpoint by host name works for ``up``;
- a change the provider reboots for is named by ``preview`` and reboots the container.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import orbitlab.plan as plan_module
from orbitlab.program import main
from orbitlab_lab.emulate import control
from orbitlab_lab.emulate.rehearsal import Rehearsal
from tests.pulumi_mocks import EXAMPLE_STACK, ROOT, FakeCluster, run_program, stack_file_config

FAST_APPLY_S = 0.3

pytestmark = [
    pytest.mark.rehearsal,
    pytest.mark.skipif(
        not control.pulumi_built(),
        reason=f"the Pulumi CLI is not built in {control.pulumi_bin()} (orbitlab emulate build)",
    ),
]

#: The stack program, with one thing sent broken: ``test:case`` in the stack config says what.
BROKEN = textwrap.dedent(
    '''
    """The stack program sending, for ``test:case``, a value the real provider refuses."""
    import pulumi
    import pulumi_proxmoxve as proxmoxve

    import orbitlab.cluster as cluster_module
    import orbitlab.components.backplane as backplane_module
    import orbitlab.components.sector as sector_module
    import orbitlab.plan as plan_module
    from orbitlab.program import main

    case = pulumi.Config("test").require("case")


    def backplane_inputs(change):
        declared = backplane_module.backplane_sdn_inputs

        def broken(plan):
            inputs = declared(plan)
            change(inputs)
            return inputs

        backplane_module.backplane_sdn_inputs = broken


    def wrap(owner, name, change):
        real = getattr(owner, name)

        def broken(resource_name, *args, **kwargs):
            change(resource_name, kwargs)
            return real(resource_name, *args, **kwargs)

        setattr(owner, name, broken)


    if case == "alias":  # OrbitLab before 0.2
        plan_module.backplane_alias = lambda cidr: f"orbitlab backplane {cidr}"
    elif case == "sdn id":
        declared = sector_module.sector_sdn_inputs

        def long_vnet_id(sector, backplane):
            inputs = declared(sector, backplane)
            inputs["vnet"]["resource_id"] += "0"
            return inputs

        sector_module.sector_sdn_inputs = long_vnet_id
    elif case == "set":
        backplane_inputs(lambda i: i["zone"].update(exit_nodes=["pve1", "pve1"]))
    elif case == "address":
        backplane_inputs(lambda i: i["subnet"].update(gateway="10.200.0.256"))
    elif case == "combination":
        backplane_inputs(lambda i: i["subnet"].update(gateway="10.201.0.1"))
    elif case == "whole resource":
        backplane_inputs(lambda i: i["controller"].pop("peers"))
    elif case == "container":
        def container(name, kwargs):
            if name == "web-gateway-ct":
                kwargs["memory"] = {"dedicated": 8, "swap": 0}
                kwargs["tags"] = ["orbitlab", ""]
                kwargs["operating_system"] = {**kwargs["operating_system"], "type": "windows"}
                kwargs["network_interfaces"][0]["mac_address"] = "02:4f:4c:10:03"
                kwargs["initialization"]["dns"]["servers"] = []
        wrap(proxmoxve, "ContainerLegacy", container)
    elif case == "download":
        def download(name, kwargs):
            kwargs.update(url="ftp://download.proxmox.com/a.tar.xz", content_type="vztpml")
        wrap(proxmoxve.download, "File", download)
    elif case == "invoke":
        get_zones = proxmoxve.sdn.get_zones
        proxmoxve.sdn.get_zones = lambda opts=None: get_zones(type="EVPN", opts=opts)
    main()
    '''
)

HAS_A_PROBLEM = "proxmoxve:{type} resource '{name}' has a problem: "
#: (case, what the real provider answers at preview: each line of the CLI's output)
CASES = [
    ("alias", [
        HAS_A_PROBLEM.format(type="sdn/vnet:Vnet", name="backplane-vnet")
        + "Invalid Attribute Value Match. Attribute alias alias must contain only alphanumeric "
        "characters, spaces, hyphens, underscores, dots, and parentheses, got: orbitlab "
        "backplane 10.200.0.0/16. Examine values at 'backplane-vnet.alias'.",
    ]),
    ("sdn id", [
        HAS_A_PROBLEM.format(type="sdn/vnet:Vnet", name="web-vnet")
        + "Invalid Attribute Value Length. Attribute id string length must be at most 8, got: "
        "9. Examine values at 'web-vnet.resourceId'.",
    ]),
    ("set", [
        HAS_A_PROBLEM.format(type="sdn/zone/evpn:Evpn", name="backplane-zone")
        + 'Duplicate Set Element. This attribute contains duplicate values of: '
        "tftypes.String<\"pve1\">. Examine values at 'backplane-zone.exitNodes'.",
    ]),
    ("address", [
        HAS_A_PROBLEM.format(type="sdn/subnet:Subnet", name="backplane-subnet")
        + "Invalid IP String Value. An unexpected error occurred while converting a string "
        "value that was expected to be IPv4/IPv6.",
        "Given Value: 10.200.0.256. Examine values at 'backplane-subnet.gateway'.",
    ]),
    ("combination", [
        HAS_A_PROBLEM.format(type="sdn/subnet:Subnet", name="backplane-subnet")
        + "Invalid IP for Subnet. 10.201.0.1 must be within the subnet 10.200.0.0/16. Examine "
        "values at 'backplane-subnet.gateway'.",
    ]),
    ("whole resource", [
        "Missing Attribute Configuration: At least one of these attributes must be configured: "
        "[fabric,peers]",
    ]),
    ("container", [
        HAS_A_PROBLEM.format(type="index/containerLegacy:ContainerLegacy", name="web-gateway-ct")
        + message
        for message in (
            "expected dedicated to be in the range (16 - 268435456), got 8. Examine values at "
            "'web-gateway-ct.memory.dedicated'.",
            "expected \"tags.1\" to not be an empty string, got . Examine values at "
            "'web-gateway-ct.tags[1]'.",
            'expected type to be one of ["alpine" "archlinux" "centos" "debian" "devuan" '
            '"fedora" "gentoo" "nixos" "opensuse" "ubuntu" "unmanaged"], got windows. Examine '
            "values at 'web-gateway-ct.operatingSystem.type'.",
            'expected "mac_address" to be a valid MAC address (A0:B1:C2:D3:E4:F5), got '
            "\"02:4f:4c:10:03\". Examine values at 'web-gateway-ct.networkInterfaces[0]"
            ".macAddress'.",
            "Not enough list items. Attribute initialization.0.dns.0.servers requires 1 item "
            "minimum, but config has only 0 declared.. Examine values at "
            "'web-gateway-ct.initialization.dns.servers'.",
        )
    ]),
    ("download", [
        HAS_A_PROBLEM.format(type="download/file:File", name=f"templates-{node}") + message
        for node in ("pve2",)
        for message in (
            "Invalid Attribute Value Match. Attribute url must match HTTP URL regex "
            f"`https?://.*`, got: ftp://download.proxmox.com/a.tar.xz. Examine values at "
            f"'templates-{node}.url'.",
            'Invalid Attribute Value Match. Attribute content_type value must be one of: ["iso" '
            f"\"vztmpl\" \"import\"], got: \"vztpml\". Examine values at "
            f"'templates-{node}.contentType'.",
        )
    ]),
    ("invoke", [
        "invoke of proxmoxve:sdn/getZones:getZones failed: Invalid Attribute Value Match: "
        'Attribute type value must be one of: ["simple" "vlan" "qinq" "vxlan" "evpn"], got: '
        '"EVPN" (type)',
    ]),
]  # fmt: skip


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    program = tmp_path_factory.mktemp("broken-program")
    shutil.copy(ROOT / "Pulumi.yaml", program / "Pulumi.yaml")
    (program / "__main__.py").write_text(BROKEN)
    rehearsal = Rehearsal.create(
        tmp_path_factory.mktemp("broken"), EXAMPLE_STACK, program=program, apply_s=FAST_APPLY_S
    )
    rehearsal.add_stack_file("example", EXAMPLE_STACK)
    rehearsal.init_stack("example")
    yield rehearsal
    rehearsal.stop()


def _lines(text: str) -> str:
    """The CLI's output with its wrapped diagnostic lines as they were (indent stripped)."""
    return "\n".join(line.strip() for line in text.splitlines())


@pytest.mark.parametrize(("case", "expected"), CASES, ids=[case for case, _ in CASES])
def test_preview_fails_where_the_real_provider_would_with_its_message(
    broken: Rehearsal, case: str, expected: list[str]
) -> None:
    broken.pulumi("config", "set", "test:case", case, stack="example")
    done = broken.pulumi("preview", check=False, stack="example")
    output = _lines(done.stdout + done.stderr)
    assert done.returncode != 0
    for line in expected:
        assert line in output, output
    # the preview changed nothing on the cluster
    assert broken.status()["sdn"]["vnets"] == {} and broken.status()["containers"] == {}


def test_the_program_as_it_is_passes_every_rule(broken: Rehearsal) -> None:
    broken.pulumi("config", "set", "test:case", "none", stack="example")
    broken.pulumi("preview", stack="example")


# --- a Backplane made with the alias of OrbitLab before 0.2 ---------------------------------


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    rehearsal = Rehearsal.create(
        tmp_path_factory.mktemp("old-alias"), EXAMPLE_STACK, apply_s=FAST_APPLY_S
    )
    rehearsal.add_stack_file("example", EXAMPLE_STACK)
    # the endpoint as a user's stack file has it: the node's name in the home network's DNS
    rehearsal.init_stack("example", endpoint="https://pve1.home.arpa:8006/")
    yield rehearsal
    rehearsal.stop()


OLD_ALIAS = "orbitlab backplane 10.200.0.0/16"
NEW_ALIAS = "orbitlab backplane 10.200.0.0-16"


def _old_sdn_trigger() -> str:
    """The SDN applier's trigger as OrbitLab before 0.2 declared it (the old alias is in
    its digest), from the program run under mocks."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(
            plan_module, "backplane_alias", lambda cidr: f"orbitlab backplane {cidr}"
        )
        run = run_program(main, config=stack_file_config(), cluster=FakeCluster())
    return str(run.named("rollout-apply").replacement_trigger)


def _with_old_alias(rehearsal: Rehearsal) -> None:
    """As an OrbitLab before 0.2 left it (with a provider that took the alias): the
    Backplane VNet's alias, in the cluster's running and pending config and in the stack's
    state, records the CIDR with its '/'; the SDN applier's trigger is the digest of that."""
    with rehearsal.store.change() as state:
        for config in ("config", "running"):
            state["sdn"][config]["vnets"]["olbpvn"]["alias"] = OLD_ALIAS
    exported = json.loads(rehearsal.pulumi("stack", "export", stack="example").stdout)
    for resource in exported["deployment"]["resources"]:
        if resource["urn"].endswith("::backplane-vnet"):
            for part in ("inputs", "outputs"):
                resource[part]["alias"] = OLD_ALIAS
        if resource["urn"].endswith("::rollout-apply"):
            assert resource["replacementTrigger"] != _old_sdn_trigger()
            resource["replacementTrigger"] = _old_sdn_trigger()
    path = rehearsal.project / "old-alias.json"
    path.write_text(json.dumps(exported))
    rehearsal.pulumi("stack", "import", "--file", str(path), stack="example")


def test_an_endpoint_by_host_name_works_for_up(example: Rehearsal) -> None:
    example.pulumi("up", "--yes", "--skip-preview", stack="example")
    assert sorted(example.status()["containers"]) == ["10011", "10012", "10013", "10021", "10022"]


def test_a_backplane_with_the_old_alias_is_read_back_and_its_alias_updated_in_place(
    example: Rehearsal,
) -> None:
    _with_old_alias(example)
    before = len(example.applies())
    # read back: same CIDR; the program declares today's alias, an update in place
    assert example.changes(stack="example") == {
        "replace": ["rollout-apply"],  # the change is applied (the SDN digest changed)
        "update": ["backplane-vnet"],
    }
    done = example.pulumi("preview", "--diff", stack="example")
    assert f'~ alias: "{OLD_ALIAS}" => "{NEW_ALIAS}"' in _lines(done.stdout), done.stdout
    example.pulumi("up", "--yes", "--skip-preview", stack="example")
    assert [a["by"] for a in example.applies()[before:]] == ["rollout-apply"]
    sdn = example.store.read()["sdn"]
    assert sdn["config"]["vnets"]["olbpvn"]["alias"] == NEW_ALIAS
    assert sdn["running"]["vnets"]["olbpvn"]["alias"] == NEW_ALIAS


def test_a_second_up_after_the_alias_update_changes_nothing(example: Rehearsal) -> None:
    example.pulumi("up", "--yes", "--skip-preview", "--expect-no-changes", stack="example")


# --- a change the provider reboots for ------------------------------------------------------


def more_memory(config: dict[str, Any]) -> None:
    config["orbitlab:appliances"]["memory_mib"] = 192


def test_preview_names_each_appliance_a_change_will_reboot(example: Rehearsal) -> None:
    example.edit("example", more_memory)
    done = example.pulumi("preview", stack="example")
    output = _lines(done.stdout)
    for name, vmid, hostname in [
        ("web-gateway", 10011, "olvn1001-router"),
        ("web-dns", 10012, "olvn1001-dns"),
        ("lab-gateway", 10021, "olvn1002-router"),
    ]:
        node = "pve2"
        assert (
            f"{name} will be rebooted (CT {vmid} {hostname} on {node}): memory.dedicated 128 -> "
            "192." in output
        ), output


def test_up_reboots_them_as_the_provider_does(example: Rehearsal) -> None:
    example.pulumi("up", "--yes", "--skip-preview", stack="example")
    reboots = example.store.read()["reboots"]
    assert sorted(r["vmid"] for r in reboots) == [10011, 10012, 10013, 10021, 10022]
    assert all(r["why"] == ["memory.dedicated"] for r in reboots)
    # recorded again: the next preview names nothing
    done = example.pulumi("preview", stack="example")
    assert "will be rebooted" not in done.stdout


def test_an_endpoint_that_reaches_no_node_is_refused_at_preview(example: Rehearsal) -> None:
    example.pulumi("config", "set", "proxmoxve:endpoint", "https://pve9.home.arpa:8006/",
                   stack="example")  # fmt: skip
    done = example.pulumi("preview", stack="example", check=False)
    assert done.returncode != 0
    assert "dial tcp pve9.home.arpa:8006: connect: connection refused" in done.stdout + done.stderr
