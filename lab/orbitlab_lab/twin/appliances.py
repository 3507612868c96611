"""Appliances in the twin: materialized roots, private mount namespaces, real daemons.

Each appliance's files come from its provisioning script, run as ``sh provision.sh --root
DIR`` (the files part only; no command runs on the host). A *holder* process keeps the
namespace's mount and UTS namespaces alive: in it ``DIR/etc`` is overlaid on ``/etc``, so
the absolute paths in the rendered configs hold (``/etc/frr/frr.conf``,
``/etc/coredns/db.web.internal``), and ``/etc/resolv.conf`` is private. The directories a
bundle keeps state in (the DHCP leases, ``/var/lib/misc``) are bound writable from the
appliance root, so the state lives there and survives a daemon restart. Daemons start
inside the holder's namespaces::

    gateway  forwarding off; sysctl -p /etc/sysctl.d/90-orbitlab.conf; nft -f
             /etc/nftables.nft; forwarding on (as orbitlab-forwarding does, once the ruleset
             is loaded); zebra + staticd (frr user, state dir of their own); vtysh -b
    dns      coredns -conf /etc/coredns/Corefile; dnsmasq -k -C /etc/dnsmasq.conf (DHCP)
    lb       sysctl -p ...; sh /etc/local.d/orbitlab-routes.start; nft -f /etc/nftables.nft;
             haproxy -D -f ...
    host     python -m orbitlab_lab.twin.echo (answers '<name> <peer>' on its service ports);
             udhcpc when it leases its address (see :mod:`orbitlab_lab.twin.dhcp`)
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from orbitlab.rendering import DNSMASQ_CONF, provisioning_script, sector_bundles
from orbitlab.roles import GATEWAY, ROLES
from orbitlab_lab.twin import TwinError, system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.system import FRR_DIR
from orbitlab_lab.twin.topology import HostTwin, Namespace, SectorTwin

FRR_DAEMONS = GATEWAY.daemons
APPLIANCE_DAEMONS = {each.name: each.daemons for each in ROLES}
GATEWAY_SYSCTL = "/etc/sysctl.d/90-orbitlab.conf"
LB_ROUTES = "/etc/local.d/orbitlab-routes.start"


def materialize(twin: TwinContext, sector: SectorTwin) -> int:
    """Write each appliance's root directory by running its provisioning script with
    ``--root``; return how many files the bundles hold."""
    files = 0
    bundles = sector_bundles(twin.topology.plan, sector.plan)
    for role, ns in sector.appliances().items():
        bundle = bundles[role]
        script = twin.ns_dir(ns.name) / "provision.sh"
        script.write_text(provisioning_script(bundle))
        root = twin.root_dir(ns.name)
        system.run(["sh", str(script), "--root", str(root)])
        missing = [
            spec.path for spec in bundle.files if not (root / spec.path.lstrip("/")).is_file()
        ]
        if missing:
            raise TwinError(f"{ns.label}: the provisioning script did not write {missing}")
        files += len(bundle.files)
    return files


def state_dirs(twin: TwinContext, sector: SectorTwin) -> dict[str, tuple[str, ...]]:
    """Each appliance namespace of a Sector and the state directories of its bundle."""
    bundles = sector_bundles(twin.topology.plan, sector.plan)
    return {ns.name: bundles[role].directories for role, ns in sector.appliances().items()}


def holder_script(
    ns: Namespace, root: Path | None, resolv: Path | None, writable: tuple[str, ...] = ()
) -> str:
    """The shell run by a holder: hostname, read-only overlays of the appliance root's top
    directories, its state directories bound writable, private resolv.conf, then sleep.

    >>> print(holder_script(Namespace("olt-x.inet", "x", "internet"), None, None))
    set -e
    hostname internet
    echo ready
    exec sleep infinity
    """
    lines = ["set -e", f"hostname {shlex.quote(ns.hostname)}"]
    if root is not None:
        for top in sorted(p.name for p in root.iterdir() if p.is_dir()):
            lower = f"{root / top}:/{top}"
            lines.append(f"mount -t overlay olt-{top} -o lowerdir={shlex.quote(lower)} /{top}")
        for path in writable:
            lines.append(f"mount --bind {shlex.quote(str(root) + path)} {shlex.quote(path)}")
    if resolv is not None:
        lines.append(f"mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf")
    lines += ["echo ready", "exec sleep infinity"]
    return "\n".join(lines)


def start_holders(
    twin: TwinContext, namespaces: list[Namespace], roots: dict[str, tuple[str, ...]]
) -> None:
    """Start one holder per namespace (all at once), wait until each has mounted its view.
    ``roots``: the appliance namespaces (their root overlaid) and their state directories."""
    scripts = []
    for ns in namespaces:
        directory = twin.ns_dir(ns.name)
        resolv = None
        if ns.resolver is not None:
            resolv = directory / "resolv.conf"
            resolv.write_text(f"nameserver {ns.resolver}\n")
        root = twin.root_dir(ns.name) if ns.name in roots else None
        scripts.append((ns, holder_script(ns, root, resolv, roots.get(ns.name, ()))))
    spawn_holders(twin, scripts)
    twin.save()


def spawn_holders(twin: TwinContext, scripts: list[tuple[Namespace, str]]) -> None:
    """Run each holder script in its network namespace with mount and UTS namespaces of its
    own; wait until each says ``ready``; record them in the state (not saved)."""
    started: list[tuple[Namespace, subprocess.Popen[bytes]]] = []
    for ns, script in scripts:
        argv = [*system.in_netns(ns.name, ["unshare", "--mount", "--uts"]), "sh", "-c", script]
        with (twin.run_dir(ns.name) / "holder.log").open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        started.append((ns, process))
    for ns, process in started:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        process.stdout.close()
        if line != b"ready":
            log = (twin.run_dir(ns.name) / "holder.log").read_text().strip()
            raise TwinError(f"{ns.label}: could not set up its mount namespace: {log}")
        twin.state.holders[ns.name] = system.record(process.pid, ns.name, "holder")


def frr_daemon_argv(daemon: str, state_dir: Path) -> list[str]:
    """An FRR daemon with its own pid file, zserv socket and vty directory; no config file
    (vtysh -b loads frr.conf), no vty TCP port.

    >>> " ".join(frr_daemon_argv("staticd", Path("/s")))
    '/usr/lib/frr/staticd -d -f /dev/null -i /s/staticd.pid -z /s/zserv.api --vty_socket /s -P 0'
    """
    files = ["-f", "/dev/null", "-i", str(state_dir / f"{daemon}.pid")]
    sockets = ["-z", str(state_dir / "zserv.api"), "--vty_socket", str(state_dir), "-P", "0"]
    return [str(FRR_DIR / daemon), "-d", *files, *sockets]


def start_gateway(twin: TwinContext, sector: SectorTwin) -> None:
    """Apply the gateway's sysctls and nftables, turn forwarding on once the ruleset is
    loaded (the appliance's orbitlab-forwarding service), start zebra + staticd, load
    frr.conf."""
    ns = sector.gateway.name
    state_dir = twin.run_dir(ns) / "frr"
    state_dir.mkdir(exist_ok=True)
    shutil.chown(state_dir, "frr", "frr")
    twin.run(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
    twin.run(ns, ["sysctl", "-q", "-p", GATEWAY_SYSCTL])
    twin.run(ns, ["nft", "-f", "/etc/nftables.nft"])
    twin.run(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    for daemon in FRR_DAEMONS:
        pidfile = state_dir / f"{daemon}.pid"
        pidfile.unlink(missing_ok=True)
        twin.run(ns, frr_daemon_argv(daemon, state_dir))
        twin.adopt(system.read_pidfile(pidfile), ns, daemon)
    for daemon in FRR_DAEMONS:
        socket = state_dir / f"{daemon}.vty"
        system.wait_until(f"{sector.gateway.label}: {daemon}'s vty", socket.exists, 10)
    twin.run(ns, ["vtysh", "--vty_socket", str(state_dir), "--config_dir", "/etc/frr", "-b"])


def vtysh(twin: TwinContext, sector: SectorTwin, command: str) -> str:
    """Ask the gateway's FRR (e.g. ``show ip route``)."""
    state_dir = twin.run_dir(sector.gateway.name) / "frr"
    argv = ["vtysh", "--vty_socket", str(state_dir), "-c", command]
    return twin.run(sector.gateway.name, argv).stdout


def gateway_routed(twin: TwinContext, sector: SectorTwin) -> bool:
    """True once FRR has put the gateway's addresses and default route in the kernel."""
    ns = sector.gateway.name
    routes = system.run(["ip", "-n", ns, "route", "show", "default"], check=False).stdout
    addresses = system.run(["ip", "-n", ns, "-4", "addr", "show", "dev", "eth0"], check=False)
    wanted = [f"{s.gateway_interface} " for s in sector.plan.subnets]
    has_all = all(w in addresses.stdout for w in wanted)
    return f"via {twin.topology.plan.backplane.gateway}" in routes and has_all


def stop_gateway(twin: TwinContext, sector: SectorTwin) -> None:
    """Stop the gateway as a dead container is: its daemons gone and its links down (its
    rules are left as they are: with its links down nothing passes anyway)."""
    ns = sector.gateway.name
    system.stop_processes(twin.forget(ns))
    twin.save()
    system.ip_batch(ns, ["link set eth0 down", "link set eth1 down"])


def restart_gateway(twin: TwinContext, sector: SectorTwin) -> None:
    """Bring a stopped gateway back: links up, then the same start as at bring-up."""
    system.ip_batch(sector.gateway.name, ["link set eth0 up", "link set eth1 up"])
    start_gateway(twin, sector)
    twin.save()
    system.wait_until(f"{sector.gateway.label} routes", lambda: gateway_routed(twin, sector), 10)


def dnsmasq_argv(pidfile: Path) -> list[str]:
    """dnsmasq on the rendered config, in the foreground, logging every DHCP exchange.

    >>> " ".join(dnsmasq_argv(Path("/r/dnsmasq.pid"))[:4])
    'dnsmasq --keep-in-foreground --conf-file=/etc/dnsmasq.conf --pid-file=/r/dnsmasq.pid'
    """
    config = [f"--conf-file={DNSMASQ_CONF}", f"--pid-file={pidfile}"]
    return ["dnsmasq", "--keep-in-foreground", *config, "--log-facility=-", "--log-dhcp"]


def start_dns(twin: TwinContext, sector: SectorTwin) -> None:
    """CoreDNS and, unless the Sector's DHCP is off, dnsmasq."""
    ns = sector.dns.name
    pidfile = twin.run_dir(ns) / "coredns.pid"
    argv = ["coredns", "-conf", "/etc/coredns/Corefile", "-pidfile", str(pidfile)]
    twin.start(ns, argv, "coredns")
    if sector.plan.dns.dhcp is not None:
        twin.start(ns, dnsmasq_argv(twin.run_dir(ns) / "dnsmasq.pid"), "dnsmasq")


def restart_dns(twin: TwinContext, sector: SectorTwin) -> None:
    """Restart the DNS appliance's daemons as a container restart would; its state
    directory (the leases) stays."""
    system.stop_processes(twin.forget(sector.dns.name))
    twin.save()
    start_dns(twin, sector)
    twin.save()
    system.wait_until(f"{sector.dns.label} to answer again", lambda: dns_answers(twin, sector), 10)
    system.wait_until(f"{sector.dns.label} to serve DHCP", lambda: dhcp_serves(twin, sector), 10)


def dhcp_serves(twin: TwinContext, sector: SectorTwin) -> bool:
    """True once dnsmasq listens on the DHCP port (or the Sector has no DHCP)."""
    if sector.plan.dns.dhcp is None:
        return True
    argv = ["ss", "-H", "-u", "-l", "-n", "sport = :67"]
    return bool(twin.run(sector.dns.name, argv, check=False).stdout.strip())


def dns_answers(twin: TwinContext, sector: SectorTwin) -> bool:
    """True once the Sector DNS answers its own name."""
    plan = sector.plan
    argv = [
        "dig",
        "+short",
        "+time=1",
        "+tries=1",
        f"@{plan.dns.sector_address}",
        f"dns.{plan.domain}",
    ]
    result = twin.run(sector.dns.name, argv, check=False)
    return result.stdout.strip() == str(plan.dns.sector_address)


def start_lb(twin: TwinContext, sector: SectorTwin) -> None:
    if sector.lb is None:
        return
    ns = sector.lb.name
    pidfile = twin.run_dir(ns) / "haproxy.pid"
    twin.run(ns, ["sysctl", "-q", "-p", GATEWAY_SYSCTL])
    twin.run(ns, ["sh", LB_ROUTES])
    twin.run(ns, ["nft", "-f", "/etc/nftables.nft"])
    twin.run(ns, ["haproxy", "-D", "-f", "/etc/haproxy/haproxy.cfg", "-p", str(pidfile)])
    twin.adopt(system.read_pidfile(pidfile), ns, "haproxy")


def echo_argv(name: str, tcp: tuple[int, ...], udp: tuple[int, ...], ready: Path) -> list[str]:
    """Arguments of :mod:`orbitlab_lab.twin.echo`.

    >>> echo_argv("app1", (22, 8080), (), Path("/r"))
    ['--name', 'app1', '--tcp', '22,8080', '--udp', '', '--ready', '/r']
    """
    ports = ["--tcp", ",".join(map(str, tcp)), "--udp", ",".join(map(str, udp))]
    return ["--name", name, *ports, "--ready", str(ready)]


def start_echo(
    twin: TwinContext, ns: str, name: str, tcp: tuple[int, ...], udp: tuple[int, ...] = ()
) -> Path:
    """Start the echo service in a namespace; return the file it writes once listening."""
    ready = twin.run_dir(ns) / "echo.ready"
    argv = twin.python(ns, "orbitlab_lab.twin.echo", *echo_argv(name, tcp, udp, ready))
    twin.adopt(system.spawn(argv, twin.run_dir(ns) / "echo.log").pid, ns, "echo")
    return ready


def start_host(twin: TwinContext, host: HostTwin) -> Path:
    """A declared host runs the echo service on its LB-backend and port-forward ports."""
    return start_echo(twin, host.ns.name, host.name, host.tcp_ports, host.udp_ports)


def _children(pid: int) -> list[int]:
    try:
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except OSError:
        return []


def _rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
    )


def daemon_rss_kib(twin: TwinContext, ns: str) -> dict[str, int]:
    """Resident memory (KiB) of each recorded daemon of a namespace and its children (e.g.
    dnsmasq's lease-script helper), from /proc."""
    found: dict[str, int] = {}
    for proc in twin.state.processes_in(ns):
        if not proc.alive():
            continue
        total = sum(_rss_kib(pid) for pid in (proc.pid, *_children(proc.pid)))
        found[proc.what] = found.get(proc.what, 0) + total
    return found
