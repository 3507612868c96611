"""Appliance containers (``ContainerLegacy``) provisioned over SSH by their rendered script.

An :class:`Appliance` is one unprivileged LXC plus the ``pulumi_command.remote.Command``
that runs its provisioning script on the node hosting it (``pct exec <vmid> -- /bin/sh -s``,
script on stdin). A changed script is a change of the command's ``stdin``: ``pulumi
preview`` shows it as an *update* of ``<name>-provision`` and ``pulumi up`` runs it again
(pulumi-command runs ``update`` on an update) in the running appliance, without a restart.
The command's only trigger is the container: a replaced container (same VMID, so the engine
replaces its dependents whose trigger it feeds) is provisioned again. Putting the script's
hash in the triggers too would *replace* the command on every config change (pulumi-command
marks ``triggers`` replace-on-change), which the rehearsal with the real engine showed.

Example (inside a Pulumi program)::

    templates = ApplianceTemplates("templates", ApplianceTemplatesArgs(
        appliances=plan.appliances, nodes=["pve1"]))
    gateway = Appliance("web-gateway", ApplianceArgs(
        node=plan.backplane.nodes[0], vmid=10011, hostname="olvn1001-router",
        nics=(Nic("eth0", "olvn1001", "172.16.0.1/24", mtu=1450),),
        script="...", template_file_id=templates.file_id("pve1"),
        appliances=plan.appliances))
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_proxmoxve as proxmoxve

from orbitlab.components.reboots import (
    camel_case,
    describe,
    reboot_changes,
    reboot_inputs,
)
from orbitlab.components.rollout import Rollout
from orbitlab.components.ssh import SshCredentials, node_connection, pct_exec
from orbitlab.plan import NodePlan, NodeStorage, template_downloads
from orbitlab.rendering import script_digest
from orbitlab.settings import DNS_LABEL, ApplianceSettings

NIC_NAME = re.compile(r"eth[0-9]")
#: Unicast (the lowest bit of the first octet clear), lowercase hex, colon-separated.
UNICAST_MAC = re.compile(r"[0-9a-f][02468ace](:[0-9a-f]{2}){5}")
PROXMOX_TAG = re.compile(r"[a-z0-9_][a-z0-9_+.-]*")


@dataclass(frozen=True)
class Nic:
    """A container NIC: bridge (VNet ID), IPv4 address with prefix, optional gateway, MTU,
    and optionally a pinned MAC (else Proxmox picks one)."""

    name: str
    bridge: str
    address: str
    mtu: int
    gateway: str | None = None
    mac: str | None = None


def nic_inputs(nics: Sequence[Nic]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``network_interfaces`` and the matching ``initialization.ip_configs`` (same order)."""
    interfaces = [
        {
            "name": nic.name,
            "bridge": nic.bridge,
            "mtu": nic.mtu,
            "firewall": False,
            **({"mac_address": nic.mac} if nic.mac else {}),
        }
        for nic in nics
    ]
    ip_configs = [
        {"ipv4": {"address": nic.address, **({"gateway": nic.gateway} if nic.gateway else {})}}
        for nic in nics
    ]
    return interfaces, ip_configs


