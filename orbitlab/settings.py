"""The settings model: what a stack declares, validated before anything is declared.

The same keys are read from a stack file (``Pulumi.<stack>.yaml``, under ``config:``) and
from Pulumi config at run time::

    config:
      orbitlab:backplane:
        nodes:
          - {name: pve1, address: 192.0.2.11}
      orbitlab:sectors:
        - name: web
          subnets: [172.16.0.0/24]

Field-level rules (types, ranges, formats, unknown keys) live on the pydantic models;
rules that relate several fields (overlaps, membership, collisions) live in
:mod:`orbitlab.checks`, so that every message can name its exact field;
:mod:`orbitlab.stack` reads a stack (config mapping or stack file) through both.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from netaddr import AddrFormatError, IPAddress, IPNetwork
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from orbitlab.allocation import MAC_PREFIX
from orbitlab.roles import ROLE_NAMES

CONFIG_NAMESPACE = "orbitlab"
MIN_MTU = 1280
VXLAN_OVERHEAD = 50
DEFAULT_TEMPLATE_URL = (
    "https://download.proxmox.com/images/system/alpine-3.22-default_20250617_amd64.tar.xz"
)
#: A declared host may not take an appliance's name: the Sector DNS answers for each role.
RESERVED_HOST_NAMES = frozenset(ROLE_NAMES)
#: Bounds of a DHCP lease (dnsmasq's own minimum is 2 minutes) and its default.
MIN_LEASE_S = 120
MAX_LEASE_S = 7 * 24 * 3600
DEFAULT_LEASE_S = 3600
LEASE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
#: ``orbitlab:*`` keys that configure the program rather than the network (not settings).
PROGRAM_KEYS = frozenset({"sshPrivateKey"})
# Patterns are matched with fullmatch: a value with a trailing newline never passes.
STACK_REFERENCE = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}")
DNS_LABEL = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
HOST_KEY = re.compile(r"(ssh-|ecdsa-)[a-z0-9-]+ [A-Za-z0-9+/=]+")
#: Plain URL path characters (and a plain query), nothing a config file could choke on.
HTTP_PATH = re.compile(r"/[A-Za-z0-9._~/%-]*(\?[A-Za-z0-9._~%=&-]*)?")
TEMPLATE_URL = re.compile(r"https?://[A-Za-z0-9._~:/%+-]+\.tar\.(xz|gz|zst)")
TEMPLATE_VOLUME = re.compile(r"[a-zA-Z][\w.-]*:vztmpl/[A-Za-z0-9._+-]+")
TEMPLATE_CHECKSUM = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
#: A login name as Debian's adduser takes it by default (NAME_REGEX), at most 32 long.
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
MIRROR_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>[0-9.]+)(:(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._~/%-]*)?"
)
#: Top-level domains that are special-use (RFC 6761, 6762): never a Sector domain — but
#: ``home.arpa`` is the one RFC 8375 sets aside for home networks.
SPECIAL_USE_TLDS = frozenset({"arpa", "local", "localhost", "invalid", "test"})
HOME_NETWORK_DOMAIN = "home.arpa"
#: The zone file of a domain is ``db.<domain>``: a file name of at most 255 bytes.
ZONE_FILE_NAME_MAX = 255


#: RFC 6890 special-purpose IPv4 ranges: never a Backplane, a Sector subnet, a node, a
#: resolver or an egress target. Most specific first, so a message names the narrowest.
SPECIAL_PURPOSE: tuple[tuple[IPNetwork, str], ...] = (
    (IPNetwork("255.255.255.255/32"), "limited broadcast"),
    (IPNetwork("169.254.0.0/16"), "link-local"),
    (IPNetwork("0.0.0.0/8"), "'this network'"),
    (IPNetwork("127.0.0.0/8"), "loopback"),
    (IPNetwork("224.0.0.0/4"), "multicast"),
    (IPNetwork("240.0.0.0/4"), "reserved"),
)


def special_purpose(network: IPNetwork | IPAddress) -> tuple[IPNetwork, str] | None:
    """The special-purpose range (and its name) that ``network`` lies in or overlaps.

    >>> special_purpose(IPAddress("127.0.0.53"))
    (IPNetwork('127.0.0.0/8'), 'loopback')
    >>> special_purpose(IPNetwork("10.0.0.0/8")) is None
    True
    """
    candidate = IPNetwork(f"{network}/32") if isinstance(network, IPAddress) else network
    for special, name in SPECIAL_PURPOSE:
        if candidate in special or special in candidate:
            return special, name
    return None


def _special_message(value: Any, special: tuple[IPNetwork, str], what: str) -> str:
    network, name = special
    return f"{value!r} {what} {network} ({name}, an RFC 6890 special-purpose range)"


def _read_cidr(value: Any) -> IPNetwork:
    if isinstance(value, IPNetwork):
        return value
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"{value!r} is not a CIDR; expected an IPv4 network like 10.200.0.0/16")
    try:
        network = IPNetwork(value, version=4)
    except (AddrFormatError, ValueError, TypeError):
        raise ValueError(
            f"{value!r} is not a valid IPv4 CIDR; expected e.g. 10.200.0.0/16"
        ) from None
    if network.ip != network.network:
        raise ValueError(f"{value!r} has host bits set; use {network.cidr} (the network address)")
    return network


def _parse_cidr(value: Any) -> IPNetwork:
    """An IPv4 network written as its network address (``10.200.0.0/16``; host bits are
    refused), overlapping no RFC 6890 special-purpose range."""
    network = _read_cidr(value)
    special = special_purpose(network)
    if special is not None:
        raise ValueError(
            _special_message(value, special, "overlaps")
            + "; expected a private unicast network, e.g. 10.200.0.0/16 or 172.16.0.0/24"
        )
    return network


def _parse_destination(value: Any) -> IPNetwork:
    """An egress target: an IPv4 network as its network address, never inside an RFC 6890
    special-purpose range (a wider network that holds one is fine)."""
    network = _read_cidr(value)
    special = special_purpose(network)
    if special is not None and network in special[0]:
        raise ValueError(
            _special_message(value, special, "lies in")
            + ", which is never routed out of a Sector; expected e.g. 192.168.0.0/16"
        )
    return network


def _read_address(value: Any) -> IPAddress:
    if isinstance(value, IPAddress):
        return value
    if not isinstance(value, str) or "/" in value:
        raise ValueError(f"{value!r} is not an IPv4 address; expected e.g. 192.0.2.10")
    try:
        return IPAddress(value, version=4)
    except (AddrFormatError, ValueError, TypeError):
        raise ValueError(
            f"{value!r} is not a valid IPv4 address; expected e.g. 192.0.2.10"
        ) from None


def _parse_address(value: Any) -> IPAddress:
    """A node, host or resolver address: IPv4 unicast, outside every RFC 6890 special-purpose
    range."""
    address = _read_address(value)
    special = special_purpose(address)
    if special is not None:
        raise ValueError(
            _special_message(value, special, "lies in")
            + ", never a usable address here; expected a unicast address, e.g. 192.0.2.10"
        )
    return address


def _parse_label(value: Any) -> str:
    """A name: a DNS label (lowercase letters, digits and ``-``, starting with a letter, not
    ending with ``-``, at most 63 characters)."""
    if not isinstance(value, str) or not DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name; use a DNS label: lowercase letters, digits and "
            "'-', starting with a letter, not ending with '-', at most 63 characters"
        )
    return value


def _parse_domain(value: Any) -> str:
    """A DNS domain: two or more labels, at most 253 characters, not ending in a special-use
    domain (``arpa``, ``local``, ``localhost``, ``invalid``, ``test``) but for ``home.arpa``."""
    if not isinstance(value, str) or len(value) > 253 or not DOMAIN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid DNS domain; use two or more dot-separated lowercase "
            "labels, e.g. web.internal"
        )
    top = value.rsplit(".", 1)[1]
    home = value == HOME_NETWORK_DOMAIN or value.endswith("." + HOME_NETWORK_DOMAIN)
    if top in SPECIAL_USE_TLDS and not home:
        raise ValueError(
            f"{value!r} ends in the special-use domain {top!r} (not allowed: "
            f"{', '.join(sorted(SPECIAL_USE_TLDS))}, except under {HOME_NETWORK_DOMAIN}); "
            f"use e.g. {value.rsplit('.', 1)[0]}.internal"
        )
    if len(f"db.{value}") > ZONE_FILE_NAME_MAX:
        raise ValueError(
            f"{value!r} is {len(value)} characters: too long for its zone file name "
            f"db.<domain> ({ZONE_FILE_NAME_MAX} at most); use at most "
            f"{ZONE_FILE_NAME_MAX - 3} characters"
        )
    return value


def mirror_endpoint(url: str) -> tuple[IPAddress, int]:
    """The address and TCP port of a package mirror URL with an IPv4 host.

    >>> mirror_endpoint("http://192.0.2.80/alpine")
    (IPAddress('192.0.2.80'), 80)
    >>> mirror_endpoint("https://192.0.2.80:8443/alpine")[1]
    8443
    """
    found = MIRROR_URL.fullmatch(url) if isinstance(url, str) else None
    if found is None:
        raise ValueError(
            f"{url!r} is not a package mirror URL with an IPv4 host; expected e.g. "
            "http://192.0.2.80/alpine (it replaces https://dl-cdn.alpinelinux.org/alpine)"
        )
    address = _parse_address(found["host"])
    default = 443 if found["scheme"] == "https" else 80
    port = int(found["port"]) if found["port"] else default
    if not 1 <= port <= 65535:
        raise ValueError(f"{url!r}: port {port} is outside 1-65535")
    return address, port


def _parse_mac(value: Any) -> str:
    """A host NIC's MAC: six colon-separated octets, unicast, not all zero, not OrbitLab's.

    >>> _parse_mac("BC:24:11:5A:00:01")
    'bc:24:11:5a:00:01'
    """
    text = value.lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not MAC.fullmatch(text):
        raise ValueError(
            f"{value!r} is not a MAC address; expected six colon-separated hex octets, "
            "e.g. bc:24:11:5a:00:01"
        )
    if int(text[:2], 16) & 1:
        raise ValueError(
            f"{value!r} is a multicast MAC (the lowest bit of its first octet is set); a NIC "
            "needs a unicast MAC, e.g. bc:24:11:5a:00:01"
        )
    if text == "00:00:00:00:00:00":
        raise ValueError(f"{value!r} is the all-zero MAC, never a NIC's; e.g. bc:24:11:5a:00:01")
    if text.startswith(MAC_PREFIX + ":"):
        raise ValueError(
            f"{value!r} lies in {MAC_PREFIX}:xx:xx:xx, the prefix of OrbitLab's own "
            "appliance NICs; choose another MAC, e.g. bc:24:11:5a:00:01"
        )
    return text


def _parse_lease_time(value: Any) -> int:
    """Seconds, or a number with a unit (``s``, ``m``, ``h``, ``d``), within 2m-7d.

    >>> _parse_lease_time("12h"), _parse_lease_time(600)
    (43200, 600)
    """
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+[smhd]", value):
        seconds = int(value[:-1]) * LEASE_UNITS[value[-1]]
    if seconds is None:
        raise ValueError(
            f"{value!r} is not a lease time; expected seconds or a number with a unit "
            "(s, m, h, d), e.g. 30m, 12h or 7d"
        )
    if not MIN_LEASE_S <= seconds <= MAX_LEASE_S:
        raise ValueError(
            f"{value!r} is out of bounds; a lease lasts from 2m to 7d "
            f"({MIN_LEASE_S}-{MAX_LEASE_S} seconds)"
        )
    return seconds


Cidr = Annotated[IPNetwork, BeforeValidator(_parse_cidr)]
Destination = Annotated[IPNetwork, BeforeValidator(_parse_destination)]
Address = Annotated[IPAddress, BeforeValidator(_parse_address)]
Label = Annotated[str, BeforeValidator(_parse_label)]
Domain = Annotated[str, BeforeValidator(_parse_domain)]
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
Mac = Annotated[str, BeforeValidator(_parse_mac)]
LeaseTime = Annotated[int, BeforeValidator(_parse_lease_time)]


class Model(BaseModel):
    """Base of every settings model: frozen, and unknown keys are errors with a hint."""

    # use_attribute_docstrings: a field's docstring is its description, which the settings
    # reference of the docs shows (docs/hooks/settings_reference.py).
    model_config = ConfigDict(
        frozen=True, arbitrary_types_allowed=True, extra="forbid", use_attribute_docstrings=True
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping of keys, got {type(data).__name__} {data!r}")
        allowed = sorted(cls.model_fields)
        for key in data:
            if key not in cls.model_fields:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                raise ValueError(f"unknown key {key!r} (allowed: {', '.join(allowed)}){suggestion}")
        return data


class NodeSettings(Model):
    """A Proxmox node: its name, its ``vmbr0`` address and MTU, optionally its SSH host key,
    its other IPv4 addresses (storage, corosync, management NICs), which no Sector may
    reach either, and the IPv4 networks of its interfaces (``vmbr0``'s first), whose
    broadcast addresses no Sector may send to (``orbitlab discover`` fills both in)."""

    name: Label
    """The node's name, as Proxmox knows it (`pvesh get /nodes`)."""
    address: Address
    """The node's `vmbr0` IPv4 address: an EVPN peer, and where provisioning connects over SSH."""
    mtu: int = Field(default=1500, ge=MIN_MTU + VXLAN_OVERHEAD, le=65535, strict=True)
    """`vmbr0`'s MTU; the Backplane's MTU defaults to the smallest node MTU minus the VXLAN overhead
    (50)."""
    host_key: str | None = None
    """The node's SSH public host key (e.g. `ssh-ed25519 AAAA...`, from `ssh-keyscan -t ed25519
    <node>`): pins provisioning's SSH to it. Without it no host key is checked (`pulumi preview`
    warns)."""
    other_addresses: list[Address] = Field(default_factory=list)
    """The node's other IPv4 addresses (storage, corosync, management NICs): no Sector ever reaches
    them. `orbitlab discover` fills them in."""
    networks: list[Cidr] = Field(default_factory=list)
    """The IPv4 networks of the node's interfaces, `vmbr0`'s first, each as its network address
    (`192.0.2.0/24`): every Sector Gateway drops a Sector's packets to their broadcast addresses.
    `orbitlab validate` warns of a node without them; `orbitlab discover` fills them in."""

    @field_validator("host_key")
    @classmethod
    def _host_key_shape(cls, value: str | None) -> str | None:
        if value is not None and not HOST_KEY.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an SSH public host key; expected e.g. 'ssh-ed25519 AAAA...'"
            )
        return value


