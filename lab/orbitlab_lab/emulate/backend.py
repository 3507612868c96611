"""What the emulated cluster's nodes and containers are made of: the backend.

The cluster (:mod:`~orbitlab_lab.emulate.cluster`) decides what exists and enforces Proxmox's
rules; a backend makes it real in one way, chosen by the cluster's ``settings.backend``:

- ``files`` (:class:`FilesBackend`): a node is a directory whose ``sys/class/net`` holds one
  file per bridge, a container a root directory into which the provisioning script writes
  its files (``--root``);
- ``twin`` (:class:`~orbitlab_lab.emulate.twin_backend.TwinBackend`): the nodes are twin nodes,
  an applied VNet a real bridge and VXLAN on them, a container a namespace with its declared
  NICs running the provisioning script in full.

>>> import tempfile
>>> backend = FilesBackend(Path(tempfile.mkdtemp()))
>>> backend.node_reloaded("pve1", [Bridge("olvn1001"), Bridge("vmbr0")])
>>> sorted(p.name for p in (backend.node_dir("pve1") / "sys/class/net").iterdir())
['olvn1001', 'vmbr0']
>>> backend.run_on_node("pve1", "ls /sys/class/net/", None, {}).stdout.split()
['olvn1001', 'vmbr0']
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

NODE_SYS_NET = "/sys/class/net/"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: A command on a node may not run longer than this (the bridge wait's own bound is 120 s).
COMMAND_TIMEOUT_S = 300
BACKENDS = ("files", "twin")


@dataclass(frozen=True)
class Bridge:
    """A bridge a node's network reload leaves: ``vmbr0``, or an applied VNet's, with what
    its zone, VNet and subnets declare."""

    name: str
    zone: str = ""
    #: ``vxlan`` or ``evpn`` (the zone's type); empty for ``vmbr0``.
    zone_type: str = ""
    tag: int | None = None
    mtu: int | None = None
    #: The zone's peers (an EVPN zone: its controller's).
    peers: tuple[str, ...] = ()
    #: Its subnets' gateways with their prefix length (``10.200.0.1/16``).
    gateways: tuple[str, ...] = ()
    #: Its subnets with SNAT on.
    snat: tuple[str, ...] = ()
    vrf_tag: int | None = None
    primary_exit_node: str | None = None


@dataclass(frozen=True)
class Result:
    """A finished command: exit status and output."""

    status: int
    stdout: str
    stderr: str


class Backend(Protocol):
    """What makes the emulated cluster's nodes and containers real."""

    def node_reloaded(self, node: str, bridges: Sequence[Bridge]) -> None:
        """A node's network now has exactly these bridges."""

    def container_created(self, node: str, vmid: int, record: Mapping[str, Any]) -> None:
        """A container exists (and runs, if its record says so) on a node."""

    def container_updated(
        self, node: str, vmid: int, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """A container's declaration changed in place (its NICs, addresses, started)."""

    def container_rebooted(
        self, node: str, vmid: int, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """A running container changed and was rebooted: stopped, then started as declared."""

    def container_deleted(self, node: str, vmid: int) -> None:
        """A container is gone."""

    def exec_in_container(self, node: str, vmid: int, script: str) -> Result:
        """``pct exec <vmid> -- /bin/sh -s`` with ``script`` on stdin."""

    def run_on_node(
        self, node: str, command: str, stdin: str | None, env: Mapping[str, str]
    ) -> Result:
        """A command in a shell on the node (``env``: its environment, PATH included)."""


class FilesBackend:
    """Nodes and containers as directories under the cluster's directory."""

    def __init__(self, cluster_dir: Path) -> None:
        self.cluster_dir = cluster_dir

    def node_dir(self, node: str) -> Path:
        return self.cluster_dir / "nodes" / node

    def rootfs(self, node: str, vmid: int) -> Path:
        return self.node_dir(node) / "ct" / str(vmid) / "rootfs"

    def node_reloaded(self, node: str, bridges: Sequence[Bridge]) -> None:
        net = self.node_dir(node) / "sys" / "class" / "net"
        net.mkdir(parents=True, exist_ok=True)
        names = {bridge.name for bridge in bridges}
        for entry in net.iterdir():
            if entry.name not in names:
                entry.unlink()
        for name in names:
            (net / name).touch()

    def container_created(self, node: str, vmid: int, record: Mapping[str, Any]) -> None:
        self.rootfs(node, vmid).mkdir(parents=True, exist_ok=True)

    def container_updated(
        self, node: str, vmid: int, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """Nothing to do: a directory has no NICs."""

    def container_rebooted(
        self, node: str, vmid: int, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """Nothing to do: a directory runs nothing (its root stays, as a disk does)."""

    def container_deleted(self, node: str, vmid: int) -> None:
        shutil.rmtree(self.rootfs(node, vmid).parent, ignore_errors=True)

    def exec_in_container(self, node: str, vmid: int, script: str) -> Result:
        """The script's files part, written under the container's root directory."""
        root = self.rootfs(node, vmid)
        return run_command(["sh", "-s", "--", "--root", str(root)], script, root)

    def run_on_node(
        self, node: str, command: str, stdin: str | None, env: Mapping[str, str]
    ) -> Result:
        """``sh -c`` in the node's directory, ``/sys/class/net/`` mapped to the node's."""
        node_dir = self.node_dir(node)
        mapped = command.replace(NODE_SYS_NET, f"{node_dir}{NODE_SYS_NET}")
        return run_command(["sh", "-c", mapped], stdin, node_dir, env)


def run_command(
    argv: list[str], stdin: str | None, cwd: Path, env: Mapping[str, str] | None = None
) -> Result:
    """Run ``argv`` in ``cwd`` with a clean environment (and ``env``), bounded in time."""
    env = {"PATH": DEFAULT_PATH, "LC_ALL": "C", **(env or {})}
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
