"""The emulated cluster: stand-in ``proxmoxve`` and ``command`` provider plugins for
rehearsing ``pulumi up`` with the real Pulumi CLI, with no Proxmox cluster.

``orbitlab emulate start STACKFILE`` creates an emulated cluster from a stack file's nodes;
``eval "$(orbitlab emulate env)"`` puts the built Pulumi CLI and the stand-in plugins first on
PATH, with a file backend, a passphrase and a Pulumi home of the emulator's own; plain
``pulumi preview`` / ``up`` / ``destroy`` then run against it. The stand-ins are an emulated
cluster, not a recorder: state is kept across processes, every input is checked against the
provider's schema, and Proxmox's rules are enforced (see :mod:`~orbitlab_lab.emulate.cluster`).

Modules, one concern each:

- :mod:`~orbitlab_lab.emulate.wire` — provider-protocol values as plain Python (secrets, unknowns);
- :mod:`~orbitlab_lab.emulate.schema` — the providers' schemas and the input checks;
- :mod:`~orbitlab_lab.emulate.store` — the state directory, its file lock and the log;
- :mod:`~orbitlab_lab.emulate.cluster` — the cluster: nodes, SDN (pending/running), the SDN apply
  and its lock, templates, containers, and Proxmox's rules;
- :mod:`~orbitlab_lab.emulate.backend` — what nodes and containers are made of (files today;
  the twin's namespaces can implement the same protocol);
- :mod:`~orbitlab_lab.emulate.node` — what runs on a node: ``pct exec`` and node shell commands;
- :mod:`~orbitlab_lab.emulate.plugin` — the provider-protocol server both stand-ins share;
- :mod:`~orbitlab_lab.emulate.proxmoxve` / :mod:`~orbitlab_lab.emulate.command` — the two stand-ins;
- :mod:`~orbitlab_lab.emulate.control` — start, env, stop; :mod:`~orbitlab_lab.emulate.status` —
  what ``status`` shows;
- :mod:`~orbitlab_lab.emulate.rehearsal` — driving a rehearsal from Python (tests, benchmark);
- :mod:`~orbitlab_lab.emulate.cli` — the ``orbitlab emulate`` commands.

It imports orbitlab's lower layers (reading a stack file), never the command line.
"""

from orbitlab.errors import OrbitLabError


class EmulateError(OrbitLabError):
    """The emulated cluster cannot be started, found or used."""


class ProxmoxError(Exception):
    """What the emulated Proxmox answers when it refuses an operation (the message is
    Proxmox's own where it has one).

    An answer of the API carries its HTTP ``code`` (400 for a request its schema refuses,
    500 for a handler's ``die``) and the parameters' ``errors``; the stand-in words those as
    bpg's client does. Without a code it is not an API answer (a connection refused, the
    twin failing) and is reported as it is.
    """

    def __init__(self, message: str, code: int | None = None, errors: tuple[str, ...] = ()):
        super().__init__("\n".join((message, *errors)))
        self.reason = message
        self.code = code
        self.errors = errors


def param_error(*errors: str) -> ProxmoxError:
    """A refusal of the API's parameter check (``raise_param_exc``): each ``key: message``."""
    return ProxmoxError("Parameter verification failed.", 400, errors)
