"""The Backplane component: the cluster-wide EVPN network every Sector attaches to.

One per cluster, owned by one stack. Its CIDR is immutable: when the cluster already holds
a Backplane with another CIDR, the component refuses before declaring anything. Every
child is ``protect``ed; the applier, which must stay replaceable, belongs to the rollout.

Its SDN objects are applied by the :class:`~orbitlab.components.rollout.Rollout` it is
declared in, together with the Sectors', in one ``PUT /cluster/sdn``.

Example (inside a Pulumi program)::

    from orbitlab.cluster import read_cluster
    from orbitlab.components import Backplane, BackplaneArgs, Rollout

    with Rollout("rollout") as rollout:
        backplane = Backplane("backplane", BackplaneArgs(
            plan=plan.backplane, rollout=rollout, cluster=read_cluster()))
    pulumi.export("backplane", backplane.facts)   # Sectors in other stacks attach by reference
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_proxmoxve as proxmoxve
from netaddr import IPAddress, IPNetwork

from orbitlab.allocation import VXLAN_OVERHEAD
from orbitlab.cluster import ClusterFacts, check_backplane
from orbitlab.components import sdn
from orbitlab.components.rollout import Rollout
from orbitlab.plan import BackplanePlan, NodePlan
from orbitlab.settings import MIN_MTU

SDN_ID_MAX = 8


def backplane_facts(plan: BackplanePlan) -> dict[str, Any]:
    """The Backplane's facts as plain JSON values: what a Sector needs to attach.

    This is what the ``backplane`` stack output holds, and what :func:`backplane_from_facts`
    reads back (e.g. from a ``StackReference``).
    """
    return {
        "cidr": str(plan.cidr),
        "gateway": str(plan.gateway),
        "mtu": plan.mtu,
        "asn": plan.asn,
        "controller": plan.controller_id,
        "zone": plan.zone_id,
        "vnet": plan.vnet_id,
        "primaryExitNode": plan.primary_exit_node,
        "peers": [str(address) for address in plan.peers],
        "nodes": [
            {
                "name": n.name,
                "address": str(n.address),
                "mtu": n.mtu,
                "hostKey": n.host_key,
                "otherAddresses": [str(a) for a in n.other_addresses],
                "networks": [str(network) for network in n.networks],
            }
            for n in plan.nodes
        ],
        "protectedNetworks": [str(network) for network in plan.protected_networks],
    }


def backplane_from_facts(facts: Mapping[str, Any]) -> BackplanePlan:
    """Read exported facts back into a plan (numbers may arrive as floats).

    Raises ValueError naming the missing or malformed field.
    """
    try:
        nodes = tuple(
            NodePlan(
                str(n["name"]),
                IPAddress(str(n["address"])),
                int(n["mtu"]),
                n.get("hostKey"),
                tuple(IPAddress(str(a)) for a in n.get("otherAddresses") or ()),
                tuple(IPNetwork(str(network)) for network in n.get("networks") or ()),
            )
            for n in facts["nodes"]
        )
        return BackplanePlan(
            cidr=IPNetwork(str(facts["cidr"])),
            gateway=IPAddress(str(facts["gateway"])),
            mtu=int(facts["mtu"]),
            asn=int(facts["asn"]),
            nodes=nodes,
            primary_exit_node=str(facts["primaryExitNode"]),
            controller_id=str(facts["controller"]),
            zone_id=str(facts["zone"]),
            vnet_id=str(facts["vnet"]),
            protected_networks=tuple(
                IPNetwork(str(network)) for network in facts.get("protectedNetworks") or ()
            ),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"not the facts of an OrbitLab Backplane ({type(error).__name__}: {error}); "
            "expected the 'backplane' output of the stack that owns the Backplane"
        ) from None


@dataclass(frozen=True)
class BackplaneArgs:
    """The Backplane's plan, the rollout that applies it, and what the cluster already holds
    (to enforce immutability).

    ``cluster`` left out skips the cluster checks (tests, or a caller that made them).
    """

    plan: BackplanePlan
    rollout: Rollout
    cluster: ClusterFacts | None = None

    def problems(self) -> list[str]:
        plan = self.plan
        problems = []
        names = list(plan.node_names)
        if not names:
            problems.append("plan.nodes: a Backplane needs at least one node")
        if len(set(names)) != len(names):
            problems.append(f"plan.nodes: node names repeat: {names}")
        if plan.primary_exit_node not in names:
            problems.append(
                f"plan.primary_exit_node: {plan.primary_exit_node!r} is not a node "
                f"({', '.join(names)})"
            )
        for field, value in (
            ("controller_id", plan.controller_id),
            ("zone_id", plan.zone_id),
            ("vnet_id", plan.vnet_id),
        ):
            if not 2 <= len(value) <= SDN_ID_MAX or not value.isalnum() or not value[0].isalpha():
                problems.append(f"plan.{field}: {value!r} is not a Proxmox SDN ID (2-8 alnum)")
        if plan.gateway not in plan.cidr or plan.gateway == plan.cidr.network:
            problems.append(f"plan.gateway: {plan.gateway} is not a host of {plan.cidr}")
        if plan.nodes and plan.mtu > min(n.mtu for n in plan.nodes) - VXLAN_OVERHEAD:
            problems.append(f"plan.mtu: {plan.mtu} does not fit the nodes' vmbr0 MTU - 50")
        if plan.mtu < MIN_MTU:
            problems.append(f"plan.mtu: {plan.mtu} is below {MIN_MTU}")
        if not self.rollout.is_open:
            problems.append("rollout: declare the Backplane inside `with Rollout(...) as rollout:`")
        return problems


class Backplane(pulumi.ComponentResource):
    """EVPN controller, EVPN zone, VNet and SNAT subnet (``orbitlab:index:Backplane``).

    Children (all protected): ``<name>-finalizer`` (first in the rollout's chain),
    ``<name>-controller``, ``<name>-zone``, ``<name>-vnet``, ``<name>-subnet``. The rollout's
    applier applies them.
    """

    plan: BackplanePlan
    rollout: Rollout
    controller: proxmoxve.sdn.controller.Evpn
    zone: proxmoxve.sdn.zone.Evpn
    vnet: proxmoxve.sdn.Vnet
    subnet: proxmoxve.sdn.Subnet
    sdn_digest: str
    #: The facts, resolved once the SDN apply is done; export this for other stacks.
    facts: pulumi.Output[dict[str, Any]]
    vnet_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackplaneArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        problems = args.problems()
        if problems:
            raise ValueError(f"Backplane {name!r}: " + "; ".join(problems))
        if args.cluster is not None:
            check_backplane(args.plan, args.cluster)
        super().__init__("orbitlab:index:Backplane", name, None, opts)
        plan = self.plan = args.plan
        inputs = backplane_sdn_inputs(plan)
        self.sdn_digest = sdn.sdn_digest(inputs)

        def child(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, protect=True, delete_before_replace=True, depends_on=list(depends_on)
            )

        rollout = self.rollout = args.rollout
        final = rollout.backplane_finalizer(f"{name}-finalizer", child())
        self.controller = proxmoxve.sdn.controller.Evpn(
            f"{name}-controller", **inputs["controller"], opts=child(final)
        )
        self.zone = proxmoxve.sdn.zone.Evpn(
            f"{name}-zone", **inputs["zone"], opts=child(final, self.controller)
        )
        self.vnet = proxmoxve.sdn.Vnet(
            f"{name}-vnet", **inputs["vnet"], opts=child(final, self.zone)
        )
        self.subnet = proxmoxve.sdn.Subnet(
            f"{name}-subnet", **inputs["subnet"], opts=child(final, self.vnet)
        )
        rollout.track(
            name,
            [self.controller, self.zone, self.vnet, self.subnet],
            self.sdn_digest,
            zones=(plan.zone_id,),
        )
        facts = backplane_facts(plan)
        self.facts = rollout.applied_id.apply(lambda _: facts)
        self.vnet_id = rollout.applied_id.apply(lambda _: plan.vnet_id)
        self.register_outputs({"facts": self.facts, "sdnDigest": self.sdn_digest})


def backplane_sdn_inputs(plan: BackplanePlan) -> dict[str, dict[str, Any]]:
    """The inputs of the Backplane's SDN objects, as plain values (also the digest's input)."""
    nodes = list(plan.node_names)
    return {
        "controller": {
            "sdn_controller_evpn_id": plan.controller_id,
            "asn": plan.asn,
            "peers": [str(address) for address in plan.peers],
        },
        "zone": {
            "resource_id": plan.zone_id,
            "controller": plan.controller_id,
            "vrf_vxlan": plan.vrf_tag,
            "nodes": nodes,
            "exit_nodes": nodes,
            "primary_exit_node": plan.primary_exit_node,
            "advertise_subnets": True,
            "mtu": plan.mtu,
        },
        "vnet": {
            "resource_id": plan.vnet_id,
            "zone": plan.zone_id,
            "tag": plan.vnet_tag,
            "alias": plan.alias,
        },
        "subnet": {
            "cidr": str(plan.cidr),
            "vnet": plan.vnet_id,
            "gateway": str(plan.gateway),
            "snat": True,
        },
    }