class BackplaneSettings(Model):
    """The cluster-wide Backplane. ``cidr`` is immutable once the Backplane exists.

    ``stack`` names the stack that owns the Backplane (``org/project/stack``) when this
    stack only attaches Sectors to it; ``cidr`` and ``nodes`` must then match that stack's.
    """

    cidr: Cidr = Field(default_factory=lambda: IPNetwork("10.200.0.0/16"))
    """The Backplane's IPv4 network (a /27 or larger; a /17 holds the addresses of every tag).
    Immutable once the Backplane exists."""
    asn: int = Field(default=65001, ge=1, le=4294967294, strict=True)
    """The BGP AS number of the EVPN controller."""
    nodes: list[NodeSettings] = Field(min_length=1)
    """The Proxmox nodes (`orbitlab discover` fills them in); the first is the default primary exit
    node."""
    primary_exit_node: Label | None = None
    """The node whose address Sector traffic leaves by (SNAT), and the home router's route to the
    Backplane goes to; default: the first node."""
    mtu: int | None = Field(default=None, ge=MIN_MTU, le=65535, strict=True)
    """The Backplane's and every Sector's MTU; default: the smallest node MTU minus 50 (VXLAN)."""
    stack: str | None = None
    """The stack that owns the Backplane (`org/project/stack`), when this stack only attaches
    Sectors to it: it then declares no Backplane, and `cidr` and `nodes` must match the owner's."""
    protected_networks: list[Cidr] = Field(default_factory=list)
    """Networks no Sector may ever reach, whatever its egress settings (storage, corosync,
    management LANs), on top of the Backplane and every node address."""

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]

    @field_validator("stack")
    @classmethod
    def _stack_reference(cls, value: str | None) -> str | None:
        if value is not None and not STACK_REFERENCE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a stack name; expected org/project/stack, e.g. me/orbitlab/home"
            )
        return value

    @field_validator("cidr")
    @classmethod
    def _room_for_infrastructure(cls, value: IPNetwork) -> IPNetwork:
        if value.prefixlen > 27:
            raise ValueError(
                f"{value} is too small for a Backplane (gateway and Sector addresses start at "
                "network + 10); use a /27 or larger, e.g. 10.200.0.0/16"
            )
        return value


