"""The Sector component: an isolated VXLAN network with its gateway, DNS and load balancer.

Everything a Sector is (tag, IDs, addresses, node) comes from its :class:`SectorPlan`; the
component only declares it. The Backplane comes either as a :class:`Backplane` from the same
program or as its exported facts (e.g. ``StackReference.require_output("backplane")``).

Its SDN objects are applied by the :class:`~orbitlab.components.rollout.Rollout` it is
declared in — once for the Backplane and every Sector of the program.

Example (inside a Pulumi program)::

    plan = plan_stack(pulumi.get_stack(), settings, **plan_inputs(stack, read_cluster()))
    templates = ApplianceTemplates("templates", ApplianceTemplatesArgs(
        appliances=plan.appliances, nodes=tuple(sorted({s.node for s in plan.sectors}))))
    with Rollout("rollout") as rollout:
        backplane = Backplane("backplane", BackplaneArgs(plan=plan.backplane, rollout=rollout))
        for sector in plan.sectors:
            Sector(sector.name, SectorArgs(
                sector=sector, stack=plan, backplane=backplane,
                template_file_id=templates.file_id(sector.node), rollout=rollout))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_proxmoxve as proxmoxve

from orbitlab.allocation import appliance_mac
from orbitlab.components import sdn
from orbitlab.components.appliance import Appliance, ApplianceArgs, Nic, warn_unpinned_nodes
from orbitlab.components.backplane import SDN_ID_MAX, Backplane, backplane_from_facts
from orbitlab.components.guard import sector_guard
from orbitlab.components.rollout import Rollout
from orbitlab.components.ssh import SshCredentials, node_connection
from orbitlab.plan import BackplanePlan, SectorPlan, StackPlan, SubnetPlan
from orbitlab.rendering import OS_PROFILES, Bundle, provisioning_script, sector_bundles
from orbitlab.roles import DNS, GATEWAY, LOAD_BALANCER, ROLES, Role

BackplaneSource = Backplane | pulumi.Input[Mapping[str, Any]]


def subnet_slug(subnet: SubnetPlan) -> str:
    """A resource-name-safe key of a subnet, stable when subnets are reordered."""
    return str(subnet.cidr).replace(".", "-").replace("/", "-")


def sector_sdn_inputs(sector: SectorPlan, backplane: BackplanePlan) -> dict[str, Any]:
    """The inputs of the Sector's SDN objects, as plain values (also the digest's input)."""
    return {
        "zone": {
            "resource_id": sector.zone_id,
            "peers": [str(address) for address in backplane.peers],
            "mtu": sector.mtu,
            "nodes": list(backplane.node_names),
        },
        "vnet": {
            "resource_id": sector.vnet_id,
            "zone": sector.zone_id,
            "tag": sector.tag,
            "alias": sector.alias,
        },
        "subnets": {
            subnet_slug(subnet): {
                "cidr": str(subnet.cidr),
                "vnet": sector.vnet_id,
                "gateway": str(subnet.gateway),
                "snat": False,
            }
            for subnet in sector.subnets
        },
    }


def backplane_mismatches(expected: BackplanePlan, actual: BackplanePlan) -> list[str]:
    """What differs between the Backplane a Sector was planned against and the one given."""
    fields = {
        "cidr": (str(expected.cidr), str(actual.cidr)),
        "gateway": (str(expected.gateway), str(actual.gateway)),
        "mtu": (expected.mtu, actual.mtu),
        "vnet": (expected.vnet_id, actual.vnet_id),
        "nodes": (
            [(n.name, [str(a) for a in n.addresses]) for n in expected.nodes],
            [(n.name, [str(a) for a in n.addresses]) for n in actual.nodes],
        ),
        "node networks": (
            [(n.name, [str(network) for network in n.networks]) for n in expected.nodes],
            [(n.name, [str(network) for network in n.networks]) for n in actual.nodes],
        ),
        "protected networks": (
            [str(network) for network in expected.protected_networks],
            [str(network) for network in actual.protected_networks],
        ),
    }
    return [
        f"{key}: planned {want}, the Backplane has {got}"
        for key, (want, got) in fields.items()
        if want != got
    ]


def appliance_nics(sector: SectorPlan, backplane: BackplanePlan) -> dict[str, tuple[Nic, ...]]:
    """Each appliance's NICs: bridges, addresses with prefixes, gateways, MTU (from the plan)."""
    first = sector.first_subnet
    sector_prefix = first.cidr.prefixlen
    backplane_prefix = backplane.cidr.prefixlen
    mtu = backplane.mtu
    tag = sector.tag
    nics = {
        GATEWAY.name: (
            Nic(
                "eth0",
                sector.vnet_id,
                first.gateway_interface,
                mtu,
                mac=appliance_mac(tag, GATEWAY.name, 0),
            ),
            Nic(
                "eth1",
                backplane.vnet_id,
                f"{sector.gateway.backplane_address}/{backplane_prefix}",
                mtu,
                gateway=str(backplane.gateway),
                mac=appliance_mac(tag, GATEWAY.name, 1),
            ),
        ),
        DNS.name: (
            Nic(
                "eth0",
                sector.vnet_id,
                f"{sector.dns.sector_address}/{sector_prefix}",
                mtu,
                gateway=str(first.gateway),
                mac=sector.dns.mac,
            ),
        ),
    }
    lb = sector.load_balancer
    if lb is not None:
        nics[LOAD_BALANCER.name] = (
            Nic(
                "eth0",
                backplane.vnet_id,
                f"{lb.backplane_address}/{backplane_prefix}",
                mtu,
                gateway=str(backplane.gateway),
                mac=appliance_mac(tag, LOAD_BALANCER.name, 0),
            ),
            Nic(
                "eth1",
                sector.vnet_id,
                f"{lb.sector_address}/{sector_prefix}",
                mtu,
                mac=appliance_mac(tag, LOAD_BALANCER.name, 1),
            ),
        )
    return nics


