"""How each source words a refusal: the checks a rule table is written with.

Three vocabularies, each with the message formats of the library that produces them
(their texts checked against the libraries' sources; no code taken from them):

- ``fw_*``: terraform-plugin-framework-validators v0.19.0 and the framework's own types
  (bpg's SDN resources and ``download.File``). pulumi-terraform-bridge v3.135.0 reports a
  failure as ``<summary>. <detail>`` (``pkg/pf/tfbridge/detect_check_failures.go``);
- ``sdk_*``: terraform-plugin-sdk v2.40.1 ``helper/validation`` (bpg's ``ContainerLegacy``):
  the error text is the summary, with no detail (``pkg/tfbridge/adapt_check_failures.go``);
- ``pve_*``: Proxmox's JSON schema (pve-common ``src/PVE/JSONSchema.pm``, ``check_prop``):
  ``<param>: <text>``, a refusal at apply time.

Regular expressions follow their engine: Go's RE2 (``$`` is the end of the text, ``\\s`` is
``[\\t\\n\\f\\r ]``, ``\\d`` ASCII; ``MatchString`` searches) for the provider, Perl's for
Proxmox (the schema anchors a pattern as ``^(?:...)$``, and ``$`` also matches before a
final newline). Lengths are in bytes for Go, in characters for Perl.

>>> check = fw_regex("alias", r"\\A[()._a-zA-Z0-9\\t\\n\\f\\r -]+\\Z", "alias must be plain")
>>> check("a/b", {}, "alias")
['Invalid Attribute Value Match. Attribute alias alias must be plain, got: a/b']
>>> sdk_int_between("cores", 1, 128)(0, {}, "cpu.cores")
['expected cores to be in the range (1 - 128), got 0']
>>> pve_pattern("net0.bridge", "[-_.\\\\w\\\\d]+")("a b", {}, "x")
['net0.bridge: value does not match the regex pattern']
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from orbitlab_lab.emulate.rules.core import Check

# --- Go's and Perl's ways of reading text -------------------------------------------------


def go_quote(text: str) -> str:
    """A string as Go's ``%q`` prints it (``strconv.Quote``).

    >>> go_quote('a"b\\t')
    '"a\\\\"b\\\\t"'
    """
    escapes = {
        '"': '\\"',
        "\\": "\\\\",
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
    }
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def go_parse_ip(text: str) -> bool:
    """Whether Go's ``net.ParseIP`` takes ``text``: IPv4 without leading zeros, IPv6 without
    a zone.

    >>> [go_parse_ip(t) for t in ("10.0.0.1", "10.0.0.010", "fe80::1", "fe80::1%eth0", "x")]
    [True, False, True, False, False]
    """
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def go_parse_cidr(text: str) -> bool:
    """Whether Go's ``net.ParseCIDR`` takes ``text`` (host bits may be set; the prefix may
    have leading zeros).

    >>> [go_parse_cidr(t) for t in ("10.0.0.5/24", "10.0.0.0/024", "10.0.0.0/33", "10.0.0.0")]
    [True, True, False, False]
    """
    address, slash, prefix = text.partition("/")
    if not slash or not prefix.isdigit() or not go_parse_ip(address):
        return False
    limit = 32 if ":" not in address else 128
    return int(prefix) <= limit


def _perl(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"^(?:{pattern})$")


def _named(param: str, path: str) -> str:
    """A parameter's name for a value at ``path``: ``net{n}`` takes the first list index
    (``networkInterfaces[1].bridge`` is ``net1``'s)."""
    index = re.search(r"\[(\d+)\]", path)
    return param.replace("{n}", index.group(1) if index else "0")


# --- terraform-plugin-framework(-validators), as the bridge reports them -----------------


def _failure(summary: str, detail: str) -> str:
    return f"{summary}. {detail}" if detail else summary


def fw_regex(attribute: str, pattern: str, description: str) -> Check:
    """``stringvalidator.RegexMatches`` with a message (``pattern`` written for Python with
    Go's meaning: ``\\A``/``\\Z`` for Go's ``^``/``$``, Go's ``\\s`` spelled out)."""
    compiled = re.compile(pattern, re.ASCII)

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if compiled.search(str(value)):
            return []
        detail = f"Attribute {attribute} {description}, got: {value}"
        return [_failure("Invalid Attribute Value Match", detail)]

    return check


def fw_length_at_most(attribute: str, limit: int) -> Check:
    """``stringvalidator.LengthAtMost`` (bytes)."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        size = len(str(value).encode())
        if size <= limit:
            return []
        detail = f"Attribute {attribute} string length must be at most {limit}, got: {size}"
        return [_failure("Invalid Attribute Value Length", detail)]

    return check


def fw_one_of(attribute: str, allowed: Sequence[str]) -> Check:
    """``stringvalidator.OneOf``."""
    listed = " ".join(go_quote(item) for item in allowed)

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if value in allowed:
            return []
        detail = f"Attribute {attribute} value must be one of: [{listed}], got: {go_quote(value)}"
        return [_failure("Invalid Attribute Value Match", detail)]

    return check


def fw_also_requires(attribute: str, other: str, other_input: str) -> Check:
    """``stringvalidator.AlsoRequires``: ``other`` (its TF name; ``other_input`` its input
    name) must be set when this attribute is. An unknown ``other`` passes."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if inputs.get(other_input) is not None:
            return []
        detail = f'Attribute "{other}" must be specified when "{attribute}" is specified'
        return [_failure("Invalid Attribute Combination", detail)]

    return check


def fw_ip(tf_path: str) -> Check:
    """bpg's ``IPAddrType``: what Go's ``net.ParseIP`` takes (``fwprovider/types/ip_addr.go``)."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if go_parse_ip(str(value)):
            return []
        detail = (
            "An unexpected error occurred while converting a string value that was expected "
            f"to be IPv4/IPv6.\n\nPath: {tf_path}\nGiven Value: {value}"
        )
        return [_failure("Invalid IP String Value", detail)]

    return check


def fw_cidr(tf_path: str) -> Check:
    """bpg's ``IPCIDRType``: what Go's ``net.ParseCIDR`` takes (``fwprovider/types/ip_cidr.go``)."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if go_parse_cidr(str(value)):
            return []
        detail = (
            "An unexpected error occurred while converting a string value that was expected "
            f"to be IP/CIDR.\n\nPath: {tf_path}\nGiven Value: {value}\n"
            f"Error: invalid CIDR address: {value}"
        )
        return [_failure("Invalid IP/CIDR String Value", detail)]

    return check


GO_SPACE = "\t\n\f\r "


def fw_string_set(attribute: str, elements: bool = True) -> Check:
    """A framework set of strings (bpg's ``stringset``): no element twice (the set type's own
    check, after which nothing else runs) and, with ``elements``, each element non-empty and
    not only whitespace (``fwprovider/types/stringset/attribute.go``). The bridge reports
    them at the set, not at the element."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        items = [str(item) for item in value]
        for index, item in enumerate(items):
            if item in items[:index]:
                detail = (
                    f"This attribute contains duplicate values of: tftypes.String<{go_quote(item)}>"
                )
                return [_failure("Duplicate Set Element", detail)]
        if not elements:
            return []
        problems = []
        for item in items:
            where = f"{attribute}[Value({go_quote(item)})]"
            if not item.strip(GO_SPACE):
                detail = (
                    f"Attribute {where} must be a non-empty and non-whitespace string, got: {item}"
                )
                problems.append(_failure("Invalid Attribute Value Match", detail))
            if not item:
                detail = f"Attribute {where} string length must be at least 1, got: 0"
                problems.append(_failure("Invalid Attribute Value Length", detail))
        return problems

    return check


def fw_within_subnet(cidr_input: str, ip_inputs: Iterable[str]) -> Check:
    """bpg's subnet ``ValidateConfig``: an address (the gateway) inside the subnet's CIDR —
    checked only when the CIDR and every address field parse
    (``fwprovider/cluster/sdn/subnet/resource.go``)."""
    fields = tuple(ip_inputs)

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        cidr = inputs.get(cidr_input)
        if not isinstance(cidr, str) or not go_parse_cidr(cidr):
            return []
        given = [inputs.get(name) for name in fields]
        if not all(go_parse_ip(address) for address in given if isinstance(address, str)):
            return []
        if ipaddress.ip_address(str(value)) in ipaddress.ip_network(cidr, strict=False):
            return []
        return [_failure("Invalid IP for Subnet", f"{value} must be within the subnet {cidr}")]

    return check


def fw_at_least_one_of(*attributes: str) -> Check:
    """``resourcevalidator.AtLeastOneOf`` on the whole inputs (its TF names are the input
    names here). Its diagnostic has no attribute path: the bridge fails ``Check`` with it
    alone (``pkg/pf/tfbridge/provider_diagnostics.go``)."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if any(inputs.get(name) is not None for name in attributes):
            return []
        listed = ",".join(attributes)
        return [
            f"Missing Attribute Configuration: At least one of these attributes must be "
            f"configured: [{listed}]"
        ]

    return check


# --- terraform-plugin-sdk v2 helper/validation --------------------------------------------


def sdk_int_between(key: str, low: int, high: int) -> Check:
    """``validation.IntBetween``."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        number = int(value)
        if low <= number <= high:
            return []
        return [f"expected {key} to be in the range ({low} - {high}), got {number}"]

    return check


def sdk_int_at_least(key: str, low: int) -> Check:
    """``validation.IntAtLeast``."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        return (
            []
            if int(value) >= low
            else [f"expected {key} to be at least ({low}), got {int(value)}"]
        )

    return check


