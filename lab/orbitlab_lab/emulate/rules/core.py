"""A rule of the real provider or of Proxmox: where it applies, what it refuses, its source.

A :class:`Rule` names a resource (or invoke) token, an input path and a check. Paths use
the provider's (camelCase) input names, ``.`` between levels and ``[]`` for every item of
a list: ``networkInterfaces[].macAddress``, ``initialization.dns.servers[]``. A check gets
the value found there (never ``None`` and never unknown: a preview's unknowns are not
validated, as in the real provider), the resource's whole inputs and the value's concrete
path, and returns the messages of what it refuses — the real provider's or Proxmox's own
text.

>>> rule = Rule("t", "nics[].mtu", lambda value, inputs, path: [] if value <= 9000 else
...             [f"{path} too big"], source="example", family="range")
>>> [(v.path, v.message) for v in rule.violations({"nics": [{"mtu": 1500}, {"mtu": 9001}]})]
[('nics[1].mtu', 'nics[1].mtu too big')]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orbitlab_lab.emulate.wire import UNKNOWN, Secret

#: ``check(value, inputs, path) -> messages``: empty when the value is allowed (``path`` is
#: the value's concrete path, for messages that name an item by its index).
Check = Callable[[Any, Mapping[str, Any], str], Sequence[str]]


@dataclass(frozen=True)
class Violation:
    """One refused value: the rule, the concrete path (``networkInterfaces[0].macAddress``)
    and the message."""

    rule: Rule
    path: str
    message: str


@dataclass(frozen=True)
class Rule:
    """One entry of a rule table."""

    #: The resource or invoke token (``proxmoxve:sdn/vnet:Vnet``).
    token: str
    #: Where it applies (see the module docstring); ``""`` is the inputs as a whole.
    path: str
    check: Check
    #: The file the rule is taken from, with its repository and version.
    source: str
    #: What kind of rule it is (``sdn id``, ``pattern``, ``range``, ...): tests break one
    #: of each kind on purpose.
    family: str

    def violations(self, inputs: Mapping[str, Any]) -> list[Violation]:
        return [
            Violation(self, path, message)
            for path, value in values_at(inputs, self.path)
            for message in self.check(value, inputs, path)
        ]


def values_at(value: Any, path: str, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every known, present value at ``path``, with its concrete path.

    >>> list(values_at({"a": [{"b": 1}, {"b": None}, {"c": 2}]}, "a[].b"))
    [('a[0].b', 1)]
    >>> list(values_at({"a": Secret({"b": "x"})}, "a.b"))
    [('a.b', 'x')]
    """
    if isinstance(value, Secret):
        value = value.value
    if value is None or value is UNKNOWN:
        return
    if not path:
        # the wire has floats only: a whole number is an integer, as the provider reads it
        yield where, int(value) if isinstance(value, float) and value.is_integer() else value
        return
    head, _, rest = path.partition(".")
    name, items = (head[:-2], True) if head.endswith("[]") else (head, False)
    if name:
        if not isinstance(value, Mapping):
            return
        value = value.get(name)
        where = f"{where}.{name}" if where else name
        if isinstance(value, Secret):
            value = value.value
    if not items:
        yield from values_at(value, rest, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from values_at(item, rest, f"{where}[{index}]")


def violations(rules: Sequence[Rule], token: str, inputs: Mapping[str, Any]) -> list[Violation]:
    """What every rule of ``token`` in ``rules`` refuses in ``inputs``."""
    return [found for rule in rules if rule.token == token for found in rule.violations(inputs)]


def tokens(rules: Sequence[Rule]) -> frozenset[str]:
    return frozenset(rule.token for rule in rules)
