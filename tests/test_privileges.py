"""The API token's privileges.

- the emulator computes a token's privileges as Proxmox does (ACL paths, propagation, the
  deepest ACL winning, privilege separation, built-in roles) from ``pveum`` commands, and
  refuses a bad command with pveum's message;
- with exactly the least-privilege role (``orbitlab check --pveum``, docs/prerequisites.md's), every
  call of the example stack's create, update and destroy passes; with any one of its
  privileges removed, the first refused call is Proxmox's 403, naming the privilege where
  Proxmox names it — and ``orbitlab check`` names it in every case;
- listings leave out what the token may not see, as Proxmox's do;
- ``orbitlab check`` against an API answering ``GET /access/permissions``.

With the real ``pulumi up`` / ``destroy``: ``tests/test_rehearsal_privileges.py``.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi.provider.experimental import provider as p

from orbitlab import privileges
from orbitlab.cli import main as cli
from orbitlab.stack import load_plan, load_stack_file
from orbitlab_lab.emulate import EmulateError, ProxmoxError
from orbitlab_lab.emulate import cluster as c
from orbitlab_lab.emulate.access import Access, PveumError, parse_pveum
from orbitlab_lab.emulate.control import token_access
from orbitlab_lab.emulate.plugin import Call
from orbitlab_lab.emulate.proxmoxve import get_containers, get_zones, stand_in
from orbitlab_lab.emulate.rules.provider import (
    CONTAINER,
    CONTROLLER,
    DOWNLOAD,
    EVPN_ZONE,
    SUBNET,
    VNET,
    VXLAN_ZONE,
)
from orbitlab_lab.emulate.rules.updates import APPLIER
from orbitlab_lab.emulate.store import Store
from orbitlab_lab.emulate.wire import Secret, from_plain_map
from tests import proxmox_api
from tests.pulumi_mocks import EXAMPLE_STACK, ROOT
from tests.test_provider_rules import _sent

TOKEN = "orbitlab@pve!pulumi=5a1f0c8e-7d3b-4e29-9c61-0f2b8d4e6a17"
URN = "urn:pulumi:example::orbitlab::{type}::{name}"
EXAMPLE = load_plan(str(EXAMPLE_STACK))
LEAST = privileges.pveum_script(EXAMPLE)


def without(privilege: str, script: str = LEAST) -> str:
    """The script with one privilege taken out of the role that grants it."""
    out = []
    for line in script.splitlines():
        if line.startswith("pveum role add"):
            privs = re.search(r'--privs "([^"]*)"', line)
            assert privs
            kept = [priv for priv in privs.group(1).split(",") if priv != privilege]
            line = line.replace(privs.group(1), ",".join(kept))
        out.append(line)
    return "\n".join(out) + "\n"


# --- Proxmox's ACL rules ------------------------------------------------------------------

USER = "pveum user add ops@pve\npveum user token add ops@pve ci\n"
BOTH = "pveum acl modify {path} --users ops@pve --tokens 'ops@pve!ci' --roles {roles}{extra}\n"


def both(path: str, roles: str, extra: str = "") -> str:
    return BOTH.format(path=path, roles=roles, extra=extra)


#: (case, script, path, the privileges the token holds there)
ACL_CASES = [
    ("propagates down", both("/sdn", "PVESDNUser"), "/sdn/zones/z1/v1",
     {"SDN.Use", "SDN.Audit"}),
    ("not up", both("/sdn/zones/z1", "PVESDNUser"), "/sdn", set()),
    ("propagate 0: the path alone", both("/vms", "PVEAuditor", " --propagate 0"), "/vms/100",
     set()),
    ("propagate 0 on the path itself", both("/vms", "PVEVMUser", " --propagate 0"), "/vms",
     {"VM.Audit", "VM.Console", "VM.Backup", "VM.Config.CDROM", "VM.Config.Cloudinit",
      "VM.PowerMgmt", "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead",
      "VM.GuestAgent.FileWrite", "VM.GuestAgent.FileSystemMgmt"}),
    ("the deepest ACL replaces", both("/storage", "PVEDatastoreAdmin")
     + both("/storage/local", "PVEAuditor"), "/storage/local", {"Datastore.Audit",
     "SDN.Audit", "Sys.Audit", "VM.Audit", "VM.GuestAgent.Audit", "Pool.Audit",
     "Mapping.Audit"}),
    ("roles on one path add up", 'pveum role add A --privs "VM.Audit"\npveum role add B '
     '--privs "VM.Allocate"\n' + both("/vms", "A,B"), "/vms/100", {"VM.Audit", "VM.Allocate"}),
    ("NoAccess takes all", both("/", "Administrator") + both("/vms/100", "NoAccess"),
     "/vms/100", set()),
    ("a separated token: only what its user holds too",
     "pveum acl modify /sdn --tokens 'ops@pve!ci' --roles PVESDNAdmin\n"
     "pveum acl modify /sdn --users ops@pve --roles PVESDNUser\n", "/sdn",
     {"SDN.Use", "SDN.Audit"}),
    ("a separated token without its own ACL holds nothing",
     "pveum acl modify /sdn --users ops@pve --roles PVESDNAdmin\n", "/sdn", set()),
    ("privsep 0: the user's privileges",
     "pveum user token add ops@pve ci --privsep 0\n"
     "pveum acl modify /sdn --users ops@pve --roles PVESDNUser\n", "/sdn/zones",
     {"SDN.Use", "SDN.Audit"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "script", "path", "held"), ACL_CASES, ids=[case[0] for case in ACL_CASES]
)
def test_a_tokens_privileges_follow_proxmoxs_acl_rules(
    case: str, script: str, path: str, held: set[str]
) -> None:
    assert set(parse_pveum(USER + script).privileges(path)) == held


PVEUM_ERRORS = [
    ('pveum role add R --privs "SDN.Alocate"',
     "line 1: pveum role add R --privs \"SDN.Alocate\": invalid privilege 'SDN.Alocate'"),
    ("pveum acl modify /sdn --users u@pve --roles Missing",
     "line 1: pveum acl modify /sdn --users u@pve --roles Missing: role 'Missing' does not exist"),
    ("pveum acl modify /sdn --roles PVEAuditor",
     "line 1: pveum acl modify /sdn --roles PVEAuditor: the emulator grants to --users or "
     "--tokens (its one user and token)"),
    ("pveum pool add lab",
     "line 1: pveum pool add lab: the emulator takes pveum role add, user add, user token add "
     "and acl modify"),
    ("chmod 600 x", "line 1: chmod 600 x: not a pveum command"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "message"), PVEUM_ERRORS)
def test_a_pveum_command_the_emulator_cannot_take_is_refused_naming_its_line(
    line: str, message: str
) -> None:
    with pytest.raises(PveumError) as raised:
        parse_pveum(f"# a comment\n{line}".removeprefix("# a comment\n"))
    assert str(raised.value) == message


def test_emulate_start_names_the_pveum_file_it_cannot_use(tmp_path: Path) -> None:
    stack, settings = load_stack_file(str(EXAMPLE_STACK))
    bad = tmp_path / "acl.sh"
    bad.write_text('pveum role add R --privs "VM.Alocate"\n')
    with pytest.raises(EmulateError) as raised:
        token_access(stack, settings, None, str(bad))
    assert str(raised.value) == (
        f'--pveum {bad}: line 1: pveum role add R --privs "VM.Alocate": invalid privilege '
        "'VM.Alocate'"
    )
    with pytest.raises(EmulateError, match=r"--pveum .*missing\.sh: No such file"):
        token_access(stack, settings, None, str(tmp_path / "missing.sh"))


def test_emulate_start_defaults_to_the_stacks_least_privilege_role() -> None:
    stack, settings = load_stack_file(str(EXAMPLE_STACK))
    assert token_access(stack, settings, None, None) == parse_pveum(LEAST)


def test_the_prerequisites_page_gives_exactly_the_least_privilege_commands() -> None:
    page = (ROOT / "docs" / "prerequisites.md").read_text()
    assert f"```sh\n{LEAST}```" in page


def test_a_template_volume_given_needs_no_download_privileges() -> None:
    plan = load_plan(str(EXAMPLE_STACK))
    appliances = plan.appliances.model_copy(update={"template_file_id": "nas:vztmpl/a.tar.xz"})
    plan = dataclasses.replace(plan, appliances=appliances)
    script = privileges.pveum_script(plan)
    assert privileges.TEMPLATE_ROLE not in script
    needs = {(need.path, need.privilege) for need in privileges.requirements(plan)}
    assert ("/storage/nas", "Datastore.AllocateSpace") in needs
    assert not {priv for _, priv in needs} & {"Sys.AccessNetwork", *privileges.TEMPLATE_PRIVILEGES}


def test_the_least_privilege_role_holds_no_audit_privilege() -> None:
    # every listing and read the program makes accepts the allocation privilege instead
    granted = {*privileges.ROLE_PRIVILEGES, *privileges.TEMPLATE_PRIVILEGES}
    assert not {"SDN.Audit", "Datastore.Audit", "Sys.Audit", "Sys.Modify"} & granted


# --- the example stack's lifecycle through the stand-in -----------------------------------

ORDER = (CONTROLLER, EVPN_ZONE, VXLAN_ZONE, VNET, SUBNET, APPLIER, DOWNLOAD, CONTAINER)


def _cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Store:
    store = Store(tmp_path / "emulate")
    nodes = [c.Node(n.name, str(n.address)) for n in EXAMPLE.backplane.nodes]
    c.create_cluster(store, nodes, apply_s=0, access=parse_pveum(script).to_state())
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(store.root))
    return store


class Provider:
    """The stand-in, configured with the token, driven as the engine drives it."""

    def __init__(self) -> None:
        self.plugin = stand_in()
        config = from_plain_map({"apiToken": Secret(TOKEN), "endpoint": "https://192.0.2.11:8006/"})
        asyncio.run(self.plugin.configure(p.ConfigureRequest({}, config, True, True)))

    def create(self, token: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        urn = URN.format(type=token, name=name)
        request = p.CreateRequest(urn, from_plain_map(inputs), 60, False)
        return asyncio.run(self.plugin.create(request)).resource_id, inputs

    def update(self, token: str, name: str, rid: str, olds: dict, news: dict) -> None:
        urn = URN.format(type=token, name=name)
        olds_map, news_map = from_plain_map(olds), from_plain_map(news)
        request = p.UpdateRequest(urn, rid, olds_map, news_map, 60, [], False)
        asyncio.run(self.plugin.update(request))

    def delete(self, token: str, name: str, rid: str, olds: dict) -> None:
        request = p.DeleteRequest(URN.format(type=token, name=name), rid, from_plain_map(olds), 60)
        asyncio.run(self.plugin.delete(request))


def _resources() -> list[tuple[str, str, dict[str, Any]]]:
    """The example's resources in the engine's order: by type, and containers by VMID (the
    order Sectors and roles are declared in: the mocks register containers in an order that
    varies from run to run); the rest as registered."""
    sent = [entry for entry in _sent("example") if entry[0] in ORDER]
    return sorted(sent, key=lambda entry: (ORDER.index(entry[0]), entry[2].get("vmId", 0)))


def lifecycle() -> Iterator[str]:
    """Create the example stack, grow one container's memory and disk, destroy it all;
    yields each step's name as it passes."""
    provider = Provider()
    made: list[tuple[str, str, str, dict[str, Any]]] = []
    for token, name, inputs in _resources():
        resource_id, olds = provider.create(token, name, copy.deepcopy(inputs))
        made.append((token, name, resource_id, olds))
        yield f"create {name}"
    token, name, resource_id, olds = next(m for m in made if m[1] == "web-dns-ct")
    news = copy.deepcopy(olds)
    news["memory"]["dedicated"] += 64
    news["disk"]["size"] += 1
    provider.update(token, name, resource_id, olds, news)
    yield f"update {name}"
    for token, name, resource_id, olds in reversed(made):
        provider.delete(token, name, resource_id, olds)
        yield f"delete {name}"