def sdk_string_in_slice(key: str, allowed: Sequence[str]) -> Check:
    """``validation.StringInSlice`` (case-sensitive)."""
    listed = " ".join(go_quote(item) for item in allowed)

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        return [] if value in allowed else [f"expected {key} to be one of [{listed}], got {value}"]

    return check


def sdk_regex(pattern: str, message: Callable[[Any], str]) -> Check:
    """A string matching ``pattern`` (Go's meaning, as for :func:`fw_regex`), else ``message``."""
    compiled = re.compile(pattern, re.ASCII)

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        text = str(value)
        return [] if not text or compiled.search(text) else [message(value)]

    return check


def sdk_hostname(key: str, pattern: str) -> Check:
    """bpg's hostname validator: ``Any(StringIsEmpty, StringMatch(pattern, "must be a valid
    DNS name"))`` — failing both, both messages, in that order."""
    compiled = re.compile(pattern, re.ASCII)

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        text = str(value)
        if not text or compiled.search(text):
            return []
        return [
            f"expected {go_quote(key)} to be an empty string: got {text}",
            f"invalid value for {key} (must be a valid DNS name)",
        ]

    return check


def _last_index(path: str) -> str:
    return path.rsplit("[", 1)[-1].rstrip("]")


def sdk_item_not_empty(key: str) -> Check:
    """``validation.StringIsNotEmpty`` on a list item; ``key`` has ``{i}`` for its index."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if str(value):
            return []
        name = key.format(i=_last_index(path))
        return [f"expected {go_quote(name)} to not be an empty string, got "]

    return check


def sdk_item_ip(key: str) -> Check:
    """``validation.IsIPAddress`` on a list item; ``key`` has ``{i}`` for its index."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if go_parse_ip(str(value)):
            return []
        return [f"expected {key.format(i=_last_index(path))} to contain a valid IP, got: {value}"]

    return check


