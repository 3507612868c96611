"""The emulated cluster: stand-in ``proxmoxve`` and ``command`` provider plugins for
rehearsing ``pulumi up`` with the real Pulumi CLI, with no Proxmox cluster.

``orbitlab emulate start STACKFILE`` creates an emulated cluster from a stack file's nodes;
``eval "$(orbitlab emulate env)"`` puts the built Pulumi CLI and the stand-in plugins first on
PATH, with a file backend, a passphrase and a Pulumi home of the emulator's own; plain
``pulumi preview`` / ``up`` / ``destroy`` then run against it. The stand-ins are an emulated
cluster, not a recorder: state is kept across processes, every input is checked against the
provider's schema, and Proxmox's rules are enforced (see :mod:`~orbitlab.emulate.cluster`).

Modules, one concern each:

- :mod:`~orbitlab.emulate.wire` — provider-protocol values as plain Python (secrets, unknowns);
- :mod:`~orbitlab.emulate.schema` — the providers' schemas and the input checks;
- :mod:`~orbitlab.emulate.store` — the state directory, its file lock and the log;
- :mod:`~orbitlab.emulate.cluster` — the cluster: nodes, SDN (pending/running), the SDN apply
  and its lock, templates, containers, and Proxmox's rules;
- :mod:`~orbitlab.emulate.backend` — what nodes and containers are made of (files today;
  the twin's namespaces can implement the same protocol);
- :mod:`~orbitlab.emulate.node` — what runs on a node: ``pct exec`` and node shell commands;
- :mod:`~orbitlab.emulate.plugin` — the provider-protocol server both stand-ins share;
- :mod:`~orbitlab.emulate.proxmoxve` / :mod:`~orbitlab.emulate.command` — the two stand-ins;
- :mod:`~orbitlab.emulate.control` — start, env, stop; :mod:`~orbitlab.emulate.status` —
  what ``status`` shows;
- :mod:`~orbitlab.emulate.rehearsal` — driving a rehearsal from Python (tests, benchmark);
- :mod:`~orbitlab.emulate.cli` — the ``orbitlab emulate`` commands.

It imports orbitlab's lower layers (reading a stack file), never the command line.
"""

from orbitlab.errors import OrbitLabError


class EmulateError(OrbitLabError):
    """The emulated cluster cannot be started, found or used."""


class ProxmoxError(Exception):
    """What the emulated Proxmox answers when it refuses an operation (the message is
    Proxmox's own where it has one)."""
