"""The stand-in ``command`` 1.2.1 plugin: ``remote.Command`` over "SSH" to an emulated node.

The connection's ``host`` must be a node's address (the emulated SSH server listens on every
node); it needs a private key (a PEM block), a password or an SSH agent, and a pinned
``hostKey`` must be the node's. As in pulumi-command: ``create`` runs on create, ``update``
(else ``create``) on an update, ``delete`` on delete; a change of ``triggers`` replaces the
resource, any other change is an update; a non-zero exit fails the operation. What runs is
:func:`orbitlab_lab.emulate.node.run_on_node` (``pct exec`` into a container, or a node shell).

>>> node_for({"pve1": {"address": "192.0.2.11"}}, "192.0.2.11")
'pve1'
"""

from __future__ import annotations

import os
from typing import Any

from orbitlab_lab.emulate import ProxmoxError
from orbitlab_lab.emulate.node import run_on_node
from orbitlab_lab.emulate.plugin import Call, ResourceType, StandIn, main

VERSION = "1.2.1"
TOKEN = "command:remote:Command"
NO_AUTH = (
    "ssh: handshake failed: ssh: unable to authenticate, attempted methods [none], "
    "no supported methods remain"
)


def node_for(nodes: dict[str, Any], host: str) -> str:
    """The node an SSH connection to ``host`` reaches."""
    for name, node in sorted(nodes.items()):
        if host in (node["address"], name):
            return name
    raise ProxmoxError(
        f"dial tcp {host}:22: connect: connection refused (no node of the emulated cluster "
        "has this address)"
    )


def _connect(call: Call, connection: dict[str, Any]) -> str:
    nodes = call.store.read()["nodes"]
    node = node_for(nodes, str(connection.get("host", "")))
    key = connection.get("privateKey")
    agent = connection.get("agentSocketPath") or os.environ.get("SSH_AUTH_SOCK")
    if key is not None and "PRIVATE KEY-----" not in str(key):
        raise ProxmoxError("ssh: no key found")
    if key is None and not connection.get("password") and not agent:
        raise ProxmoxError(NO_AUTH)
    pinned, actual = connection.get("hostKey"), nodes[node].get("host_key")
    if pinned and actual and pinned.split()[:2] != actual.split()[:2]:
        raise ProxmoxError("ssh: handshake failed: ssh: host key mismatch")
    return node


def _run(call: Call, inputs: dict[str, Any], command: str | None) -> dict[str, Any]:
    outputs = {**inputs, "stdout": "", "stderr": ""}
    if not command:
        return outputs
    connection = inputs["connection"]
    node = _connect(call, connection)
    user = str(connection.get("user") or "root")  # pulumi-command's default user
    result = run_on_node(call.store, node, command, inputs.get("stdin"), call.name, user)
    call.log(f"ran {command!r} on {node}: exit {result.status}")
    if result.status != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-20:])
        raise ProxmoxError(f"Process exited with status {result.status}\n{tail}")
    return {**outputs, "stdout": result.stdout, "stderr": result.stderr}


def _remote_command() -> ResourceType:
    def create(call: Call, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return f"{call.name}{os.urandom(4).hex()}", _run(call, inputs, inputs.get("create"))

    def update(call: Call, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict:
        return _run(call, news, news.get("update") or news.get("create"))

    def delete(call: Call, _id: str, olds: dict[str, Any]) -> None:
        _run(call, olds, olds.get("delete"))

    return ResourceType(
        create,
        update,
        delete,
        frozenset({"triggers"}),
        preview=lambda inputs: {"stdout": "", "stderr": ""},
    )


def stand_in() -> StandIn:
    return StandIn("command", VERSION, {TOKEN: _remote_command()}, {})


if __name__ == "__main__":
    main(stand_in())
