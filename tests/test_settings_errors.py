"""Bad input fails before anything is declared, naming the field, the value and what is allowed.

Each row: a change to a valid stack, and the exact pieces its message must contain.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orbitlab import checks as checks_module
from orbitlab import model as model_module
from orbitlab import settings as settings_module
from orbitlab.errors import SettingsError
from orbitlab.plan import plan_stack
from orbitlab.stack import parse_settings, settings_from_config
from tests.conftest import VALID_STACK

DELETE = object()


def change(path: str, value: Any) -> Callable[[dict], None]:
    """Set (or delete, with DELETE) the value at a dotted path such as ``sectors.0.tag``."""

    def apply(raw: dict) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value

    return apply


def changes(*steps: Callable[[dict], None]) -> Callable[[dict], None]:
    """Several changes, in order."""

    def apply(raw: dict) -> None:
        for step in steps:
            step(raw)

    return apply


def add_sector(sector: dict) -> Callable[[dict], None]:
    return lambda raw: raw["sectors"].append(sector)


CASES: list[tuple[str, Callable[[dict], None], list[str]]] = [
    (
        "malformed backplane cidr",
        change("backplane.cidr", "10.200.0.0/33"),
        ["orbitlab:backplane.cidr", "'10.200.0.0/33'", "not a valid IPv4 CIDR"],
    ),
    (
        "backplane cidr without prefix",
        change("backplane.cidr", "10.200.0.0"),
        ["orbitlab:backplane.cidr", "'10.200.0.0' is not a CIDR"],
    ),
    (
        "backplane host bits",
        change("backplane.cidr", "10.200.0.1/16"),
        ["orbitlab:backplane.cidr", "'10.200.0.1/16' has host bits set", "use 10.200.0.0/16"],
    ),
    (
        "backplane too small",
        change("backplane.cidr", "10.200.0.0/28"),
        ["orbitlab:backplane.cidr", "10.200.0.0/28 is too small", "/27 or larger"],
    ),
    (
        "sector subnet host bits",
        change("sectors.0.subnets.0", "172.16.0.5/24"),
        ["orbitlab:sectors[0].subnets[0]", "'172.16.0.5/24' has host bits set", "172.16.0.0/24"],
    ),
    (
        "sector subnet malformed",
        change("sectors.1.subnets.0", "172.16.300.0/24"),
        ["orbitlab:sectors[1].subnets[0]", "'172.16.300.0/24'", "not a valid IPv4 CIDR"],
    ),
    (
        "first subnet too small for gateway+dns+lb",
        change("sectors.1.subnets", ["172.16.0.0/30"]),
        ["orbitlab:sectors[1].subnets[0]", "172.16.0.0/30 is too small", "a /29 or larger"],
    ),
    (
        "other subnet too small",
        change("sectors.0.subnets.1", "172.16.1.0/31"),
        ["orbitlab:sectors[0].subnets[1]", "172.16.1.0/31 is too small", "a /30 or larger"],
    ),
    (
        "sector overlaps backplane",
        change("sectors.1.subnets", ["10.200.5.0/24"]),
        ["orbitlab:sectors[1].subnets[0]", "10.200.5.0/24 overlaps the Backplane 10.200.0.0/16"],
    ),
    (
        "sector contains backplane",
        change("sectors.1.subnets", ["10.0.0.0/8"]),
        ["orbitlab:sectors[1].subnets[0]", "10.0.0.0/8 overlaps the Backplane"],
    ),
    (
        "subnets overlap inside a sector",
        change("sectors.0.subnets.1", "172.16.0.128/25"),
        [
            "orbitlab:sectors[0].subnets[1]",
            "172.16.0.128/25 overlaps",
            "subnets[0] (172.16.0.0/24)",
        ],
    ),
    (
        "primary exit node not a node",
        change("backplane.primary_exit_node", "pve9"),
        ["orbitlab:backplane.primary_exit_node", "'pve9' is not a node", "allowed: pve1, pve2"],
    ),
    (
        "duplicate sector names",
        add_sector({"name": "web", "subnets": ["172.17.0.0/24"]}),
        ["orbitlab:sectors", "Sector name 'web' appears more than once"],
    ),
    (
        "invalid sector name",
        change("sectors.1.name", "Lab_1"),
        ["orbitlab:sectors[1].name", "'Lab_1' is not a valid name", "DNS label"],
    ),
    (
        "invalid host name",
        change("sectors.0.hosts.0.name", "app-"),
        ["orbitlab:sectors[0].hosts[0].name", "'app-' is not a valid name"],
    ),
    (
        "tag out of range",
        change("sectors.1.tag", 1000),
        ["orbitlab:sectors[1].tag", "1000", "greater than or equal to 1001"],
    ),
    (
        "tag above range",
        change("sectors.1.tag", 10000),
        ["orbitlab:sectors[1].tag", "10000", "less than or equal to 9999"],
    ),
    (
        "same explicit tag twice",
        lambda raw: (change("sectors.0.tag", 1500)(raw), change("sectors.1.tag", 1500)(raw)),
        ["orbitlab:sectors", "tag 1500 is given to more than one Sector"],
    ),
    (
        "mtu too small",
        change("backplane.nodes.0.mtu", 1300),
        ["orbitlab:backplane.nodes[0].mtu", "1300", "greater than or equal to 1330"],
    ),
    (
        "backplane mtu override too small",
        change("backplane.mtu", 1000),
        ["orbitlab:backplane.mtu", "1000", "greater than or equal to 1280"],
    ),
    (
        "backplane mtu override above vmbr0 - 50",
        change("backplane.mtu", 1480),
        ["orbitlab:backplane.mtu", "1480 is larger than", "allowed: 1280-1450"],
    ),
    (
        "asn out of range",
        change("backplane.asn", 0),
        ["orbitlab:backplane.asn", "0", "greater than or equal to 1"],
    ),
    (
        "asn too large",
        change("backplane.asn", 4294967295),
        ["orbitlab:backplane.asn", "4294967295", "less than or equal to 4294967294"],
    ),
    (
        "no nodes",
        change("backplane.nodes", []),
        ["orbitlab:backplane.nodes", "at least 1 item"],
    ),
    (
        "nodes missing",
        change("backplane.nodes", DELETE),
        ["orbitlab:backplane.nodes: required key is missing"],
    ),
    (
        "unknown key in a sector (typo)",
        change("sectors.1.subnet", ["172.16.9.0/24"]),
        ["orbitlab:sectors[1]", "unknown key 'subnet'", "did you mean 'subnets'?"],
    ),
    (
        "unknown key in the backplane",
        change("backplane.cdir", "10.0.0.0/16"),
        ["orbitlab:backplane", "unknown key 'cdir'", "did you mean 'cidr'?"],
    ),
    (
        "unknown key in a node",
        change("backplane.nodes.0.ip", "192.0.2.11"),
        [
            "orbitlab:backplane.nodes[0]",
            "unknown key 'ip'",
            "allowed: address, host_key, mtu, name",
        ],
    ),
    (
        "lb backend outside the sector",
        change("sectors.0.load_balancer.listeners.0.backends", ["192.0.2.80:80"]),
        [
            "orbitlab:sectors[0].load_balancer.listeners[0].backends[0]",
            "192.0.2.80 is outside Sector 'web'",
        ],
    ),
    (
        "lb backend unknown host",
        change("sectors.0.load_balancer.listeners.0.backends", ["ghost:80"]),
        ["backends[0]", "'ghost' is neither a host of Sector 'web' (app1, app2)"],
    ),
    (
        "lb backend without port",
        change("sectors.0.load_balancer.listeners.0.backends", ["app1"]),
        ["backends[0]", "'app1' is not host:port"],
    ),
    (
        "lb listener port collision",
        change(
            "sectors.0.load_balancer.listeners",
            [{"port": 80, "backends": ["app1:80"]}, {"port": 80, "backends": ["app2:80"]}],
        ),
        ["orbitlab:sectors[0].load_balancer.listeners", "port 80 is used by more than one"],
    ),
    (
        "port forward collision",
        change(
            "sectors.0.port_forwards",
            [{"port": 2222, "to": "app1:22"}, {"port": 2222, "to": "app2:22"}],
        ),
        ["orbitlab:sectors[0].port_forwards", "tcp port 2222 is forwarded more than once"],
    ),
    (
        "port forward target outside the sector",
        change("sectors.0.port_forwards", [{"port": 8443, "to": "10.9.9.9:443"}]),
        ["orbitlab:sectors[0].port_forwards[0].to", "10.9.9.9 is outside Sector 'web'"],
    ),
    (
        "port out of range",
        change("sectors.0.port_forwards", [{"port": 70000, "to": "app1:22"}]),
        ["orbitlab:sectors[0].port_forwards[0].port", "70000", "less than or equal to 65535"],
    ),
    (
        "host outside the sector's subnets",
        change("sectors.0.hosts.0.address", "172.16.5.9"),
        ["orbitlab:sectors[0].hosts[0].address", "172.16.5.9 is in none of the Sector's subnets"],
    ),
    (
        "host on the gateway address",
        change("sectors.0.hosts.0.address", "172.16.1.1"),
        ["orbitlab:sectors[0].hosts[0].address", "172.16.1.1 is reserved for the gateway"],
    ),
    (
        "host on the dns address",
        change("sectors.0.hosts.0.address", "172.16.0.2"),
        ["orbitlab:sectors[0].hosts[0].address", "172.16.0.2 is reserved for the Sector DNS"],
    ),
    (
        "host named like an appliance",
        change("sectors.0.hosts.0.name", "gateway"),
        ["orbitlab:sectors[0].hosts[0].name", "'gateway' is reserved for an appliance"],
    ),
    (
        "duplicate host address",
        change("sectors.0.hosts.1.address", "172.16.0.21"),
        ["orbitlab:sectors[0].hosts", "address 172.16.0.21 is given to more than one host"],
    ),
    (
        "sector on an unknown node",
        change("sectors.1.node", "pve7"),
        ["orbitlab:sectors[1].node", "'pve7' is not a node", "allowed: pve1, pve2"],
    ),
    (
        "node address not an address",
        change("backplane.nodes.1.address", "192.0.2.300"),
        ["orbitlab:backplane.nodes[1].address", "'192.0.2.300' is not a valid IPv4 address"],
    ),
    (
        "duplicate node name",
        change("backplane.nodes.1.name", "pve1"),
        ["orbitlab:backplane.nodes", "node name 'pve1' appears more than once"],
    ),
    (
        "node inside the backplane",
        change("backplane.nodes.1.address", "10.200.0.12"),
        ["orbitlab:backplane.nodes[1].address", "10.200.0.12 lies inside the Backplane"],
    ),
    (
        "sector contains a node address",
        change("sectors.1.subnets", ["192.0.2.0/24"]),
        ["orbitlab:sectors[1].subnets[0]", "contains the address of node 'pve1' (192.0.2.11)"],
    ),
    (
        "egress allow without default deny",
        change("sectors.1.egress", {"allow": ["198.51.100.0/24"]}),
        ["orbitlab:sectors[1].egress.allow", "only used with default: deny"],
    ),
    (
        "egress default not allow/deny",
        change("sectors.1.egress", {"default": "block"}),
        ["orbitlab:sectors[1].egress.default", "'block'", "'allow' or 'deny'"],
    ),
    (
        "lb listener mode",
        change("sectors.0.load_balancer.listeners.0.mode", "udp"),
        ["orbitlab:sectors[0].load_balancer.listeners[0].mode", "'udp'", "'tcp' or 'http'"],
    ),
    (
        "dns domain invalid",
        change("sectors.1.dns", {"domain": "Lab..internal"}),
        ["orbitlab:sectors[1].dns.domain", "'Lab..internal' is not a valid DNS domain"],
    ),
    (
        "port given as a string",
        change("sectors.0.port_forwards", [{"port": "2222", "to": "app1:22"}]),
        ["orbitlab:sectors[0].port_forwards[0].port", "'2222'", "valid integer"],
    ),
    (
        "sectors not a list",
        change("sectors", {"name": "web"}),
        ["orbitlab:sectors", "valid list"],
    ),
    # --- RFC 6890 special-purpose ranges, everywhere an address or network is configured ---
    (
        "backplane in loopback",
        change("backplane.cidr", "127.0.0.0/16"),
        ["orbitlab:backplane.cidr", "'127.0.0.0/16' overlaps 127.0.0.0/8", "loopback", "RFC 6890"],
    ),
    (
        "backplane holding special ranges",
        change("backplane.cidr", "0.0.0.0/1"),
        ["orbitlab:backplane.cidr", "'0.0.0.0/1' overlaps 0.0.0.0/8", "'this network'"],
    ),
    (
        "sector subnet link-local",
        change("sectors.1.subnets.0", "169.254.10.0/24"),
        [
            "orbitlab:sectors[1].subnets[0]",
            "'169.254.10.0/24' overlaps 169.254.0.0/16",
            "link-local",
        ],
    ),
    (
        "sector subnet multicast",
        change("sectors.0.subnets.1", "239.1.0.0/24"),
        ["orbitlab:sectors[0].subnets[1]", "overlaps 224.0.0.0/4 (multicast"],
    ),
    (
        "node address in class E",
        change("backplane.nodes.1.address", "250.0.0.12"),
        ["orbitlab:backplane.nodes[1].address", "'250.0.0.12' lies in 240.0.0.0/4 (reserved"],
    ),
    (
        "node address loopback",
        change("backplane.nodes.0.address", "127.0.1.1"),
        ["orbitlab:backplane.nodes[0].address", "127.0.0.0/8 (loopback", "never a usable address"],
    ),
    (
        "appliance nameserver loopback",
        change("appliances", {"nameservers": ["127.0.0.53"]}),
        ["orbitlab:appliances.nameservers[0]", "'127.0.0.53' lies in 127.0.0.0/8 (loopback"],
    ),
    (
        "dns forwarder the sector's own dns",
        change("sectors.1.dns", {"forwarders": ["172.16.0.2"]}),
        [
            "orbitlab:sectors[1].dns.forwarders[0]",
            "172.16.0.2 is the Sector DNS of Sector 'lab'",
            "forward to itself (CoreDNS' loop plugin then stops it)",
        ],
    ),
    (
        "dns forwarder the sector's gateway",
        change("sectors.0.dns", {"forwarders": ["172.16.1.1"]}),
        ["orbitlab:sectors[0].dns.forwarders[0]", "172.16.1.1 is the gateway of Sector 'web'"],
    ),
    (
        "appliance nameserver a sector's own dns",
        change("appliances", {"nameservers": ["172.16.0.2"]}),
        ["orbitlab:appliances.nameservers[0]", "172.16.0.2 is the Sector DNS of Sector 'web'"],
    ),
    (
        "lb backend in the dhcp pool",
        change("sectors.0.load_balancer.listeners.0.backends", ["172.16.0.150:80"]),
        [
            "orbitlab:sectors[0].load_balancer.listeners[0].backends[0]",
            "172.16.0.150 is in the Sector's DHCP pool (172.16.0.128-172.16.0.254)",
            "whoever leases it gets the traffic",
            "a DHCP reservation",
        ],
    ),
    (
        "port forward into the dhcp pool",
        change("sectors.0.port_forwards", [{"port": 2222, "to": "172.16.0.200:22"}]),
        ["orbitlab:sectors[0].port_forwards[0].to", "172.16.0.200 is in the Sector's DHCP pool"],
    ),
    (
        "host mac with a trailing newline",
        change("sectors.0.hosts.0.mac", "bc:24:11:5a:00:01\n"),
        ["orbitlab:sectors[0].hosts[0].mac", "'bc:24:11:5a:00:01\\n' is not a MAC address"],
    ),
    (
        "dns forwarder limited broadcast",
        change("sectors.1.dns", {"forwarders": ["255.255.255.255"]}),
        ["orbitlab:sectors[1].dns.forwarders[0]", "255.255.255.255/32 (limited broadcast"],
    ),
    (
        "dns forwarder 'this network'",
        change("sectors.1.dns", {"forwarders": ["0.0.0.0"]}),
        ["orbitlab:sectors[1].dns.forwarders[0]", "'0.0.0.0' lies in 0.0.0.0/8"],
    ),
    (
        "egress deny multicast",
        change("sectors.1.egress", {"deny": ["224.0.0.0/24"]}),
        ["orbitlab:sectors[1].egress.deny[0]", "lies in 224.0.0.0/4 (multicast", "never routed"],
    ),
    (
        "egress allow link-local",
        change("sectors.1.egress", {"default": "deny", "allow": ["169.254.169.254/32"]}),
        ["orbitlab:sectors[1].egress.allow[0]", "169.254.0.0/16 (link-local"],
    ),
    (
        "host address link-local",
        change("sectors.0.hosts.0.address", "169.254.0.21"),
        ["orbitlab:sectors[0].hosts[0].address", "169.254.0.0/16 (link-local"],
    ),
    # --- Sector DHCP: pool, reservations, dynamic hosts, lease time ---
    (
        "dhcp range outside the subnets",
        change("sectors.0.dhcp", {"range": ["172.16.5.10", "172.16.5.20"]}),
        [
            "orbitlab:sectors[0].dhcp.range: 172.16.5.10 is in none of the Sector's subnets",
            "(172.16.0.0/24, 172.16.1.0/24)",
        ],
    ),
    (
        "dhcp range spanning two subnets",
        change("sectors.0.dhcp", {"range": ["172.16.0.200", "172.16.1.50"]}),
        [
            "orbitlab:sectors[0].dhcp.range: [172.16.0.200, 172.16.1.50] spans two subnets",
            "(172.16.0.0/24 and 172.16.1.0/24); the pool lies in one subnet",
        ],
    ),
    (
        "dhcp range reversed",
        change("sectors.0.dhcp", {"range": ["172.16.1.200", "172.16.1.100"]}),
        [
            "orbitlab:sectors[0].dhcp.range: [172.16.1.200, 172.16.1.100] is reversed",
            "write [172.16.1.100, 172.16.1.200]",
        ],
    ),
    (
        "dhcp range over the sector dns",
        change("sectors.1.dhcp", {"range": ["172.16.0.2", "172.16.0.50"]}),
        ["orbitlab:sectors[1].dhcp.range", "includes 172.16.0.2, reserved for the Sector DNS"],
    ),
    (
        "dhcp range over a gateway address",
        change("sectors.0.dhcp", {"range": ["172.16.1.1", "172.16.1.9"]}),
        ["orbitlab:sectors[0].dhcp.range", "includes 172.16.1.1, reserved for the gateway"],
    ),
    (
        "dhcp range over a static host without mac",
        change("sectors.0.dhcp", {"range": ["172.16.0.10", "172.16.0.30"]}),
        [
            "orbitlab:sectors[0].dhcp.range: [172.16.0.10, 172.16.0.30] includes 172.16.0.21",
            "the static address of host 'app1' (orbitlab:sectors[0].hosts[0]), which has no mac",
            "give app1 a mac (a DHCP reservation)",
        ],
    ),
    (
        "dhcp range over the broadcast address",
        change("sectors.0.dhcp", {"range": ["172.16.1.100", "172.16.1.255"]}),
        ["orbitlab:sectors[0].dhcp.range", "network or broadcast address of 172.16.1.0/24"],
    ),
    (
        "dhcp range of one address",
        change("sectors.0.dhcp", {"range": ["172.16.0.100"]}),
        ["orbitlab:sectors[0].dhcp.range", "is not a range; expected [start, end]"],
    ),
    (
        "dhcp range with a bad address",
        change("sectors.0.dhcp", {"range": ["172.16.0.100", "172.16.0.300"]}),
        ["orbitlab:sectors[0].dhcp.range[1]", "'172.16.0.300' is not a valid IPv4 address"],
    ),
    (
        "dhcp settings while dhcp is off",
        change("sectors.1.dhcp", {"enabled": False, "range": ["172.16.0.100", "172.16.0.120"]}),
        ["orbitlab:sectors[1].dhcp: range set, but DHCP is off (enabled: false); remove it"],
    ),
    (
        "dhcp lease time while dhcp is off",
        change("sectors.1.dhcp", {"enabled": False, "lease_time": "1h"}),
        ["orbitlab:sectors[1].dhcp: lease_time set, but DHCP is off"],
    ),
    (
        "dhcp enabled not a boolean",
        change("sectors.1.dhcp", {"enabled": "no"}),
        ["orbitlab:sectors[1].dhcp.enabled", "'no'", "valid boolean"],
    ),
    (
        "dhcp no room for a default pool",
        change(
            "sectors.1",
            {
                "name": "lab",
                "subnets": ["172.16.0.0/29"],
                "hosts": [
                    {"name": "h4", "address": "172.16.0.4"},
                    {"name": "h5", "address": "172.16.0.5"},
                    {"name": "h6", "address": "172.16.0.6"},
                ],
            },
        ),
        [
            "orbitlab:sectors[1].dhcp: no address is left for a default pool in the upper half "
            "of 172.16.0.0/29",
            "set orbitlab:sectors[1].dhcp.range, or enabled: false",
        ],
    ),
    (
        "lease time too short",
        change("sectors.0.dhcp", {"lease_time": "90s"}),
        [
            "orbitlab:sectors[0].dhcp.lease_time",
            "'90s' is out of bounds; a lease lasts from 2m to 7d (120-604800 seconds)",
        ],
    ),
    (
        "lease time too long",
        change("sectors.0.dhcp", {"lease_time": 8 * 86400}),
        ["orbitlab:sectors[0].dhcp.lease_time", "691200 is out of bounds"],
    ),
    (
        "lease time malformed",
        change("sectors.0.dhcp", {"lease_time": "1 hour"}),
        ["orbitlab:sectors[0].dhcp.lease_time", "'1 hour' is not a lease time", "e.g. 30m"],
    ),
    (
        "host mac malformed",
        change("sectors.0.hosts.0.mac", "bc:24:11:5a:00"),
        ["orbitlab:sectors[0].hosts[0].mac", "'bc:24:11:5a:00' is not a MAC address"],
    ),
    (
        "host mac multicast",
        change("sectors.0.hosts.0.mac", "01:00:5e:00:00:fb"),
        ["orbitlab:sectors[0].hosts[0].mac", "'01:00:5e:00:00:fb' is a multicast MAC"],
    ),
    (
        "host mac all zero",
        change("sectors.0.hosts.0.mac", "00:00:00:00:00:00"),
        ["orbitlab:sectors[0].hosts[0].mac", "the all-zero MAC"],
    ),
    (
        "host mac in the appliances' prefix",
        change("sectors.0.hosts.0.mac", "02:4F:4C:20:03:E9"),
        ["orbitlab:sectors[0].hosts[0].mac", "prefix of OrbitLab's own appliance NICs"],
    ),
    (
        "duplicate mac in a sector",
        lambda raw: (
            change("sectors.0.hosts.0.mac", "bc:24:11:5a:00:01")(raw),
            change("sectors.0.hosts.1.mac", "BC:24:11:5A:00:01")(raw),
        ),
        [
            "orbitlab:sectors[0].hosts[1].mac: bc:24:11:5a:00:01 is also the mac of "
            "orbitlab:sectors[0].hosts[0] (app1)",
        ],
    ),
    (
        "duplicate mac across sectors",
        lambda raw: (
            change("sectors.0.hosts.0.mac", "bc:24:11:5a:00:01")(raw),
            change("sectors.1.hosts", [{"name": "box", "mac": "bc:24:11:5a:00:01"}])(raw),
        ),
        ["orbitlab:sectors[1].hosts[0].mac: bc:24:11:5a:00:01 is also the mac of"],
    ),
    (
        "dynamic host as lb backend",
        lambda raw: (
            raw["sectors"][0]["hosts"].append({"name": "app3"}),
            change("sectors.0.load_balancer.listeners.0.backends", ["app3:8080"])(raw),
        ),
        [
            "orbitlab:sectors[0].load_balancer.listeners[0].backends[0]",
            "'app3:8080': host 'app3' has no fixed address",
        ],
    ),
    (
        "dynamic host as port-forward target",
        lambda raw: (
            raw["sectors"][0]["hosts"].append({"name": "app3", "mac": "bc:24:11:5a:00:03"}),
            change("sectors.0.port_forwards", [{"port": 2223, "to": "app3:22"}])(raw),
        ),
        [
            "orbitlab:sectors[0].port_forwards[0].to: 'app3:22': host 'app3' has no fixed "
            "address (it takes one from the DHCP pool)",
        ],
    ),
    (
        "dynamic host while dhcp is off",
        change(
            "sectors.1",
            {
                "name": "lab",
                "subnets": ["172.16.0.0/24"],
                "dhcp": {"enabled": False},
                "hosts": [{"name": "box"}],
            },
        ),
        ["orbitlab:sectors[1].hosts[0]: host 'box' has no address, and DHCP is off"],
    ),
    (
        "dhcp known_only without a declared mac",
        change("sectors.1.dhcp", {"known_only": True}),
        [
            "orbitlab:sectors[1].dhcp.known_only: true, but no host of Sector 'lab' declares a "
            "mac, so the Sector DHCP would answer no one",
        ],
    ),
    (
        "dhcp known_only while dhcp is off",
        change("sectors.1.dhcp", {"enabled": False, "known_only": True}),
        ["orbitlab:sectors[1].dhcp", "known_only set, but DHCP is off (enabled: false)"],
    ),
    (
        "mac while dhcp is off",
        change(
            "sectors.1",
            {
                "name": "lab",
                "subnets": ["172.16.0.0/24"],
                "dhcp": {"enabled": False},
                "hosts": [{"name": "box", "address": "172.16.0.9", "mac": "bc:24:11:5a:00:09"}],
            },
        ),
        ["orbitlab:sectors[1].hosts[0].mac: a mac asks for a DHCP reservation, and DHCP is off"],
    ),
    (
        "unknown key in dhcp",
        change("sectors.0.dhcp", {"pool": ["172.16.0.100", "172.16.0.120"]}),
        [
            "orbitlab:sectors[0].dhcp",
            "unknown key 'pool'",
            "allowed: enabled, known_only, lease_time, range",
        ],
    ),
    # --- DNS forwarders the Sector Gateway never lets the Sector DNS reach ---
    (
        "dns forwarder inside the backplane",
        change("sectors.1.dns", {"forwarders": ["10.200.5.53"]}),
        [
            "orbitlab:sectors[1].dns.forwarders[0]: 10.200.5.53 lies inside the Backplane",
            "never lets it reach",
            "Sector 'lab'",
        ],
    ),
    (
        "dns forwarder is a node",
        change("sectors.0.dns", {"forwarders": ["192.0.2.12"]}),
        [
            "orbitlab:sectors[0].dns.forwarders[0]: 192.0.2.12 is an address of node 'pve2'",
            "never lets it reach",
        ],
    ),
    (
        "inherited nameserver is a node",
        change("appliances", {"nameservers": ["192.0.2.11"]}),
        [
            "orbitlab:appliances.nameservers[0]: 192.0.2.11 is an address of node 'pve1'",
            "Sector 'web' forwards to it",
            "set orbitlab:sectors[0].dns.forwarders",
        ],
    ),
    # --- issue 8: stricter validation ---
    (
        "sector name with a trailing newline",
        change("sectors.1.name", "lab\n"),
        ["orbitlab:sectors[1].name", "'lab\\n' is not a valid name"],
    ),
    (
        "domain with a trailing newline",
        change("sectors.1.dns", {"domain": "lab.internal\n"}),
        ["orbitlab:sectors[1].dns.domain", "is not a valid DNS domain"],
    ),
    (
        "host key with a trailing newline",
        change("backplane.nodes.0.host_key", "ssh-ed25519 AAAA\n"),
        ["orbitlab:backplane.nodes[0].host_key", "is not an SSH public host key"],
    ),
    (
        "owner stack with a trailing newline",
        change("backplane.stack", "me/orbitlab/home\n"),
        ["orbitlab:backplane.stack", "is not a stack name"],
    ),
    (
        "template url with a trailing newline",
        change("appliances", {"template_url": "http://example.invalid/a.tar.xz\n"}),
        ["orbitlab:appliances.template_url", "is not a container template URL"],
    ),
    (
        "template volume with a trailing newline",
        change("appliances", {"template_file_id": "local:vztmpl/a.tar.xz\n"}),
        ["orbitlab:appliances.template_file_id", "is not a template volume ID"],
    ),
    (
        "health-check path with a quote",
        change("sectors.0.load_balancer.listeners.0.health_check", {"path": "/x'y"}),
        ["load_balancer.listeners[0].health_check.path", "is not a plain HTTP path"],
    ),
    (
        "health-check path with a newline",
        change("sectors.0.load_balancer.listeners.0.health_check", {"path": "/ok\nfoo"}),
        ["health_check.path", "is not a plain HTTP path"],
    ),
    (
        "one-label domain",
        change("sectors.1.dns", {"domain": "lab"}),
        ["orbitlab:sectors[1].dns.domain", "two or more dot-separated lowercase labels"],
    ),
    (
        "special-use domain",
        change("sectors.1.dns", {"domain": "lab.local"}),
        ["orbitlab:sectors[1].dns.domain", "ends in the special-use domain 'local'"],
    ),
    (
        "reverse-zone domain",
        change("sectors.1.dns", {"domain": "16.172.in-addr.arpa"}),
        ["orbitlab:sectors[1].dns.domain", "special-use domain 'arpa'", "except under home.arpa"],
    ),
    (
        "domain too long for its zone file",
        change("sectors.1.dns", {"domain": ".".join(["a" * 63] * 3) + "." + "b" * 61}),
        ["orbitlab:sectors[1].dns.domain", "too long for its zone file name db.<domain>"],
    ),
    (
        "lb backend on the gateway",
        change("sectors.0.load_balancer.listeners.0.backends", ["172.16.1.1:8080"]),
        ["backends[0]", "172.16.1.1 is the gateway's address, not a host's"],
    ),
    (
        "lb backend on the network address",
        change("sectors.0.load_balancer.listeners.0.backends", ["172.16.0.0:8080"]),
        ["backends[0]", "network or broadcast address of 172.16.0.0/24"],
    ),
    (
        "port forward to the broadcast address",
        change("sectors.0.port_forwards", [{"port": 2222, "to": "172.16.1.255:22"}]),
        ["port_forwards[0].to", "network or broadcast address of 172.16.1.0/24"],
    ),
    (
        "port forward to the dns appliance",
        change("sectors.0.port_forwards", [{"port": 53, "to": "172.16.0.2:53"}]),
        ["port_forwards[0].to", "172.16.0.2 is the Sector DNS's address"],
    ),
    (
        "node other address inside the backplane",
        change("backplane.nodes.0.other_addresses", ["10.200.9.9"]),
        ["orbitlab:backplane.nodes[0].other_addresses[0]", "lies inside the Backplane"],
    ),
    (
        "node network with host bits",
        change("backplane.nodes.0.networks", ["192.0.2.0/24", "198.51.100.11/24"]),
        [
            "orbitlab:backplane.nodes[0].networks[1]",
            "'198.51.100.11/24' has host bits set",
            "use 198.51.100.0/24 (the network address)",
        ],
    ),
    (
        "node network not IPv4",
        change("backplane.nodes.1.networks", ["2001:db8::/64"]),
        ["orbitlab:backplane.nodes[1].networks[0]", "'2001:db8::/64' is not a valid IPv4 CIDR"],
    ),
    (
        "node network without a prefix",
        change("backplane.nodes.0.networks", ["192.0.2.0"]),
        ["orbitlab:backplane.nodes[0].networks[0]", "'192.0.2.0' is not a CIDR"],
    ),
    (
        "sector contains a node's other address",
        change("backplane.nodes.1.other_addresses", ["172.16.0.77"]),
        ["orbitlab:sectors[0].subnets[0]", "contains the address of node 'pve2' (172.16.0.77)"],
    ),
    (
        "protected network overlapping the backplane",
        change("backplane.protected_networks", ["10.0.0.0/8"]),
        ["orbitlab:backplane.protected_networks[0]", "overlaps the Backplane 10.200.0.0/16"],
    ),
    (
        "sector subnet in a protected network",
        change("backplane.protected_networks", ["172.16.1.0/24"]),
        ["orbitlab:sectors[0].subnets[1]", "overlaps orbitlab:backplane.protected_networks[0]"],
    ),
    (
        "egress allow into a protected network",
        changes(
            change("backplane.protected_networks", ["198.51.100.0/25"]),
            change("sectors.1.egress", {"default": "deny", "allow": ["198.51.100.0/24"]}),
        ),
        ["egress.allow[0]", "overlaps orbitlab:backplane.protected_networks[0]"],
    ),
    (
        "dns forwarder denied by the sector",
        change(
            "sectors.1",
            {
                "name": "lab",
                "subnets": ["172.16.0.0/24"],
                "dns": {"forwarders": ["192.168.1.53"]},
                "egress": {"deny": ["192.168.0.0/16"]},
            },
        ),
        ["orbitlab:sectors[1].dns.forwarders[0]: 192.168.1.53 lies in its egress.deny[0]"],
    ),
    (
        "dns forwarder in a protected network",
        changes(
            change("backplane.protected_networks", ["198.51.100.0/25"]),
            change("sectors.1.dns", {"forwarders": ["198.51.100.53"]}),
        ),
        ["orbitlab:sectors[1].dns.forwarders[0]", "lies in orbitlab:backplane.protected_networks"],
    ),
    (
        "package mirror not an ipv4 url",
        change("appliances", {"package_mirror": "http://mirror.example/alpine"}),
        ["orbitlab:appliances.package_mirror", "is not a package mirror URL with an IPv4 host"],
    ),
    (
        "package mirror on a node",
        change("appliances", {"package_mirror": "http://192.0.2.11/alpine"}),
        ["orbitlab:appliances.package_mirror: 192.0.2.11 is an address of node 'pve1'"],
    ),
    (
        "package mirror denied by a sector",
        changes(
            change("appliances", {"package_mirror": "http://192.0.2.80/alpine"}),
            change("sectors.1.egress", {"deny": ["192.0.2.0/25"]}),
        ),
        ["orbitlab:appliances.package_mirror: 192.0.2.80 lies in orbitlab:sectors[1].egress.deny"],
    ),
    (
        "template checksum malformed",
        change("appliances", {"template_checksum": "sha512:abc"}),
        ["orbitlab:appliances.template_checksum", "sha512:<128 hex digits>"],
    ),
    (
        "ssh user not a login name",
        change("appliances", {"ssh_user": "root; rm -rf /"}),
        ["orbitlab:appliances.ssh_user", "'root; rm -rf /' is not a login name"],
    ),
    (
        "node address with a prefix",
        change("backplane.nodes.0.address", "192.0.2.11/24"),
        ["orbitlab:backplane.nodes[0].address", "'192.0.2.11/24' is not an IPv4 address"],
    ),
    (
        "package mirror port out of range",
        change("appliances", {"package_mirror": "http://192.0.2.80:99999/alpine"}),
        ["orbitlab:appliances.package_mirror", "port 99999 is outside 1-65535"],
    ),
    (
        "a sector that is not a mapping",
        change("sectors.1", "lab"),
        ["orbitlab:sectors[1]", "expected a mapping of keys, got str 'lab'"],
    ),
    (
        "two nodes with one address",
        change("backplane.nodes.1.address", "192.0.2.11"),
        ["orbitlab:backplane.nodes: address 192.0.2.11 appears more than once"],
    ),
    (
        "two hosts with one name",
        change("sectors.0.hosts.1.name", "app1"),
        ["orbitlab:sectors[0].hosts: host name 'app1' appears more than once"],
    ),
    (
        "host on the broadcast address",
        change("sectors.0.hosts.1.address", "172.16.1.255"),
        ["orbitlab:sectors[0].hosts[1].address", "network or broadcast address of 172.16.1.0/24"],
    ),
    (
        "a backend listed twice",
        change("sectors.0.load_balancer.listeners.0.backends", ["app1:8080", "app1:8080"]),
        ["load_balancer.listeners[0].backends: 'app1:8080' is listed more than once"],
    ),
    (
        "egress allow into the backplane",
        change("sectors.1.egress", {"default": "deny", "allow": ["10.200.0.0/24"]}),
        ["orbitlab:sectors[1].egress.allow[0]: 10.200.0.0/24 overlaps the Backplane"],
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_its_message(raw_stack: dict, mutate, expected: list[str]):
    mutate(raw_stack)
    with pytest.raises(SettingsError) as caught:
        parse_settings(raw_stack)
    message = str(caught.value)
    for piece in expected:
        assert piece in message, f"{piece!r} not in:\n{message}"


def test_the_table_is_long_enough():
    assert len(CASES) >= 30


def test_valid_stack_passes(raw_stack: dict):
    settings = parse_settings(raw_stack)
    assert [sector.name for sector in settings.sectors] == ["web", "lab"]


def test_node_networks_are_read_and_an_address_outside_them_is_not_refused(raw_stack: dict):
    raw_stack["backplane"]["nodes"][0]["networks"] = ["192.0.2.0/24", "198.51.100.0/31"]
    raw_stack["backplane"]["nodes"][1]["networks"] = ["203.0.113.0/24"]  # suspicious, allowed
    nodes = parse_settings(raw_stack).backplane.nodes
    assert [[str(network) for network in node.networks] for node in nodes] == [
        ["192.0.2.0/24", "198.51.100.0/31"],
        ["203.0.113.0/24"],
    ]


def test_every_problem_is_reported_at_once(raw_stack: dict):
    raw_stack["sectors"][0]["hosts"][0]["address"] = "172.16.9.9"
    raw_stack["backplane"]["primary_exit_node"] = "nope"
    with pytest.raises(SettingsError) as caught:
        parse_settings(raw_stack)
    assert len(caught.value.problems) == 2


def test_unknown_orbitlab_config_key_is_refused(raw_stack: dict):
    config = {f"orbitlab:{key}": value for key, value in raw_stack.items()}
    config["orbitlab:sector"] = []
    config["proxmoxve:endpoint"] = "https://192.0.2.11:8006/"  # other namespaces are fine
    with pytest.raises(
        SettingsError,
        match=r"orbitlab:sector: unknown key .*did you mean "
        r"'orbitlab:sectors'\?",
    ):
        settings_from_config(config)


def test_backplane_is_required():
    with pytest.raises(SettingsError, match="orbitlab:backplane: required key is missing"):
        settings_from_config({"orbitlab:sectors": []})


def test_explicit_tag_taken_on_the_cluster(raw_stack: dict):
    raw_stack["sectors"][1]["tag"] = 1003
    settings = parse_settings(raw_stack)
    with pytest.raises(SettingsError) as caught:
        plan_stack("dev", settings, in_use_tags={1003})
    assert "orbitlab:sectors[1].tag: tag 1003 is already in use on the cluster" in str(caught.value)


def test_tags_exhausted(raw_stack: dict):
    settings = parse_settings(raw_stack)
    with pytest.raises(SettingsError) as caught:
        plan_stack("dev", settings, in_use_tags=range(1001, 10000))
    assert "no free VNet tag left for Sector 'web'" in str(caught.value)
    assert "orbitlab:sectors[0].tag" in str(caught.value)


def test_backplane_too_small_for_a_tag(raw_stack: dict):
    raw_stack["backplane"]["cidr"] = "10.200.0.0/24"
    raw_stack["sectors"][1]["tag"] = 1200
    settings = parse_settings(raw_stack)
    with pytest.raises(SettingsError) as caught:
        plan_stack("dev", settings)
    message = str(caught.value)
    assert "orbitlab:sectors[1] (lab): tag 1200 needs Backplane addresses" in message
    assert "outside 10.200.0.0/24 (room for tags 1001-1122)" in message
    assert "use a larger Backplane" in message


def test_existing_sector_cannot_change_tag(raw_stack: dict):
    raw_stack["sectors"][0]["tag"] = 1005
    settings = parse_settings(raw_stack)
    with pytest.raises(SettingsError) as caught:
        plan_stack("dev", settings, in_use_tags={1001}, existing_tags={"web": 1001})
    assert "Sector 'web' exists with tag 1001" in str(caught.value)
    assert "set tag: 1001 or remove it" in str(caught.value)


def test_a_wide_egress_target_holding_a_special_range_is_accepted(raw_stack: dict):
    raw_stack["sectors"][1]["egress"] = {"default": "deny", "allow": ["192.0.0.0/2"]}
    settings = parse_settings(raw_stack)
    assert [str(c) for c in settings.sectors[1].egress.allow] == ["192.0.0.0/2"]


def test_dhcp_defaults_and_reservations(raw_stack: dict):
    raw_stack["sectors"][0]["hosts"] += [
        {"name": "app3"},
        {"name": "app4", "address": "172.16.1.150", "mac": "BC:24:11:5A:00:04"},
    ]
    raw_stack["sectors"][0]["dhcp"] = {"range": ["172.16.1.100", "172.16.1.199"]}
    plan = plan_stack("dev", parse_settings(raw_stack))
    web, lab = plan.sectors
    assert web.dns.dhcp is not None and lab.dns.dhcp is not None
    # a reservation may sit inside the pool; the pool is in the second subnet
    assert (web.dns.dhcp.pool_text, str(web.dns.dhcp.pool_subnet.cidr)) == (
        "172.16.1.100-172.16.1.199",
        "172.16.1.0/24",
    )
    assert web.dns.dhcp.lease_time_s == 3600
    assert [(h.name, h.dynamic, h.leases, h.mac) for h in web.hosts[2:]] == [
        ("app3", True, True, None),
        ("app4", False, True, "bc:24:11:5a:00:04"),
    ]
    assert [h.name for h in web.fixed_hosts] == ["app1", "app2", "app4"]
    assert lab.dns.dhcp.pool_text == "172.16.0.128-172.16.0.254"


def test_dhcp_off_and_lease_time_units(raw_stack: dict):
    raw_stack["sectors"][0]["dhcp"] = {"lease_time": "7d"}
    raw_stack["sectors"][1]["dhcp"] = {"enabled": False}
    web, lab = plan_stack("dev", parse_settings(raw_stack)).sectors
    assert web.dns.dhcp is not None and web.dns.dhcp.lease_time_s == 604800
    assert lab.dns.dhcp is None


def test_forwarders_in_the_sector_itself_are_reachable(raw_stack: dict):
    raw_stack["sectors"][0]["dns"] = {"forwarders": ["172.16.1.53"]}
    assert parse_settings(raw_stack).sectors[0].dns.forwarders[0].format() == "172.16.1.53"


# --- every message has a row --------------------------------------------------------------

SOURCES = [Path(m.__file__) for m in (settings_module, checks_module, model_module)]


def message_sites(path: Path) -> dict[int, str]:
    """Lines of ``path`` that raise a ValueError or yield a message: one per rule."""
    sites = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            if getattr(node.exc.func, "id", None) == "ValueError":
                sites[node.lineno] = ast.get_source_segment(path.read_text(), node) or ""
        elif isinstance(node, ast.Yield) and isinstance(node.value, ast.JoinedStr | ast.Constant):
            sites[node.lineno] = ast.get_source_segment(path.read_text(), node) or ""
    return sites


def executed_lines(work: Callable[[], None], paths: list[Path]) -> set[tuple[str, int]]:
    """(file, line) of every line of ``paths`` that ``work`` executed."""
    wanted = {str(path) for path in paths}
    seen: set[tuple[str, int]] = set()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename not in wanted:
            return None
        if event == "line":
            seen.add((frame.f_code.co_filename, frame.f_lineno))
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        work()
    finally:
        sys.settrace(previous)
    return seen


def test_every_validation_message_has_a_row() -> None:
    """Each ``raise ValueError`` and each yielded message in settings.py, checks.py and model.py is
    reached by at least one bad-input row above."""

    def run_every_row() -> None:
        for _, mutate, _ in CASES:
            raw = copy.deepcopy(VALID_STACK)
            mutate(raw)
            with contextlib.suppress(SettingsError):
                parse_settings(raw)

    executed = executed_lines(run_every_row, SOURCES)
    missing = [
        f"{path.name}:{line}: {text.splitlines()[0]}"
        for path in SOURCES
        for line, text in sorted(message_sites(path).items())
        if (str(path), line) not in executed
    ]
    assert sum(len(message_sites(path)) for path in SOURCES) > 40
    assert missing == [], "messages no row reaches:\n" + "\n".join(missing)


def test_the_docs_annotated_configuration_is_a_valid_stack():
    """The annotated stack configuration (docs/configuration.md) is itself valid (DHCP too)."""
    page = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    section = page.split("# Stack configuration", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    # the host key there is a placeholder ("AAAA..."); any well-formed key stands in for it
    text = block.group(1).replace("AAAA...", "AAAAC3NzaC1lZDI1NTE5")
    settings = settings_from_config(yaml.safe_load(text)["config"])
    web = plan_stack("docs", settings).sector("web")
    assert web.dns.dhcp is not None and web.dns.dhcp.pool_text == "172.16.1.100-172.16.1.199"
    assert web.dns.dhcp.lease_time_s == 3600
    assert [(h.name, h.dynamic, h.leases) for h in web.hosts] == [
        ("app1", False, False),
        ("app2", False, True),
        ("app3", True, True),
        ("cam", True, True),
    ]


def test_a_reserved_address_in_the_pool_may_be_a_backend_or_target(raw_stack: dict) -> None:
    web = raw_stack["sectors"][0]
    web["hosts"].append({"name": "app3", "address": "172.16.0.150", "mac": "bc:24:11:5a:00:03"})
    web["dhcp"] = {"range": ["172.16.0.128", "172.16.0.254"]}  # over app3's reservation
    web["load_balancer"]["listeners"][0]["backends"] = ["172.16.0.150:80", "app3:81"]
    web["port_forwards"] = [{"port": 2222, "to": "172.16.0.150:22"}]
    plan = plan_stack("dev", parse_settings(raw_stack))
    assert plan.sectors[0].dns.dhcp.pool_text == "172.16.0.128-172.16.0.254"
    backends = plan.sectors[0].load_balancer.listeners[0].backends
    assert [str(backend.address) for backend in backends] == ["172.16.0.150", "172.16.0.150"]
