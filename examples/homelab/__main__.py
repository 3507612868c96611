"""A home-lab program: the OrbitLab components next to resources of its own.

It declares the OrbitLab network from the same ``orbitlab:*`` config as the stack program
(or attaches its Sectors to a Backplane owned by another stack, by ``StackReference``),
then one Debian app container for every host declared in a Sector, joined the way any VM or
LXC joins a Sector: NIC on ``bridge=<sector VNet>``, MTU = Backplane MTU, and either its
address, gateway ``.1`` and the Sector DNS, or ``ip=dhcp`` (a host without an address, or
one whose ``mac`` reserves its address) — the Sector DHCP hands out the same.
"""

from __future__ import annotations

import pulumi
import pulumi_proxmoxve as proxmoxve

from orbitlab.cluster import read_cluster
from orbitlab.components import (
    ApplianceTemplates,
    ApplianceTemplatesArgs,
    Backplane,
    BackplaneArgs,
    Rollout,
    Sector,
    SectorArgs,
    SshCredentials,
    warn_reboots,
)
from orbitlab.components.appliance import TEMPLATE_INPUT, template_file_name
from orbitlab.plan import HostPlan, SectorPlan
from orbitlab.program import SSH_KEY_CONFIG, deployed_appliances, plan_for_cluster, stack_config
from orbitlab.stack import settings_from_config

config = pulumi.Config("homelab")
settings = settings_from_config(stack_config())
plan = plan_for_cluster(
    pulumi.get_stack(), settings, read_cluster(nodes=settings.backplane.node_names)
)
ssh = SshCredentials(
    user=settings.appliances.ssh_user,
    private_key=pulumi.Config("orbitlab").get_secret(SSH_KEY_CONFIG),
)

hosting = tuple(sorted({sector.node for sector in plan.sectors}))
templates = ApplianceTemplates(
    "templates",
    ApplianceTemplatesArgs(appliances=plan.appliances, nodes=hosting, storages=plan.storages),
)

# Everything that touches SDN is declared in one rollout: one SDN apply for the Backplane and
# every Sector, finalizers in one chain, and container creation bounded per node (the app
# containers below take their places in the same lanes).
# The appliances as last deployed (this stack's own output): preview names the reboots a
# change causes.
deployed = deployed_appliances()
backplane: Backplane | pulumi.Output
with Rollout("rollout") as rollout:
    if plan.backplane.owner_stack:
        # orbitlab:backplane.stack: another stack owns the Backplane; attach to its facts.
        backplane = pulumi.StackReference(plan.backplane.owner_stack).require_output("backplane")
    else:
        backplane = Backplane("backplane", BackplaneArgs(plan=plan.backplane, rollout=rollout))
        pulumi.export("backplane", backplane.facts)
    sectors = {
        s.name: Sector(
            s.name,
            SectorArgs(
                sector=s,
                stack=plan,
                backplane=backplane,
                template_file_id=templates.file_id(s.node),
                rollout=rollout,
                ssh=ssh,
            ),
        )
        for s in plan.sectors
    }
    # after the apply, every node must report the zones applied (a failed reload fails up)
    rollout.check_nodes(plan.backplane.nodes, ssh)
if deployed is not None:  # a preview
    warn_reboots(deployed, sectors.values())

# This program's own resources: an app template and one app container per declared host.
app_template_url = config.require("appTemplateUrl")
app_templates = {
    node: proxmoxve.download.File(
        f"app-template-{node}",
        content_type="vztmpl",
        datastore_id=plan.storage(node).vztmpl,
        node_name=node,
        url=app_template_url,
        # the stack's own file (never the user's or another stack's of the same template)
        file_name=template_file_name(
            app_template_url, f"{pulumi.get_project()}-{pulumi.get_stack()}"
        ),
        overwrite_unmanaged=False,
    )
    for node in hosting
}


def ipv4_config(sector: SectorPlan, host: HostPlan) -> dict[str, str]:
    """``ip=dhcp`` for a host that leases its address, else its address and gateway."""
    if host.leases or host.address is None:
        return {"address": "dhcp"}
    subnet = sector.subnet_of(host.address)
    assert subnet is not None  # validated: every fixed address lies in a subnet
    return {"address": f"{host.address}/{subnet.cidr.prefixlen}", "gateway": str(subnet.gateway)}


def app_container(sector: SectorPlan, index: int) -> proxmoxve.ContainerLegacy:
    host = sector.hosts[index]
    joined = sectors[sector.name]
    # its place in the node's lane: at most a few containers are created at once per node
    lane = rollout.container_predecessors(sector.node)
    container = proxmoxve.ContainerLegacy(
        f"{sector.name}-{host.name}",
        node_name=sector.node,
        # Apps get VMIDs beside the Sector's appliances (tag*10 + 1..3): tag*100 + 50 + index.
        vm_id=sector.tag * 100 + 50 + index,
        unprivileged=True,
        started=True,
        memory={"dedicated": 512},
        disk={"datastore_id": plan.storage(sector.node).rootdir, "size": 8},
        operating_system={"template_file_id": app_templates[sector.node].id, "type": "debian"},
        network_interfaces=[
            # bridge=<sector VNet>: joined.vnet_id resolves once the bridge exists on the node.
            {
                "name": "eth0",
                "bridge": joined.vnet_id,
                "mtu": sector.mtu,
                **({"mac_address": host.mac} if host.mac else {}),
            },
        ],
        initialization={
            "hostname": host.name,
            "ip_configs": [{"ipv4": ipv4_config(sector, host)}],
            "dns": {"domain": sector.domain, "servers": [str(sector.dns.sector_address)]},
        },
        opts=pulumi.ResourceOptions(
            depends_on=[joined, *lane],
            # rebuilt for a new template, not for the same one stored under another name
            ignore_changes=[TEMPLATE_INPUT],
            replacement_trigger=app_template_url,
        ),
    )
    rollout.add_container(sector.node, container)
    return container


apps = [
    app_container(sector, index) for sector in plan.sectors for index in range(len(sector.hosts))
]
pulumi.export("sectors", {name: sector.summary() for name, sector in sectors.items()})
records = {name: r for sector in sectors.values() for name, r in sector.appliance_records().items()}
pulumi.export("appliances", records)
pulumi.export("apps", [app.initialization.hostname for app in apps])
