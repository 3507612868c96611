"""How the components reach the nodes: SSH credentials, the connection, commands as root.

Provisioning and the checks after an SDN apply run on the nodes themselves over SSH
(``pct`` works only on the node that hosts the container). pct and pvesh run only as root
(pve-common ``src/PVE/RESTEnvironment.pm``: "please run as root"): another user runs them
through ``sudo -n``, which fails at once where it is not allowed (docs/prerequisites.md
gives the sudo rule).

>>> as_root("pvesh get /nodes/pve1/sdn/zones", "orbitlab")
'sudo -n pvesh get /nodes/pve1/sdn/zones'
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from orbitlab.plan import NodePlan


@dataclass(frozen=True)
class SshCredentials:
    """How provisioning reaches the nodes: user, and a private key (secret) or the agent.

    ``private_key`` left out means the SSH agent (``SSH_AUTH_SOCK``) is used.
    """

    user: str = "root"
    private_key: pulumi.Input[str] | None = None
    port: int = 22


def node_connection(node: NodePlan, ssh: SshCredentials) -> command.remote.ConnectionArgs:
    """SSH to the node itself (``pct exec`` works only there), its host key pinned if known."""
    return command.remote.ConnectionArgs(
        host=str(node.address),
        user=ssh.user,
        port=ssh.port,
        private_key=pulumi.Output.secret(ssh.private_key) if ssh.private_key is not None else None,
        host_key=node.host_key,
    )


def as_root(line: str, user: str) -> str:
    """``line`` run as root by ``user``: as it is for root, through ``sudo -n`` otherwise."""
    return line if user == "root" else f"sudo -n {line}"


def pct_exec(vmid: int, user: str = "root") -> str:
    """The node-side command that runs a script read from stdin inside container ``vmid``.

    pct runs only as root (pve-common ``RESTEnvironment``: "please run as root"); any other
    user goes through ``sudo -n``, which fails at once where it is not allowed.

    >>> pct_exec(10011), pct_exec(10011, "orbitlab")
    ('pct exec 10011 -- /bin/sh -s', 'sudo -n pct exec 10011 -- /bin/sh -s')
    """
    return as_root(f"pct exec {vmid} -- /bin/sh -s", user)
