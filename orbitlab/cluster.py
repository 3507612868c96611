"""What the cluster already holds, read once at program start, and the checks made against it.

The Pulumi program needs a few plain facts from the cluster *before* it declares anything:
the VNet tags and EVPN VRF tags in use (so new Sectors get a free tag), the tags of this
stack's existing Sectors (so they keep theirs), and the CIDR of an existing Backplane (which
is immutable). Two invokes give all of them: ``sdn.get_vnets()`` and ``sdn.get_zones()``.
The Backplane's CIDR is read back from its VNet's alias (``orbitlab backplane <cidr>``),
since the provider cannot list a VNet's subnets.

>>> facts = ClusterFacts(
...     vnets=(VnetFact("olbpvn", "olbpz", 100, "orbitlab backplane 10.200.0.0/16"),
...            VnetFact("olvn1001", "olvz1001", 1001, "ol home web")),
...     zones=(ZoneFact("olbpz", "evpn", 10), ZoneFact("olvz1001", "vxlan", None)),
... )
>>> sorted(facts.in_use_tags), facts.sector_tags("home"), str(facts.backplane_cidr)
([10, 100, 1001], {'web': 1001}, '10.200.0.0/16')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_proxmoxve as proxmoxve
from netaddr import AddrFormatError, IPNetwork

from orbitlab.allocation import BACKPLANE_TAGS
from orbitlab.errors import BackplaneImmutableError, SettingsError
from orbitlab.plan import BACKPLANE_ALIAS_PREFIX, BACKPLANE_VNET_ID, BackplanePlan, sector_alias

#: Zone types whose VNet tags are VXLAN VNIs (VLAN and QinQ tags live in another space).
VXLAN_ZONE_TYPES = frozenset({"vxlan", "evpn"})


@dataclass(frozen=True)
class VnetFact:
    """One SDN VNet on the cluster, as ``sdn.get_vnets()`` reports it."""

    id: str
    zone: str
    tag: int | None
    alias: str | None = None


@dataclass(frozen=True)
class ZoneFact:
    """One SDN zone on the cluster, as ``sdn.get_zones()`` reports it."""

    id: str
    type: str
    vrf_vxlan: int | None = None


@dataclass(frozen=True)
class ClusterFacts:
    """The SDN objects on the cluster that allocation and the Backplane checks depend on."""

    vnets: tuple[VnetFact, ...] = ()
    zones: tuple[ZoneFact, ...] = ()

    @property
    def in_use_tags(self) -> frozenset[int]:
        """Tags of VXLAN/EVPN VNets and VRF-VXLAN tags of EVPN zones (VLAN/QinQ excluded).

        A VNet whose zone is unknown counts as in use: a false clash only skips a tag.
        """
        zone_types = {zone.id: zone.type for zone in self.zones}
        tags = {
            vnet.tag
            for vnet in self.vnets
            if vnet.tag is not None and zone_types.get(vnet.zone, "vxlan") in VXLAN_ZONE_TYPES
        }
        tags.update(zone.vrf_vxlan for zone in self.zones if zone.vrf_vxlan is not None)
        return frozenset(tags)

    def sector_tags(self, stack: str) -> dict[str, int]:
        """Tags of the Sectors this stack already created, found by their stack-scoped alias."""
        prefix = sector_alias(stack, "")
        return {
            vnet.alias.removeprefix(prefix): vnet.tag
            for vnet in self.vnets
            if vnet.alias and vnet.alias.startswith(prefix) and vnet.tag is not None
        }

    @property
    def backplane_vnet(self) -> VnetFact | None:
        return next((vnet for vnet in self.vnets if vnet.id == BACKPLANE_VNET_ID), None)

    @property
    def backplane_cidr(self) -> IPNetwork | None:
        """The existing Backplane's CIDR, read back from its VNet's alias; None if absent.

        Raises :class:`BackplaneImmutableError` when a VNet has the Backplane's ID but not
        an OrbitLab alias (something else holds the ID).
        """
        vnet = self.backplane_vnet
        if vnet is None:
            return None
        alias = vnet.alias or ""
        prefix = f"{BACKPLANE_ALIAS_PREFIX} "
        try:
            if not alias.startswith(prefix):
                raise ValueError(alias)
            return IPNetwork(alias.removeprefix(prefix), version=4)
        except (AddrFormatError, ValueError):
            raise BackplaneImmutableError(
                f"the cluster has a VNet {BACKPLANE_VNET_ID!r} whose alias {alias!r} does not "
                f"record an OrbitLab Backplane (expected '{prefix}<cidr>'); rename or remove "
                "that VNet, or restore its alias"
            ) from None


def _number(value: Any) -> int | None:
    """Invoke results carry numbers as floats (and absent values as None or 0)."""
    return None if value in (None, "") else int(value)


def facts_from_invokes(vnets: Iterable[Any], zones: Iterable[Any]) -> ClusterFacts:
    """Build facts from ``get_vnets().vnets`` and ``get_zones().zones`` items."""
    return ClusterFacts(
        vnets=tuple(
            VnetFact(str(v.id), str(v.zone), _number(v.tag) or None, v.alias or None) for v in vnets
        ),
        zones=tuple(ZoneFact(str(z.id), str(z.type), _number(z.vrf_vxlan) or None) for z in zones),
    )


def read_cluster(provider: pulumi.ProviderResource | None = None) -> ClusterFacts:
    """Read the facts with two synchronous invokes (they run in ``preview`` as well)."""
    opts = pulumi.InvokeOptions(provider=provider) if provider is not None else None
    vnets = proxmoxve.sdn.get_vnets(opts=opts).vnets
    zones = proxmoxve.sdn.get_zones(opts=opts).zones
    return facts_from_invokes(vnets, zones)


def check_backplane(backplane: BackplanePlan, facts: ClusterFacts) -> None:
    """Refuse a Backplane the cluster cannot take, before anything is declared.

    - the Backplane exists with another CIDR: :class:`BackplaneImmutableError` naming both;
    - it does not exist yet and tag 10 or 100 is taken: :class:`SettingsError`;
    - this stack attaches to another stack's Backplane that does not exist yet.
    """
    current = facts.backplane_cidr
    if current is None and backplane.owner_stack is not None:
        raise BackplaneImmutableError(
            f"orbitlab:backplane.stack: this stack attaches to the Backplane of stack "
            f"{backplane.owner_stack!r}, but the cluster has no Backplane yet; "
            f"`pulumi up` that stack first"
        )
    if current is not None:
        if current != backplane.cidr:
            raise BackplaneImmutableError(
                f"orbitlab:backplane.cidr: the cluster's Backplane is {current} and cannot "
                f"change to {backplane.cidr}; set cidr: {current} back, or, to re-address it, "
                "wipe and re-initialize: destroy every Sector and the Backplane (see the "
                "README, 'Destroying the Backplane on purpose'), then `pulumi up` with the "
                "new CIDR"
            )
        return
    taken = sorted(BACKPLANE_TAGS & facts.in_use_tags)
    if taken:
        raise SettingsError(
            [
                f"orbitlab:backplane: the Backplane needs VRF-VXLAN tag "
                f"{backplane.vrf_tag} and VNet tag {backplane.vnet_tag}, but "
                f"{', '.join(map(str, taken))} {'is' if len(taken) == 1 else 'are'} already "
                "in use on the cluster (by a VXLAN/EVPN VNet or an EVPN zone's VRF); "
                "free them before the Backplane is first created"
            ]
        )


def plan_inputs(stack: str, facts: ClusterFacts) -> Mapping[str, Any]:
    """The keyword arguments :func:`orbitlab.plan.plan_stack` takes from the cluster."""
    return {"in_use_tags": facts.in_use_tags, "existing_tags": facts.sector_tags(stack)}