@dataclass(frozen=True)
class ApplianceArgs:
    """Everything one appliance container needs; all plain values from the plan."""

    node: NodePlan
    vmid: int
    hostname: str
    nics: tuple[Nic, ...]
    script: str
    template_file_id: pulumi.Input[str]
    appliances: ApplianceSettings = field(default_factory=ApplianceSettings)
    ssh: SshCredentials = field(default_factory=SshCredentials)
    nameservers: tuple[str, ...] = ()
    domain: str | None = None
    description: str = ""
    tags: tuple[str, ...] = ("orbitlab",)
    #: Resources the container waits for before it is created (e.g. the bridge wait).
    start_after: tuple[pulumi.Resource, ...] = ()
    #: Resources the provisioning waits for (e.g. the Sector Gateway's provisioning).
    provision_after: tuple[pulumi.Resource, ...] = ()
    #: When given, the container takes its place in the node's lane (bounded container work).
    rollout: Rollout | None = None
    #: The storage of its root disk (the plan's choice for the node,
    #: ``StackPlan.storage(node).rootdir``); unset: ``appliances.storage`` or local-lvm.
    storage: str | None = None

    @property
    def root_storage(self) -> str:
        return self.storage or NodeStorage.configured(self.appliances).rootdir

    def problems(self) -> list[str]:
        """Every invalid field, named; empty when the args are valid."""
        problems = []
        if not 100 <= self.vmid <= 999_999_999:
            problems.append(f"vmid: {self.vmid} is outside 100-999999999")
        if not DNS_LABEL.fullmatch(self.hostname):
            problems.append(f"hostname: {self.hostname!r} is not a DNS label")
        if not self.nics:
            problems.append("nics: an appliance needs at least one NIC")
        names = [nic.name for nic in self.nics]
        for nic in self.nics:
            if not NIC_NAME.fullmatch(nic.name) or names.count(nic.name) > 1:
                problems.append(f"nics: {nic.name!r} must be a unique eth0-eth9")
            if "/" not in nic.address:
                problems.append(f"nics[{nic.name}].address: {nic.address!r} needs a /prefix")
            if nic.mac is not None and not UNICAST_MAC.fullmatch(nic.mac):
                problems.append(
                    f"nics[{nic.name}].mac: {nic.mac!r} is not a unicast MAC "
                    "(e.g. 02:4f:4c:20:03:e9, lowercase)"
                )
        for tag in self.tags:
            if not PROXMOX_TAG.fullmatch(tag):
                problems.append(f"tags: {tag!r} is not a Proxmox tag (a-z 0-9 _ + . -)")
        if not self.script.startswith("#!"):
            problems.append("script: expected a provisioning script starting with '#!'")
        return problems


class Appliance(pulumi.ComponentResource):
    """One appliance LXC and its provisioning (``orbitlab:index:Appliance``).

    Children: ``<name>-ct`` (``ContainerLegacy``) and ``<name>-provision``
    (``remote.Command``). The container has a fixed VMID and fixed addresses, so it is
    deleted before it is replaced.
    """

    container: proxmoxve.ContainerLegacy
    provisioning: command.remote.Command
    #: The component's name (``web-gateway``).
    name: str
    vmid: int
    hostname: str
    node: str
    script_sha256: str
    #: The container's inputs a change of reboots it (provider names, plain values).
    reboot_inputs: dict[str, Any]

    def __init__(
        self, name: str, args: ApplianceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        problems = args.problems()
        if problems:
            raise ValueError(f"Appliance {name!r}: " + "; ".join(problems))
        super().__init__("orbitlab:index:Appliance", name, None, opts)
        self.name = name
        self.vmid, self.hostname, self.node = args.vmid, args.hostname, args.node.name
        self.script_sha256 = script_digest(args.script)
        settings = args.appliances
        interfaces, ip_configs = nic_inputs(args.nics)
        lane = args.rollout.container_predecessors(args.node.name) if args.rollout else ()
        initialization: dict[str, Any] = {"hostname": args.hostname, "ip_configs": ip_configs}
        if args.nameservers or args.domain:
            initialization["dns"] = {
                **({"domain": args.domain} if args.domain else {}),
                **({"servers": list(args.nameservers)} if args.nameservers else {}),
            }
        container: dict[str, Any] = {
            "node_name": args.node.name,
            "vm_id": args.vmid,
            "description": args.description,
            "tags": sorted(args.tags),
            "unprivileged": True,
            "started": True,
            "start_on_boot": True,
            "features": {"nesting": True},
            "cpu": {"cores": settings.cores},
            "memory": {"dedicated": settings.memory_mib, "swap": 0},
            "disk": {"datastore_id": args.root_storage, "size": settings.disk_gib},
            "network_interfaces": interfaces,
            "initialization": initialization,
        }
        known = {**container, "operating_system": {"type": settings.os}}
        self.reboot_inputs = reboot_inputs(camel_case(known))
        self.container = proxmoxve.ContainerLegacy(
            f"{name}-ct",
            **container,
            operating_system={"template_file_id": args.template_file_id, "type": settings.os},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*args.start_after, *lane],
                delete_before_replace=True,
                # The template volume's ID (a new ID would replace the container) is not
                # what decides a rebuild: the template itself does. A template downloaded
                # again under another file name or storage leaves the appliances alone; a
                # new template URL, checksum or volume replaces them.
                ignore_changes=[TEMPLATE_INPUT],
                replacement_trigger=template_identity(settings),
            ),
        )
        if args.rollout is not None:
            args.rollout.add_container(args.node.name, self.container)
        run = pct_exec(args.vmid, args.ssh.user)
        self.provisioning = command.remote.Command(
            f"{name}-provision",
            connection=node_connection(args.node, args.ssh),
            create=run,
            update=run,
            stdin=args.script,
            # Only the container: a changed script is an update (stdin), not a replacement.
            triggers=[self.container.id],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.container, *args.provision_after],
                # Replaced (so re-run) whenever the container is replaced.
                deleted_with=self.container,
            ),
        )
        self.register_outputs(
            {
                "vmid": self.vmid,
                "hostname": self.hostname,
                "node": self.node,
                "scriptSha256": self.script_sha256,
            }
        )

    def record(self) -> dict[str, Any]:
        """What this appliance is, as plain values: VMID, node, hostname and the inputs a
        change of reboots it (``rebootInputs``). The stack program exports it; given back as
        to :meth:`warn_reboot` at the next run, it names its reboots in a preview."""
        return {
            "vmid": self.vmid,
            "node": self.node,
            "hostname": self.hostname,
            "rebootInputs": self.reboot_inputs,
        }

    def warn_reboot(self, deployed: Mapping[str, Any] | None) -> None:
        """Warn (in ``pulumi preview`` too) when the running container will be rebooted:
        given what it was when last deployed (its :meth:`record`), it keeps its VMID and
        node (else it is replaced, which the preview shows) and a change reboots it."""
        if not deployed or (deployed.get("vmid"), deployed.get("node")) != (self.vmid, self.node):
            return
        changes = reboot_changes(deployed.get("rebootInputs") or {}, self.reboot_inputs)
        if changes:
            pulumi.log.warn(
                f"{self.name} will be rebooted (CT {self.vmid} {self.hostname} on {self.node}): "
                f"{describe(changes)}. The provider reboots a running container when its "
                "memory, NICs, DNS, hostname or OS type change: what it serves in its Sector "
                "stops until it has booted again",
                resource=self.container,
            )