class HostSettings(Model):
    """A host living in the Sector (a VM or LXC the user attaches), for DNS and backends.

    With an ``address`` it is static (configured by hand), or, with a ``mac`` too, a DHCP
    reservation: the NIC with that MAC always leases that address. Without an address it is
    dynamic: it takes an address from the DHCP pool and its name comes with its lease (with
    a ``mac``, the name is bound to that NIC).
    """

    name: Label
    """The host's DNS name in the Sector (`<name>.<domain>`); also how backends and port forwards
    name it."""
    address: Address | None = None
    """Its fixed address in one of the Sector's subnets (static, or reserved with `mac`); without it
    the host is dynamic and leases one from the pool."""
    mac: Mac | None = None
    """Its NIC's MAC: with an `address`, a DHCP reservation; without, the lease's name is bound to
    that NIC. Unicast, not all zero, not in OrbitLab's appliance prefix `02:4f:4c`, unique in the
    stack."""


class DhcpSettings(Model):
    """The Sector DHCP server (dnsmasq in the Sector DNS appliance).

    On by default, with a pool in the upper part of the first subnet; ``range: [start,
    end]`` puts the pool in any one subnet; ``enabled: false`` turns DHCP off;
    ``known_only: true`` serves only the hosts declared with a ``mac`` (any other client
    gets no answer).
    """

    enabled: bool = Field(default=True, strict=True)
    """Whether the Sector has a DHCP server (dnsmasq in the Sector DNS appliance)."""
    range: list[Address] | None = None
    """The pool, `[start, end]` in any one subnet; default: the longest run of addresses in the
    upper half of the first subnet that holds no declared host (`.128`-`.254` of a /24)."""
    lease_time: LeaseTime | None = None
    """How long a lease lasts: seconds, or a number with `s`, `m`, `h` or `d`, within 2m-7d; default
    1h."""
    known_only: bool = Field(default=False, strict=True)
    """Serve only the hosts declared with a `mac`; any other client gets no answer."""

    @field_validator("range", mode="before")
    @classmethod
    def _start_and_end(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, list) or len(value) != 2):
            raise ValueError(
                f"{value!r} is not a range; expected [start, end], two addresses in one "
                "subnet, e.g. [172.16.0.100, 172.16.0.199]"
            )
        return value

    @model_validator(mode="after")
    def _only_while_enabled(self) -> DhcpSettings:
        given = [key for key in ("range", "lease_time") if getattr(self, key) is not None]
        given += ["known_only"] if self.known_only else []
        if not self.enabled and given:
            them = "it" if len(given) == 1 else "them"
            raise ValueError(
                f"{' and '.join(given)} set, but DHCP is off (enabled: false); remove {them} "
                "or turn DHCP on"
            )
        return self


