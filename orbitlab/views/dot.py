"""A :class:`~orbitlab.views.picture.Picture` as Graphviz DOT text (``dot -Tsvg`` draws it).

Boxes are HTML-like tables (every text escaped), groups are clusters: one per node, holding
one per Sector. The Sectors of a node wrap into rows of at most a few columns (invisible
edges stack each Sector under the one a row above), so 30 Sectors make a block, not a
line kilometres long.

>>> from orbitlab.stack import load_plan
>>> from orbitlab.views.picture import picture_of
>>> text = dot_of(picture_of(load_plan("stacks/Pulumi.example.yaml")))
>>> text.splitlines()[0], "10.200.0.0/16" in text
('digraph orbitlab {', True)
>>> html_text('a<b & "c"')
'a&lt;b &amp; &quot;c&quot;'
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator

from orbitlab.views.picture import BACKPLANE_LEG_KINDS, Box, Edge, Group, Picture

#: DejaVu Sans sizes the text (setup.sh installs it); viewers without it fall back in order.
FONT = "DejaVu Sans,Helvetica,Arial,sans-serif"
#: Fill of a box's title row and of its body, by kind.
COLOURS: dict[str, tuple[str, str]] = {
    "backplane": ("#9ecae1", "#eff6fb"),
    "node": ("#bdbdbd", "#f5f5f5"),
    "gateway": ("#fdae6b", "#fff5eb"),
    "lb": ("#bcbddc", "#f6f5fb"),
    "vnet": ("#fee391", "#fffbea"),
    "dns": ("#a1d99b", "#f2faf0"),
    "hosts": ("#d9d9d9", "#ffffff"),
}
#: Boxes with a leg on the Backplane, left to right.
LEG_KINDS = BACKPLANE_LEG_KINDS
#: Border of a group, by kind.
GROUP_COLOURS = {"node": "#737373", "sector": "#d94801"}
#: Sector columns side by side across all nodes: at least MIN (no wrapping for a few
#: Sectors), about sqrt(Sectors) for more, at most MAX.
MIN_COLUMNS = 4
MAX_COLUMNS = 6


def html_text(text: str) -> str:
    """Text safe inside an HTML-like label."""
    return html.escape(text, quote=True)


def dot_id(name: str) -> str:
    """A quoted DOT identifier.

    >>> dot_id('s0_gateway'), dot_id('a"b')
    ('"s0_gateway"', '"a\\\\"b"')
    """
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def key_text(key: str) -> str:
    """A row's key, greyed; Graphviz refuses an empty ``<font>``, so none for no key."""
    return f'<font color="#525252">{html_text(key)}</font>' if key else ""


def box_label(box: Box) -> str:
    """A box as an HTML-like table: the title row, then one row per ``(key, value)``."""
    head, body = COLOURS[box.kind]
    rows = [f'<tr><td colspan="2" bgcolor="{head}"><b>{html_text(box.title)}</b></td></tr>']
    rows += [
        f'<tr><td align="left">{key_text(key)}</td><td align="left">{html_text(value)}</td></tr>'
        for key, value in box.rows
    ]
    return (
        f'<<table border="1" cellborder="0" cellspacing="0" cellpadding="2" '
        f'color="#636363" bgcolor="{body}">{"".join(rows)}</table>>'
    )


def box_statement(box: Box) -> str:
    """A box as a DOT node statement, e.g. ``"bp" [label=<<table ...>>];``."""
    return f"{dot_id(box.id)} [label={box_label(box)}];"


def edge_statement(edge: Edge, invisible: bool = False) -> str:
    """An edge; an invisible one only shapes the layout.

    >>> edge_statement(Edge("a", "b"), invisible=True)
    '"a" -> "b" [style=invis, weight=10];'
    """
    style = " [style=invis, weight=10]" if invisible else ""
    return f"{dot_id(edge.tail)} -> {dot_id(edge.head)}{style};"


def side_by_side(group: Group, pad: str) -> Iterator[str]:
    """Keep a Sector's Backplane legs in reading order: the gateway, then the load balancer."""
    legs = [box.id for box in group.boxes if box.kind in LEG_KINDS]
    if len(legs) > 1:
        chain = " -> ".join(dot_id(leg) for leg in legs)
        yield f"{pad}{{rank=same; {chain} [style=invis];}}"


