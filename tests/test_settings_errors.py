"""Bad input fails before anything is declared, naming the field, the value and what is allowed.

Each row: a change to a valid stack, and the exact pieces its message must contain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orbitlab.errors import SettingsError
from orbitlab.plan import plan_stack
from orbitlab.stack import parse_settings, settings_from_config

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


def test_forwarders_in_the_sector_itself_are_reachable(raw_stack: dict):
    raw_stack["sectors"][0]["dns"] = {"forwarders": ["172.16.1.53"]}
    assert parse_settings(raw_stack).sectors[0].dns.forwarders[0].format() == "172.16.1.53"