class DnsSettings(Model):
    """The Sector DNS: its domain and the upstream resolvers it forwards the rest to."""

    domain: Domain | None = None
    """The Sector's domain; default `<sector>.internal`. At least two labels, not ending in a
    special-use domain (but `home.arpa` is fine)."""
    forwarders: list[Address] = Field(default_factory=list)
    """The upstream resolvers the Sector DNS forwards other names to; default:
    `appliances.nameservers`, else the container's resolv.conf. Each must be reachable through the
    Sector Gateway."""


class HealthCheckSettings(Model):
    """How the load balancer checks a backend: TCP connect, or an HTTP request."""

    path: str | None = None
    """An HTTP path to check (`/healthz`); without it the check is a TCP connect."""
    interval_s: int = Field(default=5, ge=1, le=3600, strict=True)
    """Seconds between checks."""

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 200 or not HTTP_PATH.fullmatch(value)):
            raise ValueError(
                f"{value!r} is not a plain HTTP path; expected e.g. /healthz or /status?full=1 "
                "(letters, digits and - . _ ~ / %, then an optional ?query of those and = &; "
                "at most 200 characters)"
            )
        return value


class ListenerSettings(Model):
    """A load-balancer listener: a Backplane port mapped to Sector backends."""

    port: Port
    """The port on the load balancer's Backplane address."""
    backends: list[str] = Field(min_length=1)
    """`host:port` of each backend: a declared host with a fixed address, or an address in the
    Sector."""
    mode: Literal["tcp", "http"] = "tcp"
    """`tcp`, or `http` (adds X-Forwarded-For with the client's address)."""
    proxy_protocol: bool = False
    """Send the PROXY v2 header to the backends, carrying the client's address."""
    health_check: HealthCheckSettings = Field(default_factory=HealthCheckSettings)
    """How each backend is checked."""