def sdk_items(key: str, low: int | None = None, high: int | None = None) -> Check:
    """A list block's ``MinItems`` / ``MaxItems`` (``helper/schema/schema.go``)."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        count = len(value)
        if high is not None and count > high:
            return [
                f"Too many list items. Attribute {key} supports {high} item maximum, but "
                f"config has {count} declared."
            ]
        if low is not None and count < low:
            return [
                f"Not enough list items. Attribute {key} requires {low} item minimum, but "
                f"config has only {count} declared."
            ]
        return []

    return check


# --- Proxmox's JSON schema ----------------------------------------------------------------


def pve_pattern(param: str, pattern: str) -> Check:
    """A schema ``pattern`` (Perl, anchored ``^(?:...)$``)."""
    compiled = _perl(pattern)

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        return (
            []
            if compiled.search(str(value))
            else [f"{_named(param, path)}: value does not match the regex pattern"]
        )

    return check


def pve_max_length(param: str, limit: int) -> Check:
    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        return (
            []
            if len(str(value)) <= limit
            else [f"{_named(param, path)}: value may only be {limit} characters long"]
        )

    return check


def pve_range(param: str, low: int | None = None, high: int | None = None) -> Check:
    """A schema ``minimum`` / ``maximum``."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        number = float(value)
        if high is not None and number > high:
            return [f"{_named(param, path)}: value must have a maximum value of {high}"]
        if low is not None and number < low:
            return [f"{_named(param, path)}: value must have a minimum value of {low}"]
        return []

    return check


