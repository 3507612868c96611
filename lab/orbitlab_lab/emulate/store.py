"""The emulator's directory: where it is, its state file under a file lock, and its log.

Both stand-in plugins (separate processes, each serving requests on several threads) and
``orbitlab emulate status`` read and change one state file; every change happens under an
exclusive ``flock`` on ``cluster/state.lock``, read-modify-write, then an atomic rename.

Layout of the directory (``ORBITLAB_EMULATE_DIR``, default ``.orbitlab/emulate``)::

    cluster/state.json        the cluster (see orbitlab_lab.emulate.cluster)
    cluster/state.lock        the state's file lock
    cluster/sdn-domain.lock   Proxmox's cluster-wide "sdn" lock, held during an apply
    cluster/nodes/<node>/     a node's files: sys/class/net/<bridge>, ct/<vmid>/rootfs
    log/emulator.log          every operation, secrets never written
    bin/                      the stand-in plugins (pulumi-resource-proxmoxve, -command)
    backend/, pulumi-home/    Pulumi's file backend and home for the rehearsal

>>> import tempfile
>>> store = Store(Path(tempfile.mkdtemp()))
>>> store.write({"nodes": {}})
>>> with store.change() as state:
...     state["nodes"]["pve1"] = {"address": "192.0.2.11"}
>>> store.read()["nodes"]
{'pve1': {'address': '192.0.2.11'}}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

DIR_ENV = "ORBITLAB_EMULATE_DIR"
#: Which node, and which SSH user, a command on an emulated node runs as (its environment).
NODE_ENV = "ORBITLAB_EMULATE_NODE"
USER_ENV = "ORBITLAB_EMULATE_USER"
DEFAULT_DIR = Path(".orbitlab") / "emulate"


def emulate_dir() -> Path:
    """The emulator's directory: ``$ORBITLAB_EMULATE_DIR``, else ``.orbitlab/emulate`` here."""
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR).absolute()


class Store:
    """The state file of one emulated cluster, and its log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster_dir = root / "cluster"
        self.state_path = self.cluster_dir / "state.json"
        self.lock_path = self.cluster_dir / "state.lock"
        self.domain_lock_path = self.cluster_dir / "sdn-domain.lock"
        self.log_path = root / "log" / "emulator.log"

    @property
    def exists(self) -> bool:
        return self.state_path.is_file()

    def node_dir(self, node: str) -> Path:
        return self.cluster_dir / "nodes" / node

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state's exclusive lock (other processes and threads wait)."""
        self.cluster_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self) -> dict[str, Any]:
        with self.locked():
            return self._load()

    def write(self, state: dict[str, Any]) -> None:
        with self.locked():
            self._save(state)

    @contextlib.contextmanager
    def change(self) -> Iterator[dict[str, Any]]:
        """Read, let the caller change, write back (only if no exception was raised)."""
        with self.locked():
            state = self._load()
            yield state
            self._save(state)

    def _load(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def _save(self, state: dict[str, Any]) -> None:
        temporary = self.state_path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        temporary.replace(self.state_path)

    def log(self, who: str, message: str, secrets: Iterable[str] = ()) -> None:
        """Append a line to the log; every given secret string is replaced by ``[secret]``."""
        for secret in sorted(set(secrets), key=len, reverse=True):
            if secret:
                message = message.replace(secret, "[secret]")
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as handle:
            handle.write(f"{stamp} {who}: {message}\n")
