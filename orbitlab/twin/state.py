"""The state file: what a running twin is made of, so separate CLI calls can find it.

``/run/orbitlab-twin/state.json`` (``ORBITLAB_TWIN_DIR`` moves it) records the stack file
the twin was built from (a copy, so an edited file does not confuse ``test``), every
namespace created and every process started. It is written as bring-up proceeds, so even
an interrupted ``up`` leaves enough for ``down`` to clean up::

    >>> state = TwinState(workdir=Path("/tmp/x"), stack_file=Path("/tmp/x/Pulumi.a.yaml"))
    >>> state.add_namespace("olt-n.pve1"); state.namespaces
    ['olt-n.pve1']
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from orbitlab.twin import TwinError
from orbitlab.twin.system import Proc

STATE_VERSION = 1


def twin_dir() -> Path:
    """The directory of the twin's state and working files (all removed by ``down``)."""
    return Path(os.environ.get("ORBITLAB_TWIN_DIR", "/run/orbitlab-twin"))


def state_path() -> Path:
    return twin_dir() / "state.json"


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

    def add_namespace(self, name: str) -> None:
        if name not in self.namespaces:
            self.namespaces.append(name)

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


def require_state() -> TwinState:
    state = load_state()
    if state is None:
        raise TwinError("no twin is up; start one with `orbitlab twin up STACKFILE`")
    if not state.ready:
        raise TwinError(
            "the twin's bring-up did not finish; run `orbitlab twin down`, then `twin up` again"
        )
    return state
