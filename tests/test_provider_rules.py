"""The real provider's and Proxmox's rules (``orbitlab_lab/emulate/rules``) on what OrbitLab sends.

- every rule of both tables holds for what the program sends for the example stack, a
  30-Sector stack using every feature, and ``examples/homelab``; and every rule applies to
  something there (a rule that checks nothing OrbitLab sends would prove nothing);
- per rule family, a value that breaks it gets the provider's (or Proxmox's) message, from
  the stand-in's ``check`` (plan time) or its ``create`` (apply time);
- the update semantics: what replaces, what updates in place, what reboots.

The real ``pulumi preview`` of broken values is in ``tests/test_rehearsal_provider.py``.
"""

from __future__ import annotations

import asyncio
import copy
import re
import runpy
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.provider.experimental import provider as p

from orbitlab.components.reboots import changed_paths
from orbitlab.program import main
from orbitlab_lab.emulate import ProxmoxError
from orbitlab_lab.emulate import cluster as c
from orbitlab_lab.emulate.proxmoxve import stand_in
from orbitlab_lab.emulate.rules import APPLY_RULES, PLAN_RULES, violations
from orbitlab_lab.emulate.rules.core import values_at
from orbitlab_lab.emulate.rules.provider import (
    CONTAINER,
    CONTROLLER,
    DOWNLOAD,
    EVPN_ZONE,
    GET_ZONES,
    SUBNET,
    VNET,
    VXLAN_ZONE,
)
from orbitlab_lab.emulate.rules.updates import reboots_for, replaced_by
from orbitlab_lab.emulate.store import Store
from orbitlab_lab.emulate.wire import Secret, from_plain_map
from tests.pulumi_mocks import ROOT, FakeCluster, run_program, stack_file_config
from tests.stacks import featured_stack

HOMELAB = ROOT / "examples" / "homelab"
TOKEN = "orbitlab@pve!pulumi=5a1f0c8e-7d3b-4e29-9c61-0f2b8d4e6a17"
URN = "urn:pulumi:example::orbitlab::{type}::{name}"


def _homelab(monkeypatch: pytest.MonkeyPatch) -> Any:
    config = yaml.safe_load((HOMELAB / "Pulumi.homelab.yaml").read_text())["config"]
    monkeypatch.chdir(HOMELAB)
    return run_program(lambda: runpy.run_path("__main__.py"), config=config, stack="homelab")


STACKS: dict[str, Callable[[pytest.MonkeyPatch], Any]] = {
    "example": lambda mp: run_program(main, config=stack_file_config(), cluster=FakeCluster()),
    "thirty": lambda mp: run_program(main, config=featured_stack(30), cluster=FakeCluster()),
    "homelab": _homelab,
}


@cache
def _sent(stack: str) -> tuple[tuple[str, str, dict[str, Any]], ...]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        run = STACKS[stack](monkeypatch)
    resources = tuple(
        (r.type, r.name, r.inputs)
        for r in run.registrations.values()
        if r.type.startswith("proxmoxve:")
    )
    # the invokes: the program calls both data sources without arguments
    invokes = tuple((token, token, {}) for token in sorted(set(run.mocks.calls)))
    return resources + invokes


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_every_rule_holds_for_what_the_program_sends(stack: str) -> None:
    sent = _sent(stack)
    assert len(sent) > 10
    found = [
        (name, v.rule.source, v.path, v.message)
        for token, name, inputs in sent
        for table in (PLAN_RULES, APPLY_RULES)
        for v in violations(table, token, inputs)
    ]
    assert found == []


def test_every_rule_applies_to_something_the_program_sends() -> None:
    applied: set[int] = set()
    for stack in STACKS:
        for token, _, inputs in _sent(stack):
            for rule in (*PLAN_RULES, *APPLY_RULES):
                if rule.token == token and list(values_at(inputs, rule.path)):
                    applied.add(id(rule))
    unapplied = [(r.token, r.path) for r in (*PLAN_RULES, *APPLY_RULES) if id(r) not in applied]
    # getZones' one validated argument: the program reads every zone, never sends a type
    assert unapplied == [(GET_ZONES, "type")]


