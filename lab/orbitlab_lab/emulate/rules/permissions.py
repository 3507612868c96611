"""The permission checks behind each operation of the stand-in provider: the API calls
bpg's provider makes for it, in order, and what Proxmox checks on each.

An operation is a list of :class:`ApiCall`; each call's checks run in order and the first
that fails refuses the call with Proxmox's 403 (:mod:`orbitlab_lab.emulate.access`). Listings
do not refuse: they leave out what the token may not see (:func:`visible`).

Where the calls come from (bpg v0.111.1):

- SDN objects: ``fwprovider/cluster/sdn/{controller,zone}/resource_generic.go``,
  ``vnet/resource.go``, ``subnet/resource.go``: a create, update or delete, each create and
  update followed by a read of the object (a subnet's create lists the VNet's subnets
  first, ``resolveCanonicalSubnetID``); ``applier/resource.go``: ``PUT /cluster/sdn``;
- ``fwprovider/nodes/resource_download_file.go``: ``query-url-metadata``, ``download-url``,
  the storage's content listing; its delete removes the volume;
- ``proxmoxtf/resource/container/container.go``: create (``POST /nodes/{node}/lxc``), start,
  read (config, status, interfaces); update (config, resize, start/shutdown/reboot, read);
  delete (status, shutdown, destroy).

What Proxmox checks (the ``permissions`` of each API method, and the checks in its code):

- pve-network ``src/PVE/API2/Network/SDN.pm`` (reload), ``SDN/Controllers.pm``,
  ``SDN/Zones.pm``, ``SDN/Vnets.pm``, ``SDN/Subnets.pm``;
- pve-container ``src/PVE/API2/LXC.pm`` (``create_vm``, ``destroy_vm``, ``resize_vm``),
  ``API2/LXC/Config.pm``, ``API2/LXC/Status.pm``; ``src/PVE/LXC.pm``
  ``check_ct_modify_config_perm`` (per config key) and ``check_bridge_access``;
  pve-guest-common ``src/PVE/GuestHelpers.pm`` (``check_vnet_access``,
  ``assert_tag_permissions``: the default ``user-tag-access`` lets anyone with
  ``VM.Config.Options`` set any tag);
- pve-storage ``src/PVE/API2/Storage/Status.pm`` (``download_url``, ``index``),
  ``Storage/Content.pm`` (``index``, ``delete``), ``src/PVE/Storage.pm``
  (``check_volume_access``); pve-manager ``PVE/API2/Nodes.pm`` (``query_url_metadata``).

A simplification: Proxmox walks a request's config keys in Perl hash order; here in the
order bpg lists them, so with several privileges missing the first one named may differ.

>>> [call.method + " " + call.path for call in sdn_calls("zones", "create", "olz1001")]
['POST /cluster/sdn/zones', 'GET /cluster/sdn/zones/olz1001']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from orbitlab_lab.emulate.access import Either, Need

SDN_ALLOCATE = ("SDN.Allocate",)
SDN_READ = ("SDN.Audit", "SDN.Allocate")
STORAGE_READ = ("Datastore.Audit", "Datastore.AllocateSpace")


def node_network(node: str) -> Either:
    """Fetching a URL from a node: ``Sys.Audit`` and ``Sys.Modify`` on ``/`` (the old way),
    or ``Sys.AccessNetwork`` on the node."""
    return Either(
        (Need("/", ("Sys.Audit", "Sys.Modify")), Need(f"/nodes/{node}", ("Sys.AccessNetwork",)))
    )


@dataclass(frozen=True)
class ApiCall:
    """One request and its checks, in the order Proxmox runs them; ``wording``: how bpg
    reports this call's error (``{error}``: the API's), where it is not the resource's."""

    method: str
    path: str
    checks: tuple[Need | Either, ...]
    wording: str = ""


