"""The emulated node's ``sysctl``: ``sysctl -n KEY`` answers the node's setting.

A node has the settings of docs/prerequisites.md (``net.core.devconf_inherit_init_net =
2``) and forwards (``net.ipv4.ip_forward = 1``, as SDN needs); ``orbitlab emulate sysctl
NODE KEY=VALUE`` changes one. A key the node does not have is procps's error (exit 255).

>>> answer({"net.ipv4.ip_forward": "1"}, ["-n", "net.ipv4.ip_forward"])
'1'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from orbitlab_lab.emulate.store import DIR_ENV, NODE_ENV, Store

#: What an emulated node starts with: a Proxmox VE node with SDN, set up as
#: docs/prerequisites.md says.
NODE_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.core.devconf_inherit_init_net": "2"}


def answer(sysctls: Mapping[str, str], argv: Sequence[str]) -> str:
    """The answer to ``sysctl -n KEY`` (the only form the node checks use)."""
    if len(argv) != 2 or argv[0] != "-n":
        raise ValueError(f"the emulated node's sysctl answers only -n KEY (got {' '.join(argv)})")
    key = argv[1]
    if key not in sysctls:
        path = "/proc/sys/" + key.replace(".", "/")
        raise LookupError(f"sysctl: cannot stat {path}: No such file or directory")
    return sysctls[key]


def starts_forwarding(sysctls: Mapping[str, str]) -> bool:
    """Whether a new network namespace (a container) on the node starts forwarding IPv4:
    it takes the node's settings unless ``devconf_inherit_init_net`` is 2 (the kernel's
    defaults: forwarding off). Kernel ``Documentation/admin-guide/sysctl/net.rst``.

    >>> starts_forwarding(NODE_SYSCTLS)
    False
    >>> starts_forwarding({**NODE_SYSCTLS, "net.core.devconf_inherit_init_net": "0"})
    True
    >>> starts_forwarding({"net.ipv4.ip_forward": "0", "net.core.devconf_inherit_init_net": "0"})
    False
    """
    inherits = sysctls.get("net.core.devconf_inherit_init_net", "0") != "2"
    return inherits and sysctls.get("net.ipv4.ip_forward", "0") == "1"


def node_sysctls(state: Mapping[str, object], node: str) -> dict[str, str]:
    nodes = state["nodes"]
    assert isinstance(nodes, dict)
    return {**NODE_SYSCTLS, **nodes[node].get("sysctls", {})}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    state = Store(Path(os.environ[DIR_ENV])).read()
    try:
        print(answer(node_sysctls(state, os.environ[NODE_ENV]), args))
    except LookupError as error:
        print(error.args[0], file=sys.stderr)
        return 255
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