class LoadBalancerSettings(Model):
    """The optional Sector Load Balancer (HAProxy) and its listeners."""

    listeners: list[ListenerSettings] = Field(min_length=1)
    """The listeners, each a Backplane port mapped to Sector backends."""


class PortForwardSettings(Model):
    """A Backplane port on the Sector Gateway forwarded (DNAT) to ``host:port`` in the Sector."""

    port: Port
    """The port on the Sector Gateway's Backplane address."""
    to: str
    """`host:port` in the Sector it goes to: a declared host with a fixed address, or an address in
    the Sector."""
    protocol: Literal["tcp", "udp"] = "tcp"
    """`tcp` or `udp`."""


class EgressSettings(Model):
    """What the Sector may reach beyond the Backplane.

    ``default: allow`` (the default) lets everything out but ``deny``; ``default: deny`` lets
    out only ``allow``. The Backplane and the nodes are never reachable, whatever is listed.
    """

    default: Literal["allow", "deny"] = "allow"
    """`allow`: everything goes out but `deny`; `deny`: only `allow` (and the Sector DNS to its
    forwarders and the package mirror)."""
    allow: list[Destination] = Field(default_factory=list)
    """With `default: deny`, the only destinations allowed."""
    deny: list[Destination] = Field(default_factory=list)
    """Destinations always refused, for the appliances too."""