def template_checksum(value: str | None) -> dict[str, str]:
    """``checksum`` and ``checksum_algorithm`` inputs of ``download.File`` from ``sha512:<hex>``.

    >>> template_checksum("sha256:" + "ab" * 32)["checksum_algorithm"]
    'sha256'
    >>> template_checksum(None)
    {}
    """
    if value is None:
        return {}
    algorithm, _, digest = value.partition(":")
    return {"checksum": digest, "checksum_algorithm": algorithm}


def warn_unpinned_nodes(nodes: Sequence[NodePlan], resource: pulumi.Resource) -> None:
    """Say, in ``preview`` too, which nodes provisioning reaches over SSH without a pinned
    host key (``host_key`` in the stack's nodes): pulumi-command then accepts any host key
    (``provider/pkg/provider/remote/connection.go``: ``ssh.InsecureIgnoreHostKey``)."""
    unpinned = [node.name for node in nodes if node.host_key is None]
    if unpinned:
        pulumi.log.warn(
            f"SSH to node(s) {', '.join(unpinned)} is not pinned: without a host_key, "
            "pulumi-command checks no host key on any connection, so whatever answers at the "
            "node's address gets the provisioning (and the commands run as root); set "
            "host_key for them in orbitlab:backplane.nodes (ssh-keyscan -t ed25519 <node>)",
            resource=resource,
        )


#: The container input the template volume is given in (camelCase, as the engine has it).
#: The whole input, not its ``templateFileId``: in a preview, a template being downloaded
#: again makes the SDK send all of ``operatingSystem`` unknown, and a path inside an unknown
#: value cannot be ignored. Its ``type`` is the template's, so the template identity
#: (``replacement_trigger``) covers it.
TEMPLATE_INPUT = "operatingSystem"


def template_file_name(url: str, owner: str | None = None) -> str:
    """The file name a template URL is stored under: the URL's, prefixed with its owner (the
    project and stack that download it), so that no stack's template is another's or the
    user's own.

    >>> template_file_name("https://x/alpine-3.22.tar.xz?a=1", "orbitlab-home")
    'orbitlab-home-alpine-3.22.tar.xz'
    """
    name = PurePosixPath(url.split("?", 1)[0]).name
    return f"{owner}-{name}" if owner else name


