"""Pulumi mocks for the components: a fake cluster for invokes, and a monitor that records
every resource registration with its options (parent, dependencies, protect, ...).

Under mocks, as with the engine, property names arrive camelCase and numbers as floats.

    run = run_program(main, config=example_config(), cluster=FakeCluster())
    run.one("proxmoxve:sdn/vnet:Vnet", "web-vnet").inputs["resourceId"]   # "olvn1001"
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_STACK = ROOT / "stacks" / "Pulumi.example.yaml"
SECRET_SIG = rpc._special_secret_sig
SIG_KEY = rpc._special_sig_key


@dataclass(frozen=True)
class Registration:
    """One registered resource, as the engine would receive it."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: frozenset[str]
    protect: bool
    delete_before_replace: bool
    replacement_trigger: Any
    deleted_with: str
    ignore_changes: tuple[str, ...] = ()


@dataclass
class FakeCluster:
    """What ``sdn.get_vnets()`` / ``sdn.get_zones()`` / ``get_vms_legacy()`` /
    ``get_containers_legacy()`` return, camelCase as on the wire."""

    vnets: list[dict[str, Any]] = field(default_factory=list)
    zones: list[dict[str, Any]] = field(default_factory=list)
    vms: list[dict[str, Any]] = field(default_factory=list)
    containers: list[dict[str, Any]] = field(default_factory=list)
    #: Each node's storages (``get_datastores``); a node not listed has a fresh install's.
    datastores: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add_datastore(
        self, node: str, id: str, content: tuple[str, ...], shared: bool = False
    ) -> FakeCluster:
        self.datastores.setdefault(node, []).append(
            {"id": id, "nodeName": node, "contentTypes": sorted(content), "type": "dir",
             "shared": shared, "enabled": True, "active": True}
        )  # fmt: skip
        return self

    def datastores_of(self, node: str) -> list[dict[str, Any]]:
        if node in self.datastores:
            return self.datastores[node]
        fresh = FakeCluster()
        fresh.add_datastore(node, "local", ("backup", "iso", "vztmpl"))
        return fresh.add_datastore(node, "local-lvm", ("images", "rootdir")).datastores[node]

    def add_guest(
        self, vmid: int, node: str, name: str = "", kind: str = "qemu", tags: tuple = ()
    ) -> FakeCluster:
        listing = self.vms if kind == "qemu" else self.containers
        listing.append(
            {"vmId": float(vmid), "nodeName": node, "name": name, "tags": list(tags),
             "status": "running", "template": False}
        )  # fmt: skip
        return self

    def add_vnet(
        self,
        id: str,
        zone: str,
        tag: int,
        alias: str = "",
        zone_type: str = "vxlan",
        vrf: int | None = None,
    ) -> FakeCluster:
        self.vnets.append(
            {
                "id": id,
                "zone": zone,
                "tag": float(tag),
                "alias": alias,
                "isolatePorts": False,
                "vlanAware": False,
            }
        )
        if not any(z["id"] == zone for z in self.zones):
            self.zones.append(zone_record(zone, zone_type, vrf))
        return self


def zone_record(id: str, type: str, vrf: int | None = None) -> dict[str, Any]:
    return {
        "id": id,
        "type": type,
        "vrfVxlan": float(vrf) if vrf else 0.0,
        "advertiseSubnets": False,
        "bridge": "",
        "controller": "",
        "dhcp": "",
        "disableArpNdSuppression": False,
        "dns": "",
        "dnsZone": "",
        "exitNodes": [],
        "exitNodesLocalRouting": False,
        "ipam": "",
        "mtu": 0.0,
        "nodes": [],
        "peers": [],
        "pending": False,
        "primaryExitNode": "",
        "reverseDns": "",
        "rtImport": "",
        "serviceVlan": 0.0,
        "serviceVlanProtocol": "",
        "state": "",
    }


