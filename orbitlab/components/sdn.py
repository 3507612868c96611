"""SDN apply helpers: the finalizer, the hash-triggered applier and the bridge wait.

Proxmox keeps SDN changes pending until ``PUT /cluster/sdn``; ``sdn.Applier`` calls it only
when it is created or destroyed. Each component therefore declares:

- a *finalizer* applier (``on_create=False``) that its SDN objects depend on: Pulumi deletes
  it after them, so its ``on_destroy`` applies their deletion;
- an *applier* that depends on every SDN object and is replaced whenever a digest of their
  inputs changes (``replacement_trigger``), so every create or update is applied;
- a bounded *bridge wait* on the node hosting containers: ``PUT /cluster/sdn`` returns
  before the nodes have reloaded their network, and a container cannot start on a bridge
  that does not exist yet.

>>> sdn_digest({"id": "olvz1001", "mtu": 1450}) == sdn_digest({"mtu": 1450, "id": "olvz1001"})
True
>>> sdn_digest({"id": "olvz1001", "mtu": 1450}) == sdn_digest({"id": "olvz1001", "mtu": 1400})
False
>>> print(bridge_wait_script(["olvn1001", "olbpvn"], "pve1", timeout_s=60).splitlines()[2])
for bridge in olvn1001 olbpvn; do
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_proxmoxve as proxmoxve

from orbitlab.components.ssh import as_root
from orbitlab.rendering import render_template

BRIDGE_WAIT_TIMEOUT_S = 120
BRIDGE_POLL_S = 2
#: How long a node may report the stack's zones ``pending`` after an apply (its reload task
#: has not run yet) before the check gives up.
NODE_CHECK_TIMEOUT_S = 120
NODE_CHECK_POLL_S = 1


def sdn_digest(inputs: Mapping[str, Any]) -> str:
    """A stable SHA-256 of SDN inputs (plain JSON-able values; key order does not matter)."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def finalizer(name: str, opts: pulumi.ResourceOptions) -> proxmoxve.sdn.Applier:
    """An applier that applies only when destroyed: after the SDN objects depending on it."""
    return proxmoxve.sdn.Applier(name, on_create=False, on_destroy=True, opts=opts)


def applier(
    name: str,
    objects: Sequence[pulumi.Resource],
    digest: str,
    opts: pulumi.ResourceOptions,
) -> proxmoxve.sdn.Applier:
    """An applier created after ``objects`` and replaced whenever ``digest`` changes.

    It does not apply on destroy: deletions are the finalizer's job, and the applier is
    destroyed *before* the objects it depends on.
    """
    return proxmoxve.sdn.Applier(
        name,
        on_create=True,
        on_destroy=False,
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(depends_on=list(objects), replacement_trigger=digest)
        ),
    )


def bridge_wait_script(
    bridges: Iterable[str], node: str, timeout_s: int = BRIDGE_WAIT_TIMEOUT_S
) -> str:
    """A POSIX sh script that waits until every bridge exists on the node, or fails loudly."""
    names = " ".join(shlex.quote(bridge) for bridge in bridges)
    return (
        "set -eu\n"
        f"deadline=$(( $(date +%s) + {timeout_s} ))\n"
        f"for bridge in {names}; do\n"
        '  until [ -e "/sys/class/net/$bridge" ]; do\n'
        '    if [ "$(date +%s)" -ge "$deadline" ]; then\n'
        f'      echo "orbitlab: bridge $bridge did not appear on node {node} within '
        f"{timeout_s} s of the SDN apply; see the node's SDN reload task log and "
        "'pvesh get /cluster/sdn/vnets'\" >&2\n"
        "      exit 1\n"
        "    fi\n"
        f"    sleep {BRIDGE_POLL_S}\n"
        "  done\n"
        "done\n"
    )


def node_check_script(
    node: str,
    zones: Sequence[str],
    user: str = "root",
    timeout_s: int = NODE_CHECK_TIMEOUT_S,
    hosts_appliances: bool = False,
) -> str:
    """A POSIX sh script for ``node``: wait until the node reports every zone of ``zones``
    ``available`` (``GET /nodes/{node}/sdn/zones``, pve-network
    ``src/PVE/API2/Network/SDN/Nodes/Zones.pm``), or fail naming each zone that is not.

    ``pending``: the node's SDN config is older than the cluster's (its reload has not run,
    or did not get that far) — waited for, at most ``timeout_s``. ``error``: a VNet of the
    zone is not what the config says (the reload failed after generating it) — a failure as
    soon as no network reload runs on the node. pvesh runs as root (``sudo -n`` for another
    user). The JSON is read with sed and grep: a node has no jq. On a node that
    ``hosts_appliances``, it first fails unless new containers start with forwarding off
    (``net.core.devconf_inherit_init_net`` 2, or the node not forwarding): otherwise a new
    gateway routes between its Sector and the Backplane before its ruleset is loaded.

    >>> "sudo -n pvesh get /nodes/pve1/sdn/zones" in node_check_script("pve1", ["olbpz"], "ol")
    True
    """
    node_path = f"/nodes/{shlex.quote(node)}"
    return render_template(
        "node-check.sh.j2",
        node=node,
        zones=[shlex.quote(zone) for zone in zones],
        timeout_s=timeout_s,
        poll_s=NODE_CHECK_POLL_S,
        hosts_appliances=hosts_appliances,
        get_zones=as_root(f"pvesh get {node_path}/sdn/zones --output-format json", user),
        get_reloads=as_root(
            f"pvesh get {node_path}/tasks --typefilter srvreload --source active "
            "--output-format json",
            user,
        ),
    )


def bridge_wait(
    name: str,
    *,
    connection: command.remote.ConnectionArgs,
    bridges: Sequence[str],
    node: str,
    digest: str,
    opts: pulumi.ResourceOptions,
) -> command.remote.Command:
    """Wait (bounded) on ``node`` for ``bridges``; re-runs whenever the SDN ``digest`` changes."""
    script = bridge_wait_script(bridges, node)
    return command.remote.Command(
        name,
        connection=connection,
        create=script,
        update=script,
        triggers=[digest],
        opts=opts,
    )
