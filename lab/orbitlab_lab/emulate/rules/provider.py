"""The real provider's plan-time validators, for what OrbitLab sends: one entry per rule.

pulumi-proxmoxve 8.6.0 bridges bpg/terraform-provider-proxmox; these rules are read from
bpg's v0.111.1 sources (the version the bridge's ``provider/go.mod`` pins; the files below
are the same at its newest commit in the mirror). The real provider runs them in ``Check``,
before any API call, so a value breaking one fails ``pulumi preview``; the stand-in does the
same, with the message the bridge gives (:func:`check_failure`).

Only the attributes OrbitLab's components and ``examples/homelab`` send are listed (and
``getZones``' only validated argument); an attribute without a validator in bpg has no
entry — a check stricter than the provider is a bug too. The SDN applier and ``getVnets``
have no validators at all; ``getVmsLegacy`` and ``getContainersLegacy`` are called with no
argument (``proxmoxtf/datasource/vms.go``, ``containers.go``: every node's guests).

>>> from orbitlab_lab.emulate.rules.core import violations
>>> [v.message for v in violations(PLAN_RULES, VNET, {"alias": "orbitlab backplane 1/2"})]
... # doctest: +ELLIPSIS
['Invalid Attribute Value Match. Attribute alias alias must contain only alphanumeric \
characters, spaces, hyphens, underscores, dots, and parentheses, got: orbitlab backplane 1/2']
"""

from __future__ import annotations

from orbitlab_lab.emulate.rules.core import Check, Rule, Violation
from orbitlab_lab.emulate.rules.messages import (
    fw_also_requires,
    fw_at_least_one_of,
    fw_cidr,
    fw_ip,
    fw_length_at_most,
    fw_one_of,
    fw_regex,
    fw_string_set,
    fw_within_subnet,
    go_quote,
    sdk_hostname,
    sdk_int_at_least,
    sdk_int_between,
    sdk_item_ip,
    sdk_item_not_empty,
    sdk_items,
    sdk_regex,
    sdk_string_in_slice,
)

BPG = "bpg/terraform-provider-proxmox v0.111.1"

CONTROLLER = "proxmoxve:sdn/controller/evpn:Evpn"
EVPN_ZONE = "proxmoxve:sdn/zone/evpn:Evpn"
VXLAN_ZONE = "proxmoxve:sdn/zone/vxlan:Vxlan"
VNET = "proxmoxve:sdn/vnet:Vnet"
SUBNET = "proxmoxve:sdn/subnet:Subnet"
DOWNLOAD = "proxmoxve:download/file:File"
CONTAINER = "proxmoxve:index/containerLegacy:ContainerLegacy"
GET_ZONES = "proxmoxve:sdn/getZones:getZones"

#: ``validators.SDNID()``: a letter, then letters and digits, ending in one (2 or more), and
#: at most 8 bytes.
SDN_ID = r"\A[A-Za-z][A-Za-z0-9]*[A-Za-z0-9]\Z"
#: The VNet alias: Go's ``\s`` is ``[\t\n\f\r ]``.
VNET_ALIAS = r"\A[()._a-zA-Z0-9\t\n\f\r -]+\Z"
VNET_ALIAS_MESSAGE = (
    "alias must contain only alphanumeric characters, spaces, hyphens, underscores, dots, "
    "and parentheses"
)
#: ``HostnameValidator`` (proxmoxtf/resource/vm/validators.go).
HOSTNAME = (
    r"\A[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*\Z"
)
#: ``validators.FileID`` (proxmoxtf/resource/validators/file.go).
FILE_ID = r"(?i)\A[a-z\d\-_.]+:([a-z\d\-_]+/)?.+\Z"
#: ``validators.MACAddress`` (proxmoxtf/resource/validators/network.go).
MAC = r"\A[A-Fa-f0-9]{2}(:[A-Fa-f0-9]{2}){5}\Z"
OS_TYPES = (
    "alpine",
    "archlinux",
    "centos",
    "debian",
    "devuan",
    "fedora",
    "gentoo",
    "nixos",
    "opensuse",
    "ubuntu",
    "unmanaged",
)