def first_refusal() -> tuple[str, str] | None:
    """The last step that passed and the error of the first refused one (None: none)."""
    steps = lifecycle()
    passed = "start"
    while True:
        try:
            passed = next(steps)
        except StopIteration:
            return None
        except ProxmoxError as refused:
            return passed, str(refused)


def test_the_least_privilege_role_passes_the_whole_lifecycle(tmp_path, monkeypatch) -> None:
    _cluster(tmp_path, monkeypatch, LEAST)
    steps = list(lifecycle())
    assert len(steps) == 2 * len(_resources()) + 1
    assert "delete templates-pve2" in steps


GW = "/vms/10011"
DENIED = "received an HTTP 403 response - Reason: Permission check failed"
TEMPLATE = "orbitlab-example-alpine-3.22-default_20250617_amd64.tar.xz"
#: (privilege removed, the step before the refused one, the error pulumi reports)
REFUSALS = [
    ("SDN.Allocate", "start",
     f"Unable to Create SDN Controller: {DENIED} (/sdn/controllers, SDN.Allocate)"),
    ("SDN.Use", "create templates-pve2",
     f"error creating container: {DENIED} (/sdn/zones/olvz1001/olvn1001, SDN.Use)"),
    ("VM.Allocate", "create templates-pve2", f"error creating container: {DENIED}"),
    ("VM.Audit", "create templates-pve2", f"error creating container: {DENIED} ({GW}, VM.Audit)"),
    ("VM.Config.CPU", "create templates-pve2",
     f"error creating container: {DENIED} ({GW}, VM.Config.CPU)"),
    ("VM.Config.Disk", "create templates-pve2",
     f"error creating container: {DENIED} ({GW}, VM.Config.Disk)"),
    ("VM.Config.Memory", "create templates-pve2",
     f"error creating container: {DENIED} ({GW}, VM.Config.Memory)"),
    ("VM.Config.Network", "create templates-pve2",
     f"error creating container: {DENIED} ({GW}, VM.Config.Network)"),
    ("VM.Config.Options", "create templates-pve2",
     f"error creating container: {DENIED} ({GW}, VM.Config.Options)"),
    ("VM.PowerMgmt", "create templates-pve2",
     f"error creating container: {DENIED} ({GW}, VM.PowerMgmt)"),
    ("Datastore.AllocateSpace", "create rollout-apply",
     f"Error when reading file from datastore: {DENIED} (/storage/local, "
     "Datastore.Audit|Datastore.AllocateSpace)"),
    ("Sys.AccessNetwork", "create rollout-apply",
     "Error initiating file download: Could not get file metadata, unexpected error: error "
     f"fetching metadata from download url, unexpected error in GetQueryURLMetadata: {DENIED}"),
    ("Datastore.AllocateTemplate", "create rollout-apply",
     f"Error downloading file from url: Could not download file '{TEMPLATE}', unexpected "
     f"error: {DENIED} (/storage/local, Datastore.AllocateTemplate)"),
    ("Datastore.Allocate", "delete web-gateway-ct",
     f"Error deleting datastore file: Could not delete datastore file 'local:vztmpl/{TEMPLATE}'"
     f", unexpected error: {DENIED} (/storage/local, Datastore.Allocate)"),
]  # fmt: skip


