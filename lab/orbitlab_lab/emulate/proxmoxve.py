"""The stand-in ``proxmoxve`` 8.6.0 plugin: the emulated cluster behind the provider's API.

Resource types: the SDN controller (EVPN), zones (EVPN, VXLAN), VNets, subnets and the
applier; ``download.File``; ``ContainerLegacy``. Invokes: ``sdn.getVnets`` and
``sdn.getZones``, answered from the cluster (its config with pending changes), and
``getVmsLegacy`` / ``getContainersLegacy`` (every guest: the emulator's containers and a
seeded cluster's VMs and containers, ``emulate start --seed``) and ``getDatastores`` (a
node's storages, a seeded cluster's layout included). The provider
needs ``proxmoxve:endpoint`` (a node's API address) and ``proxmoxve:apiToken``
(``user@realm!tokenid=secret``; the secret part is never stored or logged).

Every input is checked as the real provider checks it at plan time, and as Proxmox checks
it when an object is created or changed (:mod:`orbitlab_lab.emulate.rules`); replacements,
updates in place and a container's reboots follow the real provider
(:mod:`orbitlab_lab.emulate.rules.updates`): an SDN object's ID, any change of a subnet, every
download property but its timeouts and overwrite flags, and a container's node, VMID,
privilege mode, template and root disk storage replace it; a VNet's zone, a zone's peers or
a grown disk are updated in place; a container's memory, NICs, DNS or hostname are updated
and reboot it.

>>> container_of({"nodeName": "pve1", "vmId": 10011.0, "initialization": {"hostname": "r",
...               "ipConfigs": [{"ipv4": {"address": "172.16.0.1/24"}}]},
...               "operatingSystem": {"templateFileId": "local:vztmpl/a.tar.xz"},
...               "networkInterfaces": [{"name": "eth0", "bridge": "olvn1001"}]}).nics[0]
{'name': 'eth0', 'bridge': 'olvn1001', 'mac': None, 'mtu': None, 'ipv4': {'address': \
'172.16.0.1/24', 'gateway': None}}
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

from orbitlab.components.reboots import changed_paths
from orbitlab_lab.emulate import ProxmoxError
from orbitlab_lab.emulate import cluster as c
from orbitlab_lab.emulate.access import Access
from orbitlab_lab.emulate.plugin import Call, ResourceType, StandIn, main
from orbitlab_lab.emulate.rules import APPLY_RULES, PLAN_RULES
from orbitlab_lab.emulate.rules import permissions as perm
from orbitlab_lab.emulate.rules.api import http_error
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
from orbitlab_lab.emulate.rules.updates import APPLIER, reboots_for, replaced_by
from orbitlab_lab.emulate.wire import Secret

VERSION = "8.6.0"
TOKEN = re.compile(r"^(?P<user>[^@\s]+@[^!\s]+)!(?P<id>[^=\s]+)=(?P<secret>\S+)$")
TOKEN_HELP = (
    "set it with `pulumi config set --secret proxmoxve:apiToken 'user@pve!tokenid=<secret>'` "
    "(or PROXMOX_VE_API_TOKEN)"
)


def configure(config: dict[str, Any]) -> dict[str, Any]:
    """Check the provider config: an endpoint on a node of the cluster and an API token."""
    token = config.get("apiToken")
    value = token.value if isinstance(token, Secret) else token
    if not value:
        raise ProxmoxError(f"the Proxmox VE API token is missing: {TOKEN_HELP}")
    match = TOKEN.match(str(value))
    if match is None:
        raise ProxmoxError(
            f"the Proxmox VE API token is not 'user@realm!tokenid=secret': {TOKEN_HELP}"
        )
    endpoint = str(config.get("endpoint") or "")
    if not endpoint:
        raise ProxmoxError(
            "the Proxmox VE endpoint is missing: set proxmoxve:endpoint (e.g. "
            "https://<node address>:8006/) or PROXMOX_VE_ENDPOINT"
        )
    return {
        "apiToken": Secret(str(value)),
        "endpoint": endpoint,
        "user": f"{match.group('user')}!{match.group('id')}",
    }


def endpoint_node(endpoint: str, nodes: dict[str, Any]) -> str | None:
    """The node an API endpoint reaches: the one whose address is the endpoint's host, or
    whose name is the host or its first label (``pve1.home.arpa``, as the home network's
    DNS names it); None for an endpoint that reaches no node.

    >>> nodes = {"pve1": {"address": "192.0.2.11"}, "pve2": {"address": "192.0.2.12"}}
    >>> [endpoint_node(url, nodes) for url in ("https://192.0.2.12:8006/",
    ...     "https://pve1.home.arpa:8006/", "https://PVE1:8006", "https://pve9.home.arpa/")]
    ['pve2', 'pve1', 'pve1', None]
    """
    host = (urlsplit(endpoint).hostname or "").rstrip(".")
    is_address = host.replace(".", "").isdigit()
    for name, node in sorted(nodes.items()):
        if host == node["address"] or (not is_address and host.split(".")[0] == name.lower()):
            return name
    return None


def _check_endpoint(call: Call) -> None:
    endpoint = str(call.config.get("endpoint", ""))
    if endpoint_node(endpoint, call.store.read()["nodes"]) is None:
        host = urlsplit(endpoint).hostname
        raise ProxmoxError(
            f'Get "{endpoint}api2/json": dial tcp {host}:8006: connect: connection refused '
            "(the endpoint reaches no node of the emulated cluster: use a node's address, or "
            "a host name whose first label is a node's name)"
        )


def _number(value: Any) -> int | None:
    return None if value is None else int(value)


def access_of(state: dict[str, Any]) -> Access | None:
    """The token's ACLs (None: a root@pam token, which Proxmox never checks)."""
    found = state.get("access")
    return None if found is None else Access.from_state(found)


