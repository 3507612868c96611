"""What runs on an emulated node over "SSH": ``pct exec`` into a container, or a shell command.

- ``pct exec <vmid> -- /bin/sh -s`` with a script on stdin (the provisioning command) runs
  the script's *files part* against the container's root directory
  (``sh -s -- --root <rootfs>``): the bundle's files land where the container would have
  them, and no command of the bundle runs on this machine. The container must exist on that
  node and be running (Proxmox's messages otherwise).
- any other command runs in ``sh`` on this machine, in the node's directory, with
  ``/sys/class/net/`` mapped to the node's own (its bridges as files): that is how the bridge
  wait sees the bridges a network reload made. It is not sandboxed otherwise.

Every run is recorded in the cluster state (command, node, exit status, the SHA-256 of its
stdin, the files a provisioning run wrote), never its stdin itself.

>>> parse_pct_exec("pct exec 10011 -- /bin/sh -s")
10011
>>> parse_pct_exec("pct exec 10011 -- rm -rf /") is None
True
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from dataclasses import dataclass

from orbitlab.emulate import ProxmoxError
from orbitlab.emulate.cluster import record_run, rootfs
from orbitlab.emulate.store import Store

PCT_EXEC = re.compile(r"^\s*pct\s+exec\s+(\d+)\s+--\s+/bin/sh\s+-s\s*$")
PCT_ANY = re.compile(r"^\s*pct\b")
NODE_SYS_NET = "/sys/class/net/"
#: A command on a node may not run longer than this (the bridge wait's own bound is 120 s).
COMMAND_TIMEOUT_S = 300
WROTE = re.compile(r"^orbitlab\[[^\]]*\]: wrote (\S+)$")


@dataclass(frozen=True)
class Result:
    """A finished command: exit status and output."""

    status: int
    stdout: str
    stderr: str


def parse_pct_exec(command: str) -> int | None:
    """The VMID of a provisioning command, or None for anything else."""
    match = PCT_EXEC.match(command)
    return int(match.group(1)) if match else None


def run_on_node(store: Store, node: str, command: str, stdin: str | None, by: str) -> Result:
    """Run ``command`` on ``node`` as the emulated SSH session would."""
    vmid = parse_pct_exec(command)
    if vmid is not None:
        return _pct_exec(store, node, vmid, stdin or "", command, by)
    if PCT_ANY.match(command):
        raise ProxmoxError(
            f"the emulated node runs only 'pct exec VMID -- /bin/sh -s' (got {command!r})"
        )
    node_dir = store.node_dir(node)
    mapped = command.replace(NODE_SYS_NET, f"{node_dir}{NODE_SYS_NET}")
    result = _run(["sh", "-c", mapped], stdin, str(node_dir))
    _record(store, node, command, stdin, by, result, vmid=None, files=[])
    return result


def _pct_exec(store: Store, node: str, vmid: int, script: str, command: str, by: str) -> Result:
    state = store.read()
    container = state["containers"].get(str(vmid))
    if container is None or container["node"] != node:
        raise ProxmoxError(f"Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist")
    if container["status"] != "running":
        raise ProxmoxError(f"CT {vmid} not running")
    root = rootfs(store, node, vmid)
    result = _run(["sh", "-s", "--", "--root", str(root)], script, str(root))
    files = [m.group(1) for line in result.stderr.splitlines() if (m := WROTE.match(line))]
    _record(store, node, command, script, by, result, vmid=vmid, files=files)
    return result


def _run(argv: list[str], stdin: str | None, cwd: str) -> Result:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            argv,
            input=stdin or "",
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Result(124, "", f"timed out after {COMMAND_TIMEOUT_S} s")
    return Result(done.returncode, done.stdout, done.stderr)


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