def test_every_privilege_of_the_role_is_refused_once() -> None:
    granted = [*privileges.ROLE_PRIVILEGES, *privileges.TEMPLATE_PRIVILEGES]
    assert sorted(case[0] for case in REFUSALS) == sorted(granted)


@pytest.mark.parametrize(("privilege", "after", "message"), REFUSALS, ids=[c[0] for c in REFUSALS])
def test_without_one_privilege_the_first_refused_call_is_proxmoxs_403(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, privilege: str, after: str, message: str
) -> None:
    _cluster(tmp_path, monkeypatch, without(privilege))
    assert first_refusal() == (after, message)


@pytest.mark.parametrize("privilege", [c[0] for c in REFUSALS])
def test_orbitlab_check_names_the_one_privilege_removed(privilege: str) -> None:
    access = parse_pveum(without(privilege))
    lacking = privileges.missing(privileges.requirements(EXAMPLE), access.privileges)
    assert lacking
    assert {need.privilege for need in lacking} == {privilege}
    full = parse_pveum(LEAST)
    assert privileges.missing(privileges.requirements(EXAMPLE), full.privileges) == []


def test_sys_audit_and_sys_modify_on_root_do_for_sys_access_network() -> None:
    script = without("Sys.AccessNetwork") + 'pveum role add Old --privs "Sys.Audit,Sys.Modify"\n'
    script += both("/", "Old")
    access = parse_pveum(USER + script)
    assert privileges.missing(privileges.requirements(EXAMPLE), access.privileges) == []


