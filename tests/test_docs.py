"""The documentation: README.md as the newcomer's page, the rest a site MkDocs builds strictly.

The site (``mkdocs.yml``, pages under ``docs/``) builds with ``mkdocs build --strict``, and a
broken link or anchor fails it; the settings reference it generates from the pydantic models
(``docs/hooks/settings_reference.py``) lists every field of every settings model. Tests that
pin the text of a page read that page (``tests/test_privileges.py``, ``test_show.py``,
``test_settings_errors.py``, ``test_diagram.py``).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from orbitlab import settings
from orbitlab.stack import settings_from_config

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 200
SETUP_AND_TWIN = (
    "scripts/setup.sh && .venv/bin/orbitlab twin up stacks/Pulumi.example.yaml && "
    "(.venv/bin/orbitlab twin test; s=$?; .venv/bin/orbitlab twin down; exit $s)"
)


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``config`` into ``site``, importing this tree's packages."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "lab"), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build(REPO / "mkdocs.yml", out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def page_html(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text()


# --- the site -------------------------------------------------------------------------------


def test_the_site_builds_strictly_with_every_page_in_the_nav(site: Path) -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert config["strict"] is True
    assert config["theme"]["name"] == "material"

    def pages(nav: list) -> list[str]:
        found = []
        for entry in nav:
            for value in entry.values():
                found += pages(value) if isinstance(value, list) else [value]
        return found

    in_nav = pages(config["nav"])
    assert sorted(in_nav) == sorted(path.name for path in DOCS.glob("*.md"))
    for name in in_nav:
        built = site / ("index.html" if name == "index.md" else f"{name[:-3]}/index.html")
        assert built.exists(), name
    assert (site / "example-stack.svg").exists()
    assert not (site / "hooks").exists()  # the hook's source is not a page


@pytest.mark.parametrize(
    ("link", "complaint"),
    [
        ("[gone](no-such-page.md)", "no-such-page.md"),
        ("[gone](dhcp.md#no-such-anchor)", "no-such-anchor"),
        ("[gone](#nor-this-one)", "nor-this-one"),
    ],
)
def test_a_broken_link_fails_the_build(tmp_path: Path, link: str, complaint: str) -> None:
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    page = tmp_path / "docs" / "workflow.md"
    page.write_text(page.read_text() + f"\nSee {link}.\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert complaint in done.stdout + done.stderr
    # the same copy without the broken link builds: the link alone failed it
    shutil.copy(DOCS / "workflow.md", page)
    assert build(tmp_path / "mkdocs.yml", tmp_path / "site").returncode == 0


# --- the settings reference -----------------------------------------------------------------


def models_in(annotation: object) -> list[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in models_in(arg)]


def is_list(annotation: object) -> bool:
    origin = typing.get_origin(annotation)
    if origin is list:
        return True
    return origin in (typing.Union, types.UnionType) and any(
        is_list(arg) for arg in typing.get_args(annotation)
    )


def every_field() -> tuple[set[str], set[type[BaseModel]]]:
    """Every field's stack-file path, and every model reached, walked from StackSettings."""
    paths: set[str] = set()
    reached: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        reached.add(model)
        for name, info in model.model_fields.items():
            path = f"{prefix}.{name}" if prefix else f"orbitlab:{name}"
            paths.add(path)
            for inner in models_in(info.annotation):
                walk(inner, path + ("[]" if is_list(info.annotation) else ""))

    walk(settings.StackSettings, "")
    top = {f"orbitlab:{name}" for name in settings.StackSettings.model_fields}
    return paths - top, reached


def test_the_settings_reference_lists_every_field_of_every_model(site: Path) -> None:
    html = page_html(site, "settings-reference")
    listed = set(re.findall(r"<tr>\s*<td><code>(orbitlab:[^<]+)</code></td>", html))
    expected, reached = every_field()
    assert listed == expected
    assert "orbitlab:backplane.nodes[].address" in listed
    assert "orbitlab:sectors[].load_balancer.listeners[].health_check.interval_s" in listed
    every_model = {
        value
        for value in vars(settings).values()
        if inspect.isclass(value)
        and issubclass(value, settings.Model)
        and value is not settings.Model
    }
    assert every_model == reached | {settings.StackSettings}
    assert "<!-- settings-reference -->" not in html


def test_every_settings_field_has_a_description() -> None:
    # the reference shows it; the build fails on a field without one
    for model in vars(settings).values():
        if inspect.isclass(model) and issubclass(model, settings.Model):
            for name, info in model.model_fields.items():
                assert info.description, f"{model.__name__}.{name}"


def test_the_reference_shows_types_defaults_and_constraints(site: Path) -> None:
    html = page_html(site, "settings-reference")
    mtu = r"<td><code>orbitlab:backplane\.nodes\[\]\.mtu</code></td>(.*?)</tr>"
    row = re.search(mtu, html, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    assert cells[0] == "integer"
    assert cells[1] == "<code>1500</code>"
    assert "≥ 1330" in cells[2] and "≤ 65535" in cells[2]
    assert "vmbr0" in cells[3]
    assert 'href="#cidr"' in html and 'id="cidr"' in html


# --- README.md: the newcomer's page ---------------------------------------------------------


def test_the_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_the_readme_has_the_two_commands_and_the_fast_tests() -> None:
    text = README.read_text()
    assert f"```sh\n{SETUP_AND_TWIN}\n```" in text
    assert "```sh\n.venv/bin/python -m pytest\n```" in text
    assert "```sh\n.venv/bin/python -m pytest -m fast\n```" in text
    assert ".venv/bin/mkdocs serve" in text and "build --strict" in text
    assert "`orbitlab-networks`" in text and "`orbitlab-lab`" in text


def test_the_readmes_links_lead_into_the_site(site: Path) -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert len([link for link in local if link.startswith("docs/")]) > 15
    for link in local:
        path, _, anchor = link.partition("#")
        assert (REPO / path).exists(), link
        if anchor:
            assert path.startswith("docs/") and path.endswith(".md"), link
            assert f'id="{anchor}"' in page_html(site, Path(path).stem), link
    linked = {Path(link.partition("#")[0]).name for link in local}
    assert {path.name for path in DOCS.glob("*.md")} <= linked


def test_the_readmes_tour_stack_is_valid() -> None:
    block = re.search(r"```yaml\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    parsed = settings_from_config(yaml.safe_load(block.group(1))["config"])
    assert [sector.name for sector in parsed.sectors] == ["web"]
