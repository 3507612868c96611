"""What the Pulumi program reads from the cluster: two provider invokes turned into facts.

The facts themselves, the checks made against them and planning against them live in
:mod:`orbitlab.facts` (no Pulumi import; ``orbitlab show --endpoint`` reads the same facts
through the Proxmox API). They are re-exported here for programs that import them from
this module. Two invokes give all of them: ``sdn.get_vnets()`` and ``sdn.get_zones()``
(in ``preview`` too).

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
    VnetFact,
    ZoneFact,
    check_backplane,
    plan_inputs,
    tag_number,
)

__all__ = [
    "VXLAN_ZONE_TYPES",
    "ClusterFacts",
    "VnetFact",
    "ZoneFact",
    "check_backplane",
    "facts_from_invokes",
    "plan_inputs",
    "read_cluster",
]


def facts_from_invokes(vnets: Iterable[Any], zones: Iterable[Any]) -> ClusterFacts:
    """Build facts from ``get_vnets().vnets`` and ``get_zones().zones`` items."""
    return ClusterFacts(
        vnets=tuple(
            VnetFact(str(v.id), str(v.zone), tag_number(v.tag), v.alias or None) for v in vnets
        ),
        zones=tuple(ZoneFact(str(z.id), str(z.type), tag_number(z.vrf_vxlan)) for z in zones),
    )


def read_cluster(provider: pulumi.ProviderResource | None = None) -> ClusterFacts:
    """Read the facts with two synchronous invokes (they run in ``preview`` as well)."""
    opts = pulumi.InvokeOptions(provider=provider) if provider is not None else None
    vnets = proxmoxve.sdn.get_vnets(opts=opts).vnets
    zones = proxmoxve.sdn.get_zones(opts=opts).zones
    return facts_from_invokes(vnets, zones)