def appliance_description(role: Role, sector: SectorPlan) -> str:
    """What an appliance is and runs, for its container's description.

    >>> from orbitlab.stack import load_plan
    >>> appliance_description(DNS, load_plan("stacks/Pulumi.example.yaml").sector("web"))
    'Sector DNS (CoreDNS, dnsmasq DHCP)'
    """
    dhcp = ", dnsmasq DHCP" if role is DNS and sector.dns.dhcp else ""
    return f"{role.title} ({role.software}{dhcp})"


def appliance_resolvers(sector: SectorPlan, stack: StackPlan) -> dict[str, tuple[str, ...]]:
    """Each appliance's own resolvers (its container's ``dns.servers``): the appliances'
    nameservers, but the Sector DNS's are its upstream — its forwarders when the Sector names
    some (under deny by default the gateway lets it reach those only).

    >>> from orbitlab.stack import load_plan
    >>> plan = load_plan("tests/data/twin/Pulumi.three.yaml")
    >>> appliance_resolvers(plan.sector("blue"), plan)["dns"]
    ('192.0.2.53',)
    >>> appliance_resolvers(plan.sector("blue"), plan)["gateway"]
    ('198.51.100.53',)
    """
    nameservers = tuple(str(address) for address in stack.appliances.nameservers)
    upstream = tuple(str(address) for address in sector.dns.forwarders) or nameservers
    return {each.name: upstream if each is DNS else nameservers for each in ROLES}


