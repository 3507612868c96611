"""Proxmox's API formats, for what bpg's provider sends it: one entry per rule.

Each rule checks a provider input as the parameter bpg makes of it (``alias`` is the VNet's
``alias``, ``networkInterfaces[1].bridge`` is ``net1``'s ``bridge``) against the schema
Proxmox validates every request with, before its handler runs. A refusal is an HTTP 400
"Parameter verification failed." naming each parameter (pve-common
``src/PVE/JSONSchema.pm``, ``validate``), which bpg reports as ``received an HTTP 400
response - Reason: ...`` (``proxmox/api/client.go``, :func:`http_error`). The emulated
cluster checks them when the provider creates or updates an object, so they fail ``pulumi
up``, not ``preview``. Rules that relate objects (a VNet's zone exists, a tag is free, a
NIC's MTU fits its bridge) are the cluster's own (:mod:`orbitlab_lab.emulate.cluster`).

>>> from orbitlab_lab.emulate.rules.core import violations
>>> [v.message for v in violations(APPLY_RULES, VNET, {"resourceId": "x", "tag": 0})]
['vnet: value does not match the regex pattern', 'tag: value must have a minimum value of 1']
>>> http_error(400, "Parameter verification failed.", ["tag: value must have a minimum value of 1"])
'received an HTTP 400 response - Reason: Parameter verification failed. (tag: value must have \
a minimum value of 1)'
"""

from __future__ import annotations

from collections.abc import Sequence

from orbitlab_lab.emulate.rules.core import Check, Rule
from orbitlab_lab.emulate.rules.messages import (
    pve_enum,
    pve_format,
    pve_in_property_string,
    pve_max_length,
    pve_pattern,
    pve_range,
)
from orbitlab_lab.emulate.rules.provider import (
    CONTAINER,
    CONTROLLER,
    DOWNLOAD,
    EVPN_ZONE,
    OS_TYPES,
    SUBNET,
    VNET,
    VXLAN_ZONE,
)

PVE_NETWORK = "proxmox/pve-network ecf98c5 (2026-03-31)"
PVE_CONTAINER = "proxmox/pve-container 94f5585 (6.1.10)"
PVE_COMMON = "proxmox/pve-common f665029 (9.2.1)"
PVE_STORAGE = "proxmox/pve-storage 0c56bad (2026-07-24)"

_CONTROLLERS = f"{PVE_NETWORK} src/PVE/Network/SDN/Controllers/Plugin.pm, Controllers/EvpnPlugin.pm"
_ZONES = f"{PVE_NETWORK} src/PVE/Network/SDN/Zones/Plugin.pm"
_EVPN = f"{PVE_NETWORK} src/PVE/Network/SDN/Zones/EvpnPlugin.pm"
_VXLAN = f"{PVE_NETWORK} src/PVE/Network/SDN/Zones/VxlanPlugin.pm"
_VNETS = f"{PVE_NETWORK} src/PVE/Network/SDN/VnetPlugin.pm"
_SUBNETS = f"{PVE_NETWORK} src/PVE/Network/SDN/SubnetPlugin.pm"
_CT = f"{PVE_CONTAINER} src/PVE/LXC/Config.pm"
_FORMATS = f"{PVE_COMMON} src/PVE/JSONSchema.pm"
_DOWNLOAD = f"{PVE_STORAGE} src/PVE/API2/Storage/Status.pm (download_url)"

ZONE_OR_VNET_ID = "[a-zA-Z][a-zA-Z0-9]*[a-zA-Z0-9]"
CONTROLLER_ID = "[a-zA-Z][a-zA-Z0-9_-]*[a-zA-Z0-9]"
#: The VNet alias: ``\)-_`` is a range from ``)`` to ``_``, which holds ``/`` and ``:``.
VNET_ALIAS = r"[\(\)-_.\w\d\s]{0,256}"
NIC_KEY = r"[-_.\w\d]+"
#: ``$NEW_DISK_RE`` (pve-container ``src/PVE/LXC.pm``): a new volume's size in GiB.
NEW_DISK_SIZE = r"\d+(\.\d+)?"


def _rule(token: str, path: str, check: Check, source: str, family: str) -> Rule:
    return Rule(token, path, check, source, family)


def _nic(path: str, key: str, check: Check, family: str) -> Rule:
    return Rule(CONTAINER, path, pve_in_property_string("net{n}", key, check), _CT, family)


