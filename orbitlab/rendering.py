"""Rendering: appliance configs from jinja2 templates, and the provisioning bundle.

Every appliance gets a :class:`Bundle` — files (path, mode, content) plus the commands that
install, enable and reload its services, in the shape of cloud-init's ``write_files`` and
``runcmd``. :func:`provisioning_script` turns a bundle into one POSIX ``sh`` script. Output
is deterministic to the byte: same plan, same files, same script.

>>> from orbitlab.stack import load_plan
>>> plan = load_plan("stacks/Pulumi.example.yaml")
>>> bundles = sector_bundles(plan, plan.sector("web"))
>>> sorted(bundles), bundles["gateway"].file("/etc/frr/frr.conf").mode
(['dns', 'gateway', 'lb'], 420)
>>> [service.name for service in bundles["dns"].services]
['coredns', 'dnsmasq']
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2
from netaddr import IPAddress, IPNetwork

from orbitlab.model import Endpoint
from orbitlab.plan import BackplanePlan, DhcpPlan, HostPlan, MirrorPlan, SectorPlan, StackPlan
from orbitlab.roles import DNS, GATEWAY, LOAD_BALANCER, ROLE_NAMES, ROLES, RoleName, roles_of

SYSCTL_FILE = "/etc/sysctl.d/90-orbitlab.conf"
FORWARDING_OFF_FILE = "/etc/sysctl.d/89-orbitlab-forwarding.conf"

#: The Sector DHCP server's files and state (leases and the names from them) in the DNS
#: appliance. The state directory survives a restart; provisioning never writes into it.
DNSMASQ_CONF = "/etc/dnsmasq.conf"
DHCP_SCRIPT = "/etc/orbitlab/dhcp-names.sh"
LEASE_DIR = "/var/lib/misc"
LEASE_FILE = f"{LEASE_DIR}/dnsmasq.leases"
DHCP_HOSTS = f"{LEASE_DIR}/orbitlab-dhcp.hosts"


@dataclass(frozen=True)
class DnsLimits:
    """CoreDNS's bounds on a 128 MiB appliance: queries forwarded at once (CoreDNS's
    ``forward`` puts each at about 2 kB; past the bound a query is answered REFUSED at
    once, instead of taking memory), and the cache's capacity for answers and for denials
    (its default is 9984 each)."""

    forward_max_concurrent: int = 500
    cache_success: int = 4096
    cache_denial: int = 1024


DNS_LIMITS = DnsLimits()


@dataclass(frozen=True)
class GatewayLimits:
    """The Sector Gateway's bound on the connections one Sector host holds through it: the
    node's connection tracking is shared by every Sector and the node itself, so a flood
    from one host (SYNs to an address that never answers stay tracked for 120 s) must not
    fill it; past the bound, the host's new connections are dropped until old ones end."""

    connections_per_host: int = 4096


GATEWAY_LIMITS = GatewayLimits()

#: How long a name from a lease is cached, and how often CoreDNS re-reads DHCP_HOSTS.
DHCP_NAME_TTL_S = 30
DHCP_HOSTS_RELOAD = "1s"


@dataclass(frozen=True)
class FileSpec:
    """One file of a bundle, at its absolute path inside the appliance."""

    path: str
    content: str
    mode: int = 0o644

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"bundle paths are absolute and plain, got {self.path!r}")
        if not self.content.endswith("\n"):
            raise ValueError(f"{self.path}: content must end with a newline")


@dataclass(frozen=True)
class Service:
    """A service the bundle manages: reloaded when one of its files changed, or not running.

    ``check`` validates the new config before it is applied; ``reload`` applies it to the
    running service without a restart where the daemon allows.
    """

    name: str
    files: tuple[str, ...]
    reload: str
    check: str | None = None