def _authorize(call: Call, calls: list[perm.ApiCall]) -> None:
    """Run the checks of the API calls bpg makes, in order; the first failing one refuses
    with Proxmox's 403 (:mod:`orbitlab_lab.emulate.rules.permissions`)."""
    access = access_of(call.store.read())
    if access is None:
        return
    for api_call in calls:
        try:
            for check in api_call.checks:
                access.check(check)
        except ProxmoxError as refused:
            if not api_call.wording:
                raise
            error = http_error(403, refused.reason)
            raise ProxmoxError(api_call.wording.format(error=error)) from None


def visible_to(state: dict[str, Any]) -> Any:
    """What a listing may show the token: a test of a listing entry's check."""
    access = access_of(state)
    return lambda need: access is None or access.passes(need)


def _zone_of_vnet(state: dict[str, Any], vnet: str) -> str:
    found = state["sdn"]["config"]["vnets"].get(vnet) or state["sdn"]["running"]["vnets"].get(vnet)
    return (found or {}).get("zone", "localnetwork")


def _bridges(state: dict[str, Any], *inputs: dict[str, Any]) -> list[perm.Bridge]:
    """Each NIC's bridge and its zone (``localnetwork`` for a plain bridge)."""
    bridges = [
        (index, nic.get("bridge", "vmbr0"))
        for given in inputs
        for index, nic in enumerate(given.get("networkInterfaces") or [])
    ]
    return [perm.Bridge(index, _zone_of_vnet(state, name), name) for index, name in bridges]


# --- SDN ---------------------------------------------------------------------------------


def _wording(what: str) -> dict[str, str]:
    """How bpg's SDN resources introduce an error (``Unable to Create SDN VNet: ...``)."""
    return {
        action: f"Unable to {action.title()} {what}" for action in ("create", "update", "delete")
    }


def _replaces(token: str) -> Any:
    return lambda changed: replaced_by(token, changed)


