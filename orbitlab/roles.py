"""The role registry: what each appliance role of a Sector is, said once.

A Sector runs one LXC per role: the Sector Gateway, the Sector DNS and, when the Sector
declares one, the Sector Load Balancer. Everything that depends on the role alone (its
VMID digit, its addresses' offsets, its hostname, packages, daemons and templates, which
Sectors have it) is a field of its :class:`Role`; allocation, settings, the plan,
rendering, the components, the views and the twin read the registry instead of listing
the roles themselves. The registry is ordered: the gateway first (the others install
their packages through it), then the DNS, then the load balancer.

This module imports no other orbitlab module, so every layer may read it.

>>> [role.name for role in ROLES]
['gateway', 'dns', 'lb']
>>> GATEWAY.hostname(1001), GATEWAY.vmid(1001)
('olvn1001-router', 10011)
>>> role("lb").backplane_offset, role("dns").backplane_offset is None
(1, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

#: The name of a role, as the plan, the bundles and the components key their appliances.
RoleName = Literal["gateway", "dns", "lb"]


class DeclaresAppliances(Protocol):
    """A Sector, as settings or as a plan: what :meth:`Role.present_in` reads of it."""

    @property
    def load_balancer(self) -> object | None: ...


@dataclass(frozen=True)
class Role:
    """One appliance role: the facts every Sector's appliance of this role shares.

    >>> DNS.title, DNS.vmid(4242), DNS.packages
    ('Sector DNS', 42422, ('coredns',))
    """

    #: Its key, and the name the Sector DNS answers for its appliance (``gateway.<domain>``).
    name: RoleName
    #: What the docs and the container descriptions call it.
    title: str
    #: What it runs, as the container description names it.
    software: str
    #: The appliance's hostname is ``olvn<tag>-<hostname_suffix>``.
    hostname_suffix: str
    #: The last digit of its VMID (tag 1001 → 1001<digit>) and its MAC's role nibble.
    vmid_suffix: int
    #: Its address in the Sector's first subnet: network + this offset.
    sector_offset: int
    #: Its Backplane address: the Sector's Backplane pair + this offset; None: no leg there.
    backplane_offset: int | None
    #: The Alpine packages it installs (DHCP adds dnsmasq to the DNS, see rendering).
    packages: tuple[str, ...]
    #: The daemons it runs (what the twin starts in its namespace).
    daemons: tuple[str, ...]
    #: The jinja2 templates (``orbitlab/templates``) its bundle is rendered from.
    templates: tuple[str, ...]
    #: Short name for interface and namespace names (at most two characters).
    short: str
    #: The Sector setting that brings the role; None: every Sector has it.
    declared_by: Literal["load_balancer"] | None = None

    def hostname(self, tag: int) -> str:
        """The appliance's hostname in the Sector of ``tag``."""
        return f"olvn{tag}-{self.hostname_suffix}"

    def vmid(self, tag: int) -> int:
        """The appliance's VMID: the tag followed by the role's digit."""
        return tag * 10 + self.vmid_suffix

    def present_in(self, sector: DeclaresAppliances) -> bool:
        """True when ``sector`` (its settings or its plan) has an appliance of this role."""
        return self.declared_by is None or getattr(sector, self.declared_by) is not None

    @property
    def on_backplane(self) -> bool:
        """True when the appliance has a leg (a NIC and an address) on the Backplane."""
        return self.backplane_offset is not None


GATEWAY = Role(
    name="gateway",
    title="Sector Gateway",
    software="FRR, nftables",
    hostname_suffix="router",
    vmid_suffix=1,
    sector_offset=1,
    backplane_offset=0,
    packages=("frr", "nftables", "iproute2", "conntrack-tools"),
    daemons=("zebra", "staticd"),
    templates=(
        "frr-daemons.j2",
        "frr.conf.j2",
        "nftables.nft.j2",
        "gateway-sysctl.conf.j2",
        "forwarding-off.conf.j2",
        "forwarding.initd.j2",
    ),
    short="gw",
)
DNS = Role(
    name="dns",
    title="Sector DNS",
    software="CoreDNS",
    hostname_suffix="dns",
    vmid_suffix=2,
    sector_offset=2,
    backplane_offset=None,
    packages=("coredns",),
    daemons=("coredns",),
    templates=(
        "Corefile.j2",
        "zone.j2",
        "dnsmasq.conf.j2",
        "dhcp-names.sh.j2",
        "dns-sysctl.conf.j2",
    ),
    short="dn",
)
LOAD_BALANCER = Role(
    name="lb",
    title="Sector Load Balancer",
    software="HAProxy",
    hostname_suffix="lb",
    vmid_suffix=3,
    sector_offset=3,
    backplane_offset=1,
    packages=("haproxy", "nftables", "iproute2"),
    daemons=("haproxy",),
    templates=(
        "haproxy.cfg.j2",
        "lb-nftables.nft.j2",
        "lb-sysctl.conf.j2",
        "lb-routes.start.j2",
    ),
    short="lb",
    declared_by="load_balancer",
)


def _registry(*roles: Role) -> tuple[Role, ...]:
    """The roles in order, refusing two that share a name, a digit or an address."""
    for what in ("name", "vmid_suffix", "sector_offset", "short", "hostname_suffix"):
        values = [getattr(each, what) for each in roles]
        if len(set(values)) != len(values):
            raise ValueError(f"two roles share a {what}: {values}")
    offsets = [each.backplane_offset for each in roles if each.on_backplane]
    if len(set(offsets)) != len(offsets):
        raise ValueError(f"two roles share a Backplane offset: {offsets}")
    return roles


#: Every role, in provisioning order: each is registered here once.
ROLES: tuple[Role, ...] = _registry(GATEWAY, DNS, LOAD_BALANCER)
#: The role names, in order.
ROLE_NAMES: tuple[RoleName, ...] = tuple(each.name for each in ROLES)
#: The roles with a leg on the Backplane, in order.
BACKPLANE_ROLES: tuple[Role, ...] = tuple(each for each in ROLES if each.on_backplane)


def role(name: str) -> Role:
    """The role called ``name``; KeyError names the roles there are.

    >>> role("dns").hostname(1002)
    'olvn1002-dns'
    """
    for each in ROLES:
        if each.name == name:
            return each
    raise KeyError(f"no appliance role {name!r}; roles: {', '.join(ROLE_NAMES)}")


def roles_of(sector: DeclaresAppliances) -> tuple[Role, ...]:
    """The roles a Sector (its settings or its plan) has appliances for, in order.

    >>> from types import SimpleNamespace
    >>> [each.name for each in roles_of(SimpleNamespace(load_balancer=None))]
    ['gateway', 'dns']
    """
    return tuple(each for each in ROLES if each.present_in(sector))


def backplane_stride() -> int:
    """How many Backplane addresses each Sector tag takes: one per role with a leg there."""
    return len(BACKPLANE_ROLES)