def template_identity(settings: ApplianceSettings) -> str:
    """What the appliances are made from: the template volume given, or the URL and
    checksum downloaded; a change of it replaces them (``replacement_trigger``). The URL's
    scheme is not part of it: the same file over https is the same template (so the move of
    the default to https replaced no appliance).

    >>> http = ApplianceSettings(template_url="http://x.example/a.tar.xz")
    >>> template_identity(http) == template_identity(
    ...     ApplianceSettings(template_url="https://x.example/a.tar.xz"))
    True
    """
    if settings.template_file_id is not None:
        return settings.template_file_id
    url = re.sub(r"^https://", "http://", settings.template_url)
    return f"{url} {settings.template_checksum or ''}".strip()


@dataclass(frozen=True)
class ApplianceTemplatesArgs:
    """Which nodes need the appliance template, where it comes from and, per node, the
    storage it goes to (``StackPlan.storages``; a node not in it: ``appliances.
    template_storage`` or ``local``)."""

    appliances: ApplianceSettings
    nodes: tuple[str, ...]
    storages: Mapping[str, NodeStorage] = field(default_factory=dict)
    #: Who owns the downloads (their file names start with it); unset: ``<project>-<stack>``.
    owner: str | None = None

    def storage(self, node: str) -> NodeStorage:
        return self.storages.get(node) or NodeStorage.configured(self.appliances)


class ApplianceTemplates(pulumi.ComponentResource):
    """The appliance template on each node that hosts appliances.

    Type ``orbitlab:index:ApplianceTemplates``.

    With ``template_file_id`` set, that volume is used as is and nothing is downloaded;
    otherwise ``template_url`` is downloaded once per node (``download.File``, vztmpl), or
    once for all the nodes that share the template storage (an NFS export, a Ceph pool).
    """

    file_ids: Mapping[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ApplianceTemplatesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if len(set(args.nodes)) != len(args.nodes):
            raise ValueError(f"ApplianceTemplates {name!r}: nodes repeat: {list(args.nodes)}")
        super().__init__("orbitlab:index:ApplianceTemplates", name, None, opts)
        settings = args.appliances
        checksum = template_checksum(settings.template_checksum)
        if settings.template_file_id is None and not checksum:
            pulumi.log.warn(
                f"the appliance template {settings.template_url} is downloaded without a "
                "checksum: set orbitlab:appliances.template_checksum to its published "
                "sha512 (`pveam available` on a node lists it) to verify it",
                resource=self,
            )
        owner = args.owner or f"{pulumi.get_project()}-{pulumi.get_stack()}"
        file_ids: dict[str, pulumi.Output[str]] = {}
        if settings.template_file_id is not None:
            self.file_ids = {
                node: pulumi.Output.from_input(settings.template_file_id) for node in args.nodes
            }
            self.register_outputs({"fileIds": self.file_ids})
            return
        shared: dict[str, pulumi.Output[str]] = {}
        for node, storage in template_downloads(args.nodes, args.storage):
            download = proxmoxve.download.File(
                f"{name}-{node}",
                content_type="vztmpl",
                datastore_id=storage.vztmpl,
                node_name=node,
                url=settings.template_url,
                file_name=template_file_name(settings.template_url, owner),
                # a file of that name that this stack did not download is left alone: the
                # create fails, naming it, instead of taking it over
                overwrite_unmanaged=False,
                **checksum,
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )
            file_ids[node] = download.id
            if storage.shared:
                shared[storage.vztmpl] = download.id
        # a node on a shared storage that another node downloaded to: the one volume
        self.file_ids = {
            node: file_ids.get(node) or shared[args.storage(node).vztmpl] for node in args.nodes
        }
        self.register_outputs({"fileIds": self.file_ids})

    def file_id(self, node: str) -> pulumi.Output[str]:
        try:
            return self.file_ids[node]
        except KeyError:
            raise KeyError(
                f"no appliance template for node {node!r}; nodes: {', '.join(self.file_ids)}"
            ) from None