def sdn_calls(kind: str, action: str, object_id: str, zone: str | None = None) -> list[ApiCall]:
    """A controller's, zone's or VNet's create, update or delete, and the read after it."""
    base = f"/cluster/sdn/{kind}"
    if kind == "controllers":
        write = Need("/sdn/controllers", SDN_ALLOCATE)
        read = Need(f"/sdn/controllers/{object_id}", SDN_ALLOCATE)
        create = write
    elif kind == "zones":
        create = Need("/sdn/zones", SDN_ALLOCATE)
        write = read = Need(f"/sdn/zones/{object_id}", SDN_ALLOCATE)
    else:
        create = Need(f"/sdn/zones/{zone}", SDN_ALLOCATE)
        write = Need(f"/sdn/zones/{zone}/{object_id}", SDN_ALLOCATE)
        read = Need(f"/sdn/zones/{zone}/{object_id}", SDN_READ, any_of=True)
    method, check = {"create": ("POST", create), "update": ("PUT", write)}.get(
        action, ("DELETE", write)
    )
    path = base if action == "create" else f"{base}/{object_id}"
    calls = [ApiCall(method, path, (check,))]
    if action != "delete":
        calls.append(ApiCall("GET", f"{base}/{object_id}", (read,)))
    return calls


def subnet_calls(action: str, zone: str, vnet: str, subnet: str) -> list[ApiCall]:
    base = f"/cluster/sdn/vnets/{vnet}/subnets"
    write = Need(f"/sdn/zones/{zone}/{vnet}", SDN_ALLOCATE)
    read = ApiCall("GET", f"{base}/{subnet}", (Need(write.path, SDN_READ, any_of=True),))
    if action == "delete":
        return [ApiCall("DELETE", f"{base}/{subnet}", (write,))]
    if action == "create":  # the list: resolveCanonicalSubnetID; the index refuses too
        return [ApiCall("POST", base, (write,)), ApiCall("GET", base, read.checks), read]
    return [ApiCall("PUT", f"{base}/{subnet}", (write,)), read]


def apply_calls() -> list[ApiCall]:
    return [ApiCall("PUT", "/cluster/sdn", (Need("/sdn", SDN_ALLOCATE),))]


def download_calls(action: str, node: str, storage: str, file_name: str) -> list[ApiCall]:
    """A template download's create (metadata, download, the listing that finds it) or
    delete; bpg's wording of each (``fwprovider/nodes/resource_download_file.go``)."""
    on_node = node_network(node)
    store = f"/storage/{storage}"
    volid = f"{storage}:vztmpl/{file_name}"
    if action == "delete":
        return [
            ApiCall(
                "DELETE",
                f"/nodes/{node}/storage/{storage}/content/{volid}",
                (Need(store, ("Datastore.Allocate",)),),
                f"Error deleting datastore file: Could not delete datastore file '{volid}', "
                "unexpected error: {error}",
            )
        ]
    if action != "create":
        return []
    return [
        ApiCall(
            "GET",
            f"/nodes/{node}/query-url-metadata",
            (on_node,),
            "Error initiating file download: Could not get file metadata, unexpected error: "
            "error fetching metadata from download url, unexpected error in "
            "GetQueryURLMetadata: {error}",
        ),
        ApiCall(
            "POST",
            f"/nodes/{node}/storage/{storage}/download-url",
            (Need(store, ("Datastore.AllocateTemplate",)), on_node),
            f"Error downloading file from url: Could not download file '{file_name}', "
            "unexpected error: {error}",
        ),
        ApiCall(
            "GET",
            f"/nodes/{node}/storage/{storage}/content",
            (Need(store, STORAGE_READ, any_of=True),),
            "Error when reading file from datastore: {error}",
        ),
    ]


# --- containers --------------------------------------------------------------------------

#: The config keys bpg's create sends (``containers.CreateRequestBody``, in its order) and the
#: inputs they come from; ``start``, ``storage``, ``unprivileged`` and ``ostemplate`` are
#: taken out before the per-key check.
CREATE_KEYS: tuple[tuple[str, str], ...] = (
    ("console", "console"),
    ("cmode", "console"),
    ("arch", "cpu.architecture"),
    ("cores", "cpu.cores"),
    ("cpulimit", "cpu.limit"),
    ("memory", "memory.dedicated"),
    ("net", "networkInterfaces"),  # net0, net1, ...: one key per NIC
    ("features", "features"),
    ("ostype", "operatingSystem.type"),
    ("protection", "protection"),
    ("rootfs", "disk"),
    ("onboot", "startOnBoot"),
    ("swap", "memory.swap"),
    ("template", "template"),
    ("tty", "console"),
    ("cpuunits", "cpu.units"),
    ("nameserver", "initialization.dns.servers"),
    ("searchdomain", "initialization.dns.domain"),
    ("description", "description"),
    ("hostname", "initialization.hostname"),
    ("tags", "tags"),
)
ALWAYS_SENT = {"console", "cmode", "arch", "cores", "cpulimit", "memory", "ostype",
               "protection", "rootfs", "onboot", "swap", "template", "tty"}  # fmt: skip


