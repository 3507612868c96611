"""The running twin as one object: its topology, its state and per-namespace helpers.

>>> from orbitlab.stack import load_plan
>>> from orbitlab_lab.twin.topology import build_topology
>>> twin = TwinContext(build_topology(load_plan("stacks/Pulumi.example.yaml")),
...                    TwinState(Path("/run/t"), Path("/run/t/Pulumi.example.yaml")))
>>> str(twin.ns_dir("olt-s.web.gateway"))
'/run/t/ns/olt-s.web.gateway'
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orbitlab_lab.twin import system
from orbitlab_lab.twin.state import TwinState
from orbitlab_lab.twin.topology import Topology


def _quiet(message: str) -> None:
    del message


@dataclass
class TwinContext:
    """The topology, the state, and helpers. Checks run in threads: changes to the recorded
    processes and the state file go through ``adopt``, ``forget`` and ``save``, one at a time.
    """

    topology: Topology
    state: TwinState
    say: Callable[[str], None] = field(default=_quiet)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def ns_dir(self, ns: str) -> Path:
        """The namespace's working directory: resolv.conf, logs, pid files, appliance root."""
        return self.state.workdir / "ns" / ns

    def run_dir(self, ns: str) -> Path:
        return self.ns_dir(ns) / "run"

    def root_dir(self, ns: str) -> Path:
        """Where an appliance's provisioning script materialized its files."""
        return self.ns_dir(ns) / "root"

    def holder(self, ns: str) -> int:
        return self.state.holder(ns).pid

    def command(self, ns: str, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside ``ns``: its network, its mount (private /etc) and UTS."""
        return system.in_holder(self.holder(ns), argv)

    def run(
        self,
        ns: str,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return system.run(self.command(ns, argv), check=check, timeout=timeout, stdin=stdin)

    def python(self, ns: str, module: str, *args: str) -> list[str]:
        """A twin helper module (echo, probe) run with this Python inside ``ns``."""
        return self.command(ns, [sys.executable, "-m", module, *args])

    def start(self, ns: str, argv: Sequence[str], what: str) -> system.Proc:
        """Start a long-running process inside ``ns`` and record it."""
        log = self.run_dir(ns) / f"{what}.log"
        process = system.spawn(self.command(ns, argv), log)
        return self.adopt(process.pid, ns, what)

    def adopt(self, pid: int, ns: str, what: str) -> system.Proc:
        """Record a process the twin started (e.g. a daemon found by its pid file)."""
        proc = system.record(pid, ns, what)
        with self._lock:
            self.state.add_process(proc)
        return proc

    def forget(self, ns: str, what: str | None = None) -> list[system.Proc]:
        """Stop recording (and return) the processes of ``ns``, or only those named ``what``;
        the caller stops them."""
        with self._lock:
            return self.state.drop_processes(ns, what)

    def save(self) -> None:
        with self._lock:
            self.state.save()
