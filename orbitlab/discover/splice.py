"""The stack file's text: the Backplane's nodes written into it, its comments and order kept.

:func:`splice_nodes` replaces only the text of ``config.orbitlab:backplane.nodes``; a file
without such a list is rewritten whole (:func:`rewrite_nodes`, comments lost) with a
warning. The file is read with :func:`orbitlab.stack.read_stack_yaml`, the reader every
command uses, and replaced atomically, its mode kept.

Example::

    >>> text = "config:\\n  orbitlab:backplane:  # mine\\n    nodes: []\\n"
    >>> nodes = [{"name": "pve1", "address": "192.0.2.11", "mtu": 1500}]
    >>> print(splice_nodes(text, nodes), end="")
    config:
      orbitlab:backplane:  # mine
        nodes:
          - name: pve1
            address: 192.0.2.11
            mtu: 1500
    >>> existing_nodes(yaml.safe_load(splice_nodes(text, nodes))) == nodes
    True
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from orbitlab.discover.errors import DiscoverError
from orbitlab.errors import SettingsError
from orbitlab.settings import CONFIG_NAMESPACE
from orbitlab.stack import NOT_A_STACK, load_stack_file, read_stack_yaml

BACKPLANE_KEY = f"{CONFIG_NAMESPACE}:backplane"


def render_nodes(nodes: list[dict[str, Any]], indent: int = 0) -> str:
    """Render a block sequence of nodes, every line but the first indented by ``indent``.

    >>> print(render_nodes([{"name": "pve1", "address": "192.0.2.11", "mtu": 1500}]))
    - name: pve1
      address: 192.0.2.11
      mtu: 1500
    """
    text = yaml.safe_dump(nodes, default_flow_style=False, sort_keys=False, width=10_000)
    return ("\n" + " " * indent).join(text.rstrip("\n").split("\n"))


def render_backplane(nodes: list[dict[str, Any]]) -> str:
    """The YAML printed to stdout: paste it under ``config:`` in ``Pulumi.<stack>.yaml``."""
    return (
        "# orbitlab discover: paste under `config:` in Pulumi.<stack>.yaml\n"
        f"{BACKPLANE_KEY}:\n  nodes:\n    {render_nodes(nodes, 4)}\n"
    )


def _mapping_value(node: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _content_end(node: yaml.Node) -> int:
    """Where a node's own text ends (a block collection's end mark runs past comments)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1])
    return node.end_mark.index


