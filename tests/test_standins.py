"""The stand-ins' scripts, read from their files and filled, byte for byte:
``tests/data/standins`` holds them for two containers (one with quotes and spaces in its
paths). It was first the output of the Python strings the scripts moved out of; the
shellcheck fixes since changed it (its history shows each change)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orbitlab_lab.twin import standins

DATA = Path(__file__).parent / "data" / "standins"
#: The containers of the data: their run directory and own root.
CONTAINERS = {
    "plain": ("/run/orbitlab-twin/olt-c.s-web-gw/run", "/run/orbitlab-twin/olt-c.s-web-gw/root"),
    "quoted": ("/tmp/a dir/run", "/tmp/it's/root"),
}


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_scripts_are_those_of_before_byte_for_byte(
    container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(standins, "real_sysctl", lambda: "/usr/sbin/sysctl")
    run, root = CONTAINERS[container]
    scripts = standins.standin_scripts(Path(run), Path(root))
    expected = {path.name: path.read_text() for path in (DATA / container).iterdir()}
    assert scripts == expected


def test_every_file_is_a_standin_and_every_placeholder_is_filled() -> None:
    shipped = Path(standins.__file__).parent / "standins"
    scripts = standins.standin_scripts(Path("/r/run"), Path("/r/root"))
    assert sorted(path.stem for path in shipped.glob("*.sh")) == sorted(scripts)
    assert not any(standins.PLACEHOLDER.search(text) for text in scripts.values())


def test_fill_refuses_a_value_without_a_placeholder() -> None:
    with pytest.raises(ValueError, match="values without a placeholder: EXTRA"):
        standins.fill("RUN=__RUN__", {"RUN": "/r", "EXTRA": "x"})
