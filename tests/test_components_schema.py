"""Every input the program sends to pulumi-proxmoxve, checked against the provider's schema.

The schema is ``tests/data/proxmoxve-schema-subset.json``, a copy of the provider's own
schema subset (see ``tests/data/README.md``). Under mocks, numbers arrive as floats and
property names camelCase, as the engine sees them.
"""

from __future__ import annotations

import json
import runpy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from orbitlab.program import main
from tests.pulumi_mocks import ROOT, FakeCluster, run_program, stack_file_config

SCHEMA_PATH = Path(__file__).parent / "data" / "proxmoxve-schema-subset.json"


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _type_problems(path: str, value: Any, spec: dict[str, Any]) -> list[str]:
    if "$ref" in spec:
        token = spec["$ref"].removeprefix("#/types/")
        definition = schema()["types"][token]
        return object_problems(
            path, value, definition["properties"], definition.get("required", [])
        )
    kind = spec.get("type")
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "integer":
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and float(value).is_integer()
        )
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {value!r}"]
        return [
            p
            for i, item in enumerate(value)
            for p in _type_problems(f"{path}[{i}]", item, spec["items"])
        ]
    elif kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {value!r}"]
        return [
            p
            for k, v in value.items()
            for p in _type_problems(f"{path}.{k}", v, spec["additionalProperties"])
        ]
    else:
        return [f"{path}: schema type {kind!r} not handled by this check"]
    return [] if ok else [f"{path}: expected {kind}, got {value!r}"]


def object_problems(
    path: str, value: Any, properties: dict[str, Any], required: list[str]
) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected an object, got {value!r}"]
    problems = [f"{path}.{key}: required input missing" for key in required if key not in value]
    for key, item in value.items():
        if key not in properties:
            problems.append(f"{path}.{key}: unknown property (allowed: {sorted(properties)})")
        else:
            problems.extend(_type_problems(f"{path}.{key}", item, properties[key]))
    return problems


def resource_problems(type_token: str, inputs: dict[str, Any]) -> list[str]:
    resource = schema()["resources"][type_token]
    return object_problems(
        type_token, inputs, resource["inputProperties"], resource.get("requiredInputs", [])
    )


def test_the_checker_catches_unknown_missing_and_mistyped_inputs() -> None:
    problems = resource_problems(
        "proxmoxve:sdn/vnet:Vnet", {"resourceId": "olvn1001", "tag": "1001", "zonee": "x"}
    )
    assert any("zone: required input missing" in p for p in problems)
    assert any("zonee: unknown property" in p for p in problems)
    assert any("tag: expected integer" in p for p in problems)
    nested = resource_problems(
        "proxmoxve:index/containerLegacy:ContainerLegacy",
        {"nodeName": "pve1", "networkInterfaces": [{"bridge": "olvn1001"}]},
    )
    assert nested == [
        "proxmoxve:index/containerLegacy:ContainerLegacy.networkInterfaces[0].name: "
        "required input missing"
    ]


def _proxmox_registrations(run: Any) -> list[Any]:
    return [r for r in run.registrations.values() if r.type.startswith("proxmoxve:")]


def test_every_input_of_the_example_stack_matches_the_provider_schema() -> None:
    run = run_program(main, config=stack_file_config(), cluster=FakeCluster())
    registrations = _proxmox_registrations(run)
    assert {r.type for r in registrations} == {
        "proxmoxve:sdn/applier:Applier",
        "proxmoxve:sdn/controller/evpn:Evpn",
        "proxmoxve:sdn/zone/evpn:Evpn",
        "proxmoxve:sdn/zone/vxlan:Vxlan",
        "proxmoxve:sdn/vnet:Vnet",
        "proxmoxve:sdn/subnet:Subnet",
        "proxmoxve:index/containerLegacy:ContainerLegacy",
        "proxmoxve:download/file:File",
    }
    problems = [p for r in registrations for p in resource_problems(r.type, r.inputs)]
    assert problems == []


def test_every_input_of_the_homelab_example_matches_the_provider_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = ROOT / "examples" / "homelab"
    config = yaml.safe_load((example / "Pulumi.homelab.yaml").read_text())["config"]
    monkeypatch.chdir(example)
    run = run_program(lambda: runpy.run_path("__main__.py"), config=config, stack="homelab")
    registrations = _proxmox_registrations(run)
    assert any(r.name == "media-jellyfin" for r in registrations)
    assert [p for r in registrations for p in resource_problems(r.type, r.inputs)] == []


def test_cluster_invokes_match_the_provider_schema() -> None:
    functions = schema()["functions"]
    invokes = [
        "proxmoxve:index/getContainersLegacy:getContainersLegacy",
        "proxmoxve:index/getDatastores:getDatastores",
        "proxmoxve:index/getVmsLegacy:getVmsLegacy",
        "proxmoxve:sdn/getVnets:getVnets",
        "proxmoxve:sdn/getZones:getZones",
    ]
    assert set(invokes) <= set(functions)
    run = run_program(main, config=stack_file_config(), cluster=FakeCluster())
    assert sorted(set(run.mocks.calls)) == invokes