def _nodes_sequence(text: str) -> tuple[yaml.Node, yaml.SequenceNode] | None:
    """The key and the sequence of ``config.orbitlab:backplane.nodes`` in a stack file's text,
    or None when it holds no such list."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    config = _mapping_value(root, "config")
    backplane = config and _mapping_value(config[1], BACKPLANE_KEY)
    found = backplane and _mapping_value(backplane[1], "nodes")
    if not found or not isinstance(found[1], yaml.SequenceNode):
        return None
    return found[0], found[1]


def splice_nodes(text: str, nodes: list[dict[str, Any]]) -> str | None:
    """Replace ``config.orbitlab:backplane.nodes`` in a stack file's text, keeping the rest.

    Comments outside the old ``nodes`` list are kept; comments inside it are lost. Returns
    ``None`` when the file has no such list to replace (the caller then rewrites it whole).

    >>> print(splice_nodes("config:\\n  orbitlab:backplane:  # mine\\n    nodes: []\\n",
    ...                    [{"name": "a", "address": "192.0.2.1", "mtu": 1500}]), end="")
    config:
      orbitlab:backplane:  # mine
        nodes:
          - name: a
            address: 192.0.2.1
            mtu: 1500
    """
    found = _nodes_sequence(text)
    if found is None:
        return None
    key_node, sequence = found
    start, end = sequence.start_mark.index, _content_end(sequence)
    line_end = text.find("\n", end)
    end = len(text) if line_end < 0 else line_end
    if sequence.flow_style:
        indent = key_node.start_mark.column + 2
        start = len(text[:start].rstrip(" \t"))
        replacement = "\n" + " " * indent + render_nodes(nodes, indent)
    else:
        replacement = render_nodes(nodes, sequence.start_mark.column)
    return text[:start] + replacement + text[end:]


def rewrite_nodes(document: dict[str, Any], nodes: list[dict[str, Any]]) -> str:
    """Set the nodes in a parsed stack file and dump it whole (its comments are lost)."""
    config = document.setdefault("config", {})
    backplane = config.get(BACKPLANE_KEY)
    if not isinstance(backplane, dict):
        backplane = config[BACKPLANE_KEY] = {}
    backplane["nodes"] = nodes
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False, width=10_000)


def existing_nodes(document: Any) -> list[Any]:
    """The ``orbitlab:backplane.nodes`` list of a parsed stack file, or ``[]``."""
    config = document.get("config") if isinstance(document, dict) else None
    backplane = config.get(BACKPLANE_KEY) if isinstance(config, dict) else None
    nodes = backplane.get("nodes") if isinstance(backplane, dict) else None
    return nodes if isinstance(nodes, list) else []


def existing_protected(document: dict[str, Any] | None) -> list[str]:
    """The ``orbitlab:backplane.protected_networks`` of a parsed stack file, or ``[]``.

    >>> existing_protected({"config": {"orbitlab:backplane": {"protected_networks": ["a"]}}})
    ['a']
    """
    backplane = ((document or {}).get("config") or {}).get(BACKPLANE_KEY) or {}
    found = backplane.get("protected_networks") if isinstance(backplane, dict) else None
    return [str(net) for net in found or []]


def stack_endpoint(document: dict[str, Any] | None) -> str | None:
    """The stack file's ``proxmoxve:endpoint``, if it sets one."""
    config = (document or {}).get("config") or {}
    value = config.get("proxmoxve:endpoint")
    return value if isinstance(value, str) else None


def read_stack_document(path: str) -> tuple[dict[str, Any], str]:
    """A stack file parsed, and its text; errors a user can fix as :class:`DiscoverError`.

    The stack need not be valid yet (that is what discover is for): an empty file, or one
    without ``config:``, reads as no settings.
    """
    try:
        document, text = read_stack_yaml(path)
    except SettingsError as error:
        raise DiscoverError(str(error)) from None
    if document is None:
        document = {}
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise DiscoverError(f"{path}: {NOT_A_STACK}")
    return document, text


def write_stack(
    path: Path, text: str, document: dict[str, Any], nodes: list[dict[str, Any]]
) -> None:
    """Write ``nodes`` into the stack file at ``path`` (read as ``text`` and ``document``),
    and say on stderr what it holds now and whether it is a valid stack yet."""
    _replace_file(path, _updated_text(path, text, document, nodes))
    names = ", ".join(node["name"] for node in nodes)
    print(f"{path}: orbitlab:backplane.nodes = {names}", file=sys.stderr)
    _note_validity(path)


def _updated_text(
    path: Path, text: str, document: dict[str, Any], nodes: list[dict[str, Any]]
) -> str:
    """The stack file's text with ``nodes`` spliced in, else rewritten whole (with a warning)."""
    updated = splice_nodes(text, nodes)
    if updated is None or existing_nodes(yaml.safe_load(updated)) != nodes:
        updated = rewrite_nodes(document, nodes)
        print(
            f"warning: {path} had no orbitlab:backplane.nodes list to update in place, so it "
            "was rewritten whole: its comments were not kept",
            file=sys.stderr,
        )
    return updated


def _replace_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` through a file beside it, keeping its mode."""
    temporary = path.with_name(f".{path.name}.discover")
    temporary.write_text(text)
    temporary.chmod(path.stat().st_mode & 0o7777)
    os.replace(temporary, path)


def _note_validity(path: Path) -> None:
    try:
        load_stack_file(path)
    except SettingsError as error:
        print(
            f"note: {path} is not a valid stack yet ({len(error.problems)} problem(s)); "
            f"run `orbitlab validate {path}`",
            file=sys.stderr,
        )
