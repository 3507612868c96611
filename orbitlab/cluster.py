"""What the Pulumi program reads from the cluster: provider invokes turned into facts.

The facts themselves, the checks made against them and planning against them live in
:mod:`orbitlab.facts` (no Pulumi import; ``orbitlab show --endpoint`` reads the same facts
through the Proxmox API). They are re-exported here for programs that import them from
this module. The invokes, in ``preview`` too: ``sdn.get_vnets()``, ``sdn.get_zones()``
(with each EVPN zone's controller), ``get_vms_legacy()`` and ``get_containers_legacy()``
(the guests, whose VMIDs a new appliance must avoid), and ``get_datastores(node_name=...)``
per node (the storages the appliances' disks and template are put on).

>>> class Item:
...     def __init__(self, **fields): self.__dict__.update(fields)
>>> facts = facts_from_invokes(
...     [Item(id="olvn1001", zone="olvz1001", tag=1001.0, alias="ol home web")],
...     [Item(id="olbpz", type="evpn", vrf_vxlan=10.0)],
... )
>>> sorted(facts.in_use_tags), facts.sector_tags("home")
([10, 1001], {'web': 1001})
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pulumi
import pulumi_proxmoxve as proxmoxve

from orbitlab.facts import (
    VXLAN_ZONE_TYPES,
    ClusterFacts,
    DatastoreFact,
    GuestFact,
    VnetFact,
    ZoneFact,
    check_backplane,
    plan_inputs,
    tag_number,
)

__all__ = [
    "VXLAN_ZONE_TYPES",
    "ClusterFacts",
    "DatastoreFact",
    "GuestFact",
    "VnetFact",
    "ZoneFact",
    "check_backplane",
    "facts_from_invokes",
    "plan_inputs",
    "read_cluster",
]


def facts_from_invokes(
    vnets: Iterable[Any],
    zones: Iterable[Any],
    vms: Iterable[Any] = (),
    containers: Iterable[Any] = (),
    datastores: Iterable[DatastoreFact] = (),
) -> ClusterFacts:
    """Build facts from ``get_vnets().vnets``, ``get_zones().zones``, ``get_vms_legacy().vms``
    and ``get_containers_legacy().containers`` items (and the nodes' storages)."""
    return ClusterFacts(
        vnets=tuple(
            VnetFact(str(v.id), str(v.zone), tag_number(v.tag), v.alias or None) for v in vnets
        ),
        zones=tuple(
            ZoneFact(
                str(z.id),
                str(z.type),
                tag_number(z.vrf_vxlan),
                getattr(z, "controller", None) or None,
            )
            for z in zones
        ),
        guests=tuple(_guest(item, "qemu") for item in vms)
        + tuple(_guest(item, "lxc") for item in containers),
        datastores=tuple(datastores),
    )


def _guest(item: Any, kind: str) -> GuestFact:
    tags = tuple(sorted(getattr(item, "tags", None) or ()))
    return GuestFact(int(item.vm_id), str(item.node_name), str(item.name or ""), kind, tags)


def datastore_facts(node: str, datastores: Iterable[Any]) -> tuple[DatastoreFact, ...]:
    """A node's ``get_datastores(node_name=node).datastores`` items as facts."""
    return tuple(
        DatastoreFact(
            str(d.id),
            node,
            frozenset(d.content_types or ()),
            bool(d.shared),
            d.enabled is not False and d.active is not False,
        )
        for d in datastores
    )


def read_cluster(
    provider: pulumi.ProviderResource | None = None, nodes: Iterable[str] = ()
) -> ClusterFacts:
    """Read the facts with synchronous invokes (they run in ``preview`` as well); the
    storages of each of ``nodes``."""
    opts = pulumi.InvokeOptions(provider=provider) if provider is not None else None
    vnets = proxmoxve.sdn.get_vnets(opts=opts).vnets
    zones = proxmoxve.sdn.get_zones(opts=opts).zones
    vms = proxmoxve.get_vms_legacy(opts=opts).vms or ()
    containers = proxmoxve.get_containers_legacy(opts=opts).containers or ()
    datastores = [
        fact
        for node in nodes
        for fact in datastore_facts(
            node, proxmoxve.get_datastores(node_name=node, opts=opts).datastores or ()
        )
    ]
    return facts_from_invokes(vnets, zones, vms, containers, datastores)