class SectorSettings(Model):
    """An isolated Sector: its subnets, hosts and appliances."""

    name: Label
    """The Sector's name, a DNS label, unique in the stack."""
    subnets: list[Cidr] = Field(min_length=1)
    """Its IPv4 subnets: the first a /29 or larger (the gateway, DNS and LB take `.1`-`.3`), the
    others /30 or larger."""
    tag: int | None = Field(default=None, ge=1001, le=9999, strict=True)
    """Its VXLAN tag (also its VNI and the base of its IDs and VMIDs); default: the lowest free in
    1001-9999, kept for life."""
    node: Label | None = None
    """The node hosting its appliances; default: rendezvous hashing of the name over the nodes."""
    hosts: list[HostSettings] = Field(default_factory=list)
    """Your VMs and LXCs in the Sector: DNS names, DHCP reservations, backend and forward
    targets."""
    dns: DnsSettings = Field(default_factory=DnsSettings)
    """The Sector DNS (CoreDNS)."""
    dhcp: DhcpSettings = Field(default_factory=DhcpSettings)
    """The Sector DHCP (dnsmasq in the Sector DNS appliance)."""
    load_balancer: LoadBalancerSettings | None = None
    """The optional Load Balancer (HAProxy); none without it."""
    port_forwards: list[PortForwardSettings] = Field(default_factory=list)
    """Backplane ports on the gateway forwarded to Sector hosts."""
    egress: EgressSettings = Field(default_factory=EgressSettings)
    """What the Sector may reach beyond the Backplane."""

    @property
    def domain(self) -> str:
        return self.dns.domain or f"{self.name}.internal"


