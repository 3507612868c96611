"""What the cluster already holds, as plain values, and the checks and planning made against it.

The Pulumi program (through :mod:`orbitlab.cluster`, which reads these facts with two
provider invokes) and ``orbitlab show --endpoint`` (through the Proxmox API) both plan
against them, with the same functions. This module imports no Pulumi, so the command line
stays quick.

>>> facts = ClusterFacts(
...     vnets=(VnetFact("olbpvn", "olbpz", 100, "orbitlab backplane 10.200.0.0-16"),
...            VnetFact("olvn1001", "olvz1001", 1001, "ol home web")),
...     zones=(ZoneFact("olbpz", "evpn", 10), ZoneFact("olvz1001", "vxlan", None)),
... )
>>> sorted(facts.in_use_tags), facts.sector_tags("home"), str(facts.backplane_cidr)
([10, 100, 1001], {'web': 1001}, '10.200.0.0/16')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netaddr import IPNetwork

from orbitlab.allocation import BACKPLANE_TAGS
from orbitlab.errors import BackplaneImmutableError, SettingsError
from orbitlab.plan import (
    BACKPLANE_ALIAS_PREFIX,
    BACKPLANE_VNET_ID,
    BackplanePlan,
    StackPlan,
    cidr_from_backplane_alias,
    plan_backplane,
    plan_stack,
    sector_alias,
)
from orbitlab.settings import StackSettings

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
        cidr = cidr_from_backplane_alias(vnet.alias or "")
        if cidr is None:
            raise BackplaneImmutableError(
                f"the cluster has a VNet {BACKPLANE_VNET_ID!r} whose alias {vnet.alias!r} does "
                f"not record an OrbitLab Backplane (expected '{BACKPLANE_ALIAS_PREFIX} "
                "<network>-<prefix length>'); rename or remove that VNet, or restore its alias"
            )
        return cidr


def tag_number(value: Any) -> int | None:
    """A tag as invokes (floats) or the API (numbers or strings) give it; absent or 0 is None.

    >>> tag_number(1001.0), tag_number("10"), tag_number(None), tag_number(0)
    (1001, 10, None, None)
    """
    return None if value in (None, "") else int(value) or None


def facts_from_api(vnets: list[dict[str, Any]], zones: list[dict[str, Any]]) -> ClusterFacts:
    """Build facts from the Proxmox API's ``GET /cluster/sdn/vnets`` and ``/cluster/sdn/zones``.

    >>> facts = facts_from_api(
    ...     [{"vnet": "olvn1001", "zone": "olvz1001", "tag": 1001, "alias": "ol home web",
    ...       "type": "vnet"}],
    ...     [{"zone": "olbpz", "type": "evpn", "vrf-vxlan": 10}, {"zone": "v", "type": "vlan"}],
    ... )
    >>> sorted(facts.in_use_tags), facts.zones[1]
    ([10, 1001], ZoneFact(id='v', type='vlan', vrf_vxlan=None))
    """
    return ClusterFacts(
        vnets=tuple(
            VnetFact(
                str(v["vnet"]), str(v.get("zone", "")), tag_number(v.get("tag")), v.get("alias")
            )
            for v in vnets
        ),
        zones=tuple(
            ZoneFact(str(z["zone"]), str(z.get("type", "")), tag_number(z.get("vrf-vxlan")))
            for z in zones
        ),
    )


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


def plan_for_cluster(stack: str, settings: StackSettings, cluster: ClusterFacts) -> StackPlan:
    """Check the Backplane against the cluster, then plan against the tags in use.

    >>> from orbitlab.stack import load_stack_file
    >>> stack, settings = load_stack_file("stacks/Pulumi.example.yaml")
    >>> cluster = ClusterFacts(vnets=(VnetFact("olvn1001", "olvz1001", 1001, "ol other web"),))
    >>> [s.tag for s in plan_for_cluster(stack, settings, cluster).sectors]
    [1002, 1003]
    """
    check_backplane(plan_backplane(settings), cluster)
    return plan_stack(stack, settings, **plan_inputs(stack, cluster))