def _sdn(
    token: str, kind: str, id_key: str, props: Any, computed: dict[str, Any], what: str
) -> ResourceType:
    """A resource type for an SDN object whose ID is the input ``id_key``."""

    def create(call: Call, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _check_endpoint(call)
        object_id = inputs[id_key]
        _authorize(call, perm.sdn_calls(kind, "create", object_id, inputs.get("zone")))
        c.create_sdn(call.store, kind, object_id, props(inputs))
        call.log(f"created {kind.removesuffix('s')} {object_id} (pending)")
        return object_id, {**inputs, **computed}

    def update(call: Call, object_id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict:
        _authorize(call, perm.sdn_calls(kind, "update", object_id, olds.get("zone")))
        c.update_sdn(call.store, kind, object_id, props(news))
        call.log(f"updated {kind.removesuffix('s')} {object_id} (pending)")
        return {**news, **computed}

    def delete(call: Call, object_id: str, olds: dict[str, Any]) -> None:
        _authorize(call, perm.sdn_calls(kind, "delete", object_id, olds.get("zone")))
        c.delete_sdn(call.store, kind, object_id)
        call.log(f"deleted {kind.removesuffix('s')} {object_id} (pending)")

    return ResourceType(
        create,
        update,
        delete,
        replaces=_replaces(token),
        wording=_wording(what),
        preview=lambda inputs: computed,
    )


def _props(kind_type: str | None, id_key: str) -> Any:
    def props(inputs: dict[str, Any]) -> dict[str, Any]:
        found = {key: _plain_number(value) for key, value in inputs.items() if key != id_key}
        return {"type": kind_type, **found} if kind_type else found

    return props


def _plain_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain_number(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain_number(item) for key, item in value.items()}
    return value


ZONE_OUTPUTS = {"pending": True, "state": "new"}


def _subnet() -> ResourceType:
    def props(inputs: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in inputs.items()}

    def subnet_key(call: Call, inputs: dict[str, Any]) -> str:
        vnet = call.store.read()["sdn"]["config"]["vnets"].get(inputs["vnet"])
        if vnet is None:
            raise ProxmoxError(f"sdn vnet '{inputs['vnet']}' does not exist", 500)
        return c.subnet_id(vnet["zone"], inputs["cidr"])

    def authorize(call: Call, action: str, subnet: str, inputs: dict[str, Any]) -> None:
        zone = _zone_of_vnet(call.store.read(), inputs["vnet"])
        _authorize(call, perm.subnet_calls(action, zone, inputs["vnet"], subnet))

    def create(call: Call, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _check_endpoint(call)
        object_id = subnet_key(call, inputs)
        authorize(call, "create", object_id, inputs)
        c.create_sdn(call.store, "subnets", object_id, props(inputs))
        call.log(f"created subnet {object_id} (pending)")
        return object_id, inputs

    def update(call: Call, object_id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict:
        authorize(call, "update", object_id, olds)
        c.update_sdn(call.store, "subnets", object_id, props(news))
        call.log(f"updated subnet {object_id} (pending)")
        return news

    def delete(call: Call, object_id: str, olds: dict[str, Any]) -> None:
        authorize(call, "delete", object_id, olds)
        c.delete_sdn(call.store, "subnets", object_id)
        call.log(f"deleted subnet {object_id} (pending)")

    return ResourceType(
        create, update, delete, replaces=_replaces(SUBNET), wording=_wording("SDN Subnet")
    )


def _applier() -> ResourceType:
    def apply(call: Call, why: str) -> None:
        _authorize(call, perm.apply_calls())
        record = c.apply_sdn(call.store, call.name, why)
        warned = "".join(f"; WARNING {warning}" for warning in record["warnings"])
        call.log(f"applied SDN (apply #{record['n']}, {why}){warned}")

    def create(call: Call, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _check_endpoint(call)
        if inputs.get("onCreate", True):
            apply(call, "create")
        return str(int(time.time() * 1000)), inputs

    def update(call: Call, applier_id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict:
        apply(call, "update")  # the provider re-applies on an in-place update
        return news

    def delete(call: Call, applier_id: str, olds: dict[str, Any]) -> None:
        if olds.get("onDestroy", True):
            apply(call, "delete")

    return ResourceType(
        create,
        update,
        delete,
        replaces=_replaces(APPLIER),
        wording={
            "create": "Unable to Apply SDN Configuration",
            "update": "Unable to Re-Apply SDN Configuration",
            "delete": "Unable to Apply SDN Configuration",
        },
    )


# --- downloads and containers ------------------------------------------------------------

DOWNLOAD_DEFAULTS = {"overwrite": True, "uploadTimeout": 600, "verify": True}


def _download() -> ResourceType:
    def create(call: Call, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _check_endpoint(call)
        file_name = inputs.get("fileName") or urlsplit(inputs["url"]).path.rsplit("/", 1)[-1]
        volid = f"{inputs['datastoreId']}:{inputs['contentType']}/{file_name}"
        _authorize(
            call,
            perm.download_calls("create", inputs["nodeName"], inputs["datastoreId"], file_name),
        )
        try:
            c.create_volume(
                call.store,
                inputs["nodeName"],
                inputs["datastoreId"],
                inputs["contentType"],
                file_name,
                inputs["url"],
                overwrite=bool(inputs.get("overwriteUnmanaged")),
            )
        except ProxmoxError as error:
            if not error.reason.startswith("refusing to override existing file"):
                raise
            # bpg's own words (fwprovider/nodes/resource_download_file.go, Create)
            raise ProxmoxError(
                "File already exists in the datastore, it was created outside of Terraform or "
                f"is managed by another resource.: File already exists in the datastore: "
                f"'{volid}', error: {http_error(500, error.reason)}"
            ) from None
        call.log(f"downloaded {volid} on {inputs['nodeName']} (not fetched: emulated)")
        return volid, {**DOWNLOAD_DEFAULTS, **inputs, "fileName": file_name, "size": 0}

    def update(call: Call, volid: str, olds: dict[str, Any], news: dict[str, Any]) -> dict:
        return {**olds, **news}

    def delete(call: Call, volid: str, olds: dict[str, Any]) -> None:
        node, storage = olds["nodeName"], olds["datastoreId"]
        _authorize(call, perm.download_calls("delete", node, storage, olds["fileName"]))
        c.delete_volume(call.store, olds["nodeName"], volid)
        call.log(f"deleted {volid} on {olds['nodeName']}")

    return ResourceType(
        create,
        update,
        delete,
        replaces=_replaces(DOWNLOAD),
        wording={
            "create": "Error downloading file from url",
            "delete": "Error deleting datastore file",
        },
        preview=lambda inputs: {"size": 0},
        defaults=DOWNLOAD_DEFAULTS,
    )


def container_of(inputs: dict[str, Any]) -> c.Container:
    """The emulator's view of a ``ContainerLegacy``'s inputs: each NIC with the IPv4 of the
    ``ip_configs`` entry of the same index, and the declared resolvers."""
    init = inputs.get("initialization") or {}
    ip_configs = init.get("ipConfigs") or []
    dns = init.get("dns") or {}
    servers = list(dns.get("servers") or ([dns["server"]] if dns.get("server") else []))
    return c.Container(
        vmid=int(inputs["vmId"]),
        node=inputs["nodeName"],
        hostname=init.get("hostname") or f"CT{int(inputs['vmId'])}",
        template=(inputs.get("operatingSystem") or {}).get("templateFileId", ""),
        storage=(inputs.get("disk") or {}).get("datastoreId", "local"),
        disk_gib=_number((inputs.get("disk") or {}).get("size", 4)),
        nics=tuple(
            {
                "name": nic["name"],
                "bridge": nic.get("bridge", "vmbr0"),
                "mac": nic.get("macAddress"),
                "mtu": _number(nic.get("mtu")),
                "ipv4": _ipv4(ip_configs[index] if index < len(ip_configs) else None),
            }
            for index, nic in enumerate(inputs.get("networkInterfaces") or [])
        ),
        started=bool(inputs.get("started", True)),
        dns={"domain": dns.get("domain"), "servers": servers} if dns else None,
        tags=tuple(sorted(inputs.get("tags") or ())),
    )


def _ipv4(ip_config: dict[str, Any] | None) -> dict[str, Any] | None:
    ipv4 = (ip_config or {}).get("ipv4")
    if not ipv4:
        return None
    return {"address": ipv4.get("address"), "gateway": ipv4.get("gateway")}


def _container() -> ResourceType:
    def create(call: Call, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _check_endpoint(call)
        if inputs.get("vmId") is None:
            raise ProxmoxError("vm_id: the emulated cluster needs a fixed VMID")
        container = container_of(inputs)
        state = call.store.read()
        template_storage = container.template.split(":", 1)[0]
        _authorize(
            call, perm.container_create_calls(inputs, template_storage, _bridges(state, inputs))
        )
        c.create_container(call.store, container)
        call.log(f"created CT {container.vmid} on {container.node} ({container.hostname})")
        return str(container.vmid), inputs

    def update(call: Call, vmid: str, olds: dict[str, Any], news: dict[str, Any]) -> dict:
        container = container_of(news)
        changed = changed_paths(olds, news)
        reboot = tuple(reboots_for(CONTAINER, changed))
        calls = perm.container_update_calls(
            olds, news, changed, bool(reboot), _bridges(call.store.read(), olds, news)
        )
        _authorize(call, calls)
        c.update_container(call.store, container, reboot=reboot if container.started else ())
        rebooted = f", rebooted for {', '.join(reboot)}" if reboot and container.started else ""
        call.log(f"updated CT {vmid}{rebooted}")
        return news

    def delete(call: Call, vmid: str, olds: dict[str, Any]) -> None:
        found = call.store.read()["containers"].get(vmid) or {}
        running = found.get("status", "running") == "running"
        _authorize(call, perm.container_delete_calls(olds["nodeName"], int(vmid), running))
        c.delete_container(call.store, int(vmid))
        call.log(f"deleted CT {vmid}")

    return ResourceType(
        create,
        update,
        delete,
        replaces=_replaces(CONTAINER),
        wording={"create": "error creating container", "delete": "error deleting container"},
    )


# --- invokes -----------------------------------------------------------------------------


def get_vnets(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    _check_endpoint(call)  # a data source reads the API: a preview needs the endpoint too
    state = call.store.read()
    visible = visible_to(state)
    vnets = [
        {
            "id": vnet_id,
            "zone": vnet.get("zone", ""),
            "tag": vnet.get("tag") or 0,
            "alias": vnet.get("alias") or "",
            "isolatePorts": bool(vnet.get("isolatePorts")),
            "vlanAware": bool(vnet.get("vlanAware")),
        }
        for vnet_id, vnet, status in c.sdn_listing(state, "vnets")
        if status != "deleted" and visible(perm.vnet_visible(vnet.get("zone", ""), vnet_id))
    ]
    return {"id": "vnets", "vnets": vnets}


def _zone_record(zone_id: str, zone: dict[str, Any], status: str | None) -> dict[str, Any]:
    return {
        "id": zone_id,
        "type": zone.get("type", ""),
        "vrfVxlan": zone.get("vrfVxlan") or 0,
        "advertiseSubnets": bool(zone.get("advertiseSubnets")),
        "bridge": "",
        "controller": zone.get("controller") or "",
        "dhcp": "",
        "disableArpNdSuppression": bool(zone.get("disableArpNdSuppression")),
        "dns": "",
        "dnsZone": "",
        "exitNodes": list(zone.get("exitNodes") or []),
        "exitNodesLocalRouting": bool(zone.get("exitNodesLocalRouting")),
        "ipam": "",
        "mtu": zone.get("mtu") or 0,
        "nodes": list(zone.get("nodes") or []),
        "peers": list(zone.get("peers") or []),
        "pending": status is not None,
        "primaryExitNode": zone.get("primaryExitNode") or "",
        "reverseDns": "",
        "rtImport": "",
        "serviceVlan": 0,
        "serviceVlanProtocol": "",
        "state": status or "",
    }


def get_zones(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    _check_endpoint(call)  # a data source reads the API: a preview needs the endpoint too
    state = call.store.read()
    visible = visible_to(state)
    wanted = args.get("type")
    zones = [
        _zone_record(zone_id, zone, status)
        for zone_id, zone, status in c.sdn_listing(state, "zones")
        if wanted in (None, "", zone.get("type")) and visible(perm.zone_visible(zone_id))
    ]
    return {"id": "zones", "zones": zones, **({"type": wanted} if wanted else {})}


def _guest_record(vmid: str, guest: dict[str, Any]) -> dict[str, Any]:
    """A guest as bpg's ``proxmoxtf/datasource/containers.go`` (and ``vms.go``) lists it."""
    return {
        "vmId": int(vmid),
        "nodeName": guest["node"],
        "name": guest.get("name") or guest.get("hostname") or "",
        "tags": sorted(guest.get("tags") or ()),
        "status": guest.get("status") or "running",
        "template": False,
    }


def _guests(state: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    visible = visible_to(state)
    found = {vmid: g for vmid, g in state.get("guests", {}).items() if g["type"] == kind}
    if kind == "lxc":
        found.update(state["containers"])
    return [
        _guest_record(vmid, found[vmid])
        for vmid in sorted(found, key=int)
        if visible(perm.guest_visible(vmid))
    ]


def get_vms(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    _check_endpoint(call)
    return {"id": "vms", "vms": _guests(call.store.read(), "qemu")}


def get_containers(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    _check_endpoint(call)
    return {"id": "containers", "containers": _guests(call.store.read(), "lxc")}


def get_datastores(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    """A node's storages, as bpg's ``fwprovider/nodes/datastores/datasource.go`` lists
    ``GET /nodes/{node}/storage`` (no filter: every storage of the node the token may see)."""
    _check_endpoint(call)
    state = call.store.read()
    node = args["nodeName"]
    if node not in state["nodes"]:
        raise ProxmoxError(f"no such cluster node '{node}'", 500)
    shared = set(state.get("shared_storages", ()))
    visible = visible_to(state)
    datastores = [
        {
            "id": storage,
            "nodeName": node,
            "contentTypes": sorted(content),
            "type": "",
            "shared": storage in shared,
            "enabled": True,
            "active": True,
        }
        for storage, content in sorted(state["nodes"][node]["storages"].items())
        if visible(perm.storage_visible(storage))
    ]
    return {"id": node, "nodeName": node, "datastores": datastores}


def stand_in() -> StandIn:
    return StandIn(
        "proxmoxve",
        VERSION,
        {
            APPLIER: _applier(),
            CONTROLLER: _sdn(
                CONTROLLER,
                "controllers",
                "sdnControllerEvpnId",
                _props("evpn", "sdnControllerEvpnId"),
                {"digest": ""},
                "SDN Controller",
            ),
            EVPN_ZONE: _sdn(
                EVPN_ZONE,
                "zones",
                "resourceId",
                _props("evpn", "resourceId"),
                ZONE_OUTPUTS,
                "SDN Zone",
            ),
            VXLAN_ZONE: _sdn(
                VXLAN_ZONE,
                "zones",
                "resourceId",
                _props("vxlan", "resourceId"),
                ZONE_OUTPUTS,
                "SDN Zone",
            ),
            VNET: _sdn(VNET, "vnets", "resourceId", _props(None, "resourceId"), {}, "SDN VNet"),
            SUBNET: _subnet(),
            DOWNLOAD: _download(),
            CONTAINER: _container(),
        },
        {
            "proxmoxve:sdn/getVnets:getVnets": get_vnets,
            GET_ZONES: get_zones,
            "proxmoxve:index/getVmsLegacy:getVmsLegacy": get_vms,
            "proxmoxve:index/getDatastores:getDatastores": get_datastores,
            "proxmoxve:index/getContainersLegacy:getContainersLegacy": get_containers,
        },
        configure,
        plan_rules=PLAN_RULES,
        apply_rules=APPLY_RULES,
    )


if __name__ == "__main__":
    main(stand_in())