def group_lines(group: Group, depth: int = 1) -> Iterator[str]:
    """A group as a cluster subgraph, its boxes and sub-groups inside."""
    pad = "  " * depth
    colour = GROUP_COLOURS[group.kind]
    yield f"{pad}subgraph {dot_id('cluster_' + group.id)} {{"
    yield f"{pad}  label=<<b>{html_text(group.title)}</b>>; color={dot_id(colour)};"
    yield f'{pad}  style="rounded"; margin=8;'
    for box in group.boxes:
        yield f"{pad}  {box_statement(box)}"
    yield from side_by_side(group, pad + "  ")
    for sub in group.groups:
        yield from group_lines(sub, depth + 1)
    yield f"{pad}}}"


def columns_per_node(picture: Picture) -> dict[str, int]:
    """Sector columns of each node group: about square overall, rows as even as they go.

    The fewest rows such that every node's Sectors, wrapped into that many rows, fit in
    ``sqrt(Sectors)`` columns side by side, bounded by :data:`MIN_COLUMNS` and
    :data:`MAX_COLUMNS` (and at least one column per node that holds Sectors).

    >>> def node(i, n):
    ...     sectors = tuple(Group(f"{k}", "sector", "") for k in range(n))
    ...     return Group(f"n{i}", "node", "", (), sectors)
    >>> columns_per_node(Picture("", (), (node(0, 9), node(1, 21)), ()))
    {'n0': 2, 'n1': 4}
    >>> columns_per_node(Picture("", (), (node(0, 1), node(1, 2), node(2, 0)), ()))
    {'n0': 1, 'n1': 2, 'n2': 1}
    """
    counts = {group.id: len(group.groups) for group in picture.groups}
    total = sum(counts.values())
    across = min(MAX_COLUMNS, max(MIN_COLUMNS, math.ceil(math.sqrt(total))))
    across = max(across, sum(1 for count in counts.values() if count))
    rows = 1
    while sum(math.ceil(count / rows) for count in counts.values()) > across:
        rows += 1
    return {name: max(1, math.ceil(count / rows)) for name, count in counts.items()}


def ends(group: Group, edges: tuple[Edge, ...]) -> tuple[list[str], list[str]]:
    """A Sector group's top boxes (no edge into them from inside) and bottom boxes (none out)."""
    ids = [box.id for box in group.boxes]
    inner = [edge for edge in edges if edge.tail in ids and edge.head in ids]
    tops = [i for i in ids if not any(edge.head == i for edge in inner)]
    bottoms = [i for i in ids if not any(edge.tail == i for edge in inner)]
    return tops, bottoms


def wrap_edges(node: Group, columns: int, edges: tuple[Edge, ...]) -> Iterator[str]:
    """Invisible edges stacking each Sector of a node under the one a row above it."""
    for upper, lower in zip(node.groups, node.groups[columns:], strict=False):
        _, bottoms = ends(upper, edges)
        tops, _ = ends(lower, edges)
        yield from (edge_statement(Edge(b, t), invisible=True) for b in bottoms for t in tops)


def leg_edges(node: Group, columns: int, edges: tuple[Edge, ...]) -> Iterator[str]:
    """The node's edges to its Sectors' Backplane legs.

    Drawn when the Sectors fit in one row; when they wrap, edges to the rows below would
    wind around the rows above, so only the first row keeps them, invisible, for layout
    (each gateway and load balancer names its Backplane address).
    """
    own = {box.id for box in node.boxes}
    first_row = {box.id for group in node.groups[:columns] for box in group.boxes}
    wrapped = len(node.groups) > columns
    for edge in edges:
        if edge.tail in own and (not wrapped or edge.head in first_row):
            yield edge_statement(edge, invisible=wrapped)


def dot_of(picture: Picture) -> str:
    """The picture as a DOT digraph, top to bottom."""
    lines = [
        "digraph orbitlab {",
        f"  graph [rankdir=TB, newrank=true, fontname={dot_id(FONT)}, fontsize=12, "
        f"labelloc=t, nodesep=0.25, ranksep=0.4, label=<<b>{html_text(picture.title)}</b>>];",
        f"  node [shape=plain, fontname={dot_id(FONT)}, fontsize=10, ordering=out];",
        '  edge [color="#636363", arrowhead=none, penwidth=1.2];',
    ]
    lines += [f"  {box_statement(box)}" for box in picture.boxes]
    for group in picture.groups:
        lines.extend(group_lines(group))
    node_boxes = {box.id for node in picture.groups for box in node.boxes}
    lines += [f"  {edge_statement(e)}" for e in picture.edges if e.tail not in node_boxes]
    columns = columns_per_node(picture)
    for node in picture.groups:
        lines += [f"  {line}" for line in leg_edges(node, columns[node.id], picture.edges)]
        lines += [f"  {line}" for line in wrap_edges(node, columns[node.id], picture.edges)]
    lines.append("}")
    return "\n".join(lines) + "\n"