@dataclass(frozen=True)
class Bridge:
    """A NIC's bridge and the SDN zone it is in (``localnetwork`` for a plain bridge)."""

    nic: int
    zone: str
    bridge: str


def _key_checks(key: str, vmid: int, storage: str, bridges: Sequence[Bridge]) -> list[Need]:
    """``check_ct_modify_config_perm`` for one config key."""
    vm = f"/vms/{vmid}"
    if key in ("cores", "cpuunits", "cpulimit"):
        return [Need(vm, ("VM.Config.CPU",))]
    if key == "rootfs":
        return [
            Need(vm, ("VM.Config.Disk",)),
            Need(f"/storage/{storage}", ("Datastore.AllocateSpace",)),
        ]
    if key in ("memory", "swap"):
        return [Need(vm, ("VM.Config.Memory",))]
    if key.startswith("net"):
        nic = int(key.removeprefix("net"))
        uses = [
            Need(f"/sdn/zones/{b.zone}/{b.bridge}", ("SDN.Use",)) for b in bridges if b.nic == nic
        ]
        return [Need(vm, ("VM.Config.Network",)), *uses]
    if key in ("nameserver", "searchdomain", "hostname"):
        return [Need(vm, ("VM.Config.Network",))]
    if key == "features":  # nesting alone: VM.Allocate; other features are root@pam's
        return [Need(vm, ("VM.Allocate",))]
    return [Need(vm, ("VM.Config.Options",))]  # tags, and every other option


def create_keys(inputs: dict[str, Any]) -> list[str]:
    """The config keys a container's create sends, in bpg's order."""
    nics = len(inputs.get("networkInterfaces") or ())
    keys: list[str] = []
    for key, source in CREATE_KEYS:
        if key == "net":
            keys += [f"net{index}" for index in range(nics)]
        elif key in ALWAYS_SENT or _has(inputs, source):
            keys.append(key)
    return keys


def _has(inputs: dict[str, Any], dotted: str) -> bool:
    value: Any = inputs
    for part in dotted.split("."):
        if not isinstance(value, dict) or value.get(part) in (None, "", [], {}):
            return False
        value = value[part]
    return True


def container_create_calls(
    inputs: dict[str, Any], template_storage: str, bridges: Sequence[Bridge]
) -> list[ApiCall]:
    vmid, node = int(inputs["vmId"]), inputs["nodeName"]
    storage = (inputs.get("disk") or {}).get("datastoreId", "local")
    vm = f"/vms/{vmid}"
    checks: list[Need | Either] = [Either((Need(vm, ("VM.Allocate",)),))]
    for key in create_keys(inputs):
        checks += _key_checks(key, vmid, storage, bridges)
    checks.append(Need(f"/storage/{template_storage}", STORAGE_READ, any_of=True))
    checks.append(Need(f"/storage/{storage}", ("Datastore.AllocateSpace",)))
    calls = [ApiCall("POST", f"/nodes/{node}/lxc", tuple(checks))]
    if inputs.get("started", True):
        calls.append(_power(node, vmid, "start"))
    return calls + _read(node, vmid)


def _power(node: str, vmid: int, action: str) -> ApiCall:
    return ApiCall(
        "POST",
        f"/nodes/{node}/lxc/{vmid}/status/{action}",
        (Need(f"/vms/{vmid}", ("VM.PowerMgmt",)),),
    )


def _read(node: str, vmid: int) -> list[ApiCall]:
    audit = (Need(f"/vms/{vmid}", ("VM.Audit",)),)
    return [
        ApiCall("GET", f"/nodes/{node}/lxc/{vmid}/{what}", audit)
        for what in ("config", "status/current")
    ]