@dataclass(frozen=True)
class Bundle:
    """What provisions one appliance: files, packages, services and extra commands."""

    role: RoleName
    hostname: str
    sector: str
    tag: int
    files: tuple[FileSpec, ...]
    packages: tuple[str, ...]
    services: tuple[Service, ...]
    #: Run before the services are (re)started or reloaded.
    commands: tuple[str, ...] = field(default=())
    #: Replaces the distribution's CDN in the package repositories (``http://<ip>/alpine``).
    package_mirror: str | None = None
    #: Directories the appliance keeps state in (DHCP leases): created, never written.
    directories: tuple[str, ...] = field(default=())

    def file(self, path: str) -> FileSpec:
        for spec in self.files:
            if spec.path == path:
                return spec
        raise KeyError(path)


@dataclass(frozen=True)
class OsProfile:
    """Paths and package commands of the appliance OS (Alpine: OpenRC, apk)."""

    nftables_path: str
    frr_dir: str
    packages: dict[str, tuple[str, ...]]
    mirror_host: str
    prepare: tuple[str, ...]
    installed: str
    install: str
    enable: str
    enable_at_boot: str
    is_running: str
    start: str


ALPINE = OsProfile(
    nftables_path="/etc/nftables.nft",
    frr_dir="/etc/frr",
    # each role's packages (the registry's), and dnsmasq for a Sector DNS that serves DHCP
    packages={**{role.name: role.packages for role in ROLES}, "dhcp": ("dnsmasq",)},
    mirror_host="dl-cdn.alpinelinux.org",
    prepare=(
        # frr and coredns live in Alpine's community repository; enable it if the template
        # lists only main.
        # (read first, then appended: never read and write the file in one command)
        "grep -q '/community$' /etc/apk/repositories || "
        "{ community=$(sed -n 's#/main$#/community#p' /etc/apk/repositories); "
        '[ -z "$community" ] || printf \'%s\\n\' "$community" >> /etc/apk/repositories; }',
        "apk update --quiet",
    ),
    installed="apk info -e",
    install="apk add --quiet --no-progress",
    enable="[ -e /etc/runlevels/default/{service} ] || rc-update add {service} default",
    enable_at_boot="[ -e /etc/runlevels/boot/{service} ] || rc-update add {service} boot",
    is_running="rc-service {service} status",
    start="rc-service {service} start",
)
OS_PROFILES = {"alpine": ALPINE}


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("orbitlab", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_template(name: str, **context: object) -> str:
    return _environment().get_template(name).render(**context)


@dataclass(frozen=True)
class Record:
    owner: str
    type: str
    data: str


@dataclass(frozen=True)
class Zone:
    name: str
    path: str
    records: tuple[Record, ...]

    @property
    def serial(self) -> int:
        """Changes whenever the records change (CoreDNS reloads a zone on a new serial)."""
        digest = hashlib.sha256(repr(self.records).encode()).hexdigest()
        return int(digest[:8], 16) % 2_000_000_000 + 1


def reverse_zone(subnet: IPNetwork) -> str:
    """The octet-aligned in-addr.arpa zone covering a subnet (``172.16.0.0/24`` → ``0.16.172``)."""
    octets = str(subnet.network).split(".")[: max(1, subnet.prefixlen // 8)]
    return ".".join(reversed(octets)) + ".in-addr.arpa"


def _reverse_zones(subnets: Iterable[IPNetwork]) -> list[str]:
    zones = sorted({reverse_zone(subnet) for subnet in subnets}, key=lambda z: (len(z), z))
    kept: list[str] = []
    for zone in zones:
        if not any(zone.endswith("." + outer) for outer in kept):
            kept.append(zone)
    return sorted(kept)


def sector_names(sector: SectorPlan) -> list[tuple[str, IPAddress]]:
    """Every name the Sector DNS answers from its zones: appliances first, then the declared
    hosts with a fixed address (a dynamic host's name comes with its lease)."""
    names = [(each.name, sector.appliance(each.name).sector_address) for each in roles_of(sector)]
    names.extend((host.name, host.address) for host in sector.fixed_hosts if host.address)
    return names


def dns_zones(sector: SectorPlan) -> list[Zone]:
    """The forward zone of the Sector's domain and the reverse zones of its subnets."""
    names = sector_names(sector)
    forward = Zone(
        name=sector.domain,
        path=f"/etc/coredns/db.{sector.domain}",
        records=tuple(Record(name, "A", str(address)) for name, address in names),
    )
    reverse = []
    for zone_name in _reverse_zones(subnet.cidr for subnet in sector.subnets):
        records = []
        for name, address in sorted(names, key=lambda item: int(item[1])):
            ptr = address.reverse_dns
            if ptr.endswith(zone_name + "."):
                records.append(Record(ptr, "PTR", f"{name}.{sector.domain}."))
        reverse.append(Zone(zone_name, f"/etc/coredns/db.{zone_name}", tuple(records)))
    return [forward, *reverse]


def _backend_name(endpoint: Endpoint) -> str:
    host = endpoint.host or str(endpoint.address).replace(".", "-")
    return f"{host}-{endpoint.port}"


NFT_TABLE_LOADED = "nft list table inet orbitlab >/dev/null 2>&1"
FORWARDING_SERVICE = "orbitlab-forwarding"


def nftables_service(path: str, flush_conntrack: bool) -> Service:
    """nftables, checked before it is applied. With ``flush_conntrack``, a reload drops the
    connection tracking table, so every flow is checked against the new rules: a tightened
    policy or a removed port forward cuts the flows it no longer allows."""
    reload = "rc-service nftables reload"
    if flush_conntrack:
        reload += " && conntrack -F 2>/dev/null"
    return Service("nftables", (path,), reload=reload, check=f"nft -c -f {path}")


def gateway_bundle(
    backplane: BackplanePlan,
    sector: SectorPlan,
    os: OsProfile,
    mirror: MirrorPlan | None = None,
) -> Bundle:
    nft = os.nftables_path
    frr_conf = f"{os.frr_dir}/frr.conf"
    forwarding = f"/etc/init.d/{FORWARDING_SERVICE}"
    ruleset = render_template(
        "nftables.nft.j2", sector=sector, backplane=backplane, mirror=mirror, limits=GATEWAY_LIMITS
    )
    return Bundle(
        role=GATEWAY.name,
        hostname=sector.gateway.hostname,
        sector=sector.name,
        tag=sector.tag,
        files=(
            FileSpec(f"{os.frr_dir}/daemons", render_template("frr-daemons.j2")),
            FileSpec(frr_conf, render_template("frr.conf.j2", sector=sector, backplane=backplane)),
            FileSpec(nft, ruleset, 0o755),
            FileSpec(SYSCTL_FILE, render_template("gateway-sysctl.conf.j2")),
            FileSpec(FORWARDING_OFF_FILE, render_template("forwarding-off.conf.j2")),
            FileSpec(forwarding, render_template("forwarding.initd.j2"), 0o755),
        ),
        packages=os.packages[GATEWAY.name],
        services=(
            nftables_service(nft, flush_conntrack=True),
            # on once the ruleset is loaded (its start checks), restarted with it
            Service(
                FORWARDING_SERVICE,
                (forwarding, nft),
                reload=f"rc-service {FORWARDING_SERVICE} restart",
            ),
            Service(
                "frr",
                (frr_conf, f"{os.frr_dir}/daemons"),
                # frr-reload.py (frr-pythontools) applies a diff; without it, restart.
                reload="if [ -x /usr/lib/frr/frr-reload.py ] && command -v python3 >/dev/null; "
                "then rc-service frr reload; else rc-service frr restart; fi",
                check=f"vtysh -C -f {frr_conf}",
            ),
        ),
        commands=(
            os.enable_at_boot.format(service="sysctl"),
            f"sysctl -q -p {SYSCTL_FILE}",
            # no ruleset loaded yet (a first run, or one that failed): forwarding stays off
            f"{NFT_TABLE_LOADED} || sysctl -q -w net.ipv4.ip_forward=0",
        ),
        package_mirror=mirror.url if mirror else None,
    )


#: Names no lease ever publishes: clients look them up to find a proxy (WPAD) or an IPv6
#: tunnel router (ISATAP), or expect them to be this machine.
NEVER_PUBLISHED = ("localhost", "wpad", "isatap")


def protected_names(sector: SectorPlan) -> list[str]:
    """Names no lease may publish: the appliances', those of :data:`NEVER_PUBLISHED`, and
    the fixed declared hosts'.

    >>> from orbitlab.stack import load_plan
    >>> protected_names(load_plan("stacks/Pulumi.example.yaml").sector("web"))
    ['gateway', 'dns', 'lb', 'localhost', 'wpad', 'isatap', 'app1', 'app2']
    """
    return [*ROLE_NAMES, *NEVER_PUBLISHED, *(host.name for host in sector.fixed_hosts)]


def dhcp_files(sector: SectorPlan, dhcp: DhcpPlan) -> tuple[FileSpec, ...]:
    """dnsmasq's configuration and the lease script that turns leases into names."""
    reservations = [host for host in sector.hosts if host.mac is not None]
    bound: list[HostPlan] = [host for host in reservations if host.address is None]
    config = render_template(
        "dnsmasq.conf.j2",
        sector=sector,
        dhcp=dhcp,
        reservations=reservations,
        lease_file=LEASE_FILE,
        script_path=DHCP_SCRIPT,
    )
    script = render_template(
        "dhcp-names.sh.j2",
        sector=sector,
        hosts_file=DHCP_HOSTS,
        protected=protected_names(sector),
        bound=bound,
    )
    return FileSpec(DNSMASQ_CONF, config), FileSpec(DHCP_SCRIPT, script, 0o755)


def retire_service(os: OsProfile, service: str) -> str:
    """A command that stops and disables a service if it is installed (e.g. DHCP turned off).

    >>> retire_service(ALPINE, "dnsmasq")  # doctest: +NORMALIZE_WHITESPACE
    'if [ -e /etc/init.d/dnsmasq ]; then if rc-service dnsmasq status >/dev/null 2>&1; then
     rc-service dnsmasq stop; fi; [ ! -e /etc/runlevels/default/dnsmasq ] ||
     rc-update del dnsmasq default; fi'
    """
    running = os.is_running.format(service=service)
    return (
        f"if [ -e /etc/init.d/{service} ]; then if {running} >/dev/null 2>&1; then "
        f"rc-service {service} stop; fi; [ ! -e /etc/runlevels/default/{service} ] || "
        f"rc-update del {service} default; fi"
    )


def coredns_files(sector: SectorPlan) -> tuple[tuple[FileSpec, ...], Service]:
    """CoreDNS's Corefile and zones (reading the names of leases when DHCP is on)."""
    zones = dns_zones(sector)
    corefile = render_template(
        "Corefile.j2",
        sector=sector,
        zones=zones,
        forwarders=" ".join(str(a) for a in sector.dns.forwarders) or "/etc/resolv.conf",
        hosts_file=DHCP_HOSTS if sector.dns.dhcp else None,
        hosts_ttl=DHCP_NAME_TTL_S,
        hosts_reload=DHCP_HOSTS_RELOAD,
        limits=DNS_LIMITS,
    )
    zone_files = tuple(
        FileSpec(zone.path, render_template("zone.j2", sector=sector, zone=zone)) for zone in zones
    )
    files = (FileSpec("/etc/coredns/Corefile", corefile), *zone_files)
    service = Service(
        "coredns", tuple(spec.path for spec in files), reload="rc-service coredns restart"
    )
    return files, service


def dnsmasq_service(files: tuple[FileSpec, ...]) -> Service:
    """dnsmasq, checked before it (re)starts; it reads its ranges only when it starts, and
    its leases stay on disk across a restart."""
    return Service(
        "dnsmasq",
        tuple(spec.path for spec in files),
        reload="rc-service dnsmasq restart",
        check=f"dnsmasq --test -C {DNSMASQ_CONF}",
    )


def dns_bundle(sector: SectorPlan, os: OsProfile) -> Bundle:
    """CoreDNS (the Sector's names, forwarding) and, unless DHCP is off, dnsmasq (DHCP);
    with DHCP off, a dnsmasq left from before is stopped."""
    files, coredns = coredns_files(sector)
    dhcp = dhcp_files(sector, sector.dns.dhcp) if sector.dns.dhcp else ()
    return Bundle(
        role=DNS.name,
        hostname=sector.dns.hostname,
        sector=sector.name,
        tag=sector.tag,
        files=(*files, *dhcp, FileSpec(SYSCTL_FILE, render_template("dns-sysctl.conf.j2"))),
        packages=(*os.packages[DNS.name], *(os.packages["dhcp"] if dhcp else ())),
        services=(coredns, dnsmasq_service(dhcp)) if dhcp else (coredns,),
        commands=(
            os.enable_at_boot.format(service="sysctl"),
            f"sysctl -q -p {SYSCTL_FILE}",
            *(() if dhcp else (retire_service(os, "dnsmasq"),)),
        ),
        directories=(LEASE_DIR,) if dhcp else (),
    )


def lb_bundle(sector: SectorPlan, os: OsProfile, mirror: MirrorPlan | None = None) -> Bundle:
    lb = sector.load_balancer
    if lb is None:
        raise ValueError(f"Sector {sector.name!r} declares no load balancer")
    config = "/etc/haproxy/haproxy.cfg"
    nft = os.nftables_path
    return Bundle(
        role=LOAD_BALANCER.name,
        hostname=lb.hostname,
        sector=sector.name,
        tag=sector.tag,
        files=(
            FileSpec(
                config,
                render_template("haproxy.cfg.j2", sector=sector, lb=lb, backend_name=_backend_name),
            ),
            FileSpec(nft, render_template("lb-nftables.nft.j2", sector=sector, lb=lb), 0o755),
            FileSpec(SYSCTL_FILE, render_template("lb-sysctl.conf.j2")),
            FileSpec(
                "/etc/local.d/orbitlab-routes.start",
                render_template("lb-routes.start.j2", sector=sector, lb=lb),
                0o755,
            ),
        ),
        packages=os.packages[LOAD_BALANCER.name],
        services=(
            # the ruleset is in place before HAProxy starts (services run in this order)
            nftables_service(nft, flush_conntrack=False),
            Service(
                "haproxy",
                (config,),
                reload="rc-service haproxy reload",
                check=f"haproxy -c -q -f {config}",
            ),
        ),
        commands=(
            os.enable_at_boot.format(service="sysctl"),
            f"sysctl -q -p {SYSCTL_FILE}",
            os.enable.format(service="local"),
            "/etc/local.d/orbitlab-routes.start",
        ),
        package_mirror=mirror.url if mirror else None,
    )


def sector_bundles(plan: StackPlan, sector: SectorPlan) -> dict[str, Bundle]:
    """The bundles of a Sector's appliances (:func:`orbitlab.roles.roles_of`), in the
    registry's order: ``gateway``, ``dns`` and, if declared, ``lb``."""
    os = OS_PROFILES[plan.appliances.os]
    mirror = plan.package_mirror
    builders: dict[RoleName, Callable[[], Bundle]] = {
        GATEWAY.name: lambda: gateway_bundle(plan.backplane, sector, os, mirror),
        DNS.name: lambda: dataclasses.replace(
            dns_bundle(sector, os), package_mirror=mirror.url if mirror else None
        ),
        LOAD_BALANCER.name: lambda: lb_bundle(sector, os, mirror),
    }
    return {role.name: builders[role.name]() for role in roles_of(sector)}


# --- the Sector guard, on the nodes (see orbitlab.components.guard) ----------------------

GUARD_DIR = "/etc/orbitlab/guard"
#: Loads every guard at boot, before the guests start (a reboot would otherwise drop them).
GUARD_UNIT = "orbitlab-guard.service"
GUARD_UNIT_PATH = f"/etc/systemd/system/{GUARD_UNIT}"
#: Where a DHCP request's chaddr starts, in bits from the UDP header: 8 bytes of UDP, then
#: op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr (28 bytes).
CHADDR_OFFSET_BITS = (8 + 28) * 8


@dataclass(frozen=True)
class GuardedMac:
    """A declared host's NIC, which only that NIC may name in a DHCP request."""

    name: str
    mac: str

    @property
    def mac_hex(self) -> str:
        return "0x" + self.mac.replace(":", "").lower()


def guard_table(sector: SectorPlan) -> str:
    """The nftables table of the Sector's guard (in the ``bridge`` family)."""
    return f"orbitlab_guard_{sector.vnet_id}"


def guard_path(sector: SectorPlan) -> str:
    """Where the guard's ruleset lives on a node."""
    return f"{GUARD_DIR}/{sector.vnet_id}.nft"


def guarded_macs(sector: SectorPlan) -> list[GuardedMac]:
    """The declared hosts' MACs (reserved addresses and names bound to a NIC)."""
    return [GuardedMac(h.name, h.mac.lower()) for h in sector.hosts if h.mac is not None]


def guard_ruleset(sector: SectorPlan) -> str:
    """The guard's ruleset for the Sector's VNet (the same on every node)."""
    return render_template(
        "sector-guard.nft.j2",
        sector=sector,
        vnet=sector.vnet_id,
        table=guard_table(sector),
        dhcp=sector.dns.dhcp is not None,
        dns_mac=sector.dns.mac,
        reserved=guarded_macs(sector),
        chaddr_offset=CHADDR_OFFSET_BITS,
    )


def _heredoc_marker(content: str) -> str:
    return "ORBITLAB_EOF_" + hashlib.sha256(content.encode()).hexdigest()[:16]


def provisioning_script(bundle: Bundle, os: OsProfile = ALPINE) -> str:
    """The bundle as one POSIX ``sh`` script (see ``templates/provision.sh.j2`` for usage)."""
    files = [(spec, _heredoc_marker(spec.content), f"{spec.mode:o}") for spec in bundle.files]
    return render_template("provision.sh.j2", bundle=bundle, files=files, os=os)


def script_digest(script: str) -> str:
    """The script's SHA-256: a trigger, so a changed config re-runs provisioning."""
    return hashlib.sha256(script.encode()).hexdigest()


def write_rendered_tree(plan: StackPlan, out: Path) -> list[Path]:
    """Write every appliance's files under ``out/<sector>/<role>/<path>`` and its script
    as ``out/<sector>/provision-<role>.sh``, and the Sector guard every node loads under
    ``out/<sector>/node/<path>``; return the paths written."""
    written = []
    for sector in plan.sectors:
        for role, bundle in sector_bundles(plan, sector).items():
            root = out / sector.name / role
            for spec in bundle.files:
                target = root / spec.path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(spec.content)
                target.chmod(spec.mode)
                written.append(target)
            script = out / sector.name / f"provision-{role}.sh"
            script.write_text(provisioning_script(bundle, OS_PROFILES[plan.appliances.os]))
            script.chmod(0o755)
            written.append(script)
        ruleset = out / sector.name / "node" / guard_path(sector).lstrip("/")
        ruleset.parent.mkdir(parents=True, exist_ok=True)
        ruleset.write_text(guard_ruleset(sector))
        written.append(ruleset)
    return written
