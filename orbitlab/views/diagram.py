"""``orbitlab diagram``: the picture of a plan as SVG, Mermaid or DOT.

SVG is drawn by Graphviz's ``dot`` (Debian package ``graphviz``, which
``scripts/setup.sh`` installs), called directly: the DOT text is ours already, so a Python
binding would only wrap the same ``subprocess`` call. The format comes from ``--format``,
else from the output file's suffix, else SVG; a ``.md`` file gets the Mermaid text inside
a fenced ``mermaid`` block, so it shows as a picture in Markdown.

>>> format_for("docs/network.md", None), format_for("net.svg", None), format_for(None, None)
('mermaid', 'svg', 'svg')
>>> from orbitlab.stack import load_plan
>>> print(diagram(load_plan("stacks/Pulumi.example.yaml"), "mermaid", "x.md")[:23])
```mermaid
flowchart TB
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from orbitlab.errors import OrbitLabError
from orbitlab.plan import StackPlan
from orbitlab.views.dot import dot_of
from orbitlab.views.mermaid import mermaid_of
from orbitlab.views.picture import picture_of

FORMATS = ("svg", "mermaid", "dot")
SUFFIX_FORMATS = {".svg": "svg", ".mmd": "mermaid", ".md": "mermaid", ".dot": "dot", ".gv": "dot"}
DEFAULT_FORMAT = "svg"
DOT_TIMEOUT_S = 120


class DiagramError(OrbitLabError):
    """The picture cannot be drawn (Graphviz missing or failing)."""


def format_for(out: str | None, explicit: str | None) -> str:
    """The output format: ``explicit`` if given, else by the file's suffix, else SVG."""
    if explicit is not None:
        return explicit
    suffix = Path(out).suffix.lower() if out else ""
    return SUFFIX_FORMATS.get(suffix, DEFAULT_FORMAT)


def svg_of(dot_text: str) -> str:
    """Run ``dot -Tsvg`` on DOT text; a missing or failing ``dot`` is a clear error."""
    dot = shutil.which("dot")
    if dot is None:
        raise DiagramError(
            "Graphviz's `dot` is not installed, so no SVG can be drawn: `apt-get install "
            "graphviz` (scripts/setup.sh installs it), or use --format mermaid or dot"
        )
    result = subprocess.run(
        [dot, "-Tsvg"],
        input=dot_text,
        capture_output=True,
        text=True,
        timeout=DOT_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise DiagramError(f"`dot -Tsvg` failed (exit {result.returncode}): {result.stderr}")
    return result.stdout


def diagram(plan: StackPlan, fmt: str, out: str | None = None) -> str:
    """The plan's picture in ``fmt``; Mermaid for a ``.md`` file comes fenced."""
    picture = picture_of(plan)
    if fmt == "svg":
        return svg_of(dot_of(picture))
    if fmt == "dot":
        return dot_of(picture)
    if fmt == "mermaid":
        text = mermaid_of(picture)
        is_markdown = out is not None and Path(out).suffix.lower() == ".md"
        return f"```mermaid\n{text}```\n" if is_markdown else text
    raise DiagramError(f"unknown diagram format {fmt!r}; choose one of {', '.join(FORMATS)}")
