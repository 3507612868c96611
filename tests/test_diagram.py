"""``orbitlab diagram``: SVG (through Graphviz), Mermaid and DOT pictures of a stack.

What the picture must show is computed from the plan: every address, port and policy of
the three-Sector stack must be in the SVG's text and in the Mermaid text.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from orbitlab.cli import main
from orbitlab.plan import StackPlan
from orbitlab.stack import load_plan
from orbitlab.views.diagram import diagram, format_for, svg_of
from orbitlab.views.dot import dot_of
from orbitlab.views.mermaid import mermaid_of
from orbitlab.views.picture import Box, Edge, Group, Picture, picture_of
from tests.mermaid_check import check_flowchart, label_texts

REPO = Path(__file__).parent.parent
EXAMPLE = REPO / "stacks" / "Pulumi.example.yaml"
THREE = REPO / "tests" / "data" / "twin" / "Pulumi.three.yaml"
EXAMPLE_SVG = REPO / "docs" / "example-stack.svg"
MERMAID_TOOL = REPO / "tools" / "mermaid"
SVG = "{http://www.w3.org/2000/svg}"

needs_dot = pytest.mark.skipif(
    not shutil.which("dot"), reason="needs Graphviz's dot (run scripts/setup.sh)"
)


def expected_texts(plan: StackPlan) -> set[str]:
    """Every value the picture must show, taken from the plan."""
    bp = plan.backplane
    texts = {str(bp.cidr), str(bp.gateway), str(bp.mtu), bp.primary_exit_node}
    texts |= {str(node.address) for node in bp.nodes} | {node.name for node in bp.nodes}
    for sector in plan.sectors:
        texts |= {sector.name, str(sector.tag), sector.vnet_id, sector.node}
        texts |= {str(subnet.cidr) for subnet in sector.subnets}
        texts |= {str(subnet.gateway) for subnet in sector.subnets}
        texts |= {str(sector.gateway.backplane_address), str(sector.dns.sector_address)}
        texts |= {str(h.address) for h in sector.fixed_hosts} | {h.name for h in sector.hosts}
        texts |= {sector.dns.dhcp.pool_text} if sector.dns.dhcp else set()
        texts |= {f"forward {f.port}/{f.protocol}" for f in sector.port_forwards}
        texts |= {f"{f.to.address}:{f.to.port}" for f in sector.port_forwards}
        texts |= {f"default {sector.gateway.egress.default}"}
        texts |= {str(cidr) for cidr in [*sector.gateway.egress.allow, *sector.gateway.egress.deny]}
        if sector.load_balancer:
            lb = sector.load_balancer
            texts |= {str(lb.backplane_address), str(lb.sector_address)}
            texts |= {f"listen {listener.port}/{listener.mode}" for listener in lb.listeners}
            texts |= {f"{b.address}:{b.port}" for lst in lb.listeners for b in lst.backends}
    return texts


def missing_from(texts: list[str], expected: set[str]) -> set[str]:
    """The expected values that are no whole word of any text."""
    return {
        value
        for value in expected
        if not any(re.search(rf"(^|[\s(]){re.escape(value)}($|[\s,):])", t) for t in texts)
    }


def svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return [element.text or "" for element in root.iter(f"{SVG}text")]


@pytest.fixture(scope="module")
def three() -> StackPlan:
    return load_plan(THREE)


def test_the_expected_set_covers_what_the_issue_lists(three):
    expected = expected_texts(three)
    assert {"10.210.0.0/16", "10.210.0.1", "192.0.2.21", "10.20.2.0/26", "10.210.0.13"} <= expected
    assert {"listen 443/tcp", "forward 5353/udp", "10.20.2.30:5353", "203.0.113.0/24"} <= expected
    assert {"10.20.1.100-10.20.1.149", "172.20.0.128-172.20.0.254", "cart", "till"} <= expected


@needs_dot
def test_svg_is_xml_and_shows_every_address_port_and_policy(three):
    svg = diagram(three, "svg")
    texts = svg_texts(svg)
    assert not missing_from(texts, expected_texts(three))
    # the two Sectors sharing 172.20.0.0/24 each show their own appliances
    assert sum(t == "172.20.0.2" for t in texts) == 2
    assert sum(t == "Sector Gateway" for t in texts) == 3


@needs_dot
def test_a_missing_value_would_be_seen(three):
    texts = svg_texts(diagram(three, "svg"))
    assert missing_from(texts, {"10.20.2.31", "listen 444/tcp"}) == {"10.20.2.31", "listen 444/tcp"}
    assert missing_from(["10.20.0.10"], {"10.20.0.1"}) == {"10.20.0.1"}


def test_mermaid_shows_every_address_port_and_policy(three):
    text = mermaid_of(picture_of(three))
    check_flowchart(text)
    assert not missing_from(label_texts(text), expected_texts(three))


# --- Mermaid's structure --------------------------------------------------------------------


def thirty_sectors() -> dict[str, Any]:
    """Two nodes and 30 Sectors: two subnets and hosts each, an LB and a forward now and then."""
    sectors = []
    for index in range(30):
        sector: dict[str, Any] = {
            "name": f"team-{index:02d}",
            "subnets": ["172.16.0.0/24", "172.16.1.0/24"],
            "hosts": [
                {"name": "app1", "address": "172.16.0.21"},
                {"name": "app2", "address": "172.16.1.22"},
            ],
        }
        if index % 3 == 0:
            sector["load_balancer"] = {"listeners": [{"port": 80, "backends": ["app1:8080"]}]}
        if index % 4 == 0:
            sector["port_forwards"] = [{"port": 2222, "to": "app1:22"}]
        sectors.append(sector)
    nodes = [{"name": "pve1", "address": "192.0.2.11"}, {"name": "pve2", "address": "192.0.2.12"}]
    return {
        "config": {
            "orbitlab:backplane": {"nodes": nodes},
            "orbitlab:appliances": {"nameservers": ["192.0.2.53"]},
            "orbitlab:sectors": sectors,
        }
    }


@pytest.fixture(scope="module")
def thirty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("thirty") / "Pulumi.thirty.yaml"
    path.write_text(yaml.safe_dump(thirty_sectors()))
    return path


def nasty_picture() -> Picture:
    """Text with every character that means something to DOT, HTML or Mermaid."""
    text = 'a "quoted" <b>tag</b> & #35; \\ {x} [y] ; end'
    boxes = (Box("s0_gateway", "gateway", text, ((text, text), ("", "end"))),)
    group = Group("s0", "sector", text, boxes)
    return Picture(
        text, (Box("bp", "backplane", "Backplane"),), (group,), (Edge("bp", "s0_gateway"),)
    )


MERMAID_CASES = ("example", "three", "thirty", "nasty")


def mermaid_case(name: str, thirty_path: Path) -> str:
    """The Mermaid text of a named case: the stacks, 30 Sectors, text needing quoting."""
    if name == "nasty":
        return mermaid_of(nasty_picture())
    path = {"example": EXAMPLE, "three": THREE, "thirty": thirty_path}[name]
    return mermaid_of(picture_of(load_plan(path)))


@pytest.mark.parametrize("name", MERMAID_CASES)
def test_mermaid_is_a_well_formed_flowchart(name, thirty):
    check_flowchart(mermaid_case(name, thirty))


def test_mermaid_text_survives_quoting():
    text = mermaid_of(nasty_picture())
    check_flowchart(text)
    assert 'a "quoted" <b>tag</b> & #35; \\ {x} [y] ; end' in label_texts(text)


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ('graph TB\n  a["x"]\n', "first line"),
        ('flowchart TB\n  subgraph s["x"]\n  a["y"]\n', "unclosed subgraph"),
        ('flowchart TB\n  a["x"]\n  end\n', "'end' without a subgraph"),
        ('flowchart TB\n  a["x"]\n  a --- b\n', "undeclared"),
        ('flowchart TB\n  a["x "y"]\n', "not a statement"),
        ('flowchart TB\n  a["x <i>y</i>"]\n', "markup"),
        ('flowchart TB\n  a["x # y"]\n', "entity"),
        ('flowchart TB\n  end["x"]\n', "reserved"),
        ('flowchart TB\n  a["x"]\n  a["y"]\n', "declared twice"),
        ('flowchart TB\n  a["x"]\n  class a,b k_gateway\n', "undeclared"),
        ('flowchart TB\n  a-b["x"]\n', "not a statement"),
    ],
)
def test_the_structure_check_refuses_broken_flowcharts(broken, problem):
    with pytest.raises(AssertionError, match=problem):
        check_flowchart(broken)


def mermaid_parser() -> Path:
    script = MERMAID_TOOL / "parse.mjs"
    if not shutil.which("node") or not (MERMAID_TOOL / "node_modules" / "mermaid").is_dir():
        pytest.skip("needs Node.js and tools/mermaid's packages (run scripts/setup.sh)")
    return script


@pytest.mark.tools
def test_mermaids_own_parser_accepts_every_flowchart_and_refuses_a_broken_one(thirty, tmp_path):
    script = mermaid_parser()
    files = []
    for name in MERMAID_CASES:
        files.append(tmp_path / f"{name}.mmd")
        files[-1].write_text(mermaid_case(name, thirty))
    broken = tmp_path / "broken.mmd"
    broken.write_text('flowchart TB\n  a[["x"] --- b\n')
    result = subprocess.run(
        ["node", str(script), *map(str, files), str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert lines[:-1] == [f"ok {file} (flowchart-v2)" for file in files], result.stderr
    assert lines[-1].startswith(f"error {broken}: Parse error on line 2")
    assert result.returncode == 1


# --- layout -----------------------------------------------------------------------------------


def svg_size(svg: str) -> tuple[float, float]:
    root = ET.fromstring(svg)
    return (
        float(root.get("width", "0").removesuffix("pt")),
        float(root.get("height", "0").removesuffix("pt")),
    )


@needs_dot
def test_thirty_sectors_wrap_into_a_block_not_a_row(thirty):
    started = time.monotonic()
    svg = diagram(load_plan(thirty), "svg")
    elapsed = time.monotonic() - started
    width, height = svg_size(svg)
    assert 0.5 < width / height < 2, (width, height)
    assert elapsed < 30
    texts = svg_texts(svg)
    assert sum(t.startswith("Sector team-") for t in texts) == 30


def test_sectors_wrap_only_when_there_are_many(thirty):
    wrap = "[style=invis, weight=10]"
    assert wrap not in dot_of(picture_of(load_plan(EXAMPLE)))
    assert wrap in dot_of(picture_of(load_plan(thirty)))


@needs_dot
def test_dot_accepts_nasty_text_and_the_svg_shows_it():
    svg = svg_of(dot_of(nasty_picture()))
    assert 'a "quoted" <b>tag</b> & #35; \\ {x} [y] ; end' in svg_texts(svg)


# --- command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "given", "expected"),
    [
        ("net.svg", None, "svg"),
        ("net.SVG", None, "svg"),
        ("net.mmd", None, "mermaid"),
        ("README.md", None, "mermaid"),
        ("net.dot", None, "dot"),
        ("net.gv", None, "dot"),
        ("net", None, "svg"),
        (None, None, "svg"),
        ("net.svg", "mermaid", "mermaid"),
    ],
)
def test_format_from_the_suffix_unless_given(out, given, expected):
    assert format_for(out, given) == expected


@needs_dot
def test_cli_writes_each_format(capsys, tmp_path):
    for name, check in (
        ("net.svg", lambda text: ET.fromstring(text).tag == f"{SVG}svg"),
        ("net.mmd", lambda text: check_flowchart(text) is None),
        (
            "net.md",
            lambda text: text.startswith("```mermaid\nflowchart TB\n") and text.endswith("```\n"),
        ),
        ("net.dot", lambda text: text.startswith("digraph orbitlab {")),
    ):
        assert main(["diagram", str(EXAMPLE), "--out", str(tmp_path / name)]) == 0
        assert check((tmp_path / name).read_text()), name
        assert f"wrote {tmp_path / name}" in capsys.readouterr().err
    assert main(["diagram", str(EXAMPLE), "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart TB\n")


@needs_dot
def test_the_docs_picture_is_up_to_date(tmp_path):
    """The picture the docs (and the README) show is what `orbitlab diagram` draws now."""
    fresh = tmp_path / "example-stack.svg"
    assert main(["diagram", str(EXAMPLE), "--out", str(fresh)]) == 0
    assert EXAMPLE_SVG.read_text() == fresh.read_text(), (
        "docs/example-stack.svg is out of date: run `.venv/bin/orbitlab diagram "
        "stacks/Pulumi.example.yaml --out docs/example-stack.svg`"
    )
    page = (REPO / "docs" / "see-the-network.md").read_text()
    assert "](example-stack.svg)" in page
    assert "--out docs/example-stack.svg" in page  # how to draw it again
    assert "](docs/example-stack.svg)" in (REPO / "README.md").read_text()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["diagram", "stacks/Pulumi.none.yaml"], 2, "cannot read the stack file"),
        (["diagram", "tests/data/README.md"], 2, "not valid YAML"),
        (
            ["diagram", str(EXAMPLE), "--format", "png"],
            2,
            "argument --format: invalid choice: 'png'",
        ),
        (
            ["diagram", str(EXAMPLE), "--out", "/nonexistent/dir/x.svg"],
            1,
            "/nonexistent/dir/x.svg: cannot write the diagram",
        ),
    ],
)
def test_cli_errors_a_user_can_cause(capsys, argv, code, message):
    try:
        assert main(argv) == code
    except SystemExit as exit:  # argparse refuses bad options itself
        assert exit.code == code
    assert message in capsys.readouterr().err


def test_invalid_stack_lists_its_problems(capsys, tmp_path):
    document = yaml.safe_load(EXAMPLE.read_text())
    document["config"]["orbitlab:sectors"][0]["subnets"] = ["10.200.1.0/24"]
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump(document))
    assert main(["diagram", str(stack), "--format", "dot"]) == 2
    assert "overlaps the Backplane" in capsys.readouterr().err


def test_without_dot_the_error_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["diagram", str(EXAMPLE)]) == 1
    assert "Graphviz's `dot` is not installed" in capsys.readouterr().err
