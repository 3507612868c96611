"""What runs on an emulated node over "SSH": ``pct exec`` into a container, or a shell command.

- ``pct exec <vmid> -- /bin/sh -s`` with a script on stdin (the provisioning command), as
  root or through ``sudo -n`` (pct refuses anyone else: "please run as root"; the node
  grants the sudo rule of docs/prerequisites.md), runs the script's *files part* against
  the container's root directory (``sh -s -- --root <rootfs>``): the bundle's files land
  where the container would have them, and no command of the bundle runs on this machine.
  The container must exist on that node and be running (Proxmox's messages otherwise).
- any other command runs in ``sh`` on this machine, in the node's directory, with
  ``/sys/class/net/`` mapped to the node's own (its bridges as files): that is how the bridge
  wait sees the bridges a network reload made. The node's ``PATH`` has stand-ins for
  ``pvesh`` (:mod:`orbitlab_lab.emulate.pvesh`: what the node reports of its SDN), ``sysctl``
  (the node's settings), ``nft`` (:mod:`orbitlab_lab.emulate.nft`: a ruleset of the node's
  own), ``systemctl`` (:mod:`orbitlab_lab.emulate.systemctl`) and ``sudo`` (``sudo -n``
  runs as root: the sudo rule of docs/prerequisites.md). The node's own files, under
  :data:`NODE_FILES` (the Sector guards and their boot unit), are in the node's directory:
  those paths in the command and its stdin are mapped there. It is not sandboxed otherwise.

Both go through the cluster's backend (:mod:`~orbitlab_lab.emulate.backend`); this module adds
what is the same for every backend: Proxmox's checks and the record of what ran.

Every run is recorded in the cluster state (command, node, exit status, the SHA-256 of its
stdin, the files a provisioning run wrote), never its stdin itself.

>>> parse_pct_exec("pct exec 10011 -- /bin/sh -s"), parse_pct_exec("sudo -n pct exec 1 -- sh -s")
(10011, None)
>>> parse_pct_exec("sudo -n pct exec 10011 -- /bin/sh -s")
10011
>>> parse_pct_exec("pct exec 10011 -- rm -rf /") is None
True
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from pathlib import Path

from orbitlab_lab.emulate import ProxmoxError
from orbitlab_lab.emulate.backend import DEFAULT_PATH, Result
from orbitlab_lab.emulate.cluster import backend_of, record_run
from orbitlab_lab.emulate.store import DIR_ENV, NODE_ENV, USER_ENV, Store

PCT_EXEC = re.compile(r"^\s*(sudo\s+-n\s+)?pct\s+exec\s+(\d+)\s+--\s+/bin/sh\s+-s\s*$")
PCT_ANY = re.compile(r"^\s*(sudo\s+-n\s+)?pct\b")
#: What pct says to anyone but root (pve-common src/PVE/RESTEnvironment.pm), exit 255.
NOT_ROOT = "please run as root"
WROTE = re.compile(r"^orbitlab\[[^\]]*\]: wrote (\S+)$")
#: What a node command writes under these paths lands in the node's own directory.
NODE_FILES = ("/etc/orbitlab/", "/etc/systemd/system/")


def parse_pct_exec(command: str) -> int | None:
    """The VMID of a provisioning command, or None for anything else."""
    match = PCT_EXEC.match(command)
    return int(match.group(2)) if match else None


def run_on_node(
    store: Store, node: str, command: str, stdin: str | None, by: str, user: str = "root"
) -> Result:
    """Run ``command`` on ``node`` as the emulated SSH session of ``user`` would."""
    vmid = parse_pct_exec(command)
    if vmid is not None:
        if user != "root" and not command.lstrip().startswith("sudo"):
            result = Result(255, "", f"{NOT_ROOT}\n")
            _record(store, node, command, stdin, by, result, vmid=vmid, files=[])
            return result
        return _pct_exec(store, node, vmid, stdin or "", command, by)
    if PCT_ANY.match(command):
        raise ProxmoxError(
            f"the emulated node runs only 'pct exec VMID -- /bin/sh -s' (got {command!r})"
        )
    env = node_env(store, node, user)
    root = store.node_dir(node)
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)  # every node has it
    result = backend_of(store, store.read()).run_on_node(
        node, node_files(command, root), node_files(stdin, root) if stdin else stdin, env
    )
    _record(store, node, command, stdin, by, result, vmid=None, files=[])
    return result


def node_files(text: str, root: Path) -> str:
    """``text`` with the paths of :data:`NODE_FILES` under the node's directory ``root``.

    >>> node_files("cat /etc/orbitlab/guard/x.nft /etc/hosts", Path("/n/pve1"))
    'cat /n/pve1/etc/orbitlab/guard/x.nft /etc/hosts'
    """
    for prefix in NODE_FILES:
        text = text.replace(prefix, f"{root}{prefix}")
    return text


def node_tools(store: Store) -> Path:
    """The directory of what an emulated node has beyond this machine: pvesh, sysctl (the
    node's settings, not this machine's), nft (its own ruleset), systemctl and sudo."""
    tools = store.root / "node-tools"
    scripts = {
        "pvesh": f'#!/bin/sh\nexec {sys.executable} -m orbitlab_lab.emulate.pvesh "$@"\n',
        "sysctl": f'#!/bin/sh\nexec {sys.executable} -m orbitlab_lab.emulate.sysctl "$@"\n',
        "nft": f'#!/bin/sh\nexec {sys.executable} -m orbitlab_lab.emulate.nft "$@"\n',
        "systemctl": f'#!/bin/sh\nexec {sys.executable} -m orbitlab_lab.emulate.systemctl "$@"\n',
        # the node has docs/prerequisites.md's sudo rule: `sudo -n` runs the command as root
        "sudo": (f'#!/bin/sh\n[ "${{1:-}}" = -n ] && shift\n{USER_ENV}=root exec "$@"\n'),
    }
    tools.mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        path = tools / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            path.chmod(0o755)
    return tools


def node_env(store: Store, node: str, user: str) -> dict[str, str]:
    """The environment of a command on an emulated node, run by ``user``."""
    return {
        "PATH": f"{node_tools(store)}:{DEFAULT_PATH}",
        DIR_ENV: str(store.root),
        NODE_ENV: node,
        USER_ENV: user,
    }


def _pct_exec(store: Store, node: str, vmid: int, script: str, command: str, by: str) -> Result:
    state = store.read()
    container = state["containers"].get(str(vmid))
    if container is None or container["node"] != node:
        raise ProxmoxError(f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist")
    if container["status"] != "running":
        raise ProxmoxError(f"CT {vmid} not running")
    result = backend_of(store, state).exec_in_container(node, vmid, script)
    files = [m.group(1) for line in result.stderr.splitlines() if (m := WROTE.match(line))]
    _record(store, node, command, script, by, result, vmid=vmid, files=files)
    return result


def _record(
    store: Store,
    node: str,
    command: str,
    stdin: str | None,
    by: str,
    result: Result,
    *,
    vmid: int | None,
    files: list[str],
) -> None:
    record_run(
        store,
        {
            "at": time.time(),
            "by": by,
            "node": node,
            "vmid": vmid,
            "command": command,
            "stdin_sha256": hashlib.sha256((stdin or "").encode()).hexdigest(),
            "status": result.status,
            "wrote": files,
        },
    )
