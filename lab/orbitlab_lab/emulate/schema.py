"""The providers' schemas, and the check of every input against them.

``schemas/proxmoxve-8.6.0.json`` is the pulumi-proxmoxve 8.6.0 schema subset OrbitLab uses
(``tests/data/proxmoxve-schema-subset.json``) without its descriptions
(``python -m orbitlab_lab.emulate.schema FULL.json`` writes it; a test keeps the two in step).
``schemas/command-1.2.1.json`` is pulumi-command 1.2.1's ``remote:Command`` and its types, in
the same shape. An input that is unknown (a preview) passes; a secret is checked inside.

>>> problems = input_problems("proxmoxve", "proxmoxve:sdn/vnet:Vnet",
...                           {"resourceId": "olvn1001", "tag": "1001", "zonee": "x"})
>>> for path, reason in problems:
...     print(f"{path}: {reason}")
zone: required input missing
tag: expected integer, got '1001'
zonee: unknown property (allowed: alias, isolatePorts, resourceId, tag, vlanAware, zone)
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from orbitlab_lab.emulate.wire import UNKNOWN, Secret

SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_FILES = {"proxmoxve": "proxmoxve-8.6.0.json", "command": "command-1.2.1.json"}
#: What a type spec keeps when compacted (descriptions and language hints go).
SPEC_KEYS = ("type", "items", "$ref", "additionalProperties", "secret")

Problem = tuple[str, str]


@cache
def schema(package: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / SCHEMA_FILES[package]).read_text())


def resource(package: str, token: str) -> dict[str, Any]:
    try:
        return schema(package)["resources"][token]
    except KeyError:
        raise KeyError(f"{package} has no resource type {token!r}") from None


def _spec_problems(package: str, path: str, value: Any, spec: dict[str, Any]) -> list[Problem]:
    if value is UNKNOWN or value is None:
        return []
    if isinstance(value, Secret):
        return _spec_problems(package, path, value.value, spec)
    if "$ref" in spec:
        token = spec["$ref"].removeprefix("#/types/")
        definition = schema(package)["types"][token]
        return object_problems(
            package, path, value, definition.get("properties", {}), definition.get("required", [])
        )
    kind = spec.get("type")
    if kind == "array":
        if not isinstance(value, list):
            return [(path, f"expected an array, got {value!r}")]
        items = spec.get("items", {})
        return [
            problem
            for index, item in enumerate(value)
            for problem in _spec_problems(package, f"{path}[{index}]", item, items)
        ]
    if kind == "object":
        if not isinstance(value, dict):
            return [(path, f"expected an object, got {value!r}")]
        items = spec.get("additionalProperties", {})
        return [
            problem
            for key, item in value.items()
            for problem in _spec_problems(package, f"{path}.{key}", item, items)
        ]
    return [] if _scalar_ok(kind, value) else [(path, f"expected {kind}, got {value!r}")]


def _scalar_ok(kind: str | None, value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    checks = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": number and float(value).is_integer(),
        "number": number,
        None: True,  # "any"
    }
    return checks.get(kind, False)


def object_problems(
    package: str, path: str, value: Any, properties: dict[str, Any], required: list[str]
) -> list[Problem]:
    """Problems of an object against its properties: missing, unknown, mistyped."""
    if isinstance(value, Secret):
        value = value.value
    if value is UNKNOWN:
        return []
    if not isinstance(value, dict):
        return [(path or ".", f"expected an object, got {value!r}")]
    prefix = f"{path}." if path else ""
    problems = [
        (f"{prefix}{key}", "required input missing") for key in required if value.get(key) is None
    ]
    for key, item in value.items():
        if key not in properties:
            problems.append(
                (f"{prefix}{key}", f"unknown property (allowed: {', '.join(sorted(properties))})")
            )
        else:
            problems.extend(_spec_problems(package, f"{prefix}{key}", item, properties[key]))
    return problems


def input_problems(package: str, token: str, inputs: dict[str, Any]) -> list[Problem]:
    """Every problem of a resource's inputs (empty when they match the schema)."""
    definition = resource(package, token)
    return object_problems(
        package,
        "",
        inputs,
        definition.get("inputProperties", {}),
        definition.get("requiredInputs", []),
    )


def function_problems(package: str, token: str, args: dict[str, Any]) -> list[Problem]:
    """Every problem of a function's arguments."""
    try:
        inputs = schema(package)["functions"][token].get("inputs") or {}
    except KeyError:
        return [("", f"{package} has no function {token!r}")]
    return object_problems(
        package, "", args, inputs.get("properties", {}), inputs.get("required", [])
    )


# --- compaction --------------------------------------------------------------------------


def _compact_spec(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in SPEC_KEYS:
        if key not in spec:
            continue
        value = spec[key]
        out[key] = _compact_spec(value) if isinstance(value, dict) else value
    return out


def _compact_object(definition: dict[str, Any], *keys: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        value = definition.get(key)
        if value is None:
            continue
        if key.endswith("roperties"):
            out[key] = {name: _compact_spec(spec) for name, spec in sorted(value.items())}
        else:
            out[key] = value
    return out


def compact_schema(full: dict[str, Any]) -> dict[str, Any]:
    """A provider schema reduced to what input checks and outputs need."""
    resource_keys = ("inputProperties", "requiredInputs", "properties", "required")
    object_keys = ("properties", "required")
    functions = {
        token: {
            part: _compact_object(definition.get(part) or {}, *object_keys)
            for part in ("inputs", "outputs")
        }
        for token, definition in sorted(full.get("functions", {}).items())
    }
    return {
        "name": full["name"],
        "resources": {
            token: _compact_object(definition, *resource_keys)
            for token, definition in sorted(full.get("resources", {}).items())
        },
        "types": {
            token: _compact_object(definition, *object_keys)
            for token, definition in sorted(full.get("types", {}).items())
        },
        "functions": functions,
    }


def compact_text(full: dict[str, Any]) -> str:
    return json.dumps(compact_schema(full), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m orbitlab_lab.emulate.schema FULL.json > compact.json
    sys.stdout.write(compact_text(json.loads(Path(sys.argv[1]).read_text())))