def test_listings_leave_out_what_the_token_may_not_see(tmp_path, monkeypatch) -> None:
    store = _cluster(tmp_path, monkeypatch, LEAST)
    steps = lifecycle()
    for step in steps:
        if step == "update web-dns-ct":
            break
    call = Call(store, "invoke", {"endpoint": "https://192.0.2.11:8006/"})
    assert len(get_zones(call, {})["zones"]) == 3
    assert len(get_containers(call, {})["containers"]) == 5
    with store.change() as state:
        state["access"] = parse_pveum(without("SDN.Allocate", without("VM.Audit"))).to_state()
    assert get_zones(call, {})["zones"] == []
    assert get_containers(call, {})["containers"] == []


def test_without_access_state_the_token_is_root_and_nothing_is_checked(tmp_path, monkeypatch):
    store = Store(tmp_path / "emulate")
    c.create_cluster(store, [c.Node(n.name, str(n.address)) for n in EXAMPLE.backplane.nodes])
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(store.root))
    assert store.read()["access"] is None
    assert len(list(lifecycle())) == 2 * len(_resources()) + 1


# --- orbitlab check -----------------------------------------------------------------------


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[proxmox_api.Cluster, str]]:
    proxmox_api.api_environment(monkeypatch)
    cluster = proxmox_api.Cluster(nodes=[proxmox_api.node_entry("pve1")])
    yield from ((cluster, url) for url in proxmox_api.serve(cluster))


