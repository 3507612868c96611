"""A strict structural check of the Mermaid flowcharts OrbitLab writes.

It accepts only the statements ``orbitlab diagram --format mermaid`` uses, each on its own
line, and checks what Mermaid would otherwise take silently (an edge to an undeclared id
makes a new, empty node) or choke on (a raw quote in a label, unbalanced subgraphs, a
reserved word as an id). Mermaid's own parser runs too, under Node, where it is installed
(``tools/mermaid``); this check runs everywhere.

>>> check_flowchart('flowchart TB\\n  a["x<br/>#quot;y#quot;"]\\n  b["z"]\\n  a --- b\\n')
>>> label_texts('flowchart TB\\n  a["<b>x</b><br/>#quot;y#quot; #35;1"]\\n')
['x', '"y" #1']
"""

from __future__ import annotations

import re

ID = r"[A-Za-z][A-Za-z0-9_]*"
TEXT = r'"([^"]*)"'
DIRECTION = r"(?:TB|TD|BT|LR|RL)"
STYLE = r"[a-z-]+:[^,;\s]+(?:,[a-z-]+:[^,;\s]+)*"
RESERVED = {
    "end",
    "subgraph",
    "graph",
    "flowchart",
    "style",
    "class",
    "classdef",
    "click",
    "direction",
    "linkstyle",
    "call",
    "href",
    "default",
}
MARKUP = re.compile(r"<b>|</b>|<br/>")
ENTITY = re.compile(r"#(quot|lt|gt|amp|\d+);")
ENTITIES = {"quot": '"', "lt": "<", "gt": ">", "amp": "&"}

STATEMENTS = {
    "comment": re.compile(r"^%%.*$"),
    "subgraph": re.compile(rf"^subgraph ({ID})\[{TEXT}\]$"),
    "end": re.compile(r"^end$"),
    "direction": re.compile(rf"^direction {DIRECTION}$"),
    "node": re.compile(rf"^({ID})\[{TEXT}\]$"),
    "edge": re.compile(rf"^({ID}) (?:---|-->) ({ID})$"),
    "classDef": re.compile(rf"^classDef ({ID}) {STYLE}$"),
    "class": re.compile(rf"^class ({ID}(?:,{ID})*) ({ID})$"),
    "style": re.compile(rf"^style ({ID}) {STYLE}$"),
}


def statement(number: int, line: str) -> tuple[str, re.Match[str]]:
    """The kind of one line, or an AssertionError naming it."""
    for kind, pattern in STATEMENTS.items():
        found = pattern.match(line)
        if found:
            return kind, found
    raise AssertionError(f"line {number}: not a statement: {line!r}")


def check_text(number: int, text: str) -> None:
    """Label text: only <b>, </b>, <br/> as markup; '#' only in entity codes."""
    plain = MARKUP.sub("", text)
    assert "<" not in plain and ">" not in plain, f"line {number}: markup in {text!r}"
    assert "#" not in ENTITY.sub("", plain), f"line {number}: '#' outside an entity: {text!r}"


def check_id(number: int, name: str, declared: set[str]) -> None:
    assert name.lower() not in RESERVED, f"line {number}: id {name!r} is reserved"
    assert name not in declared, f"line {number}: id {name!r} declared twice"
    declared.add(name)


def check_flowchart(text: str) -> None:
    """Raise AssertionError naming the first problem of a flowchart; None when sound."""
    lines = text.splitlines()
    assert lines and re.match(rf"^flowchart {DIRECTION}$", lines[0]), "first line: flowchart TB"
    declared: set[str] = set()
    used: list[tuple[int, str]] = []
    depth = 0
    for number, raw in enumerate(lines[1:], start=2):
        kind, found = statement(number, raw.strip())
        if kind in ("subgraph", "node"):
            check_id(number, found[1], declared)
            check_text(number, found[2])
        depth += {"subgraph": 1, "end": -1}.get(kind, 0)
        assert depth >= 0, f"line {number}: 'end' without a subgraph"
        if kind == "edge":
            used += [(number, found[1]), (number, found[2])]
        elif kind == "class":
            used += [(number, name) for name in found[1].split(",")]
        elif kind == "style":
            used.append((number, found[1]))
    assert depth == 0, f"{depth} unclosed subgraph(s)"
    for number, name in used:
        assert name in declared, f"line {number}: {name!r} is undeclared"


def label_texts(text: str) -> list[str]:
    """Every line of every label, markup removed and entity codes decoded."""
    texts = []
    for label in re.findall(TEXT, text):
        for line in label.split("<br/>"):
            plain = line.replace("<b>", "").replace("</b>", "")
            texts.append(ENTITY.sub(lambda m: ENTITIES.get(m[1]) or chr(int(m[1])), plain))
    return texts
