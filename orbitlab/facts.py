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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from netaddr import IPNetwork

from orbitlab.allocation import (
    BACKPLANE_TAGS,
    SECTOR_TAG_MAX,
    SECTOR_TAG_MIN,
)
from orbitlab.errors import BackplaneImmutableError, SettingsError
from orbitlab.plan import (
    BACKPLANE_ALIAS_PREFIX,
    BACKPLANE_VNET_ID,
    DEFAULT_ROOT_STORAGE,
    DEFAULT_TEMPLATE_STORAGE,
    BackplanePlan,
    NodeStorage,
    StackPlan,
    cidr_from_backplane_alias,
    plan_backplane,
    plan_stack,
    sector_alias,
)
from orbitlab.roles import ROLES
from orbitlab.settings import ApplianceSettings, StackSettings

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
    controller: str | None = None


#: The Proxmox guest tag every OrbitLab appliance carries (``Appliance``'s default tags).
APPLIANCE_GUEST_TAG = "orbitlab"
#: Guest types as the API names them: VMs and containers.
GUEST_TYPES = ("qemu", "lxc")


@dataclass(frozen=True)
class GuestFact:
    """A VM or container on the cluster (``get_vms_legacy``/``get_containers_legacy``)."""

    vmid: int
    node: str
    name: str = ""
    kind: str = "qemu"  # or "lxc"
    tags: tuple[str, ...] = ()

    def __str__(self) -> str:
        what = "VM" if self.kind == "qemu" else "CT"
        named = f" {self.name!r}" if self.name else ""
        return f"{what} {self.vmid}{named} on {self.node}"

    @property
    def is_appliance(self) -> bool:
        """A container tagged as OrbitLab's: an appliance this or another stack made."""
        return self.kind == "lxc" and APPLIANCE_GUEST_TAG in self.tags


@dataclass(frozen=True)
class DatastoreFact:
    """A storage as a node sees it (``get_datastores(node_name=...)``)."""

    id: str
    node: str
    content: frozenset[str]
    shared: bool = False
    usable: bool = True  # enabled and active

    def __str__(self) -> str:
        return f"{self.id} ({', '.join(sorted(self.content)) or 'no content'})"


@dataclass(frozen=True)
class ClusterFacts:
    """What is on the cluster that allocation and the cluster checks depend on: SDN zones
    and VNets, and the guests (VMIDs are unique across VMs and containers)."""

    vnets: tuple[VnetFact, ...] = ()
    zones: tuple[ZoneFact, ...] = ()
    guests: tuple[GuestFact, ...] = ()
    #: The storages of the nodes that were read (a node not read: none known).
    datastores: tuple[DatastoreFact, ...] = ()

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

    @property
    def blocked_tags(self) -> dict[int, str]:
        """Sector tags a new Sector cannot take because a guest holds one of their VMIDs.

        >>> ClusterFacts(guests=(GuestFact(10011, "pve1", "legacy"),)).blocked_tags
        {1001: "VMID 10011 (its gateway's) is held by VM 10011 'legacy' on pve1"}
        """
        roles = {role.vmid_suffix: role.name for role in ROLES}
        blocked: dict[int, str] = {}
        for guest in sorted(self.guests, key=lambda guest: guest.vmid):
            tag, suffix = divmod(guest.vmid, 10)
            if suffix in roles and SECTOR_TAG_MIN <= tag <= SECTOR_TAG_MAX:
                blocked.setdefault(
                    tag, f"VMID {guest.vmid} (its {roles[suffix]}'s) is held by {guest}"
                )
        return blocked

    def foreign_evpn_controllers(self, own: str) -> dict[str, list[str]]:
        """EVPN controllers other than ``own`` that zones use, each with those zones."""
        found: dict[str, list[str]] = {}
        for zone in self.zones:
            if zone.type == "evpn" and zone.controller and zone.controller != own:
                found.setdefault(zone.controller, []).append(zone.id)
        return found

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


