"""The state file: what a running twin is made of, so separate CLI calls can find it.

``/run/orbitlab-twin/state.json`` (``ORBITLAB_TWIN_DIR`` moves it) records the stack file
the twin was built from (a copy, so an edited file does not confuse ``test``), every
namespace created and every process started. It is written as bring-up proceeds, so even
an interrupted ``up`` leaves enough for ``down`` to clean up::

    >>> state = TwinState(workdir=Path("/tmp/x"), stack_file=Path("/tmp/x/Pulumi.a.yaml"))
    >>> state.add_namespace("olt-n.pve1"); state.namespaces
    ['olt-n.pve1']

A twin *of an emulated cluster* (``kind`` ``cluster``: ``orbitlab emulate start --twin``) is
built by the emulator's plugins, several processes at once: they change the state through
:func:`changing_state`, under a file lock. Its stack file is read where it is (the one
``pulumi`` applies, edits included), and ``containers`` records each container's namespace
and what was declared for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbitlab_lab.twin import TwinError
from orbitlab_lab.twin.system import Proc

STATE_VERSION = 1
KINDS = ("plan", "cluster")


TWIN_DIR_ENV = "ORBITLAB_TWIN_DIR"


def twin_dir() -> Path:
    """The directory of the twin's state and working files (all removed by ``down``)."""
    return Path(os.environ.get(TWIN_DIR_ENV, "/run/orbitlab-twin"))


def state_path() -> Path:
    return twin_dir() / "state.json"


def lock_path() -> Path:
    return twin_dir() / "state.lock"


@dataclass
class TwinState:
    workdir: Path
    stack_file: Path
    source: str = ""
    namespaces: list[str] = field(default_factory=list)
    holders: dict[str, Proc] = field(default_factory=dict)
    processes: list[Proc] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    ready: bool = False
    #: ``plan`` (``twin up``: built from the stack file) or ``cluster`` (built by the
    #: emulated cluster's plugins from what the engine declared).
    kind: str = "plan"
    #: Namespace -> what was declared for the container it is (kind ``cluster``).
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The emulated cluster's directory (kind ``cluster``).
    emulate_dir: str = ""

    def add_namespace(self, name: str) -> None:
        if name not in self.namespaces:
            self.namespaces.append(name)

    def drop_namespace(self, name: str) -> None:
        """Forget a namespace that was removed (a deleted container)."""
        self.namespaces = [ns for ns in self.namespaces if ns != name]
        self.holders.pop(name, None)
        self.containers.pop(name, None)
        self.processes = [p for p in self.processes if p.ns != name]

    def is_container(self, ns: str) -> bool:
        """Whether ``ns`` is a container of the emulated cluster."""
        return ns in self.containers

    def add_process(self, proc: Proc) -> None:
        self.processes.append(proc)

    def drop_processes(self, ns: str, what: str | None = None) -> list[Proc]:
        """Forget (and return) the processes of a namespace, or only those named ``what``."""
        gone = [p for p in self.processes if p.ns == ns and (what is None or p.what == what)]
        self.processes = [p for p in self.processes if p not in gone]
        return gone

    def processes_in(self, ns: str) -> list[Proc]:
        return [proc for proc in self.processes if proc.ns == ns]

    def holder(self, ns: str) -> Proc:
        try:
            return self.holders[ns]
        except KeyError:
            if self.kind == "cluster":
                raise TwinError(
                    f"{ns} is not there: no container of the emulated cluster became it and "
                    "no host was joined as it (see `orbitlab twin status`)"
                ) from None
            raise TwinError(f"namespace {ns} has no holder process; is the twin up?") from None

    def to_json(self) -> dict[str, object]:
        return {
            "version": STATE_VERSION,
            "workdir": str(self.workdir),
            "stack_file": str(self.stack_file),
            "source": self.source,
            "namespaces": self.namespaces,
            "holders": {ns: proc.to_json() for ns, proc in self.holders.items()},
            "processes": [proc.to_json() for proc in self.processes],
            "created": self.created,
            "ready": self.ready,
            "kind": self.kind,
            "containers": self.containers,
            "emulate_dir": self.emulate_dir,
        }

    @classmethod
    def from_json(cls, data: dict) -> TwinState:
        return cls(
            workdir=Path(data["workdir"]),
            stack_file=Path(data["stack_file"]),
            source=data.get("source", ""),
            namespaces=list(data["namespaces"]),
            holders={ns: Proc.from_json(p) for ns, p in data["holders"].items()},
            processes=[Proc.from_json(p) for p in data["processes"]],
            created=float(data["created"]),
            ready=bool(data["ready"]),
            kind=str(data.get("kind", "plan")),
            containers=dict(data.get("containers", {})),
            emulate_dir=str(data.get("emulate_dir", "")),
        )

    def save(self) -> None:
        path = state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=1))
        temporary.replace(path)


def load_state() -> TwinState | None:
    """The running twin's state, or None when no twin is up."""
    path = state_path()
    if not path.exists():
        return None
    try:
        return TwinState.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise TwinError(f"{path} is unreadable ({error}); run `orbitlab twin down`") from None


@contextlib.contextmanager
def state_lock() -> Iterator[None]:
    """Hold the twin's state lock: the emulated cluster's plugins change the state from
    several processes and threads at once."""
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def changing_state() -> Iterator[TwinState]:
    """The state, loaded under the lock, saved when the caller is done (not on an error).

    Raises :class:`TwinError` when no twin is up.
    """
    with state_lock():
        state = load_state()
        if state is None:
            raise TwinError("no twin is up; start one with `orbitlab twin up STACKFILE`")
        yield state
        state.save()


def require_state() -> TwinState:
    state = load_state()
    if state is None:
        raise TwinError("no twin is up; start one with `orbitlab twin up STACKFILE`")
    if not state.ready:
        raise TwinError(
            "the twin's bring-up did not finish; run `orbitlab twin down`, then `twin up` again"
        )
    return state
