"""What the twin's checks are made of: probes, their outcomes and packet counters.

A probe runs :mod:`orbitlab_lab.twin.probe` inside a namespace and names what happened
(``ok``, ``refused``, ``rejected by <address>``, ``timeout``, ...). A :class:`MarkedProbe`
sends packets carrying a random payload marker and counts them where they would arrive, so
a check can tell "never arrived" from "arrived" whatever NAT did on the way::

    >>> outcome_of({"result": "rejected", "body": "", "by": "172.16.0.1"})
    'rejected by 172.16.0.1'
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from netaddr import IPAddress

from orbitlab_lab.twin import TwinError, system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.topology import Namespace, SectorTwin

PROBE_TIMEOUT_S = 2.0


REJECT_RETRY_S = 1.5


REJECT_WAIT_S = 1.0


SPOOF_PROBES = 3


COUNT_TABLE = "olt_count"


MARKER_BYTES = 8
#: Where the payload starts, in bits from the transport header (hping3 sends no options).


PAYLOAD_OFFSET = {"udp": 64, "tcp": 160}


def probe(
    twin: TwinContext,
    ns: Namespace,
    protocol: str,
    address: object,
    port: int,
    timeout: float = PROBE_TIMEOUT_S,
) -> dict[str, str]:
    """Run :mod:`orbitlab_lab.twin.probe` in ``ns``; ``{"result": ..., "body": ...}``."""
    target = [protocol, str(address), str(port), "--timeout", str(timeout)]
    argv = twin.python(ns.name, "orbitlab_lab.twin.probe", *target)
    result = system.run(argv, check=False, timeout=timeout + 10)
    try:
        return json.loads(result.stdout)
    except ValueError:
        return {"result": "error", "body": result.stderr.strip()[-80:]}


def shown(found: dict[str, str]) -> str:
    return found["body"] if found["result"] == "ok" else found["result"]


def source_of(sector: SectorTwin) -> tuple[Namespace, IPAddress]:
    """Where a Sector's traffic starts: its first host with a fixed address, or its DNS if
    it declares none."""
    for host in sector.fixed_hosts:
        if host.address is not None:
            return host.ns, host.address
    return sector.dns, sector.plan.dns.sector_address


def gateway_of(sector: SectorTwin, address: IPAddress) -> IPAddress:
    """The Sector Gateway's address in the subnet of ``address``: where its rejects come from."""
    return next(s.gateway for s in sector.plan.subnets if address in s.cidr)


def outcome_of(found: dict[str, str]) -> str:
    """How a probe ended, a rejection named with the address it came from."""
    if found["result"] == "rejected":
        return f"rejected by {found.get('by', '?')}"
    return shown(found)


# --- checks ---------------------------------------------------------------------------


def retry_rejected(attempt: Callable[[], str]) -> str:
    """Run ``attempt`` (returning an outcome) again after a pause if it timed out: the
    probe that waits while the machine is busy may miss its reject (the twin's appliances do
    not rate-limit their ICMP: :data:`~orbitlab_lab.twin.network.EVERY_ICMP`)."""
    outcome = attempt()
    if outcome in ("timeout", "timed out"):
        time.sleep(REJECT_RETRY_S)
        outcome = attempt()
    return outcome


def egress_allowed(sector: SectorTwin, address: IPAddress) -> bool:
    egress = sector.plan.gateway.egress
    if any(address in cidr for cidr in egress.deny):
        return False
    return egress.default == "allow" or any(address in cidr for cidr in egress.allow)


def dns_allowed(twin: TwinContext, sector: SectorTwin, address: IPAddress, port: int) -> bool:
    """The Sector DNS follows the policy; under deny by default it also reaches the package
    mirror (a deny still wins)."""
    if egress_allowed(sector, address):
        return True
    mirror = twin.topology.external.mirror
    denied = any(address in cidr for cidr in sector.plan.gateway.egress.deny)
    return mirror == (address, port) and sector.plan.gateway.egress.default == "deny" and not denied