_SDN = "fwprovider/validators/sdn.go"
_CONTROLLER = "fwprovider/cluster/sdn/controller/resource_evpn.go"
_ZONE = "fwprovider/cluster/sdn/zone/resource_generic.go"
_EVPN = "fwprovider/cluster/sdn/zone/resource_evpn.go"
_VXLAN = "fwprovider/cluster/sdn/zone/resource_vxlan.go"
_SET = "fwprovider/types/stringset/attribute.go"
_VNET = "fwprovider/cluster/sdn/vnet/resource.go"
_SUBNET = "fwprovider/cluster/sdn/subnet/resource.go"
_DOWNLOAD = "fwprovider/nodes/resource_download_file.go"
_CT = "proxmoxtf/resource/container/container.go"
_CT_VALIDATORS = "proxmoxtf/resource/container/validators.go"
_VM_VALIDATORS = "proxmoxtf/resource/vm/validators.go"
_ZONES = "fwprovider/cluster/sdn/zone/datasource_zones.go"


def _rule(token: str, path: str, check: Check, files: str, family: str) -> Rule:
    return Rule(token, path, check, f"{BPG} {files}", family)


def _sdn_id(token: str, path: str, attribute: str, where: str) -> tuple[Rule, ...]:
    return (
        _rule(
            token,
            path,
            fw_regex(attribute, SDN_ID, "must be a valid SDN identifier"),
            f"{where}, {_SDN}",
            "sdn id",
        ),
        _rule(token, path, fw_length_at_most(attribute, 8), f"{where}, {_SDN}", "sdn id"),
    )


def _mac_message(value: object) -> str:
    return (
        f'expected "mac_address" to be a valid MAC address (A0:B1:C2:D3:E4:F5), got '
        f"{go_quote(str(value))}"
    )


def _vm_id(value: object, inputs: object, path: str) -> list[str]:
    """``VMIDValidator``: -1 (let Proxmox choose) or 100-2147483647."""
    number = int(value)  # type: ignore[call-overload]
    if number == -1 or 100 <= number <= 2147483647:
        return []
    return [f"expected vm_id to be in the range (100 - 2147483647), got {number}"]


