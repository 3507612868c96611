"""DHCP clients in the twin, and what a Sector DHCP server keeps on disk.

Every host that leases its address (declared without one, or with a ``mac`` reserving it)
runs busybox ``udhcpc`` in its namespace, as a VM joining with ``ip=dhcp`` does: it sends its
name (option 12), asks for the interface MTU (option 26), and its event script applies the
lease as a Linux client does — address, default route, MTU, resolver — and records what
the server sent in ``lease.env`` in the host's run directory::

    udhcpc -f -i eth0 -s DIR/dhcp-client.sh -x hostname:app3 -O mtu -t 20 -T 1 -A 1

``SIGUSR1`` renews the lease, ``SIGUSR2`` releases it (the client then waits for a renew).
The server (dnsmasq, in the Sector DNS appliance) writes its leases to its state directory,
which lives in the appliance root (:func:`leases_on_disk` reads it).
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from netaddr import IPAddress

from orbitlab.rendering import LEASE_FILE
from orbitlab_lab.twin import TwinError, system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.topology import HostTwin, SectorTwin

CLIENT = "udhcpc"
LEASE_TIMEOUT_S = 20
#: dnsmasq pings an address before it first gives it (for up to 3 s) and serves no other
#: client meanwhile: new clients of one Sector get their leases one after another.
PING_WAIT_S = 3
#: What the event script records, in this order (udhcpc's environment variables).
RECORDED = ("ip", "mask", "router", "dns", "domain", "mtu", "serverid", "lease")


def client_script(record: Path) -> str:
    """The udhcpc event script: apply the lease, record what came with it.

    >>> "ip addr replace" in client_script(Path("/r/lease.env"))
    True
    """
    fields = "\n".join(f'\techo "{key}=${{{key}:-}}"' for key in RECORDED)
    return f"""#!/bin/sh
# udhcpc event script of an OrbitLab twin host: applies a lease as a Linux DHCP client
# does (address, default route, MTU, resolver) and records what the server sent.
RECORD={record}
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set dev "$interface" up
	;;
bound | renew)
	[ "$1" = renew ] || ip -4 addr flush dev "$interface"
	ip addr replace "$ip/$mask" dev "$interface"
	[ -z "${{mtu:-}}" ] || ip link set dev "$interface" mtu "$mtu"
	[ -z "${{router:-}}" ] || ip route replace default via "${{router%% *}}" dev "$interface"
	[ -z "${{dns:-}}" ] || printf 'search %s\\nnameserver %s\\n' "${{domain:-}}" "${{dns%% *}}" \\
		> /etc/resolv.conf
	;;
esac
{{
	echo "event=$1"
{fields}
}} > "$RECORD.new"
mv -f "$RECORD.new" "$RECORD"
"""


@dataclass(frozen=True)
class Lease:
    """What a client last recorded: its event and the lease's values, as the server sent
    them (``stamp``: when it was recorded, in ns)."""

    event: str
    values: dict[str, str]
    stamp: int

    @property
    def bound(self) -> bool:
        return self.event in ("bound", "renew") and bool(self.values.get("ip"))

    @property
    def ip(self) -> IPAddress | None:
        return IPAddress(self.values["ip"]) if self.bound else None

    def get(self, key: str) -> str:
        return self.values.get(key, "")


def parse_record(text: str, stamp: int = 0) -> Lease:
    """A ``lease.env`` record.

    >>> lease = parse_record("event=bound\\nip=10.0.0.5\\nmtu=1450\\n")
    >>> lease.bound, str(lease.ip), lease.get("mtu"), lease.get("router")
    (True, '10.0.0.5', '1450', '')
    """
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return Lease(values.pop("event", ""), values, stamp)


def record_path(twin: TwinContext, host: HostTwin) -> Path:
    """Where the host's DHCP client records its lease (its run directory)."""
    return twin.run_dir(host.ns.name) / "lease.env"


def read_lease(twin: TwinContext, host: HostTwin) -> Lease | None:
    """The host's last recorded lease event, or None before its first."""
    path = record_path(twin, host)
    try:
        return parse_record(path.read_text(), path.stat().st_mtime_ns)
    except OSError:
        return None


def client_argv(script: Path, hostname: str) -> list[str]:
    """udhcpc in the foreground on eth0, sending ``hostname``, asking for the MTU, retrying
    every second.

    >>> " ".join(client_argv(Path("/r/c.sh"), "app3"))
    'udhcpc -f -i eth0 -s /r/c.sh -x hostname:app3 -O mtu -t 20 -T 1 -A 1'
    """
    retry = ["-t", "20", "-T", "1", "-A", "1"]
    return [
        CLIENT,
        "-f",
        "-i",
        "eth0",
        "-s",
        str(script),
        "-x",
        f"hostname:{hostname}",
        "-O",
        "mtu",
        *retry,
    ]


def start_client(twin: TwinContext, host: HostTwin, hostname: str | None = None) -> None:
    """Start the host's DHCP client, sending its own name or ``hostname``."""
    ns = host.ns.name
    script = twin.ns_dir(ns) / "dhcp-client.sh"
    script.write_text(client_script(record_path(twin, host)))
    script.chmod(0o755)
    twin.start(ns, client_argv(script, hostname or host.name), CLIENT)


