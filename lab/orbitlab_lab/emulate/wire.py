"""Provider-protocol values as plain Python, with secrets and unknowns kept visible.

The engine sends inputs as protobuf structs: numbers as floats, secrets wrapped, values not
known yet (in a preview) as a sentinel string. The stand-ins work on plain values: a secret
is a :class:`Secret` around its value, an unknown is :data:`UNKNOWN`.

>>> from pulumi.provider.experimental.property_value import PropertyValue
>>> wire = PropertyValue({"host": PropertyValue("192.0.2.11"),
...                       "privateKey": PropertyValue("k").with_secret(True)})
>>> plain = to_plain(wire)
>>> plain
{'host': '192.0.2.11', 'privateKey': Secret(...)}
>>> reveal(plain)["privateKey"], secret_strings(plain)
('k', {'k'})
>>> to_plain(from_plain(plain)) == plain
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulumi.provider.experimental.property_value import PropertyValue

#: How the engine marks a value that is not known yet (``pulumi preview``).
UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class _Unknown:
    """A value the engine does not know yet."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Secret:
    """A secret value: it is revealed only where it is used, never stored or logged."""

    value: Any

    def __repr__(self) -> str:
        return "Secret(...)"


def to_plain(value: PropertyValue) -> Any:
    """A wire value as plain Python (dicts, lists, str, float, bool, None)."""
    inner = value.value
    if isinstance(inner, str):
        plain: Any = UNKNOWN if inner == UNKNOWN_SENTINEL else inner
    elif isinstance(inner, Mapping):
        plain = {key: to_plain(item) for key, item in inner.items()}
    elif isinstance(inner, tuple | list):
        plain = [to_plain(item) for item in inner]
    elif inner is None or isinstance(inner, bool | float):
        plain = inner
    else:  # computed, assets, resource references: nothing the stand-ins take
        plain = UNKNOWN
    return Secret(plain) if value.is_secret else plain


def to_plain_map(values: Mapping[str, PropertyValue]) -> dict[str, Any]:
    return {key: to_plain(item) for key, item in values.items()}


def from_plain(value: Any) -> PropertyValue:
    """Plain Python back to a wire value (ints become floats, as on the wire)."""
    if isinstance(value, Secret):
        return from_plain(value.value).with_secret(True)
    if value is UNKNOWN:
        return PropertyValue(UNKNOWN_SENTINEL)
    if isinstance(value, Mapping):
        return PropertyValue({str(key): from_plain(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return PropertyValue([from_plain(item) for item in value])
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return PropertyValue(value)
    if isinstance(value, int | float):
        return PropertyValue(float(value))
    raise TypeError(f"cannot send {type(value).__name__} to the engine")


def from_plain_map(values: Mapping[str, Any]) -> dict[str, PropertyValue]:
    return {key: from_plain(item) for key, item in values.items()}


def reveal(value: Any) -> Any:
    """The value with every secret unwrapped (to use it, never to store it)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


def secret_strings(value: Any, inside: bool = False) -> set[str]:
    """Every string held in a secret (what a log must never show)."""
    if isinstance(value, Secret):
        return secret_strings(value.value, True)
    if isinstance(value, dict):
        return {s for item in value.values() for s in secret_strings(item, inside)}
    if isinstance(value, list):
        return {s for item in value for s in secret_strings(item, inside)}
    return {value} if inside and isinstance(value, str) and value else set()


def has_unknown(value: Any) -> bool:
    """Whether any part of the value is not known yet."""
    if value is UNKNOWN:
        return True
    if isinstance(value, Secret):
        return has_unknown(value.value)
    if isinstance(value, dict):
        return any(has_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(has_unknown(item) for item in value)
    return False


def redact(value: Any) -> Any:
    """The value with every secret replaced by ``"[secret]"`` (what may be stored or logged).

    >>> redact({"connection": Secret({"host": "h"}), "create": "pct exec 1 -- /bin/sh -s"})
    {'connection': '[secret]', 'create': 'pct exec 1 -- /bin/sh -s'}
    """
    if isinstance(value, Secret):
        return "[secret]"
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
