"""Generated stack configs for tests that need more than the example stack.

>>> config = featured_stack(30)
>>> len(config["orbitlab:sectors"]), config["orbitlab:sectors"][3]["tag"]
(30, 4004)
"""

from __future__ import annotations

from typing import Any

#: A checksum of the right shape (`pveam available` lists the real one).
TEMPLATE_CHECKSUM = "sha512:" + "0f" * 64


def featured_sector(index: int) -> dict[str, Any]:
    """A Sector using every feature: several subnets, hosts static, reserved and dynamic, a
    DHCP range and lease time, a domain and forwarders, a load balancer with TCP, HTTP and
    PROXY-protocol listeners and health checks, TCP and UDP port forwards, and an egress
    policy (deny by default on every other Sector); every fourth has an explicit tag."""
    octet = index % 200
    sector: dict[str, Any] = {
        "name": f"team-{index:02d}",
        "subnets": [f"10.{octet}.0.0/24", f"10.{octet}.1.0/24", f"10.{octet}.2.0/26"],
        "node": ("pve1", "pve2", "pve3")[index % 3],
        "hosts": [
            {"name": "web", "address": f"10.{octet}.0.21"},
            {"name": "api", "address": f"10.{octet}.1.22", "mac": f"bc:24:11:{index:02x}:01:22"},
            {"name": "db", "address": f"10.{octet}.2.30", "mac": f"bc:24:11:{index:02x}:02:30"},
            {"name": "laptop"},
            {"name": "cam", "mac": f"bc:24:11:{index:02x}:00:99"},
        ],
        "dns": {"domain": f"team{index}.home.arpa", "forwarders": ["192.0.2.53"]},
        "dhcp": {"range": [f"10.{octet}.0.100", f"10.{octet}.0.199"], "lease_time": "30m"},
        "load_balancer": {
            "listeners": [
                {"port": 443, "backends": ["web:8443", "api:8443"], "proxy_protocol": True},
                {
                    "port": 80,
                    "mode": "http",
                    "backends": ["web:8080"],
                    "health_check": {"path": "/healthz", "interval_s": 10},
                },
            ]
        },
        "port_forwards": [
            {"port": 2222, "to": "web:22"},
            {"port": 5353, "to": "db:5353", "protocol": "udp"},
        ],
        "egress": (
            {"default": "deny", "allow": ["203.0.113.0/24"], "deny": ["203.0.113.20/32"]}
            if index % 2
            else {"default": "allow", "deny": ["192.168.0.0/16"]}
        ),
    }
    if index % 4 == 3:
        sector["tag"] = 4001 + index
    return sector


def featured_stack(sectors: int = 30) -> dict[str, Any]:
    """Three nodes (pinned host keys, a storage NIC), a Backplane of its own CIDR, ASN and
    primary exit node, protected networks, appliances with a verified template, their own
    resolvers and a package mirror, and ``sectors`` featured Sectors."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrbitLabTestKeyOnlyForTestsAAAAAAAAAAAA"
    return {
        "orbitlab:backplane": {
            "cidr": "10.220.0.0/16",
            "asn": 65010,
            "nodes": [
                {"name": "pve1", "address": "192.0.2.11", "host_key": key},
                {"name": "pve2", "address": "192.0.2.12", "mtu": 9000, "host_key": key},
                {
                    "name": "pve3",
                    "address": "192.0.2.13",
                    "host_key": key,
                    "other_addresses": ["198.51.100.13"],
                },
            ],
            "primary_exit_node": "pve2",
            "protected_networks": ["192.0.2.192/26"],
        },
        "orbitlab:appliances": {
            "template_checksum": TEMPLATE_CHECKSUM,
            "nameservers": ["192.0.2.53"],
            "package_mirror": "http://192.0.2.80/alpine",
            "memory_mib": 160,
            "disk_gib": 2,
        },
        "orbitlab:sectors": [featured_sector(index) for index in range(sectors)],
    }