def stop_client(twin: TwinContext, host: HostTwin) -> None:
    """Stop the client without releasing (as a VM that is switched off)."""
    system.stop_processes(twin.forget(host.ns.name, CLIENT))
    twin.save()


def _signal(twin: TwinContext, host: HostTwin, sig: signal.Signals) -> None:
    procs = [p for p in twin.state.processes_in(host.ns.name) if p.what == CLIENT and p.alive()]
    if not procs:
        raise TwinError(f"{host.ns.label}: its DHCP client is not running")
    for proc in procs:
        os.kill(proc.pid, sig)


def release(twin: TwinContext, host: HostTwin) -> None:
    """Release the lease (udhcpc sends DHCPRELEASE, then waits for :func:`renew`)."""
    _signal(twin, host, signal.SIGUSR2)


def renew(twin: TwinContext, host: HostTwin) -> None:
    """Renew the lease (or ask for a new one after a release)."""
    _signal(twin, host, signal.SIGUSR1)


def wait_bound(
    twin: TwinContext, host: HostTwin, after: int = 0, timeout: float = LEASE_TIMEOUT_S
) -> Lease:
    """The host's lease once it is bound, recorded later than ``after`` (a stamp)."""

    def fresh() -> bool:
        lease = read_lease(twin, host)
        return lease is not None and lease.bound and lease.stamp > after

    system.wait_until(f"{host.ns.label} to lease an address (DHCP)", fresh, timeout)
    lease = read_lease(twin, host)
    assert lease is not None
    return lease


def unbound(twin: TwinContext, sector: SectorTwin, present: set[str]) -> list[HostTwin]:
    """The Sector's DHCP clients (those with a namespace) that still have no lease after
    the time a bring-up gives them: a client started moments ago (a container the engine
    just created, a host just joined) is given that time."""
    waiting = [host for host in sector.dhcp_clients if host.ns.name in present]
    deadline = time.monotonic() + lease_budget(sector)
    while waiting and time.monotonic() < deadline:
        waiting = [host for host in waiting if not _bound(twin, host)]
        time.sleep(0.2)
    return [host for host in waiting if not _bound(twin, host)]


def _bound(twin: TwinContext, host: HostTwin) -> bool:
    lease = read_lease(twin, host)
    return lease is not None and lease.bound


def lease_budget(sector: SectorTwin) -> float:
    """How long the Sector's clients may take to lease, all starting at once: the usual
    timeout plus a ping for every client that takes its address from the pool.

    >>> from orbitlab.stack import load_plan
    >>> from orbitlab_lab.twin.topology import build_topology
    >>> lease_budget(build_topology(load_plan("stacks/Pulumi.example.yaml")).sector("web"))
    23.5
    """
    new = sum(1 for host in sector.dhcp_clients if host.address is None)
    return LEASE_TIMEOUT_S + (PING_WAIT_S + 0.5) * new


def live_mac(twin: TwinContext, host: HostTwin) -> str:
    """The MAC of the host's eth0 as it is (declared, or the one the kernel gave it)."""
    out = system.run(["ip", "-n", host.ns.name, "-o", "link", "show", "eth0"]).stdout
    found = re.search(r"link/ether (\S+)", out)
    if found is None:
        raise TwinError(f"{host.ns.label}: eth0 has no MAC: {out.strip()}")
    return found.group(1)


def live_mtu(twin: TwinContext, host: HostTwin) -> int:
    """The MTU of the host's eth0 as it is (the lease's, once applied)."""
    out = system.run(["ip", "-n", host.ns.name, "-o", "link", "show", "eth0"]).stdout
    found = re.search(r" mtu (\d+)", out)
    return int(found.group(1)) if found else 0


@dataclass(frozen=True)
class DiskLease:
    """A lease in dnsmasq's lease file: expiry (epoch s), MAC, address, name (``*``: none)."""

    expires: int
    mac: str
    ip: IPAddress
    name: str


def parse_leases(text: str) -> list[DiskLease]:
    """dnsmasq's lease file.

    >>> parse_leases("1700000000 bc:24:11:00:00:01 10.0.0.5 app3 01:bc:24:11:00:00:01\\n")
    [DiskLease(expires=1700000000, mac='bc:24:11:00:00:01', ip=IPAddress('10.0.0.5'), name='app3')]
    """
    leases = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0].isdigit():
            leases.append(DiskLease(int(fields[0]), fields[1], IPAddress(fields[2]), fields[3]))
    return leases


def lease_file(twin: TwinContext, sector: SectorTwin) -> Path:
    """The Sector DHCP's lease file: in the DNS appliance's root, where its state lives."""
    return twin.root_dir(sector.dns.name) / LEASE_FILE.lstrip("/")


def leases_on_disk(twin: TwinContext, sector: SectorTwin) -> list[DiskLease]:
    """The leases the Sector DHCP has written to disk (none before its first)."""
    path = lease_file(twin, sector)
    return parse_leases(path.read_text()) if path.exists() else []