@dataclass(frozen=True)
class SectorArgs:
    """A Sector's plan, the stack plan it belongs to, its Backplane, its template and the
    rollout that applies its SDN objects (shared with the Backplane and the other Sectors).

    ``backplane``: a :class:`Backplane` declared in the same rollout, or the Backplane's
    facts (``StackReference.require_output("backplane")``), which must match
    ``stack.backplane``. ``bundles`` default to the ones rendered from the plan.
    """

    sector: SectorPlan
    stack: StackPlan
    backplane: BackplaneSource
    template_file_id: pulumi.Input[str]
    rollout: Rollout
    ssh: SshCredentials = field(default_factory=SshCredentials)
    bundles: Mapping[str, Bundle] | None = None

    def problems(self) -> list[str]:
        sector, backplane = self.sector, self.stack.backplane
        problems = []
        if sector.node not in backplane.node_names:
            problems.append(
                f"sector.node: {sector.node!r} is not a Backplane node "
                f"({', '.join(backplane.node_names)})"
            )
        for key, value in (("zone_id", sector.zone_id), ("vnet_id", sector.vnet_id)):
            if not 2 <= len(value) <= SDN_ID_MAX or not value.isalnum() or not value[0].isalpha():
                problems.append(f"sector.{key}: {value!r} is not a Proxmox SDN ID (2-8 alnum)")
        if sector.mtu != backplane.mtu:
            problems.append(
                f"sector.mtu: {sector.mtu} differs from the Backplane's {backplane.mtu}"
            )
        if sector.gateway.backplane_address not in backplane.cidr:
            problems.append(
                f"sector.gateway.backplane_address: {sector.gateway.backplane_address} is "
                f"outside the Backplane {backplane.cidr}"
            )
        if isinstance(self.backplane, Backplane):
            for mismatch in backplane_mismatches(backplane, self.backplane.plan):
                problems.append(f"backplane: {mismatch}")
            if self.backplane.rollout is not self.rollout:
                problems.append(
                    "backplane: declared in another Rollout; declare the Backplane and its "
                    "Sectors in one, so that no two SDN applies can run at once"
                )
        if not self.rollout.is_open:
            problems.append("rollout: declare the Sector inside `with Rollout(...) as rollout:`")
        if self.bundles is not None:
            expected = set(sector.roles)
            if set(self.bundles) != expected:
                problems.append(f"bundles: got {sorted(self.bundles)}, expected {sorted(expected)}")
        return problems


