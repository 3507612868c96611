"""Reading a stack: its ``orbitlab:*`` config validated into settings, then planned.

Validation runs in two passes, each listing every problem with its field: the settings
model (:mod:`orbitlab.settings`: types, ranges, formats, unknown keys), then the rules that
relate several fields (:mod:`orbitlab.checks`)::

    >>> plan = load_plan("stacks/Pulumi.example.yaml")
    >>> plan.stack, [sector.name for sector in plan.sectors]
    ('example', ['web', 'lab'])
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orbitlab.checks import cross_check
from orbitlab.errors import SettingsError
from orbitlab.plan import StackPlan, plan_stack
from orbitlab.settings import (
    CONFIG_NAMESPACE,
    PROGRAM_KEYS,
    StackSettings,
    describe_error,
)

#: What every reader of a stack file says of a file that is YAML but not a stack.
NOT_A_STACK = "expected a stack file with a 'config:' mapping"


def parse_settings(raw: dict[str, Any]) -> StackSettings:
    """Validate the ``orbitlab:*`` values (keys without the namespace) into settings.

    Raises :class:`SettingsError` listing every problem, each naming its field.
    """
    try:
        settings = StackSettings.model_validate(raw)
    except ValidationError as error:
        raise SettingsError([describe_error(e) for e in error.errors()]) from None
    problems = cross_check(settings)
    if problems:
        raise SettingsError(problems)
    return settings


def settings_from_config(config: dict[str, Any]) -> StackSettings:
    """Take the ``config:`` mapping of a stack file; ignore other namespaces, reject typos."""
    raw: dict[str, Any] = {}
    problems = []
    known = sorted(StackSettings.model_fields)
    for key, value in config.items():
        namespace, _, name = str(key).partition(":")
        if namespace != CONFIG_NAMESPACE or name in PROGRAM_KEYS:
            continue
        if name not in StackSettings.model_fields:
            hint = difflib.get_close_matches(name, known, n=1)
            suggestion = f"; did you mean '{CONFIG_NAMESPACE}:{hint[0]}'?" if hint else ""
            problems.append(
                f"{key}: unknown key (allowed: "
                f"{', '.join(f'{CONFIG_NAMESPACE}:{k}' for k in known)}){suggestion}"
            )
            continue
        raw[name] = value
    if problems:
        raise SettingsError(problems)
    if "backplane" not in raw:
        raise SettingsError([f"{CONFIG_NAMESPACE}:backplane: required key is missing"])
    return parse_settings(raw)


def stack_name_from_path(path: Path) -> str:
    """``Pulumi.example.yaml`` → ``example``.

    >>> stack_name_from_path(Path("stacks/Pulumi.home.yaml"))
    'home'
    """
    name = path.name
    if name.startswith("Pulumi.") and name.endswith((".yaml", ".yml")):
        return name.removeprefix("Pulumi.").rsplit(".", 1)[0]
    return path.stem


def read_stack_yaml(path: str | Path) -> tuple[Any, str]:
    """A stack file's YAML, parsed but not checked, and its text.

    A file that cannot be read, or is not YAML, is a :class:`SettingsError` that names ``path``
    as given. :func:`load_stack_file` reads with it, and so does ``orbitlab discover``, which
    must read a stack that is not valid yet.
    """
    try:
        text = Path(path).read_text()
        document = yaml.safe_load(text)
    except OSError as error:
        raise SettingsError([f"{path}: cannot read the stack file: {error.strerror}"]) from None
    except yaml.YAMLError as error:
        raise SettingsError([f"{path}: not valid YAML: {error}"]) from None
    return document, text


def load_stack_file(path: str | Path) -> tuple[str, StackSettings]:
    """Read ``Pulumi.<stack>.yaml`` and return ``(stack name, settings)``."""
    path = Path(path)
    document, _ = read_stack_yaml(path)
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise SettingsError([f"{path}: {NOT_A_STACK}"])
    return stack_name_from_path(path), settings_from_config(document["config"])


def load_plan(stack_file: str | Path) -> StackPlan:
    """Validate a stack file and plan it as if on an empty cluster (no tags in use)."""
    stack, settings = load_stack_file(stack_file)
    return plan_stack(stack, settings)