class ApplianceSettings(Model):
    """How appliance containers are built: template, storage, size, resolvers, SSH."""

    os: Literal["alpine"] = "alpine"
    """The appliances' OS."""
    template_url: str = DEFAULT_TEMPLATE_URL
    """The container template's URL (http(s), `.tar.xz`, `.tar.gz` or `.tar.zst`), downloaded once
    per node (or per shared storage) as the stack's own file; a change replaces the appliances."""
    template_checksum: str | None = None
    """The template's published checksum, ``sha256:<hex>`` or ``sha512:<hex>`` (Proxmox lists them
    in ``pveam available`` / its aplinfo index): the download is verified against it."""
    template_file_id: str | None = None
    """A template volume already on the cluster (`local:vztmpl/...`), used instead of downloading
    one."""
    template_storage: str | None = None
    """Where the template is downloaded (content ``vztmpl``); unset: chosen per node from the
    cluster's storages (``local``, else a shared one, else any that holds vztmpl)."""
    storage: str | None = None
    """Where the appliances' root disks live (content ``rootdir``); unset: chosen per node
    (``local-lvm``, else ``local-zfs``, else any that holds rootdir)."""
    disk_gib: int = Field(default=1, ge=1, le=64, strict=True)
    """Each appliance's root disk, in GiB (growing it is an update in place, without a reboot)."""
    memory_mib: int = Field(default=128, ge=64, le=4096, strict=True)
    """Each appliance's memory, in MiB (a change reboots it)."""
    cores: int = Field(default=1, ge=1, le=8, strict=True)
    """Each appliance's CPU cores."""
    nameservers: list[Address] = Field(default_factory=list)
    """The appliances' resolvers, and the Sector DNS's default forwarders; default: the node's."""
    ssh_user: str = "root"
    """Who provisioning logs in as on the nodes: root, or a user allowed to run ``sudo -n pct exec``
    (pct runs only as root)."""
    package_mirror: str | None = None
    """Where the appliances install packages from instead of the distribution's CDN, e.g.
    http://192.0.2.80/alpine (it replaces https://dl-cdn.alpinelinux.org/alpine). An IPv4 address,
    so a deny-by-default Sector's DNS can be let through to it alone."""

    @field_validator("template_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not TEMPLATE_URL.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a container template URL; expected http(s)://...tar.xz|gz|zst"
            )
        return value

    @field_validator("package_mirror")
    @classmethod
    def _mirror_url(cls, value: str | None) -> str | None:
        if value is not None:
            mirror_endpoint(value)
        return value

    @field_validator("ssh_user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not USER_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a login name; expected root or a user name such as "
                "orbitlab (a-z, 0-9, _ and -, starting with a letter or _, at most 32)"
            )
        return value

    @field_validator("template_checksum")
    @classmethod
    def _checksum(cls, value: str | None) -> str | None:
        if value is not None and not TEMPLATE_CHECKSUM.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a template checksum; expected sha256:<64 hex digits> or "
                "sha512:<128 hex digits> (as `pveam available` lists them)"
            )
        return value

    @field_validator("template_file_id")
    @classmethod
    def _volume_id(cls, value: str | None) -> str | None:
        if value is not None and not TEMPLATE_VOLUME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a template volume ID; expected e.g. "
                "local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz"
            )
        return value


class StackSettings(Model):
    """Everything under ``orbitlab:*`` in one stack."""

    backplane: BackplaneSettings
    """The cluster-wide Backplane (`orbitlab:backplane`)."""
    sectors: list[SectorSettings] = Field(default_factory=list)
    """The Sectors (`orbitlab:sectors`)."""
    appliances: ApplianceSettings = Field(default_factory=ApplianceSettings)
    """How the appliance containers are built (`orbitlab:appliances`)."""


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the stack-file path, e.g. ``orbitlab:sectors[0].name``."""
    path = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif index == 0:
            path = f"{CONFIG_NAMESPACE}:{part}"
        else:
            path += f".{part}"
    return path or CONFIG_NAMESPACE


def describe_error(error: dict[str, Any]) -> str:
    """One pydantic error as a message naming the field, the value and what is wrong."""
    loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{field_path(loc)}: required key is missing"
    if error["type"] == "value_error":
        return f"{field_path(loc)}: {message}"
    return f"{field_path(loc)}: {error['input']!r} is invalid: {message}"
