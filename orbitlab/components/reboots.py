"""Which container changes the real provider answers with a reboot, and finding them.

bpg's provider (v0.111.1, which pulumi-proxmoxve 8.6.0 bridges) updates a
``ContainerLegacy`` in place and then, if the container is to keep running, reboots it when
one of :data:`REBOOT_INPUTS` changed (``proxmoxtf/resource/container/container.go``,
``containerUpdate``, ``rebootRequired``). For an appliance a reboot is an outage of its
Sector (no egress while its gateway boots, no names while its DNS does), so the components
say so in ``pulumi preview``: each appliance compares what it declares now with what it
declared when last deployed (:func:`reboot_changes`) and warns, naming the appliance and the
attributes.

Paths are the provider's input names (camelCase) with ``.`` between levels and ``[n]`` for
list items; a rule path with ``[]`` stands for every item.

>>> old = {"memory": {"dedicated": 128, "swap": 0}, "cpu": {"cores": 1}}
>>> new = {"memory": {"dedicated": 256, "swap": 0}, "cpu": {"cores": 2}}
>>> changed_paths(old, new)
['cpu.cores', 'memory.dedicated']
>>> reboot_changes(old, new)
[('memory.dedicated', 128, 256)]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: What bpg's container update reboots a running container for (``rebootRequired``): the
#: console, the root disk's mount options, environment variables, DNS, hostname,
#: entrypoint, memory, device passthrough, ID maps, mount points, any NIC or IP
#: configuration, and the OS type. CPU, features, description, tags, ``startOnBoot`` and a
#: grown disk are updated without one.
REBOOT_INPUTS: tuple[str, ...] = (
    "console",
    "disk.mountOptions",
    "environmentVariables",
    "initialization.dns",
    "initialization.hostname",
    "initialization.entrypoint",
    "memory",
    "devicePassthroughs",
    "idmaps",
    "mountPoints",
    "networkInterfaces",
    "initialization.ipConfigs",
    "operatingSystem.type",
)
REBOOT_SOURCE = (
    "bpg/terraform-provider-proxmox v0.111.1 proxmoxtf/resource/container/container.go "
    "(containerUpdate, rebootRequired)"
)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """The concrete paths at which ``new`` differs from ``old`` (absent and ``None`` are
    alike; a list of another length has changed as a whole)."""
    if isinstance(old, Mapping) or isinstance(new, Mapping):
        old_map = old if isinstance(old, Mapping) else {}
        new_map = new if isinstance(new, Mapping) else {}
        if (old is None) != (new is None) and not (old_map or new_map):
            return []
        keys = sorted(set(old_map) | set(new_map))
        return [
            changed
            for key in keys
            for changed in changed_paths(
                old_map.get(key), new_map.get(key), f"{path}.{key}" if path else key
            )
        ]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            changed
            for index, (before, after) in enumerate(zip(old, new, strict=True))
            for changed in changed_paths(before, after, f"{path}[{index}]")
        ]
    return [] if _plain(old) == _plain(new) else [path]


def general(path: str) -> str:
    """A concrete path with its list indices as ``[]``.

    >>> general("networkInterfaces[1].mtu")
    'networkInterfaces[].mtu'
    """
    return re.sub(r"\[\d+\]", "[]", path)


def under(path: str, prefixes: Iterable[str]) -> bool:
    """Whether a concrete ``path`` lies at or below one of the rule paths ``prefixes``.

    >>> under("networkInterfaces[0].mtu", ["networkInterfaces"]), under("cpu.cores", ["cpu.x"])
    (True, False)
    """
    shape = general(path)
    return any(
        shape == prefix or shape.startswith((f"{prefix}.", f"{prefix}[")) for prefix in prefixes
    )


def value_at(value: Any, path: str) -> Any:
    """The value at a concrete path (None where there is none).

    >>> value_at({"a": [{"b": 1}]}, "a[0].b")
    1
    """
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            value = value[index] if isinstance(value, list) and index < len(value) else None
        else:
            value = value.get(part) if isinstance(value, Mapping) else None
    return _plain(value)


def reboot_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Each change of a container's inputs that the provider answers with a reboot: its
    path, the value before and after."""
    return [
        (path, value_at(old, path), value_at(new, path))
        for path in changed_paths(old, new)
        if under(path, REBOOT_INPUTS)
    ]


def reboot_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a container's inputs (provider names) that a change of reboots it.

    >>> reboot_inputs({"memory": {"dedicated": 128}, "cpu": {"cores": 1},
    ...                "initialization": {"hostname": "r", "dns": {"servers": ["192.0.2.53"]}}})
    {'initialization': {'dns': {'servers': ['192.0.2.53']}, 'hostname': 'r'}, 'memory': \
{'dedicated': 128}}
    """
    kept: dict[str, Any] = {}
    for path in REBOOT_INPUTS:
        *parents, leaf = path.split(".")
        source: Any = inputs
        for part in parents:
            source = source.get(part) if isinstance(source, Mapping) else None
        if not isinstance(source, Mapping) or source.get(leaf) is None:
            continue
        target = kept
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = source[leaf]
    return {key: _sorted(value) for key, value in sorted(kept.items())}


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted(item) for key, item in sorted(value.items())}
    return value


def describe(changes: Iterable[tuple[str, Any, Any]]) -> str:
    """Changes as a user reads them.

    >>> describe([("memory.dedicated", 128, 256), ("initialization.hostname", None, "r")])
    'memory.dedicated 128 -> 256, initialization.hostname (none) -> r'
    """
    return ", ".join(f"{path} {_shown(old)} -> {_shown(new)}" for path, old, new in changes)


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    return json.dumps(value, sort_keys=True) if isinstance(value, Mapping | list) else str(value)


def camel_case(value: Any) -> Any:
    """Keyword arguments as the provider names its inputs (``ip_configs`` → ``ipConfigs``).

    >>> camel_case({"ip_configs": [{"ipv4": {"address": "a"}}], "vm_id": 1})
    {'ipConfigs': [{'ipv4': {'address': 'a'}}], 'vmId': 1}
    """
    if isinstance(value, Mapping):
        return {_camel(str(key)): camel_case(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [camel_case(item) for item in value]
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
