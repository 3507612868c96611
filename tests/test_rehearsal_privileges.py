"""The token's privileges with the real Pulumi CLI (the stand-in level, every privilege:
``tests/test_privileges.py``).

- with exactly the least-privilege role, the example stack's ``up`` and ``destroy`` pass,
  the protected Backplane's too (the other rehearsals run with the role as well: it is
  ``emulate start``'s default);
- without ``SDN.Use``, ``pulumi up`` fails at the first container with Proxmox's 403
  naming the path and privilege, and creates no container;
- without ``Datastore.Allocate`` on the template storage, ``up`` passes and ``destroy``
  fails at the template, with the provider's words, leaving it in the state.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orbitlab_lab.emulate import control
from orbitlab_lab.emulate.rehearsal import Rehearsal
from tests.pulumi_mocks import EXAMPLE_STACK
from tests.test_privileges import LEAST, without

pytestmark = [
    pytest.mark.rehearsal,
    pytest.mark.skipif(
        not control.pulumi_built(),
        reason=f"the Pulumi CLI is not built in {control.pulumi_bin()} (orbitlab emulate build)",
    ),
]

DENIED = "received an HTTP 403 response - Reason: Permission check failed"


def rehearsal(tmp_path: Path, script: str) -> Rehearsal:
    pveum = tmp_path / "pveum.sh"
    pveum.write_text(script)
    made = Rehearsal.create(tmp_path, EXAMPLE_STACK, apply_s=0.2, pveum=pveum)
    made.add_stack_file("example", EXAMPLE_STACK)
    made.init_stack("example")
    return made


def test_the_least_privilege_role_runs_up_and_destroy(tmp_path: Path) -> None:
    run = rehearsal(tmp_path, LEAST)
    try:
        run.pulumi("up", "--yes", "--skip-preview")
        assert len(run.store.read()["containers"]) == 5
        run.pulumi("destroy", "--yes", "--skip-preview", "--exclude-protected")
        assert run.store.read()["containers"] == {}
        run.pulumi("state", "unprotect", "--all", "--yes")
        run.pulumi("destroy", "--yes", "--skip-preview")
        sdn = run.store.read()["sdn"]["running"]
        assert all(objects == {} for objects in sdn.values())
    finally:
        run.stop()


def test_without_sdn_use_up_fails_at_the_first_container_naming_it(tmp_path: Path) -> None:
    run = rehearsal(tmp_path, without("SDN.Use"))
    try:
        done = run.pulumi("up", "--yes", "--skip-preview", check=False)
        assert done.returncode != 0
        output = done.stdout + done.stderr
        assert f"error creating container: {DENIED} (/sdn/zones/olvz100" in output
        assert ", SDN.Use)" in output
        assert run.store.read()["containers"] == {}
        refused = re.findall(r"Permission check failed(?: \(([^)]*)\))?", output)
        assert refused and all(found.endswith(", SDN.Use") for found in refused)
    finally:
        run.stop()


def test_without_datastore_allocate_destroy_fails_at_the_template(tmp_path: Path) -> None:
    run = rehearsal(tmp_path, without("Datastore.Allocate"))
    try:
        run.pulumi("up", "--yes", "--skip-preview")
        done = run.pulumi("destroy", "--yes", "--skip-preview", "--exclude-protected", check=False)
        assert done.returncode != 0
        assert (
            "Error deleting datastore file: Could not delete datastore file 'local:vztmpl/"
            f"orbitlab-example-alpine-3.22-default_20250617_amd64.tar.xz', unexpected error: "
            f"{DENIED} (/storage/local, Datastore.Allocate)"
        ) in done.stdout + done.stderr
        assert run.store.read()["containers"] == {}
        state = run.pulumi("stack", "export").stdout
        assert "proxmoxve:download/file:File" in state
    finally:
        run.stop()