APPLY_RULES: tuple[Rule, ...] = (
    # --- the EVPN controller
    _rule(
        CONTROLLER,
        "sdnControllerEvpnId",
        pve_pattern("controller", CONTROLLER_ID),
        _CONTROLLERS,
        "sdn id",
    ),
    _rule(
        CONTROLLER, "sdnControllerEvpnId", pve_max_length("controller", 64), _CONTROLLERS, "sdn id"
    ),
    _rule(CONTROLLER, "asn", pve_range("asn", 0, 2**32 - 1), _CONTROLLERS, "range"),
    _rule(
        CONTROLLER,
        "peers",
        pve_format("peers", "ip", listed=True),
        f"{_CONTROLLERS}, {_FORMATS}",
        "address",
    ),
    # --- zones
    *(
        rule
        for token in (EVPN_ZONE, VXLAN_ZONE)
        for rule in (
            _rule(token, "resourceId", pve_pattern("zone", ZONE_OR_VNET_ID), _ZONES, "sdn id"),
            _rule(token, "resourceId", pve_max_length("zone", 8), _ZONES, "sdn id"),
            _rule(
                token,
                "nodes",
                pve_format("nodes", "pve-node", listed=True),
                f"{_ZONES}, {_FORMATS}",
                "pattern",
            ),
        )
    ),
    _rule(EVPN_ZONE, "vrfVxlan", pve_range("vrf-vxlan", 1, 16777215), _EVPN, "range"),
    _rule(
        EVPN_ZONE, "exitNodes", pve_format("exitnodes", "pve-node", listed=True), _EVPN, "pattern"
    ),
    _rule(
        EVPN_ZONE, "primaryExitNode", pve_format("exitnodes-primary", "pve-node"), _EVPN, "pattern"
    ),
    _rule(
        VXLAN_ZONE,
        "peers",
        pve_format("peers", "ip", listed=True),
        f"{_VXLAN}, {_FORMATS}",
        "address",
    ),
    # --- VNets
    _rule(VNET, "resourceId", pve_pattern("vnet", ZONE_OR_VNET_ID), _VNETS, "sdn id"),
    _rule(VNET, "resourceId", pve_max_length("vnet", 8), _VNETS, "sdn id"),
    _rule(VNET, "tag", pve_range("tag", 1, 16777215), _VNETS, "range"),
    _rule(VNET, "alias", pve_pattern("alias", VNET_ALIAS), _VNETS, "alias"),
    _rule(VNET, "alias", pve_max_length("alias", 256), _VNETS, "alias"),
    # --- subnets
    _rule(
        SUBNET, "cidr", pve_format("subnet", "CIDR"), f"{_SUBNETS} (pve-sdn-subnet-id)", "address"
    ),
    _rule(SUBNET, "gateway", pve_format("gateway", "ip"), _SUBNETS, "address"),
    # --- the template download
    _rule(DOWNLOAD, "url", pve_pattern("url", "https?://.*"), _DOWNLOAD, "pattern"),
    _rule(
        DOWNLOAD,
        "contentType",
        pve_enum("content", ("iso", "vztmpl", "import")),
        _DOWNLOAD,
        "choice",
    ),
    _rule(DOWNLOAD, "fileName", pve_max_length("filename", 255), _DOWNLOAD, "pattern"),
    _rule(
        DOWNLOAD,
        "checksumAlgorithm",
        pve_enum("checksum-algorithm", ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")),
        _DOWNLOAD,
        "choice",
    ),
    # --- containers
    _rule(CONTAINER, "vmId", pve_format("vmid", "pve-vmid"), f"{_CT}, {_FORMATS}", "range"),
    _rule(CONTAINER, "vmId", pve_range("vmid", 100, 999999999), f"{_CT}, {_FORMATS}", "range"),
    _rule(CONTAINER, "initialization.hostname", pve_format("hostname", "dns-name"), _CT, "pattern"),
    _rule(CONTAINER, "initialization.hostname", pve_max_length("hostname", 255), _CT, "pattern"),
    _rule(CONTAINER, "description", pve_max_length("description", 8192), _CT, "pattern"),
    _rule(CONTAINER, "tags[]", pve_format("tags", "pve-tag"), f"{_CT}, {_FORMATS}", "pattern"),
    _rule(CONTAINER, "memory.dedicated", pve_range("memory", 16), _CT, "range"),
    _rule(CONTAINER, "memory.swap", pve_range("swap", 0), _CT, "range"),
    _rule(CONTAINER, "cpu.cores", pve_range("cores", 1, 8192), _CT, "range"),
    _rule(
        CONTAINER,
        "disk.size",
        pve_pattern("rootfs", NEW_DISK_SIZE),
        f"{PVE_CONTAINER} src/PVE/LXC.pm ($NEW_DISK_RE)",
        "pattern",
    ),
    _rule(CONTAINER, "operatingSystem.type", pve_enum("ostype", OS_TYPES), _CT, "choice"),
    _rule(
        CONTAINER,
        "initialization.dns.servers",
        pve_format("nameserver", "ip", listed=True),
        f"{_CT} (lxc-ip-with-ll-iface-list)",
        "address",
    ),
    _rule(
        CONTAINER,
        "initialization.dns.domain",
        pve_format("searchdomain", "dns-name", listed=True),
        _CT,
        "pattern",
    ),
    _nic("networkInterfaces[].name", "name", pve_pattern("net{n}.name", NIC_KEY), "pattern"),
    _nic("networkInterfaces[].bridge", "bridge", pve_pattern("net{n}.bridge", NIC_KEY), "pattern"),
    _nic(
        "networkInterfaces[].macAddress",
        "hwaddr",
        pve_format("net{n}.hwaddr", "mac-addr"),
        "pattern",
    ),
    _nic("networkInterfaces[].mtu", "mtu", pve_range("net{n}.mtu", 64, 65535), "range"),
    _nic(
        "initialization.ipConfigs[].ipv4.address",
        "ip",
        pve_format("net{n}.ip", "pve-ipv4-config"),
        "address",
    ),
    _nic(
        "initialization.ipConfigs[].ipv4.gateway", "gw", pve_format("net{n}.gw", "ipv4"), "address"
    ),
)


def http_error(code: int, reason: str, errors: Sequence[str] = ()) -> str:
    """An API error as bpg's client reports it (``proxmox/api/client.go``,
    ``validateResponseCode``; ``proxmox/api/errors.go``): the status text, then each
    parameter's error (its trailing newline cut) in parentheses, joined by `` - ``."""
    listed = f" ({' - '.join(error.rstrip() for error in errors)})" if errors else ""
    return f"received an HTTP {code} response - Reason: {reason}{listed}"
