"""Every shell script of the repository passes shellcheck (the Debian package
``shellcheck``, installed by ``scripts/setup.sh``), with no finding of any severity.

Checked: the twin's stand-ins as a container gets them, the shell files of the repository,
and what the library renders for the example stack (provisioning, lease and LB route
scripts, the guards' install and remove scripts, the node check). A finding that is not a
fault carries a ``# shellcheck disable=SCxxxx`` with a one-line why, where it is.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from orbitlab.components.guard import install_script, remove_script
from orbitlab.components.sdn import node_check_script
from orbitlab.rendering import write_rendered_tree
from orbitlab.stack import load_plan
from orbitlab_lab.twin.standins import standin_scripts

REPO = Path(__file__).parent.parent
EXAMPLE = REPO / "tests" / "data" / "render" / "example" / "Pulumi.example.yaml"
#: The repository's shell files (bash, or POSIX sh by their #! line).
SHELL_FILES = (
    *sorted((REPO / "scripts").glob("*.sh")),
    REPO / "lab" / "orbitlab_lab" / "emulate" / "build-pulumi.sh",
    REPO / ".ci" / "run",
)

pytestmark = pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="no shellcheck (run scripts/setup.sh)"
)


def shellcheck(*paths: Path, shell: str = "") -> subprocess.CompletedProcess[str]:
    """shellcheck on ``paths``, every severity; their #! line says the shell, unless
    ``shell`` does (a script run with ``sh -c`` has none)."""
    given = [f"--shell={shell}"] if shell else []
    return subprocess.run(
        ["shellcheck", "--severity=style", "--format=gcc", *given, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


def assert_clean(paths: list[Path], shell: str = "") -> None:
    assert paths
    found = shellcheck(*paths, shell=shell)
    assert found.returncode == 0 and not found.stdout, found.stdout + found.stderr


def write_scripts(directory: Path, scripts: dict[str, str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in scripts.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def test_the_standins_pass(tmp_path: Path) -> None:
    # paths with a space and a quote: the filled values must stay quoted
    scripts = standin_scripts(Path("/run/a dir/run"), Path("/run/it's/root"))
    assert_clean(write_scripts(tmp_path, scripts))


@pytest.mark.parametrize("path", SHELL_FILES, ids=lambda path: str(path.relative_to(REPO)))
def test_the_repositorys_shell_files_pass(path: Path) -> None:
    assert_clean([path])


def test_what_the_example_stack_renders_passes(tmp_path: Path) -> None:
    plan = load_plan(str(EXAMPLE))
    rendered = [
        path
        for path in write_rendered_tree(plan, tmp_path / "render")
        if path.is_file() and path.read_text().startswith("#!/bin/sh")
    ]
    node_scripts: dict[str, str] = {
        "node-check-one-zone.sh": node_check_script("pve1", ["olbpz"]),
        "node-check.sh": node_check_script("pve1", ["olbpz", "olz1"], "orbitlab", 600, True),
    }
    for sector in plan.sectors:
        node_scripts[f"guard-install-{sector.name}.sh"] = install_script(sector, "pve1")
        node_scripts[f"guard-remove-{sector.name}.sh"] = remove_script(sector)
    assert len(rendered) >= 6
    assert_clean(rendered)
    # POSIX sh, run on a node with ``sh -c`` or over SSH: no #! line
    assert_clean(write_scripts(tmp_path / "node", node_scripts), shell="sh")


def test_a_finding_fails(tmp_path: Path) -> None:
    """The proof that the checks above can fail: a stand-in with an unquoted variable."""
    scripts = standin_scripts(Path("/r/run"), Path("/r/root"))
    broken = scripts["openrc"].replace('rc-service "$svc" start', "rc-service $svc start", 1)
    assert broken != scripts["openrc"]
    found = shellcheck(*write_scripts(tmp_path, {"openrc": broken}))
    assert found.returncode != 0 and "SC2086" in found.stdout
    with pytest.raises(AssertionError, match="SC2086"):
        assert_clean([tmp_path / "openrc"])
