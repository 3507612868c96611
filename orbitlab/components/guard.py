"""The Sector guard: what no host of a Sector may send on its VNet, enforced on the nodes.

Any VM in a Sector could answer DHCP requests (clients take the first offer), announce
itself as an IPv6 router, or ask the Sector DHCP for a reserved host's lease by writing
that host's MAC into its request. The guard is an nftables ``bridge`` table per Sector VNet
on every node that carries the VNet: on the VNet only the Sector DNS appliance's MAC may
send DHCP server replies (when the Sector has DHCP), a DHCP request naming a declared
host's MAC must come from that MAC, and router advertisements and DHCPv6 server messages
are dropped. Every frame between two ports of the VNet (VMs, containers, the VXLAN to the
other nodes) crosses its node's bridge, so a rogue frame is dropped on its own node.

It lives on the nodes, not in Proxmox's firewall: that firewall filters only the guests
whose firewall is on, and the VMs of a Sector are not ours to configure.

Here: the scripts, and one command per node. ``<sector>-guard-<node>`` runs the install
script as root on the node over SSH (``sh -s``, the script on stdin, so ``pulumi preview``
shows it and its diff); a changed guard is an update that loads the new table in one
transaction, and deleting the command (the Sector removed, or the node gone from the
cluster) unloads and forgets it.

>>> from orbitlab.stack import load_plan
>>> plan = load_plan("stacks/Pulumi.example.yaml")
>>> remove_command(plan.sector("web"), "orbitlab").startswith("sudo -n sh -c ")
True
"""

from __future__ import annotations

import shlex

import pulumi
import pulumi_command as command

from orbitlab.components.ssh import SshCredentials, as_root, node_connection
from orbitlab.plan import NodePlan, SectorPlan
from orbitlab.rendering import (
    GUARD_DIR,
    GUARD_UNIT,
    GUARD_UNIT_PATH,
    guard_path,
    guard_ruleset,
    guard_table,
    render_template,
)


def install_script(sector: SectorPlan, node: str) -> str:
    """A POSIX sh script, run as root on ``node``: check the ruleset with nft, keep it in
    :data:`GUARD_DIR` with the unit that loads the guards at boot, and load it (replacing
    the Sector's table in one transaction). Running it again changes nothing."""
    return render_template(
        "guard-install.sh.j2",
        sector=sector,
        node=node,
        path=guard_path(sector),
        ruleset=guard_ruleset(sector),
        guard_dir=GUARD_DIR,
        unit=GUARD_UNIT,
        unit_path=GUARD_UNIT_PATH,
    )


def remove_script(sector: SectorPlan) -> str:
    """A POSIX sh script, run as root on a node: unload the Sector's guard and forget it
    (nothing to do when it is not there)."""
    return render_template(
        "guard-remove.sh.j2", sector=sector, path=guard_path(sector), table=guard_table(sector)
    )


def remove_command(sector: SectorPlan, user: str) -> str:
    """The command that removes the Sector's guard from a node (it reads no stdin)."""
    return as_root(f"sh -c {shlex.quote(remove_script(sector))}", user)


def sector_guard(
    name: str,
    sector: SectorPlan,
    node: NodePlan,
    ssh: SshCredentials,
    opts: pulumi.ResourceOptions,
) -> command.remote.Command:
    """The guard of ``sector`` on ``node``, installed, updated and removed with it."""
    install = as_root("sh -s", ssh.user)
    return command.remote.Command(
        name,
        connection=node_connection(node, ssh),
        create=install,
        update=install,
        stdin=install_script(sector, node.name),
        delete=remove_command(sector, ssh.user),
        opts=opts,
    )