def test_check_passes_a_token_with_the_least_privilege_role(api, capsys) -> None:
    cluster, url = api
    cluster.access = parse_pveum(LEAST)
    assert cli(["check", str(EXAMPLE_STACK), "--endpoint", url]) == 0
    needs = privileges.requirements(EXAMPLE)
    paths = {need.path for need in needs}
    assert capsys.readouterr().out == (
        "the token orbitlab@pve!discover holds every privilege the stack needs "
        f"({len(needs)} on {len(paths)} paths)\n"
    )
    asked = {path for path, _ in cluster.requests if path.startswith("/api2/json/access/")}
    assert len(asked) == len(paths)


def test_check_names_each_missing_privilege_and_fails(api, capsys) -> None:
    cluster, url = api
    cluster.access = parse_pveum(without("SDN.Use", without("Datastore.Allocate")))
    assert cli(["check", str(EXAMPLE_STACK), "--endpoint", url]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "the token orbitlab@pve!discover lacks 4 privilege(s) the stack needs:",
        "  - SDN.Use on /sdn/zones/olvz1001/olvn1001: put web's NICs on olvn1001",
        "  - SDN.Use on /sdn/zones/olbpz/olbpvn: put web's NICs on olbpvn",
        "  - SDN.Use on /sdn/zones/olvz1002/olvn1002: put lab's NICs on olvn1002",
        "  - Datastore.Allocate on /storage/local: delete the template at destroy",
        f"grant them with `orbitlab check {EXAMPLE_STACK} --pveum` (run as root on a node), "
        "or your own role on those paths",
    ]


def test_check_plans_the_storages_the_cluster_has(api, capsys) -> None:
    """On a ZFS install the root disks go to local-zfs: a token granted only the storages of
    an LVM install is told what it lacks there."""
    cluster, url = api
    cluster.storages = [
        {"storage": "local", "type": "dir", "content": "vztmpl,iso,backup"},
        {"storage": "local-zfs", "type": "zfspool", "content": "rootdir,images"},
    ]
    per_storage = LEAST.replace(
        "pveum acl modify /storage --", "pveum acl modify /storage/local-lvm --"
    )
    cluster.access = parse_pveum(per_storage)
    assert cli(["check", str(EXAMPLE_STACK), "--endpoint", url]) == 1
    assert capsys.readouterr().out.splitlines()[1:-1] == [
        "  - Datastore.AllocateSpace on /storage/local-zfs: root disks on pve2",
    ]
    cluster.access = parse_pveum(LEAST)
    assert cli(["check", str(EXAMPLE_STACK), "--endpoint", url]) == 0


def test_check_pveum_prints_the_least_privilege_commands(capsys) -> None:
    assert cli(["check", str(EXAMPLE_STACK), "--pveum"]) == 0
    assert capsys.readouterr().out == LEAST
    named = ["--user", "ci@pve", "--token-name", "up"]
    assert cli(["check", str(EXAMPLE_STACK), "--pveum", *named]) == 0
    out = capsys.readouterr().out
    assert "pveum user token add ci@pve up --privsep 1" in out
    assert "--tokens 'ci@pve!up'" in out


def test_check_errors_a_user_can_cause(api, capsys, monkeypatch) -> None:
    cluster, url = api
    monkeypatch.delenv("PROXMOX_VE_API_TOKEN")
    assert cli(["check", str(EXAMPLE_STACK), "--endpoint", url]) == 1
    assert "PROXMOX_VE_API_TOKEN is not set" in capsys.readouterr().err
    proxmox_api.api_environment(monkeypatch)
    cluster.forbidden = True
    assert cli(["check", str(EXAMPLE_STACK), "--endpoint", url]) == 1
    assert "permission denied for GET /cluster/sdn/vnets (HTTP 403)" in capsys.readouterr().err


def test_access_round_trips_through_the_state() -> None:
    access = parse_pveum(without("SDN.Use"))
    assert Access.from_state(access.to_state()) == access