class Sector(pulumi.ComponentResource):
    """VXLAN zone, VNet, subnets and the appliances (``orbitlab:index:Sector``).

    Children: ``<name>-finalizer``, ``<name>-zone``, ``<name>-vnet``, per subnet
    ``<name>-subnet-<cidr>`` and its ``-finalizer``, ``<name>-bridges`` (the bridge wait,
    after the rollout's SDN apply), ``<name>-guard-<node>`` on every node (the Sector guard,
    :mod:`orbitlab.components.guard`), and the ``<name>-gateway``, ``<name>-dns`` and
    optional ``<name>-lb`` :class:`Appliance` components. The rollout applies the SDN
    objects.
    """

    #: The component's name (its appliances are ``<name>-gateway``, ``-dns``, ``-lb``).
    resource_name: str
    plan: SectorPlan
    tag: int
    zone_id: str
    node: str
    mtu: int
    subnets: tuple[str, ...]
    gateway_address: str
    gateway_backplane_address: str
    dns_address: str
    lb_address: str | None
    peers: tuple[str, ...]
    sdn_digest: str
    zone: proxmoxve.sdn.zone.Vxlan
    vnet: proxmoxve.sdn.Vnet
    subnet_resources: tuple[proxmoxve.sdn.Subnet, ...]
    rollout: Rollout
    bridge_wait: command.remote.Command
    appliances: dict[str, Appliance]
    #: The VNet ID to join (``bridge=``), resolved once the bridge exists on the Sector's node.
    vnet_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: SectorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        problems = args.problems()
        if problems:
            raise ValueError(f"Sector {name!r}: " + "; ".join(problems))
        sector, stack = args.sector, args.stack
        backplane_plan = stack.backplane
        bundles = args.bundles if args.bundles is not None else sector_bundles(stack, sector)
        os_profile = OS_PROFILES[stack.appliances.os]
        scripts = {role: provisioning_script(b, os_profile) for role, b in bundles.items()}
        super().__init__("orbitlab:index:Sector", name, None, opts)

        self.resource_name = name
        self.plan = sector
        self.tag = sector.tag
        self.zone_id = sector.zone_id
        self.node = sector.node
        self.mtu = sector.mtu
        self.subnets = tuple(str(s.cidr) for s in sector.subnets)
        self.gateway_address = str(sector.gateway_address)
        self.gateway_backplane_address = str(sector.gateway.backplane_address)
        self.dns_address = str(sector.dns.sector_address)
        lb = sector.load_balancer
        self.lb_address = str(lb.backplane_address) if lb is not None else None
        self.peers = tuple(str(a) for a in backplane_plan.peers)
        inputs = sector_sdn_inputs(sector, backplane_plan)
        self.sdn_digest = sdn.sdn_digest(inputs)

        # The zone's peers and MTU are the Backplane's. A Backplane of this program was checked
        # against the plan above: its plain values keep the preview known. Facts from another
        # stack are checked once they resolve.
        peers: pulumi.Input[list[str]] = list(self.peers)
        mtu: pulumi.Input[int] = backplane_plan.mtu
        if not isinstance(args.backplane, Backplane):
            attached = pulumi.Output.from_input(args.backplane).apply(
                lambda facts: _attach(name, backplane_plan, facts)
            )
            peers = attached.apply(lambda b: [str(a) for a in b.peers])
            mtu = attached.apply(lambda b: b.mtu)

        def child(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, delete_before_replace=True, depends_on=list(depends_on)
            )

        rollout = self.rollout = args.rollout
        final = rollout.sector_finalizer(f"{name}-finalizer", pulumi.ResourceOptions(parent=self))
        zone = inputs["zone"]
        self.zone = proxmoxve.sdn.zone.Vxlan(
            f"{name}-zone",
            resource_id=zone["resource_id"],
            peers=peers,
            mtu=mtu,
            nodes=zone["nodes"],
            opts=child(final),
        )
        self.vnet = proxmoxve.sdn.Vnet(
            f"{name}-vnet", **inputs["vnet"], opts=child(final, self.zone)
        )
        subnets = []
        for slug, subnet_inputs in inputs["subnets"].items():
            # Each subnet has its own finalizer: removing one subnet from a living Sector
            # deletes it, then its finalizer applies that deletion. When the whole Sector
            # goes, the Sector's finalizer applies once for all of it.
            subnet_final = rollout.finalizer(
                f"{name}-subnet-{slug}-finalizer",
                pulumi.ResourceOptions(parent=self),
                within=final,
            )
            subnets.append(
                proxmoxve.sdn.Subnet(
                    f"{name}-subnet-{slug}",
                    **subnet_inputs,
                    opts=child(subnet_final, self.vnet),
                )
            )
        self.subnet_resources = tuple(subnets)
        rollout.track(
            name, [self.zone, self.vnet, *subnets], self.sdn_digest, zones=(sector.zone_id,)
        )
        # on every node that carries the VNet (the zone's nodes), once it is applied, and
        # before any appliance starts
        self.guards = tuple(
            sector_guard(
                f"{name}-guard-{carrier.name}",
                sector,
                carrier,
                args.ssh,
                pulumi.ResourceOptions(parent=self, depends_on=[rollout.applied]),
            )
            for carrier in backplane_plan.nodes
        )
        node = next(n for n in backplane_plan.nodes if n.name == sector.node)
        warn_unpinned_nodes([node], self)
        connection = node_connection(node, args.ssh)
        self.bridge_wait = sdn.bridge_wait(
            f"{name}-bridges",
            connection=connection,
            bridges=[sector.vnet_id, backplane_plan.vnet_id],
            node=node.name,
            digest=self.sdn_digest,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[rollout.applied]),
        )

        nics = appliance_nics(sector, backplane_plan)
        resolvers = appliance_resolvers(sector, stack)
        self.appliances = {}
        for each in ROLES:
            role = each.name
            if role not in scripts:
                continue
            # The DNS and LB install packages through the gateway: provision it first.
            after = (self.appliances[GATEWAY.name].provisioning,) if each is not GATEWAY else ()
            self.appliances[role] = Appliance(
                f"{name}-{role}",
                ApplianceArgs(
                    node=node,
                    vmid=sector.vmid(role),
                    hostname=each.hostname(sector.tag),
                    nics=nics[role],
                    script=scripts[role],
                    template_file_id=args.template_file_id,
                    appliances=stack.appliances,
                    storage=stack.storage(node.name).rootdir,
                    ssh=args.ssh,
                    nameservers=resolvers[role],
                    domain=sector.domain,
                    description=(
                        f"OrbitLab {appliance_description(each, sector)} of Sector {sector.name} "
                        f"(stack {sector.stack}, tag {sector.tag}); managed by Pulumi"
                    ),
                    tags=("orbitlab", f"sector-{sector.name}"),
                    start_after=(self.bridge_wait, self.vnet, *self.guards),
                    provision_after=after,
                    rollout=rollout,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.vnet_id = pulumi.Output.all(self.vnet.id, self.bridge_wait.id).apply(
            lambda _: sector.vnet_id
        )
        self.register_outputs(
            {
                "tag": self.tag,
                "zoneId": self.zone_id,
                "vnetId": self.vnet_id,
                "node": self.node,
                "mtu": self.mtu,
                "subnets": list(self.subnets),
                "gatewayAddress": self.gateway_address,
                "gatewayBackplaneAddress": self.gateway_backplane_address,
                "dnsAddress": self.dns_address,
                "lbAddress": self.lb_address,
                "peers": list(self.peers),
                "sdnDigest": self.sdn_digest,
            }
        )

    def warn_reboots(self, records: Mapping[str, Any] | None) -> None:
        """Name each appliance a change will reboot, given the appliances' records as last
        deployed (by name; see :func:`orbitlab.components.warn_reboots`)."""
        for appliance in self.appliances.values():
            appliance.warn_reboot((records or {}).get(appliance.name))

    def appliance_records(self) -> dict[str, dict[str, Any]]:
        """Each appliance's record (:meth:`Appliance.record`) by its component's name."""
        return {appliance.name: appliance.record() for appliance in self.appliances.values()}

    def summary(self) -> dict[str, Any]:
        """The Sector's facts as plain values, for stack outputs."""
        return {
            "tag": self.tag,
            "vnet": self.plan.vnet_id,
            "zone": self.zone_id,
            "node": self.node,
            "mtu": self.mtu,
            "subnets": list(self.subnets),
            "gateway": self.gateway_address,
            "gatewayBackplane": self.gateway_backplane_address,
            "dns": self.dns_address,
            "domain": self.plan.domain,
            "dhcpPool": self.plan.dns.dhcp.pool_text if self.plan.dns.dhcp else None,
            "loadBalancer": self.lb_address,
        }


def warn_reboots(deployed: pulumi.Input[Any], sectors: Iterable[Sector]) -> None:
    """In ``pulumi preview`` too: name each appliance of ``sectors`` that a change will
    reboot, given the appliances' records as last deployed (e.g. the stack's previous
    ``appliances`` output, :func:`orbitlab.program.deployed_appliances`).

    One apply for the whole program: an apply per Sector on the stack reference's output
    made a 30-Sector program run ten times as long under the SDK.
    """
    chosen = list(sectors)

    def warn(records: Mapping[str, Any] | None) -> None:
        for sector in chosen:
            sector.warn_reboots(records)

    pulumi.Output.from_input(deployed).apply(warn)


def _attach(name: str, planned: BackplanePlan, facts: Mapping[str, Any]) -> BackplanePlan:
    """Check the Backplane a Sector is given against the one it was planned with."""
    actual = backplane_from_facts(facts)
    mismatches = backplane_mismatches(planned, actual)
    if mismatches:
        raise ValueError(
            f"Sector {name!r} was planned for another Backplane than the one it is attached "
            f"to ({'; '.join(mismatches)}); make orbitlab:backplane in this stack match the "
            "Backplane stack (orbitlab discover fills in the nodes)"
        )
    return actual