def facts_from_api(
    vnets: list[dict[str, Any]],
    zones: list[dict[str, Any]],
    guests: list[dict[str, Any]] | None = None,
) -> ClusterFacts:
    """Build facts from the Proxmox API's ``GET /cluster/sdn/vnets`` and ``/cluster/sdn/zones``
    (and ``GET /cluster/resources?type=vm``: the guests).

    >>> facts = facts_from_api(
    ...     [{"vnet": "olvn1001", "zone": "olvz1001", "tag": 1001, "alias": "ol home web",
    ...       "type": "vnet"}],
    ...     [{"zone": "olbpz", "type": "evpn", "vrf-vxlan": 10}, {"zone": "v", "type": "vlan"}],
    ... )
    >>> sorted(facts.in_use_tags), facts.zones[1]
    ([10, 1001], ZoneFact(id='v', type='vlan', vrf_vxlan=None, controller=None))
    """
    return ClusterFacts(
        vnets=tuple(
            VnetFact(
                str(v["vnet"]), str(v.get("zone", "")), tag_number(v.get("tag")), v.get("alias")
            )
            for v in vnets
        ),
        zones=tuple(
            ZoneFact(
                str(z["zone"]),
                str(z.get("type", "")),
                tag_number(z.get("vrf-vxlan")),
                z.get("controller") or None,
            )
            for z in zones
        ),
        guests=tuple(guest_from_api(g) for g in guests or () if g.get("type") in GUEST_TYPES),
    )


