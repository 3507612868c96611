"""A :class:`~orbitlab.views.picture.Picture` as a Mermaid flowchart, for Markdown.

Groups become subgraphs, boxes become nodes whose text is the title and one line per row,
edges become plain links. Node text is always quoted, and the characters Mermaid reads
inside quoted text (``"``, ``#``, ``<``, ``>``, ``&``) are written as entity codes.

>>> from orbitlab.stack import load_plan
>>> from orbitlab.views.picture import picture_of
>>> lines = mermaid_of(picture_of(load_plan("stacks/Pulumi.example.yaml"))).splitlines()
>>> lines[0], lines[2].split("<br/>")[:3]
('flowchart TB', ['  bp["<b>Backplane</b>', 'CIDR: 10.200.0.0/16', 'gateway: 10.200.0.1'])
"""

from __future__ import annotations

from collections.abc import Iterator

from orbitlab.views.dot import COLOURS, GROUP_COLOURS
from orbitlab.views.picture import Box, Group, Picture

#: Characters with a meaning inside quoted Mermaid text, as Mermaid's entity codes.
ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}


def mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label.

    >>> mermaid_text('a "b" <c> & #d')
    'a #quot;b#quot; #lt;c#gt; #amp; #35;d'
    """
    return "".join(ENTITIES.get(char, char) for char in text)


def box_text(box: Box) -> str:
    """The title in bold, then ``key: value`` per row (a row without a key: its value)."""
    lines = [f"<b>{mermaid_text(box.title)}</b>"]
    lines += [mermaid_text(f"{key}: {value}" if key else value) for key, value in box.rows]
    return "<br/>".join(lines)


def box_line(box: Box) -> str:
    """A box as a Mermaid node with quoted text.

    >>> box_line(Box("s0_dns", "dns", "Sector DNS", (("Sector", "172.16.0.2"),)))
    's0_dns["<b>Sector DNS</b><br/>Sector: 172.16.0.2"]'
    """
    return f'{box.id}["{box_text(box)}"]'


def group_lines(group: Group, depth: int = 1) -> Iterator[str]:
    """A group as a subgraph (its id, its quoted title), boxes and sub-groups inside."""
    pad = "  " * depth
    yield f'{pad}subgraph {group.id}["{mermaid_text(group.title)}"]'
    yield f"{pad}  direction TB"
    for box in group.boxes:
        yield f"{pad}  {box_line(box)}"
    for sub in group.groups:
        yield from group_lines(sub, depth + 1)
    yield f"{pad}end"


def walk_groups(groups: tuple[Group, ...]) -> Iterator[Group]:
    """Every group, depth first (a node, then its Sectors)."""
    for group in groups:
        yield group
        yield from walk_groups(group.groups)


def style_lines(picture: Picture) -> Iterator[str]:
    """One class per box kind (the SVG's colours), and a border per group kind."""
    boxes = list(picture.walk_boxes())
    for kind in sorted({box.kind for box in boxes}):
        head, _ = COLOURS[kind]
        yield f"  classDef k_{kind} fill:{head},stroke:#636363,color:#000000"
        yield f"  class {','.join(box.id for box in boxes if box.kind == kind)} k_{kind}"
    for group in walk_groups(picture.groups):
        yield f"  style {group.id} fill:#ffffff,stroke:{GROUP_COLOURS[group.kind]}"


def mermaid_of(picture: Picture) -> str:
    """The picture as a Mermaid ``flowchart TB``."""
    lines = ["flowchart TB", f"  %% {picture.title}"]
    lines += [f"  {box_line(box)}" for box in picture.boxes]
    for group in picture.groups:
        lines.extend(group_lines(group))
    lines += [f"  {edge.tail} --- {edge.head}" for edge in picture.edges]
    lines.extend(style_lines(picture))
    return "\n".join(lines) + "\n"
