"""Both packages as a user gets them: wheels built from this checkout, installed into a
clean virtualenv (the dependencies from the package index, at requirements.txt's pins), run
from a directory outside the checkout with nothing of it on the path.

The library (orbitlab-networks) validates and renders the example stack exactly as the
checkout does (the golden files); the lab (orbitlab-lab) adds its commands through entry
points and runs an emulated cluster that the real Pulumi CLI previews against.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from orbitlab_lab.emulate import control
from tests.golden import CASES_DIR

pytestmark = pytest.mark.wheels

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = CASES_DIR / "example"


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env() -> dict[str, str]:
    """This process's environment without anything that would put the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not p.startswith(str(ROOT)))
    return env


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dist = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), ".", "./lab"],
        ROOT,
    )
    built = {path.name.split("-")[0]: path for path in dist.glob("*.whl")}
    assert set(built) == {"orbitlab_networks", "orbitlab_lab"}, sorted(built)
    return built


@pytest.fixture(scope="module")
def venv(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtualenv with both wheels (and their dependencies) installed."""
    home = tmp_path_factory.mktemp("user")
    run([sys.executable, "-m", "venv", str(home / "venv")], home, clean_env())
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "-q"]
    run([*pip, "-c", str(ROOT / "requirements.txt"), *map(str, wheels.values())], home, clean_env())
    return home / "venv"


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_library_wheel_holds_the_library_and_no_lab(wheels: dict[str, Path]) -> None:
    files = wheel_files(wheels["orbitlab_networks"])
    assert "orbitlab/py.typed" in files
    assert "orbitlab/templates/nftables.nft.j2" in files
    assert not [name for name in files if name.startswith("orbitlab_lab/")]
    assert not [name for name in files if "/twin/" in name or "/emulate/" in name]


def test_the_lab_wheel_holds_its_data_and_pins_the_library(wheels: dict[str, Path]) -> None:
    files = wheel_files(wheels["orbitlab_lab"])
    assert {
        "orbitlab_lab/py.typed",
        "orbitlab_lab/emulate/build-pulumi.sh",
        "orbitlab_lab/emulate/schemas/proxmoxve-8.6.0.json",
    } <= files
    with zipfile.ZipFile(wheels["orbitlab_lab"]) as archive:
        metadata = archive.read(next(n for n in files if n.endswith("METADATA"))).decode()
    import orbitlab

    assert f"Requires-Dist: orbitlab-networks=={orbitlab.__version__}" in metadata
    assert f"Version: {orbitlab.__version__}" in metadata


def test_validate_and_render_from_the_wheels_match_the_checkout(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "Pulumi.example.yaml").write_text((EXAMPLE / "Pulumi.example.yaml").read_text())
    orbitlab = str(venv / "bin" / "orbitlab")
    where = run([str(venv / "bin" / "python"), "-c", "import orbitlab; print(orbitlab.__file__)"],
                tmp_path, clean_env())  # fmt: skip
    assert where.startswith(str(venv)), where
    assert "valid - 2 node(s), 2 Sector(s)" in run(
        [orbitlab, "validate", "Pulumi.example.yaml"], tmp_path, clean_env()
    )
    run([orbitlab, "render", "Pulumi.example.yaml", "--out", "out"], tmp_path, clean_env())
    compared = filecmp.dircmp(tmp_path / "out", EXAMPLE / "expected")
    assert not differences(compared), differences(compared)


def differences(compared: filecmp.dircmp) -> list[str]:
    """Every file that differs or exists on one side only, through the whole tree."""
    found = [*compared.left_only, *compared.right_only, *compared.diff_files]
    for sub in compared.subdirs.values():
        found.extend(differences(sub))
    return found


def test_the_lab_adds_its_commands_through_entry_points(venv: Path, tmp_path: Path) -> None:
    usage = run([str(venv / "bin" / "orbitlab"), "--help"], tmp_path, clean_env())
    assert "twin" in usage and "emulate" in usage
    built = run([str(venv / "bin" / "orbitlab"), "emulate", "build", "--print"], tmp_path,
                clean_env())  # fmt: skip
    assert Path(built.strip()) == control.pulumi_bin()


@pytest.mark.rehearsal
@pytest.mark.skipif(
    not control.pulumi_built(),
    reason=f"the Pulumi CLI is not built in {control.pulumi_bin()} (orbitlab emulate build)",
)
def test_pulumi_previews_against_the_emulator_from_the_wheels(venv: Path, tmp_path: Path) -> None:
    """The lab's Rehearsal in the clean virtualenv: its own project (the installed library's
    program), stand-in plugins that run the installed lab, no checkout path anywhere."""
    (tmp_path / "Pulumi.example.yaml").write_text((EXAMPLE / "Pulumi.example.yaml").read_text())
    script = textwrap.dedent(
        """
        from pathlib import Path
        from orbitlab_lab.emulate.rehearsal import Rehearsal

        rehearsal = Rehearsal.create(Path("run"), "Pulumi.example.yaml")
        try:
            rehearsal.add_stack_file("example", "Pulumi.example.yaml")
            rehearsal.init_stack("example")
            print(rehearsal.pulumi("preview").stdout)
            for plugin in sorted((rehearsal.store.root / "bin").iterdir()):
                print("PLUGIN", plugin.read_text())
        finally:
            rehearsal.stop()
        """
    )
    out = run([str(venv / "bin" / "python"), "-c", script], tmp_path, clean_env())
    assert "49 to create" in out, out
    assert str(ROOT) not in out
    assert "sys.path" not in out