class ClusterMocks(pulumi.runtime.Mocks):
    """Answers invokes from a :class:`FakeCluster`; gives resources provider-like IDs."""

    def __init__(
        self,
        cluster: FakeCluster,
        stack_outputs: Mapping[str, Any] | None = None,
        first_preview: bool = False,
    ):
        self.cluster = cluster
        self.stack_outputs = dict(stack_outputs or {})
        #: As in the first ``pulumi preview``: nothing exists, so every new ID is unknown.
        self.first_preview = first_preview
        self.calls: list[str] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.calls.append(args.token)
        if args.token == "proxmoxve:sdn/getVnets:getVnets":
            return {"id": "vnets", "vnets": self.cluster.vnets}
        if args.token == "proxmoxve:sdn/getZones:getZones":
            return {"id": "zones", "zones": self.cluster.zones}
        if args.token == "proxmoxve:index/getVmsLegacy:getVmsLegacy":
            return {"id": "vms", "vms": self.cluster.vms}
        if args.token == "proxmoxve:index/getContainersLegacy:getContainersLegacy":
            return {"id": "containers", "containers": self.cluster.containers}
        if args.token == "proxmoxve:index/getDatastores:getDatastores":
            node = args.args["nodeName"]
            return {"id": node, "nodeName": node, "datastores": self.cluster.datastores_of(node)}
        raise AssertionError(f"unexpected invoke {args.token}")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            return args.name, {"name": args.name, "outputs": self.stack_outputs}
        if self.first_preview:
            return "", inputs
        if args.typ == "proxmoxve:index/containerLegacy:ContainerLegacy":
            return str(int(inputs["vmId"])), inputs
        if args.typ == "proxmoxve:download/file:File":
            return f"{inputs['datastoreId']}:vztmpl/{inputs['fileName']}", inputs
        for key in ("resourceId", "sdnControllerEvpnId"):
            if key in inputs:
                return str(inputs[key]), inputs
        return f"{args.name}-id", inputs


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that keeps every ``RegisterResourceRequest``'s options."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            trigger = None
            if request.HasField("replacement_trigger"):
                trigger = json_format.MessageToDict(request.replacement_trigger)
            self.registrations[response.urn] = Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                custom=request.custom,
                inputs=rpc.deserialize_properties(request.object),
                dependencies=frozenset(request.dependencies),
                protect=bool(request.protect),
                delete_before_replace=request.deleteBeforeReplace,
                replacement_trigger=trigger,
                deleted_with=request.deletedWith,
                ignore_changes=tuple(request.ignoreChanges),
            )
        return response


@dataclass
class Run:
    """The outcome of one program run under mocks."""

    registrations: dict[str, Registration]
    result: Any
    mocks: ClusterMocks

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations.values() if r.type == type_]

    def one(self, type_: str, name: str) -> Registration:
        found = [r for r in self.of_type(type_) if r.name == name]
        assert len(found) == 1, f"{type_} {name}: {len(found)} registrations"
        return found[0]

    def named(self, name: str) -> Registration:
        found = [r for r in self.registrations.values() if r.name == name]
        assert len(found) == 1, f"{name}: {len(found)} registrations"
        return found[0]

    def ancestors(self, urn: str) -> list[str]:
        chain = []
        while urn in self.registrations and self.registrations[urn].parent:
            urn = self.registrations[urn].parent
            chain.append(urn)
        return chain

    def descendants(self, urn: str) -> list[str]:
        return [r.urn for r in self.registrations.values() if urn in self.ancestors(r.urn)]

    def depends_on(self, urn: str, other: str) -> bool:
        """Whether ``urn`` waits for ``other``, directly or through other resources.

        As in the engine, depending on a component means depending on its descendants.
        """
        seen: set[str] = set()
        todo = [urn]
        while todo:
            for dep in self.registrations[todo.pop()].dependencies:
                for target in (dep, *self.descendants(dep)):
                    if target == other:
                        return True
                    if target not in seen:
                        seen.add(target)
                        todo.append(target)
        return False


def stack_file_config(path: Path = EXAMPLE_STACK) -> dict[str, Any]:
    """The ``config:`` mapping of a stack file."""
    return yaml.safe_load(path.read_text())["config"]


def run_program(
    program: Callable[[], Any],
    *,
    config: Mapping[str, Any],
    cluster: FakeCluster | None = None,
    stack: str = "example",
    secret_keys: Iterable[str] = (),
    stack_outputs: Mapping[str, Any] | None = None,
    preview: bool = False,
    monitor: RecordingMonitor | None = None,
) -> Run:
    """Run ``program`` under mocks with stack ``config`` (values as in a stack file).

    Pass a ``monitor`` to inspect what was registered when the program raises.
    """
    _ensure_event_loop()
    if monitor is None:
        monitor = RecordingMonitor(ClusterMocks(cluster or FakeCluster(), stack_outputs))
    mocks = monitor.mocks
    assert isinstance(mocks, ClusterMocks)
    pulumi.runtime.set_mocks(
        mocks, project="orbitlab", stack=stack, preview=preview, monitor=monitor
    )
    pulumi.runtime.set_all_config(
        {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in config.items()
        },
        list(secret_keys),
    )
    box: dict[str, Any] = {}

    @pulumi.runtime.test
    def body() -> None:
        box["result"] = program()

    body()
    return Run(monitor.registrations, box.get("result"), mocks)


def _ensure_event_loop() -> None:
    """Pulumi's mocks run on the thread's event loop; a test that ran ``asyncio.run`` before
    left the thread without one (so the tests do not depend on their order)."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def unknown_paths(value: Any, path: str = "") -> list[str]:
    """Where a registered input is unknown (shown as ``output<...>`` in a preview)."""
    if isinstance(value, pulumi.output.Unknown):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in unknown_paths(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in unknown_paths(v, f"{path}[{i}]")]
    return []


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def reveal(value: Any) -> Any:
    """The value inside a secret (as the engine would decrypt it); other values unchanged."""
    return value["value"] if is_secret(value) else value