def count_output(twin: TwinContext, ns: Namespace, match: str) -> Callable[[], int]:
    """Count packets ``ns`` itself sends that match; return a function that reads the count
    and stops counting."""
    chain = ["inet", COUNT_TABLE, "out"]
    setup = (
        f"add table inet {COUNT_TABLE}\n"
        f"add chain inet {COUNT_TABLE} out {{ type filter hook output priority -300; }}\n"
    )
    twin.run(ns.name, ["nft", "-f", "-"], stdin=setup)
    added = twin.run(
        ns.name, ["nft", "--echo", "--handle", "add", "rule", *chain, *match.split(), "counter"]
    ).stdout
    handle = re.search(r"# handle (\d+)", added)
    if handle is None:
        raise TwinError(f"{ns.label}: nft did not report the counter's handle: {added}")

    def read() -> int:
        listing = twin.run(ns.name, ["nft", "-a", "list", "chain", *chain]).stdout
        counted = re.search(
            rf"counter packets (\d+) bytes \d+ # handle {handle.group(1)}\b", listing
        )
        twin.run(ns.name, ["nft", "delete", "rule", *chain, "handle", handle.group(1)])
        return int(counted.group(1)) if counted else 0

    return read


@dataclass(frozen=True)
class MarkedProbe:
    """Packets carrying a random payload marker, counted where they would arrive (in the
    receiver's namespace, before anything else sees them): NAT keeps a payload intact."""

    protocol: str
    address: object
    port: int
    marker: bytes
    #: A TCP MSS option to send (the header grows by 4 bytes).
    mss: int | None = None

    @classmethod
    def new(cls, protocol: str, address: object, port: int, mss: int | None = None) -> MarkedProbe:
        return cls(protocol, address, port, secrets.token_bytes(MARKER_BYTES), mss)

    @property
    def match(self) -> str:
        offset = PAYLOAD_OFFSET[self.protocol] + (32 if self.mss else 0)
        return (
            f"{self.protocol} dport {self.port} "
            f"@th,{offset},{MARKER_BYTES * 8} 0x{self.marker.hex()}"
        )

    def count_in(self, twin: TwinContext, ns: Namespace, also: str = "") -> Callable[[], int]:
        """Start counting in ``ns``; return a function that reads the count and stops it."""
        setup = (
            f"add table inet {COUNT_TABLE}\n"
            f"add chain inet {COUNT_TABLE} pre {{ type filter hook prerouting priority -300; }}\n"
        )
        twin.run(ns.name, ["nft", "-f", "-"], stdin=setup)
        chain = ["inet", COUNT_TABLE, "pre"]
        match = [*self.match.split(), *also.split()]
        add = ["nft", "--echo", "--handle", "add", "rule", *chain, *match, "counter"]
        added = twin.run(ns.name, add).stdout
        found = re.search(r"# handle (\d+)", added)
        if found is None:
            raise TwinError(f"{ns.label}: nft did not report the counter's handle: {added}")
        handle = found.group(1)

        def read() -> int:
            listing = twin.run(ns.name, ["nft", "-a", "list", "chain", *chain]).stdout
            counted = re.search(rf"counter packets (\d+) bytes \d+ # handle {handle}\b", listing)
            twin.run(ns.name, ["nft", "delete", "rule", *chain, "handle", handle])
            return int(counted.group(1)) if counted else 0

        return read

    def send(
        self,
        twin: TwinContext,
        ns: Namespace,
        spoof: object | None = None,
        flags: tuple[str, ...] = ("-S",),
    ) -> None:
        """``SPOOF_PROBES`` TCP segments (SYN, or ``flags``) or UDP datagrams with the
        marker, from ``spoof`` if given."""
        marker = twin.run_dir(ns.name) / f"marker-{self.marker.hex()}"
        marker.write_bytes(self.marker)
        argv = ["hping3", "-q", "-c", str(SPOOF_PROBES), "-i", "u20000"]
        argv += ["-2"] if self.protocol == "udp" else list(flags)
        argv += ["-d", str(MARKER_BYTES), "-E", str(marker)]
        if self.mss:
            argv += ["--tcp-mss", str(self.mss)]
        if spoof is not None:
            argv += ["-a", str(spoof)]
        try:
            twin.run(ns.name, [*argv, "-p", str(self.port), str(self.address)], check=False)
        finally:
            marker.unlink(missing_ok=True)