PLAN_RULES: tuple[Rule, ...] = (
    # --- the EVPN controller
    *_sdn_id(
        CONTROLLER,
        "sdnControllerEvpnId",
        "id",
        "fwprovider/cluster/sdn/controller/resource_generic.go",
    ),
    _rule(
        CONTROLLER, "peers", fw_string_set("peers", elements=False), f"{_CONTROLLER}, {_SET}", "set"
    ),
    _rule(CONTROLLER, "", fw_at_least_one_of("fabric", "peers"), _CONTROLLER, "combination"),
    # --- zones
    *_sdn_id(EVPN_ZONE, "resourceId", "id", _ZONE),
    _rule(EVPN_ZONE, "nodes", fw_string_set("nodes"), f"{_ZONE}, {_SET}", "set"),
    _rule(EVPN_ZONE, "exitNodes", fw_string_set("exit_nodes"), f"{_EVPN}, {_SET}", "set"),
    *_sdn_id(VXLAN_ZONE, "resourceId", "id", _ZONE),
    _rule(VXLAN_ZONE, "nodes", fw_string_set("nodes"), f"{_ZONE}, {_SET}", "set"),
    _rule(VXLAN_ZONE, "peers", fw_string_set("peers"), f"{_VXLAN}, {_SET}", "set"),
    # --- VNets
    *_sdn_id(VNET, "resourceId", "id", _VNET),
    *_sdn_id(VNET, "zone", "zone", _VNET),
    _rule(VNET, "alias", fw_regex("alias", VNET_ALIAS, VNET_ALIAS_MESSAGE), _VNET, "alias"),
    _rule(VNET, "alias", fw_length_at_most("alias", 256), _VNET, "alias"),
    # --- subnets
    _rule(SUBNET, "cidr", fw_cidr("cidr"), f"{_SUBNET}, fwprovider/types/ip_cidr.go", "address"),
    *_sdn_id(SUBNET, "vnet", "vnet", _SUBNET),
    _rule(
        SUBNET, "gateway", fw_ip("gateway"), f"{_SUBNET}, fwprovider/types/ip_addr.go", "address"
    ),
    _rule(
        SUBNET,
        "gateway",
        fw_within_subnet("cidr", ("gateway", "dhcpDnsServer")),
        f"{_SUBNET} (ValidateConfig)",
        "combination",
    ),
    # --- the template download
    _rule(
        DOWNLOAD,
        "contentType",
        fw_one_of("content_type", ("iso", "vztmpl", "import")),
        _DOWNLOAD,
        "choice",
    ),
    _rule(
        DOWNLOAD,
        "url",
        fw_regex("url", r"https?://.*", "must match HTTP URL regex `https?://.*`"),
        _DOWNLOAD,
        "pattern",
    ),
    _rule(
        DOWNLOAD,
        "checksum",
        fw_also_requires("checksum", "checksum_algorithm", "checksumAlgorithm"),
        _DOWNLOAD,
        "combination",
    ),
    _rule(
        DOWNLOAD,
        "checksumAlgorithm",
        fw_one_of("checksum_algorithm", ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")),
        _DOWNLOAD,
        "choice",
    ),
    _rule(
        DOWNLOAD,
        "checksumAlgorithm",
        fw_also_requires("checksum_algorithm", "checksum", "checksum"),
        _DOWNLOAD,
        "combination",
    ),
    # --- containers
    _rule(CONTAINER, "vmId", _vm_id, f"{_CT}, {_VM_VALIDATORS} (VMIDValidator)", "range"),
    _rule(CONTAINER, "tags[]", sdk_item_not_empty("tags.{i}"), _CT, "empty"),
    _rule(CONTAINER, "cpu.cores", sdk_int_between("cores", 1, 128), _CT, "range"),
    _rule(CONTAINER, "memory.dedicated", sdk_int_between("dedicated", 16, 268435456), _CT, "range"),
    _rule(CONTAINER, "memory.swap", sdk_int_between("swap", 0, 268435456), _CT, "range"),
    _rule(CONTAINER, "disk.size", sdk_int_at_least("size", 0), _CT, "range"),
    _rule(
        CONTAINER,
        "operatingSystem.templateFileId",
        sdk_regex(
            FILE_ID,
            lambda value: (
                "expected template_file_id to be a valid file "
                f"identifier (datastore-name:iso/some-file.img), got {value}"
            ),
        ),
        f"{_CT}, proxmoxtf/resource/validators/file.go (FileID)",
        "pattern",
    ),
    _rule(
        CONTAINER,
        "operatingSystem.type",
        sdk_string_in_slice("type", OS_TYPES),
        f"{_CT}, {_CT_VALIDATORS}",
        "choice",
    ),
    _rule(CONTAINER, "networkInterfaces", sdk_items("network_interface", high=10), _CT, "items"),
    _rule(
        CONTAINER,
        "networkInterfaces[].macAddress",
        sdk_regex(MAC, _mac_message),
        f"{_CT}, proxmoxtf/resource/validators/network.go (MACAddress)",
        "pattern",
    ),
    _rule(
        CONTAINER,
        "initialization.hostname",
        sdk_hostname("hostname", HOSTNAME),
        f"{_CT}, {_VM_VALIDATORS} (HostnameValidator)",
        "pattern",
    ),
    _rule(
        CONTAINER,
        "initialization.ipConfigs",
        sdk_items("initialization.0.ip_config", high=10),
        _CT,
        "items",
    ),
    _rule(
        CONTAINER,
        "initialization.dns.servers",
        sdk_items("initialization.0.dns.0.servers", low=1),
        _CT,
        "items",
    ),
    _rule(
        CONTAINER,
        "initialization.dns.servers[]",
        sdk_item_ip("initialization.0.dns.0.servers.{i}"),
        _CT,
        "address",
    ),
    # --- data sources
    _rule(
        GET_ZONES,
        "type",
        fw_one_of("type", ("simple", "vlan", "qinq", "vxlan", "evpn")),
        _ZONES,
        "choice",
    ),
)


def check_failure(resource_name: str, violation: Violation) -> str:
    """The reason of a check failure as pulumi-terraform-bridge v3.135.0 words it
    (``pkg/tfbridge/check_failures.go``, ``NewCheckFailure``; its property is left empty)."""
    return f"{violation.message}. Examine values at '{resource_name}.{violation.path}'."


def invoke_failure(violation: Violation) -> str:
    """An invoke's failure as the bridge words it (``pkg/pf/tfbridge/provider_invoke.go``):
    ``<summary>: <detail>``, where a resource's failure has ``<summary>. <detail>``."""
    return violation.message.replace(". ", ": ", 1)
