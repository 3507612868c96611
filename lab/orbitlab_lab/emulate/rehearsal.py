"""Drive a rehearsal from Python: a project directory, an emulated cluster, the real CLI.

What the end-to-end tests and ``benchmarks/bench_rehearsal.py`` use; a person does the same
by hand with ``orbitlab emulate start`` and ``eval "$(orbitlab emulate env)"``. The project
directory is a copy of the stack program (``Pulumi.yaml``, ``__main__.py``) or a program of
one's own, with the stack file copied in as ``Pulumi.<stack>.yaml`` (never edited in place).

Example::

    rehearsal = Rehearsal.create(tmp, "stacks/Pulumi.example.yaml", apply_s=0.5)
    rehearsal.add_stack_file("example", "stacks/Pulumi.example.yaml")
    rehearsal.init_stack("example")          # stack init, secrets set with --secret
    rehearsal.changes("preview")             # {'create': [...43 names...]}
    rehearsal.pulumi("up", "--yes")
    rehearsal.applies()                      # [{'by': 'rollout-apply', 'why': 'create', ...}]

Backed by the twin (root; one twin per machine), the stack file is copied in first and the
twin's expectations are read from that copy, edits included::

    rehearsal = Rehearsal.create(tmp, "stacks/Pulumi.example.yaml", twin_stack="example")
    rehearsal.init_stack("example")
    rehearsal.pulumi("up", "--yes")
    rehearsal.orbitlab("emulate", "join")    # the declared hosts no container provides
    rehearsal.orbitlab("twin", "test")       # what the engine built, probed
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orbitlab_lab.emulate import EmulateError, control
from orbitlab_lab.emulate.cluster import DEFAULT_PVE
from orbitlab_lab.emulate.status import summary
from orbitlab_lab.emulate.store import Store

#: A dummy API token and SSH key, set as secrets: tests look for them in state and logs.
DUMMY_TOKEN = "orbitlab@pve!rehearsal=6c0f2e5a-91d4-4b7e-8f3a-2d5c7e9b1a04"
DUMMY_TOKEN_SECRET = DUMMY_TOKEN.rsplit("=", 1)[1]
DUMMY_KEY_BODY = "b3BlbnNzaC1rZXktdjEAAAAAQm9yYml0bGFiLXJlaGVhcnNhbC1kdW1teQ"
DUMMY_KEY = (
    f"-----BEGIN OPENSSH PRIVATE KEY-----\n{DUMMY_KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----\n"
)
COMMAND_TIMEOUT_S = 600


#: The stack program as a user's project holds it: the installed library's ``main``.
PROJECT_FILES = {
    "Pulumi.yaml": "name: orbitlab\nruntime: python\n",
    "__main__.py": "from orbitlab.program import main\n\nmain()\n",
}


def write_project(directory: Path) -> None:
    """A Pulumi project running the installed library's stack program (no checkout needed:
    the language host runs this virtualenv's Python, first on the rehearsal's PATH)."""
    for name, text in PROJECT_FILES.items():
        (directory / name).write_text(text)


@dataclass
class Rehearsal:
    """One emulated cluster and one project directory; every ``pulumi`` run is kept."""

    project: Path
    store: Store
    env: dict[str, str]
    transcript: list[str] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        workdir: Path,
        stack_file: str | Path,
        *,
        program: Path | None = None,
        apply_s: float = 1.5,
        twin_stack: str | None = None,
        pve: int = DEFAULT_PVE,
        seed: str | Path | None = None,
        pveum: str | Path | None = None,
    ) -> Rehearsal:
        """A cluster with the stack file's nodes, and in ``workdir/project`` a copy of
        ``program``'s Pulumi.yaml and ``__main__.py`` (default: the installed library's
        program, :func:`write_project`). With ``twin_stack``, the cluster is backed by
        the twin and the stack file is copied in first as ``Pulumi.<twin_stack>.yaml``;
        ``seed``: a snapshot of an existing cluster to start from; ``pveum``: the token's
        privileges as ``pveum`` commands (default: the stack's least-privilege ones)."""
        if not control.pulumi_built():
            raise EmulateError(f"the Pulumi CLI is not built in {control.pulumi_bin()}")
        workdir = workdir.resolve()  # pulumi runs in the project: paths must not be relative
        store = Store(workdir / "emulate")
        project = workdir / "project"
        project.mkdir(parents=True)
        if program is None:
            write_project(project)
        else:
            for name in ("Pulumi.yaml", "__main__.py"):
                shutil.copy(program / name, project / name)
        if twin_stack is not None:
            copied = project / f"Pulumi.{twin_stack}.yaml"
            shutil.copy(stack_file, copied)
            control.start(
                store,
                str(copied),
                apply_s=apply_s,
                build=False,
                twin=True,
                pve=pve,
                seed=str(seed) if seed else None,
                pveum=str(pveum) if pveum else None,
                say=_quiet,
            )
        else:
            control.start(
                store,
                str(stack_file),
                apply_s=apply_s,
                build=False,
                pve=pve,
                seed=str(seed) if seed else None,
                pveum=str(pveum) if pveum else None,
            )
        return cls(project, store, control.process_environment(store))

    def orbitlab(
        self, *args: str, check: bool = False, timeout: float = COMMAND_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """``orbitlab ARGS`` with the rehearsal's environment (its cluster, its twin)."""
        argv = [sys.executable, "-m", "orbitlab.cli", *args]
        return self._run(f"orbitlab {' '.join(args)}", argv, None, check, timeout)

    def pulumi(
        self, *args: str, stack: str | None = None, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``pulumi ARGS`` in the project; fails (``check``) with its output."""
        argv = ["pulumi", *args, "--non-interactive", *(["--stack", stack] if stack else [])]
        return self._run(f"pulumi {' '.join(args)}", argv, stdin, check, COMMAND_TIMEOUT_S)

    def _run(
        self, what: str, argv: list[str], stdin: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the project with the rehearsal's environment, kept in the
        transcript; with ``check``, a failure raises with its output."""
        done = subprocess.run(
            argv,
            cwd=self.project,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.transcript.append(f"$ {what}\n{done.stdout}\n{done.stderr}")
        if check and done.returncode != 0:
            raise AssertionError(
                f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done

    def add_stack_file(self, stack: str, source: str | Path, edit: Any = None) -> None:
        """Copy a stack file in as ``Pulumi.<stack>.yaml``, changed by ``edit(config)``."""
        document = yaml.safe_load(Path(source).read_text())
        if edit is not None:
            edit(document["config"])
        (self.project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))

    def init_stack(self, stack: str, endpoint: str | None = None) -> None:
        """``pulumi stack init`` and the secrets (API token, SSH key) set as secrets."""
        self.pulumi("stack", "init", stack)
        # on stdin, so that no command line (ps, shell history, the transcript) holds them
        secrets = {"proxmoxve:apiToken": DUMMY_TOKEN, "orbitlab:sshPrivateKey": DUMMY_KEY}
        for key, value in secrets.items():
            self.pulumi("config", "set", "--secret", key, stack=stack, stdin=value)
        if endpoint:
            self.pulumi("config", "set", "proxmoxve:endpoint", endpoint, stack=stack)

    def edit(self, stack: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Change the stack's ``config:`` (keeps the encrypted secrets and the salt)."""
        path = self.project / f"Pulumi.{stack}.yaml"
        document = yaml.safe_load(path.read_text())
        change(document["config"])
        path.write_text(yaml.safe_dump(document))

    def changes(self, *args: str, stack: str | None = None) -> dict[str, list[str]]:
        """What ``pulumi preview`` would change, as op -> resource names (``same`` and
        ``read``, which change nothing, left out: the program reads its own last outputs)."""
        done = self.pulumi("preview", "--json", *args, stack=stack)
        steps: dict[str, list[str]] = {}
        for step in json.loads(done.stdout).get("steps", []):
            if step["op"] not in ("same", "read"):
                steps.setdefault(step["op"], []).append(step["urn"].rsplit("::", 1)[1])
        return {op: sorted(names) for op, names in steps.items()}

    def status(self) -> dict[str, Any]:
        return summary(self.store.read())

    def applies(self) -> list[dict[str, Any]]:
        return self.status()["applies"]

    def state_text(self, stack: str) -> str:
        """The stack's state file as the backend stores it."""
        found = list((self.store.root / "backend").rglob(f"{stack}.json"))
        if not found:
            raise EmulateError(f"no state file of stack {stack!r}")
        return found[0].read_text()

    def resources(self, stack: str) -> list[str]:
        """Names of the resources in the stack's state (providers and the stack included)."""
        exported = json.loads(self.pulumi("stack", "export", stack=stack).stdout)
        return [r["urn"].rsplit("::", 1)[1] for r in exported["deployment"].get("resources", [])]

    def logs(self) -> str:
        """Everything written to a log: the emulator's, and every pulumi run's output."""
        log = self.store.log_path.read_text() if self.store.log_path.exists() else ""
        return log + "\n".join(self.transcript)

    def stop(self) -> None:
        if self.store.exists:
            control.stop(self.store, _quiet)


def _quiet(message: str) -> None:
    del message