#: Changed input paths (their first parts) and the config keys they change.
UPDATE_KEYS: tuple[tuple[str, str], ...] = (
    ("cpu.architecture", "arch"),
    ("cpu.units", "cpuunits"),
    ("cpu.limit", "cpulimit"),
    ("cpu", "cores"),
    ("memory.swap", "swap"),
    ("memory", "memory"),
    ("initialization.hostname", "hostname"),
    ("initialization.dns.domain", "searchdomain"),
    ("initialization.dns", "nameserver"),
    ("features", "features"),
    ("tags", "tags"),
    ("startOnBoot", "onboot"),
    ("operatingSystem.type", "ostype"),
)
NOT_CONFIG = ("started", "disk", "timeout", "operatingSystem.templateFileId", "vmId", "nodeName")


def update_keys(changed: Iterable[str]) -> list[str]:
    """The config keys an update sends for the changed input paths."""
    keys: list[str] = []
    for path in changed:
        nic = _nic_index(path)
        if nic is not None:
            key = f"net{nic}"
        elif path.startswith(NOT_CONFIG):
            continue
        else:
            key = next((k for prefix, k in UPDATE_KEYS if path.startswith(prefix)), "options")
        if key not in keys:
            keys.append(key)
    return keys


def _nic_index(path: str) -> int | None:
    for prefix in ("networkInterfaces[", "initialization.ipConfigs["):
        if path.startswith(prefix):
            return int(path[len(prefix) :].split("]", 1)[0])
    return None


def container_update_calls(
    olds: dict[str, Any],
    news: dict[str, Any],
    changed: Sequence[str],
    reboot: bool,
    bridges: Sequence[Bridge],
) -> list[ApiCall]:
    vmid, node = int(news["vmId"]), news["nodeName"]
    vm = f"/vms/{vmid}"
    calls: list[ApiCall] = []
    storage = (news.get("disk") or {}).get("datastoreId", "local")
    if any(path.startswith("disk.size") for path in changed):
        calls += _read(node, vmid)[:1]
        calls.append(
            ApiCall(
                "PUT",
                f"/nodes/{node}/lxc/{vmid}/resize",
                (
                    Need(vm, ("VM.Config.Disk",)),
                    Need(vm, ("VM.Config.Options",)),  # the keys disk and size
                    Need(f"/storage/{storage}", ("Datastore.AllocateSpace",)),
                ),
            )
        )
    keys = update_keys(changed)
    if keys:
        checks: list[Need | Either] = [Need(vm, CONFIG_PRIVILEGES, any_of=True)]
        for key in keys:
            checks += _key_checks(key, vmid, storage, bridges)
        calls.append(ApiCall("PUT", f"/nodes/{node}/lxc/{vmid}/config", tuple(checks)))
    started_before = bool(olds.get("started", True))
    started_now = bool(news.get("started", True))
    if started_now != started_before:
        calls.append(_power(node, vmid, "start" if started_now else "shutdown"))
    elif reboot and started_now:
        calls.append(_power(node, vmid, "reboot"))
    return calls + _read(node, vmid)


#: pve-container ``src/PVE/API2/LXC/Config.pm`` ``$vm_config_perm_list``
CONFIG_PRIVILEGES = (
    "VM.Config.Disk",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
)


def container_delete_calls(node: str, vmid: int, running: bool) -> list[ApiCall]:
    calls = _read(node, vmid)[1:]
    if running:
        calls.append(_power(node, vmid, "shutdown"))
    calls.append(
        ApiCall("DELETE", f"/nodes/{node}/lxc/{vmid}", (Need(f"/vms/{vmid}", ("VM.Allocate",)),))
    )
    return calls


# --- listings ----------------------------------------------------------------------------


def zone_visible(zone: str) -> Need:
    """``GET /cluster/sdn/zones`` lists a zone the token may audit or allocate."""
    return Need(f"/sdn/zones/{zone}", SDN_READ, any_of=True)


def vnet_visible(zone: str, vnet: str) -> Need:
    return Need(f"/sdn/zones/{zone}/{vnet}", SDN_READ, any_of=True)


def guest_visible(vmid: int | str) -> Need:
    """``GET /nodes/{node}/lxc`` (and ``qemu``) lists a guest the token may audit."""
    return Need(f"/vms/{vmid}", ("VM.Audit",))


def storage_visible(storage: str) -> Need:
    """``GET /nodes/{node}/storage`` lists a storage the token may audit or allocate on."""
    return Need(f"/storage/{storage}", STORAGE_READ, any_of=True)
