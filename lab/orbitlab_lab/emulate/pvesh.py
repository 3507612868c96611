"""``pvesh`` on an emulated node: the few reads the program makes there, from the cluster.

A command the program runs on a node over SSH (the SDN check after an apply) calls
``pvesh get``; on an emulated node that is this module, on the node's ``PATH``
(:func:`orbitlab_lab.emulate.node.node_tools`). It answers:

- ``/nodes/{node}/sdn/zones``: each zone's status on the node
  (:func:`orbitlab_lab.emulate.cluster.zone_status`);
- ``/nodes/{node}/tasks`` (``--typefilter``, ``--source active``): no task runs on an
  emulated node once an apply has returned, so ``[]``.

Like pvesh it runs only as root (``please run as root``; ``sudo -n`` makes the session
root). The emulated cluster and node come from ``ORBITLAB_EMULATE_DIR``,
``ORBITLAB_EMULATE_NODE`` and ``ORBITLAB_EMULATE_USER``, which the node's shell sets.

>>> answer({"sdn": {"version": 0}}, "pve1", ["get", "/nodes/pve1/tasks", "--source", "active"])
'[]'
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orbitlab_lab.emulate import cluster as c
from orbitlab_lab.emulate.store import DIR_ENV, NODE_ENV, USER_ENV, Store

NOT_ROOT = "please run as root"


def answer(state: dict[str, Any], node: str, argv: Sequence[str]) -> str:
    """What ``pvesh ARGV`` prints on ``node`` (JSON); raises ValueError for anything else."""
    if len(argv) < 2 or argv[0] != "get":
        raise ValueError(f"the emulated node's pvesh answers only 'get' (got {' '.join(argv)})")
    path = argv[1].rstrip("/")
    if path == f"/nodes/{node}/sdn/zones":
        return json.dumps(c.zone_status(state, node))
    if path == f"/nodes/{node}/tasks":
        return "[]"
    raise ValueError(f"the emulated node's pvesh does not answer {path!r} on node {node}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get(USER_ENV, "root") != "root":
        print(NOT_ROOT, file=sys.stderr)
        return 255
    node = os.environ[NODE_ENV]
    try:
        print(answer(Store(Path(os.environ[DIR_ENV])).read(), node, args))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
