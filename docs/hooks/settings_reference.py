"""MkDocs hook: the settings reference, generated from the pydantic models at build time.

``docs/settings-reference.md`` holds a hand-written introduction and the marker
:data:`MARKER`; :func:`on_page_markdown` replaces the marker with one table per settings
model, walked from :class:`orbitlab.settings.StackSettings`: every field's path in a stack
file (``orbitlab:backplane.nodes[].address``), its type, default, constraints and
description (the field's docstring in the model). Nothing here repeats what a field means:
a field without a description fails the build.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
from mkdocs.exceptions import PluginError
from pydantic import BaseModel, BeforeValidator, Strict
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from orbitlab import settings

PAGE = "settings-reference.md"
MARKER = "<!-- settings-reference -->"

#: The value types of ``orbitlab.settings`` (``Annotated`` aliases with a validator), by name
#: as the reference shows them; their rules are their validators' docstrings.
VALUE_TYPES = {
    "Label": "name",
    "Domain": "domain",
    "Address": "IPv4 address",
    "Cidr": "IPv4 network",
    "Destination": "egress target",
    "Mac": "MAC address",
    "LeaseTime": "lease time",
}
PLAIN_TYPES = {str: "string", int: "integer", bool: "boolean"}


@dataclass(frozen=True)
class Row:
    """One field of one model, at its path in a stack file."""

    model: type[BaseModel]
    name: str
    path: str
    info: FieldInfo


@dataclass(frozen=True)
class Section:
    """One model at its path (``orbitlab:sectors[].hosts[]``) and its fields."""

    model: type[BaseModel]
    path: str
    anchor: str
    rows: tuple[Row, ...]


def _validators() -> dict[Any, str]:
    """Each value type's validator function -> the type's name in :data:`VALUE_TYPES`."""
    found = {}
    for alias in VALUE_TYPES:
        for meta in typing.get_args(getattr(settings, alias))[1:]:
            if isinstance(meta, BeforeValidator):
                found[meta.func] = alias
    return found


VALIDATORS = _validators()


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) is list:
        return True
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and any(
        _is_list(arg) for arg in typing.get_args(annotation)
    )


def _anchor(path: str) -> str:
    """``orbitlab:sectors[].load_balancer.listeners[]`` -> ``sectors-load_balancer-listeners``."""
    name = path.removeprefix(f"{settings.CONFIG_NAMESPACE}:").replace("[]", "")
    return name.replace(".", "-")


def sections() -> list[Section]:
    """Every settings model at its path, depth first from the stack's three keys."""
    found: list[Section] = []

    def walk(model: type[BaseModel], path: str) -> None:
        rows = []
        for name, info in model.model_fields.items():
            field_path = f"{path}.{name}" if path else f"{settings.CONFIG_NAMESPACE}:{name}"
            rows.append(Row(model, name, field_path, info))
        found.append(Section(model, path, _anchor(path), tuple(rows)))
        for row in rows:
            suffix = "[]" if _is_list(row.info.annotation) else ""
            for inner in _models_in(row.info.annotation):
                walk(inner, row.path + suffix)

    for name, info in settings.StackSettings.model_fields.items():
        (model,) = _models_in(info.annotation)
        suffix = "[]" if _is_list(info.annotation) else ""
        walk(model, f"{settings.CONFIG_NAMESPACE}:{name}{suffix}")
    return found


def field_paths() -> list[str]:
    """Every field's path, as the reference lists them."""
    return [row.path for section in sections() for row in section.rows]


def _markdown(text: str | None) -> str:
    """A docstring as one table cell: RST's double backticks as Markdown's, one line."""
    return " ".join((text or "").replace("``", "`").split()).replace("|", "\\|")


def _type(annotation: Any, metadata: list[Any], anchors: dict[type, str]) -> str:
    for meta in metadata:
        if isinstance(meta, BeforeValidator) and meta.func in VALIDATORS:
            alias = VALIDATORS[meta.func]
            return f"[{VALUE_TYPES[alias]}](#{alias.lower()})"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], list(args[1:]), anchors)
    if origin in (typing.Union, types.UnionType):
        kept = [arg for arg in args if arg is not type(None)]
        return " or ".join(_type(arg, [], anchors) for arg in kept)
    if origin is list:
        return f"list of {_type(args[0], [], anchors)}"
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in args)
    if annotation in anchors:
        return f"[mapping](#{anchors[annotation]})"
    if annotation in PLAIN_TYPES:
        return PLAIN_TYPES[annotation]
    raise PluginError(f"settings reference: no way to show the type {annotation!r}")


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, BaseModel):
        return "its defaults"
    if isinstance(value, list):
        return "`[" + ", ".join(str(item) for item in value) + "]`"
    return f"`{value}`"


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    if info.default_factory is not None:
        return _value(info.default_factory())  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return "unset"
    return _value(info.default)


def _constraints(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            parts.append(f"≥ {meta.ge}")
        elif isinstance(meta, annotated_types.Le):
            parts.append(f"≤ {meta.le}")
        elif isinstance(meta, annotated_types.MinLen):
            parts.append(f"at least {meta.min_length} entry")
        elif isinstance(meta, Strict):
            parts.append("strict (no type conversion)")
    return ", ".join(parts)


def _table(section: Section, anchors: dict[type, str]) -> Iterator[str]:
    title = section.path
    yield f"## `{title}` {{#{section.anchor}}}"
    yield ""
    yield _markdown(inspect.getdoc(section.model))
    if section.path.endswith("[]"):
        yield ""
        yield "A list: each entry is a mapping of these keys."
    yield ""
    yield "| key | type | default | constraints | description |"
    yield "| --- | --- | --- | --- | --- |"
    for row in section.rows:
        if not row.info.description:
            raise PluginError(
                f"settings reference: {row.model.__name__}.{row.name} ({row.path}) has no "
                "description: give it a docstring in orbitlab/settings.py"
            )
        cells = (
            f"`{row.path}`",
            _type(row.info.annotation, list(row.info.metadata), anchors),
            _default(row.info),
            _constraints(row.info),
            _markdown(row.info.description),
        )
        yield "| " + " | ".join(cells) + " |"
    yield ""


def reference() -> str:
    """The generated part of the page: the value types, then every model's table."""
    found = sections()
    anchors = {section.model: section.anchor for section in found}
    lines = ["## Value types {#value-types}", "", "| type | rule |", "| --- | --- |"]
    for alias, shown in VALUE_TYPES.items():
        validator = next(func for func, name in VALIDATORS.items() if name == alias)
        rule = (inspect.getdoc(validator) or "").split("\n\n")[0]
        lines.append(f'| <span id="{alias.lower()}">{shown}</span> | {_markdown(rule)} |')
    lines.append("")
    for section in found:
        lines.extend(_table(section, anchors))
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE} lost its marker {MARKER}: the reference has nowhere to go")
    return markdown.replace(MARKER, reference())
