"""What a change does, as the real provider has it: replace, update in place, or reboot.

For each resource type, the inputs whose change replaces the resource (Terraform's
``RequiresReplace`` / ``ForceNew``, read from bpg v0.111.1 and, for the SDN objects, seen in
the bridge's ``Diff``); every other change is an update in place. A ``ContainerLegacy``
updated in place is rebooted, when it is to keep running, if one of
:data:`~orbitlab.components.reboots.REBOOT_INPUTS` changed.

A path ending in ``#`` is a list's length (a mount point added or removed replaces the
container; a mount point's options changing does not); :data:`ANY` means any change.

>>> replaced_by(VNET, ["zone", "alias"]), replaced_by(VNET, ["resourceId"])
([], ['resourceId'])
>>> replaced_by(CONTAINER, ["disk.size", "disk.datastoreId", "memory.dedicated"])
['disk']
"""

from __future__ import annotations

from collections.abc import Iterable

from orbitlab.components.reboots import REBOOT_INPUTS, REBOOT_SOURCE, general, under
from orbitlab_lab.emulate.rules.provider import (
    BPG,
    CONTAINER,
    CONTROLLER,
    DOWNLOAD,
    EVPN_ZONE,
    SUBNET,
    VNET,
    VXLAN_ZONE,
)

ANY = "*"
APPLIER = "proxmoxve:sdn/applier:Applier"

#: Per resource type: the inputs whose change replaces it, and where that is decided.
REPLACE_INPUTS: dict[str, tuple[tuple[str, ...], str]] = {
    CONTROLLER: (("sdnControllerEvpnId",), "fwprovider/cluster/sdn/controller/resource_generic.go"),
    EVPN_ZONE: (("resourceId",), "fwprovider/cluster/sdn/zone/resource_generic.go"),
    VXLAN_ZONE: (("resourceId",), "fwprovider/cluster/sdn/zone/resource_generic.go"),
    # a VNet's zone is updated in place (it has no RequiresReplace)
    VNET: (("resourceId",), "fwprovider/cluster/sdn/vnet/resource.go"),
    # its computed ID has RequiresReplace without UseStateForUnknown: any change replaces it
    SUBNET: ((ANY,), "fwprovider/cluster/sdn/subnet/resource.go"),
    APPLIER: (("onCreate", "onDestroy"), "fwprovider/cluster/sdn/applier/resource.go"),
    DOWNLOAD: (
        (
            "contentType",
            "fileName",
            "datastoreId",
            "nodeName",
            "url",
            "checksum",
            "checksumAlgorithm",
            "decompressionAlgorithm",
        ),
        "fwprovider/nodes/resource_download_file.go",
    ),
    # a grown disk is resized in place; a NIC, the hostname, DNS, memory, the OS type are
    # updated in place (and reboot it, see REBOOT_INPUTS)
    CONTAINER: (
        (
            "nodeName",
            "unprivileged",
            "template",
            "poolId",
            "vmId",
            "disk.datastoreId",
            "operatingSystem.templateFileId",
            "mountPoints#",
            "mountPoints[].size",
            "mountPoints[].volume",
            "initialization.userAccount",
            "clone",
        ),
        "proxmoxtf/resource/container/container.go (ForceNew, CustomizeDiff)",
    ),
}
REBOOTS = {CONTAINER: (REBOOT_INPUTS, REBOOT_SOURCE)}
SOURCES = {token: f"{BPG} {where}" for token, (_, where) in REPLACE_INPUTS.items()}


def _replaces(path: str, rules: Iterable[str]) -> bool:
    for rule in rules:
        if rule == ANY:
            return True
        if rule.endswith("#"):
            if general(path) == rule[:-1]:
                return True
        elif under(path, [rule]):
            return True
    return False


def replaced_by(token: str, changed: Iterable[str]) -> list[str]:
    """The top-level inputs whose changes (concrete paths) replace a resource of ``token``."""
    rules = REPLACE_INPUTS.get(token, ((), ""))[0]
    return sorted({_top(path) for path in changed if _replaces(path, rules)})


def reboots_for(token: str, changed: Iterable[str]) -> list[str]:
    """The changes (concrete paths) a running resource of ``token`` is rebooted for."""
    rules = REBOOTS.get(token, ((), ""))[0]
    return [path for path in changed if under(path, rules)]


def _top(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]