def pve_enum(param: str, allowed: Sequence[str]) -> Check:
    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if value in allowed:
            return []
        listed = ", ".join(allowed)
        return [
            f"{_named(param, path)}: value '{value}' does not have a value in the enumeration "
            f"'{listed}'"
        ]

    return check


def pve_no_line_feed(param: str) -> Check:
    """SectionConfig's ``check_value``: ``property contains a line feed``."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        return (
            [f"{_named(param, path)}: property contains a line feed"] if "\n" in str(value) else []
        )

    return check


#: Proxmox's formats (pve-common ``src/PVE/JSONSchema.pm``): the test and the text after
#: ``invalid format - ``.
_IPV4_OCTET = r"(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])"
IPV4 = rf"{_IPV4_OCTET}(?:\.{_IPV4_OCTET}){{3}}"
DNS_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"


def _is_ip(text: str) -> bool:
    if _perl(IPV4).search(text):
        return True
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _is_cidr_v4(text: str, lowest: int = 8) -> bool:
    address, slash, prefix = text.partition("/")
    return bool(slash and _perl(IPV4).search(address) and prefix.isdigit()) and (
        lowest <= int(prefix) <= 32
    )


FORMATS: dict[str, tuple[Callable[[str], bool], str]] = {
    "ip": (_is_ip, "value does not look like a valid IP address"),
    "ipv4": (
        lambda text: bool(_perl(IPV4).search(text)),
        "value does not look like a valid IPv4 address",
    ),
    "CIDR": (_is_cidr_v4, "value does not look like a valid CIDR network"),
    "pve-ipv4-config": (
        lambda text: text in ("dhcp", "manual") or _is_cidr_v4(text),
        "value does not look like a valid ipv4 network configuration",
    ),
    "dns-name": (
        lambda text: bool(_perl(rf"(?:{DNS_LABEL}\.)*{DNS_LABEL}").search(text)),
        "value does not look like a valid DNS name",
    ),
    "pve-node": (
        lambda text: bool(_perl(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?").search(text)),
        "value does not look like a valid node name",
    ),
    "mac-addr": (
        lambda text: bool(re.search(r"^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$", text, re.I)),
        "value does not look like a valid unicast MAC address",
    ),
    "pve-vmid": (
        lambda text: bool(_perl(r"[1-9][0-9]{2,8}").search(text)),
        "value does not look like a valid VM ID",
    ),
    "pve-tag": (
        lambda text: bool(re.search(r"^[a-z0-9_][a-z0-9_\-+.]*$", text, re.I)),
        "invalid characters in tag",
    ),
}


def pve_format(param: str, name: str, listed: bool = False) -> Check:
    """A schema ``format`` (with ``listed``, its ``-list`` form: each item of a list, or of
    a string split on commas, semicolons and whitespace)."""
    test, text = FORMATS[name]

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        if listed:
            items = value if isinstance(value, list) else re.split(r"[,;\s]+", str(value).strip())
        else:
            items = [value]
        if all(test(str(item)) for item in items if str(item)):
            return []
        return [f"{_named(param, path)}: invalid format - {text}"]

    return check


def pve_in_property_string(param: str, key: str, inner: Check) -> Check:
    """A check of one key of a property string (``net0``'s ``bridge``), worded as
    ``parse_property_string`` nests it: ``net0: invalid format - format error`` and the
    key's own line."""

    def check(value: Any, inputs: Mapping[str, Any], path: str) -> list[str]:
        found = inner(value, inputs, path)
        return [
            f"{_named(param, path)}: invalid format - format error\n{message}" for message in found
        ]

    return check