def guest_from_api(entry: Mapping[str, Any]) -> GuestFact:
    """A ``GET /cluster/resources?type=vm`` entry (``qemu`` or ``lxc``; tags ``a;b``).

    >>> str(guest_from_api({"vmid": 10011, "type": "qemu", "node": "pve1", "name": "nas"}))
    "VM 10011 'nas' on pve1"
    """
    tags = entry.get("tags") or ""
    listed = tags if isinstance(tags, list) else str(tags).split(";")
    return GuestFact(
        int(entry["vmid"]),
        str(entry.get("node") or ""),
        str(entry.get("name") or ""),
        str(entry["type"]),
        tuple(sorted(str(tag).strip() for tag in listed if str(tag).strip())),
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
                "wipe and re-initialize: destroy every Sector and the Backplane (see "
                "docs/workflow.md, 'Destroying the Backplane on purpose'), then `pulumi up` "
                "with the new CIDR"
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


def check_guests_and_controllers(plan: StackPlan, facts: ClusterFacts) -> None:
    """Refuse, before anything is declared, what the cluster already holds in the plan's way.

    - an EVPN controller other than the Backplane's: Proxmox allows one per cluster
      (``only 1 global evpn controller can be defined``, pve-network
      ``Controllers/EvpnPlugin.pm``), so the Backplane's could never be created;
    - a planned container VMID held by a guest that is not an OrbitLab appliance (VMIDs are
      unique across VMs and containers, pve-cluster ``Cluster.pm``, ``check_vmid_unused``).
      New Sectors already avoid such tags (:attr:`ClusterFacts.blocked_tags`); this catches
      a new appliance of an existing Sector.
    """
    problems: list[str] = []
    own = plan.backplane.controller_id
    for controller, zones in sorted(facts.foreign_evpn_controllers(own).items()):
        problems.append(
            f"orbitlab:backplane: the cluster already has the EVPN controller {controller!r} "
            f"(zone {', '.join(map(repr, zones))} uses it), and Proxmox allows one EVPN "
            f"controller per cluster; the Backplane needs its own ({own!r}): remove that "
            "controller and its zones first, or run OrbitLab on a cluster without one"
        )
    guests = {guest.vmid: guest for guest in facts.guests}
    for index, sector in enumerate(plan.sectors):
        for role in sector.roles:
            vmid = sector.vmid(role)
            guest = guests.get(vmid)
            if guest is not None and not guest.is_appliance:
                problems.append(
                    f"orbitlab:sectors[{index}] ({sector.name}): its {role} container needs "
                    f"VMID {vmid}, which {guest} already has (VMIDs are unique across VMs "
                    "and containers); move or renumber that guest"
                )
    if problems:
        raise SettingsError(problems)


#: Unset ``appliances.storage`` / ``template_storage``: the storages tried first, in order.
ROOT_PREFERENCE = (DEFAULT_ROOT_STORAGE, "local-zfs")
TEMPLATE_PREFERENCE = (DEFAULT_TEMPLATE_STORAGE,)
CONTENT_NAMES = {"rootdir": "container root disks", "vztmpl": "container templates"}


def _pick(
    field_name: str, configured: str | None, content: str, node: str, stores: list[DatastoreFact]
) -> DatastoreFact:
    """The node's storage for ``content``: the configured one, checked, or the first usable
    one in the preference order (then shared ones, then by name)."""
    listing = ", ".join(map(str, stores)) or "none"
    where = f"orbitlab:appliances.{field_name}"
    if configured is not None:
        found = next((store for store in stores if store.id == configured), None)
        if found is None:
            raise SettingsError([
                f"{where}: {configured!r} is not a storage of node {node} (its storages: "
                f"{listing}); choose one that holds {content}, or leave it unset to have one "
                "chosen"
            ])  # fmt: skip
        if content not in found.content or not found.usable:
            why = "is disabled or not active" if not found.usable else (
                f"does not hold {CONTENT_NAMES[content]} ('{content}')"
            )  # fmt: skip
            raise SettingsError([
                f"{where}: storage {configured!r} of node {node} {why} (its storages: "
                f"{listing}); choose another, or add the content type: pvesm set "
                f"{configured} --content <its content>,{content}"
            ])  # fmt: skip
        return found
    preference = ROOT_PREFERENCE if content == "rootdir" else TEMPLATE_PREFERENCE
    candidates = [store for store in stores if content in store.content and store.usable]
    if not candidates:
        raise SettingsError([
            f"{where}: no storage of node {node} holds {CONTENT_NAMES[content]} ('{content}'; "
            f"its storages: {listing}); add the content type to one (pvesm set <storage> "
            f"--content ...,{content}) or set {where}"
        ])  # fmt: skip

    def rank(store: DatastoreFact) -> tuple[int, bool, str]:
        known = preference.index(store.id) if store.id in preference else len(preference)
        return known, not store.shared, store.id

    return min(candidates, key=rank)


def choose_storages(
    appliances: ApplianceSettings, nodes: Iterable[str], facts: ClusterFacts
) -> dict[str, NodeStorage]:
    """Per node that hosts appliances, the storages for their root disks and template, from
    the storages the cluster reports (nodes it reported none for are left out: the
    configured or default names are used there). Raises :class:`SettingsError` when a
    configured storage is missing or lacks the content type, or no storage has it.

    >>> facts = ClusterFacts(datastores=(
    ...     DatastoreFact("local", "pve1", frozenset({"vztmpl", "iso"})),
    ...     DatastoreFact("local-zfs", "pve1", frozenset({"rootdir", "images"}))))
    >>> choose_storages(ApplianceSettings(), ["pve1"], facts)
    {'pve1': NodeStorage(rootdir='local-zfs', vztmpl='local', shared=False)}
    """
    chosen: dict[str, NodeStorage] = {}
    for node in sorted(set(nodes)):
        stores = sorted((s for s in facts.datastores if s.node == node), key=lambda s: s.id)
        if not stores:
            continue
        root = _pick("storage", appliances.storage, "rootdir", node, stores)
        template = _pick("template_storage", appliances.template_storage, "vztmpl", node, stores)
        chosen[node] = NodeStorage(root.id, template.id, template.shared)
    return chosen


def plan_inputs(stack: str, facts: ClusterFacts) -> Mapping[str, Any]:
    """The keyword arguments :func:`orbitlab.plan.plan_stack` takes from the cluster."""
    return {
        "in_use_tags": facts.in_use_tags,
        "existing_tags": facts.sector_tags(stack),
        "blocked_tags": facts.blocked_tags,
    }


def plan_for_cluster(stack: str, settings: StackSettings, cluster: ClusterFacts) -> StackPlan:
    """Check the Backplane against the cluster, then plan against the tags in use.

    >>> from orbitlab.stack import load_stack_file
    >>> stack, settings = load_stack_file("stacks/Pulumi.example.yaml")
    >>> cluster = ClusterFacts(vnets=(VnetFact("olvn1001", "olvz1001", 1001, "ol other web"),))
    >>> [s.tag for s in plan_for_cluster(stack, settings, cluster).sectors]
    [1002, 1003]
    """
    check_backplane(plan_backplane(settings), cluster)
    plan = plan_stack(stack, settings, **plan_inputs(stack, cluster))
    check_guests_and_controllers(plan, cluster)
    hosting = {sector.node for sector in plan.sectors}
    return replace(plan, storages=choose_storages(settings.appliances, hosting, cluster))