def test_every_rule_cites_the_file_it_comes_from() -> None:
    source = re.compile(
        r"^(bpg/terraform-provider-proxmox v0\.111\.1|proxmox/pve-[a-z]+ [0-9a-f]{7} \([^)]+\)) "
        r"\S+\.(go|pm)\b"
    )
    for rule in (*PLAN_RULES, *APPLY_RULES):
        assert source.match(rule.source), rule


# --- breaking each family ---------------------------------------------------------------


def _inputs(token: str, name: str | None = None) -> dict[str, Any]:
    """A copy of what the example stack (or homelab, for what only it sends) sends."""
    for stack in ("example", "thirty"):
        for sent_token, sent_name, inputs in _sent(stack):
            if sent_token == token and name in (None, sent_name):
                return copy.deepcopy(inputs)
    raise AssertionError(f"nothing sent for {token} {name}")


def _set(inputs: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = inputs
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else target[part]
    last = parts[-1]
    if last.startswith("["):
        target[int(last[1:-1])] = value
    else:
        target[last] = value
    return inputs


GATEWAY = "web-gateway-ct"
#: (family, token, resource, path, bad value, the provider's message at ``preview``)
PLAN_CASES = [
    ("sdn id", VNET, "web-vnet", "resourceId", "olvn10011",
     "Invalid Attribute Value Length. Attribute id string length must be at most 8, got: 9. "
     "Examine values at 'web-vnet.resourceId'."),
    ("sdn id", CONTROLLER, None, "sdnControllerEvpnId", "ol_evpn",
     "Invalid Attribute Value Match. Attribute id must be a valid SDN identifier, got: ol_evpn. "
     "Examine values at 'backplane-controller.sdnControllerEvpnId'."),
    ("alias", VNET, "backplane-vnet", "alias", "orbitlab backplane 10.200.0.0/16",
     "Invalid Attribute Value Match. Attribute alias alias must contain only alphanumeric "
     "characters, spaces, hyphens, underscores, dots, and parentheses, got: orbitlab backplane "
     "10.200.0.0/16. Examine values at 'backplane-vnet.alias'."),
    ("set", EVPN_ZONE, None, "exitNodes", ["pve1", "pve1"],
     'Duplicate Set Element. This attribute contains duplicate values of: tftypes.String<"pve1">. '
     "Examine values at 'backplane-zone.exitNodes'."),
    ("set", VXLAN_ZONE, "web-zone", "peers", ["192.0.2.11", " "],
     'Invalid Attribute Value Match. Attribute peers[Value(" ")] must be a non-empty and '
     "non-whitespace string, got:  . Examine values at 'web-zone.peers'."),
    ("address", SUBNET, "backplane-subnet", "gateway", "10.200.0.256",
     "Invalid IP String Value. An unexpected error occurred while converting a string value "
     "that was expected to be IPv4/IPv6.\n\nPath: gateway\nGiven Value: 10.200.0.256. Examine "
     "values at 'backplane-subnet.gateway'."),
    ("combination", SUBNET, "backplane-subnet", "gateway", "10.201.0.1",
     "Invalid IP for Subnet. 10.201.0.1 must be within the subnet 10.200.0.0/16. Examine values "
     "at 'backplane-subnet.gateway'."),
    ("combination", DOWNLOAD, None, "checksum", "ab" * 64,
     'Invalid Attribute Combination. Attribute "checksum_algorithm" must be specified when '
     "\"checksum\" is specified. Examine values at 'templates-pve2.checksum'."),
    ("choice", DOWNLOAD, None, "contentType", "vztpml",
     'Invalid Attribute Value Match. Attribute content_type value must be one of: ["iso" '
     "\"vztmpl\" \"import\"], got: \"vztpml\". Examine values at 'templates-pve2.contentType'."),
    ("pattern", DOWNLOAD, None, "url", "ftp://download.proxmox.com/a.tar.xz",
     "Invalid Attribute Value Match. Attribute url must match HTTP URL regex `https?://.*`, "
     "got: ftp://download.proxmox.com/a.tar.xz. Examine values at 'templates-pve2.url'."),
    ("pattern", CONTAINER, GATEWAY, "networkInterfaces[0].macAddress", "02:4f:4c:10:03",
     'expected "mac_address" to be a valid MAC address (A0:B1:C2:D3:E4:F5), got '
     "\"02:4f:4c:10:03\". Examine values at 'web-gateway-ct.networkInterfaces[0].macAddress'."),
    # Any(StringIsEmpty, StringMatch): failing both, both messages
    ("pattern", CONTAINER, GATEWAY, "initialization.hostname", "olvn1001_router",
     ["expected \"hostname\" to be an empty string: got olvn1001_router. Examine values at "
      "'web-gateway-ct.initialization.hostname'.",
      "invalid value for hostname (must be a valid DNS name). Examine values at "
      "'web-gateway-ct.initialization.hostname'."]),
    ("range", CONTAINER, GATEWAY, "memory.dedicated", 8,
     "expected dedicated to be in the range (16 - 268435456), got 8. Examine values at "
     "'web-gateway-ct.memory.dedicated'."),
    ("range", CONTAINER, GATEWAY, "vmId", 99,
     "expected vm_id to be in the range (100 - 2147483647), got 99. Examine values at "
     "'web-gateway-ct.vmId'."),
    ("choice", CONTAINER, GATEWAY, "operatingSystem.type", "windows",
     'expected type to be one of ["alpine" "archlinux" "centos" "debian" "devuan" "fedora" '
     '"gentoo" "nixos" "opensuse" "ubuntu" "unmanaged"], got windows. Examine values at '
     "'web-gateway-ct.operatingSystem.type'."),
    ("empty", CONTAINER, GATEWAY, "tags[1]", "",
     "expected \"tags.1\" to not be an empty string, got . Examine values at "
     "'web-gateway-ct.tags[1]'."),
    ("items", CONTAINER, GATEWAY, "initialization.dns.servers", [],
     "Not enough list items. Attribute initialization.0.dns.0.servers requires 1 item minimum, "
     "but config has only 0 declared.. Examine values at "
     "'web-gateway-ct.initialization.dns.servers'."),
    ("address", CONTAINER, GATEWAY, "initialization.dns.servers[0]", "192.0.2.053",
     "expected initialization.0.dns.0.servers.0 to contain a valid IP, got: 192.0.2.053. "
     "Examine values at 'web-gateway-ct.initialization.dns.servers[0]'."),
]  # fmt: skip


def _check(token: str, name: str, inputs: dict[str, Any]) -> list[str]:
    request = p.CheckRequest(
        URN.format(type=token, name=name), from_plain_map({}), from_plain_map(inputs), b""
    )
    response = asyncio.run(stand_in().check(request))
    assert all(failure.property == "" for failure in response.failures or [])
    return [failure.reason for failure in response.failures or []]


@pytest.mark.parametrize(
    ("family", "token", "name", "path", "bad", "message"),
    PLAN_CASES,
    ids=[f"{case[0]}:{case[3]}" for case in PLAN_CASES],
)
def test_a_value_breaking_a_plan_rule_gets_the_providers_message_at_check(
    family: str, token: str, name: str | None, path: str, bad: Any, message: str | list[str]
) -> None:
    inputs = _inputs(token, name)
    if token == DOWNLOAD and path == "checksum":
        inputs.pop("checksumAlgorithm", None)
    resource = name or {CONTROLLER: "backplane-controller", EVPN_ZONE: "backplane-zone",
                        DOWNLOAD: "templates-pve2"}[token]  # fmt: skip
    assert _check(token, resource, inputs) == []  # as sent: valid
    expected = message if isinstance(message, list) else [message]
    assert _check(token, resource, _set(inputs, path, bad)) == expected


def test_every_plan_family_is_broken_once() -> None:
    assert {rule.family for rule in PLAN_RULES} == {case[0] for case in PLAN_CASES}


def test_a_rule_of_the_whole_resource_fails_check_alone() -> None:
    inputs = _inputs(CONTROLLER)
    inputs.pop("peers")
    inputs["sdnControllerEvpnId"] = "bad_id"
    with pytest.raises(ProxmoxError) as raised:
        _check(CONTROLLER, "backplane-controller", inputs)
    assert str(raised.value) == (
        "Missing Attribute Configuration: At least one of these attributes must be "
        "configured: [fabric,peers]"
    )


def test_an_invoke_argument_breaking_a_rule_is_an_invoke_failure() -> None:
    request = p.InvokeRequest(GET_ZONES, from_plain_map({"type": "EVPN"}))
    response = asyncio.run(stand_in().invoke(request))
    assert [(f.property, f.reason) for f in response.failures] == [
        (
            "type",
            'Invalid Attribute Value Match: Attribute type value must be one of: ["simple" '
            '"vlan" "qinq" "vxlan" "evpn"], got: "EVPN"',
        )
    ]


# --- Proxmox's formats, at apply ----------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    store = Store(tmp_path / "emulate")
    c.create_cluster(store, [c.Node("pve1", "192.0.2.11"), c.Node("pve2", "192.0.2.12")], apply_s=0)
    monkeypatch.setenv("ORBITLAB_EMULATE_DIR", str(store.root))
    return store


def _create(token: str, name: str, inputs: dict[str, Any]) -> str:
    plugin = stand_in()
    config = from_plain_map({"apiToken": Secret(TOKEN), "endpoint": "https://192.0.2.11:8006/"})
    asyncio.run(plugin.configure(p.ConfigureRequest({}, config, True, True)))
    request = p.CreateRequest(URN.format(type=token, name=name), from_plain_map(inputs), 60, False)
    response = asyncio.run(plugin.create(request))
    return response.resource_id


#: (family, token, inputs, the error ``pulumi up`` reports when the API refuses them; for
#: a container, the one input changed in what the example stack sends).
APPLY_CASES = [
    ("sdn id", VXLAN_ZONE, {"resourceId": "o", "peers": ["192.0.2.11"]},
     "Unable to Create SDN Zone: received an HTTP 400 response - Reason: Parameter "
     "verification failed. (zone: value does not match the regex pattern)"),
    ("sdn id", CONTROLLER, {"sdnControllerEvpnId": "e" * 65, "asn": 65001, "peers": ["192.0.2.11"]},
     "Unable to Create SDN Controller: received an HTTP 400 response - Reason: Parameter "
     "verification failed. (controller: value may only be 64 characters long)"),
    ("alias", VNET, {"resourceId": "olvn1001", "zone": "olvz1001", "tag": 1001, "alias": "a#b"},
     "Unable to Create SDN VNet: received an HTTP 400 response - Reason: Parameter "
     "verification failed. (alias: value does not match the regex pattern)"),
    ("range", VNET, {"resourceId": "olvn1001", "zone": "olvz1001", "tag": 16777216},
     "Unable to Create SDN VNet: received an HTTP 400 response - Reason: Parameter "
     "verification failed. (tag: value must have a maximum value of 16777215)"),
    ("address", SUBNET, {"cidr": "10.0.0.0/7", "vnet": "olvn1001"},
     "Unable to Create SDN Subnet: received an HTTP 400 response - Reason: Parameter "
     "verification failed. (subnet: invalid format - value does not look like a valid CIDR "
     "network)"),
    ("choice", DOWNLOAD, {"contentType": "vztmpl", "datastoreId": "local", "nodeName": "pve1",
                          "url": "http://x/a.tar.xz", "checksum": "ab", "checksumAlgorithm": "crc"},
     "Error downloading file from url: received an HTTP 400 response - Reason: Parameter "
     "verification failed. (checksum-algorithm: value 'crc' does not have a value in the "
     "enumeration 'md5, sha1, sha224, sha256, sha384, sha512')"),
    ("pattern", CONTAINER, {"networkInterfaces[0].macAddress": "03:4f:4c:10:03:e9"},
     "error creating container: received an HTTP 400 response - Reason: Parameter verification "
     "failed. (net0: invalid format - format error\nnet0.hwaddr: invalid format - value does "
     "not look like a valid unicast MAC address)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("family", "token", "inputs", "message"),
    APPLY_CASES,
    ids=[f"{case[0]}:{case[1].rsplit(':', 1)[-1]}" for case in APPLY_CASES],
)
def test_a_value_breaking_an_api_format_gets_proxmoxs_message_at_apply(
    store: Store, family: str, token: str, inputs: dict[str, Any], message: str
) -> None:
    if token == CONTAINER:
        inputs = _set(_inputs(CONTAINER, GATEWAY), *next(iter(inputs.items())))
        # a multicast MAC: the provider takes it at plan time, Proxmox does not
        assert violations(PLAN_RULES, token, inputs) == []
    before = store.read()
    with pytest.raises(ProxmoxError) as raised:
        _create(token, "x", inputs)
    assert str(raised.value) == message
    assert store.read() == before  # nothing half-applied


def test_every_api_family_is_broken_once() -> None:
    assert {rule.family for rule in APPLY_RULES} == {case[0] for case in APPLY_CASES}


def test_proxmox_takes_controller_ids_of_up_to_64_characters_with_dashes(store: Store) -> None:
    """Stricter than Proxmox was a bug: a controller ID is not a zone ID (2-64 characters,
    ``-`` and ``_`` allowed; pve-network ``Controllers/Plugin.pm``)."""
    inputs = {"sdnControllerEvpnId": "home-evpn_" + "x" * 54, "asn": 65001, "peers": ["192.0.2.11"]}
    assert violations(APPLY_RULES, CONTROLLER, inputs) == []
    assert _create(CONTROLLER, "c", inputs) == inputs["sdnControllerEvpnId"]


def test_an_error_inside_the_sdn_lock_reads_as_proxmoxs(store: Store) -> None:
    _create(VXLAN_ZONE, "z", {"resourceId": "olvz1001", "peers": ["192.0.2.11"]})
    _create(VNET, "v", {"resourceId": "olvn1001", "zone": "olvz1001", "tag": 1001})
    _create(VXLAN_ZONE, "z2", {"resourceId": "olvz1002", "peers": ["192.0.2.11"]})
    with pytest.raises(ProxmoxError) as raised:
        _create(VNET, "v2", {"resourceId": "olvn1002", "zone": "olvz1002", "tag": 1001})
    assert str(raised.value) == (
        "Unable to Create SDN VNet: received an HTTP 500 response - Reason: create sdn vnet "
        "object failed: 400 Parameter verification failed. (tag: vxlan tag 1001 already "
        "exist in vnet olvn1001 in zone olvz1001)"
    )


# --- what a change does -------------------------------------------------------------------


def _changes(token: str, name: str, path: str, value: Any) -> tuple[list[str], list[str]]:
    old = _inputs(token, name)
    changed = changed_paths(old, _set(copy.deepcopy(old), path, value))
    return replaced_by(token, changed), reboots_for(token, changed)


@pytest.mark.parametrize(
    ("token", "name", "path", "value", "replaces", "reboots"),
    [
        (VNET, "web-vnet", "zone", "olvz1009", [], []),
        (VNET, "web-vnet", "alias", "orbitlab backplane 10.200.0.0-16", [], []),
        (VNET, "web-vnet", "resourceId", "olvn1009", ["resourceId"], []),
        (VXLAN_ZONE, "web-zone", "mtu", 1400, [], []),
        (VXLAN_ZONE, "web-zone", "peers", ["192.0.2.11"], [], []),
        (SUBNET, "backplane-subnet", "snat", False, ["snat"], []),
        (CONTAINER, GATEWAY, "disk.size", 2, [], []),
        (CONTAINER, GATEWAY, "disk.datastoreId", "local-zfs", ["disk"], []),
        (CONTAINER, GATEWAY, "cpu.cores", 2, [], []),
        (CONTAINER, GATEWAY, "description", "new", [], []),
        (CONTAINER, GATEWAY, "memory.dedicated", 256, [], ["memory.dedicated"]),
        (CONTAINER, GATEWAY, "networkInterfaces[0].mtu", 1400, [], ["networkInterfaces[0].mtu"]),
        (CONTAINER, GATEWAY, "initialization.dns.servers", ["192.0.2.54"], [],
         ["initialization.dns.servers[0]"]),
        (CONTAINER, GATEWAY, "initialization.hostname", "r", [], ["initialization.hostname"]),
        (CONTAINER, GATEWAY, "nodeName", "pve1", ["nodeName"], []),
        (CONTAINER, GATEWAY, "operatingSystem.templateFileId", "local:vztmpl/b.tar.xz",
         ["operatingSystem"], []),
    ],
)  # fmt: skip
def test_what_a_change_replaces_updates_or_reboots(
    token: str, name: str, path: str, value: Any, replaces: list[str], reboots: list[str]
) -> None:
    assert _changes(token, name, path, value) == (replaces, reboots)
