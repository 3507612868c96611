"""The appliance OS's commands inside a twin container: small stand-ins for OpenRC and apk.

A container of the emulated cluster runs its provisioning script in full (``pct exec``):
the script calls Alpine's ``apk``, ``rc-update`` and ``rc-service``, which this machine
(Debian) does not have. Each container gets these stand-ins, first on its PATH (laid over
``/usr/local/sbin`` inside the container only), mapped to the twin's real daemons:

- ``apk``: installs nothing. A package whose program is on this machine (``frr``: vtysh,
  ``coredns``, ``dnsmasq``, ...) is reported installed (``apk info -e``) and "added"; any
  other package is not there, and ``apk add`` fails as apk does;
- ``rc-update add|del SERVICE [RUNLEVEL]``: a file ``/etc/runlevels/RUNLEVEL/SERVICE`` in
  the container's own ``/etc``;
- ``rc-service SERVICE start|stop|restart|reload|status``: ``nftables`` loads
  ``/etc/nftables.nft`` (stop: flushes it); ``frr`` starts zebra and staticd and loads
  ``/etc/frr/frr.conf`` with ``vtysh -b`` (reload: a restart, as the appliance does without
  frr-reload.py); ``coredns``, ``dnsmasq`` and ``haproxy`` run on their files in
  ``/etc`` (haproxy reloads with ``-sf``); ``sysctl`` applies the container's own
  ``/etc/sysctl.d`` files, ``local`` runs ``/etc/local.d/*.start``; any other service with
  an init script (``orbitlab-forwarding``) runs that script's ``start``/``stop``, as
  ``openrc-run`` does. A service is started when OpenRC would say so: its mark in
  ``/run/openrc/started`` (the container's own ``/run``) and, for a daemon, its process;
- ``openrc RUNLEVEL``: starts the services of a runlevel, in the order their dependencies
  give (what a container does when it starts);
- ``sysctl``: the real one, but only for ``net.ipv4.*`` and ``net.ipv6.*`` (the container's
  namespace); any other key is the whole machine's and is refused.

Daemons run the way the plan-built twin runs them (same arguments, pid files and logs in
the twin's run directory of the container), so ``twin test`` finds them there::

    >>> scripts = standin_scripts(Path("/run/t/ns/c/run"), Path("/run/t/ns/c/root"))
    >>> sorted(scripts)
    ['apk', 'openrc', 'rc-service', 'rc-update', 'sysctl']
    >>> "RUN=/run/t/ns/c/run" in scripts["rc-service"]
    True
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from orbitlab_lab.twin.appliances import FRR_DAEMONS, dnsmasq_argv, frr_daemon_argv

#: What the provisioning script sets; the stand-ins come first (in /usr/local/sbin).
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Alpine packages the appliances install, and the program that shows one is here.
PACKAGES = {
    "frr": "vtysh",
    "nftables": "nft",
    "iproute2": "ip",
    "conntrack-tools": "conntrack",
    "coredns": "coredns",
    "dnsmasq": "dnsmasq",
    "haproxy": "haproxy",
}
#: The services the stand-in knows, in the order OpenRC's dependencies start them:
#: orbitlab-forwarding needs nftables and comes before frr; local runs last.
BOOT_ORDER = (
    "sysctl",
    "nftables",
    "orbitlab-forwarding",
    "frr",
    "coredns",
    "dnsmasq",
    "haproxy",
    "local",
)
DAEMONS = ("frr", "coredns", "dnsmasq", "haproxy")
ONESHOTS = ("nftables", "sysctl", "local")
#: The processes of each daemon service, by their pid files in the container's run dir.
PIDFILES = {
    "zebra": "frr/zebra.pid",
    "staticd": "frr/staticd.pid",
    "coredns": "coredns.pid",
    "dnsmasq": "dnsmasq.pid",
    "haproxy": "haproxy.pid",
}

APK = r"""#!/bin/sh
# apk of an OrbitLab twin container (a stand-in): the twin installs no package. A package
# whose program is on this machine is reported installed; any other one does not exist.
program() {
	case $1 in
__PACKAGES__
	*) return 1 ;;
	esac
}
here() { name=$(program "$1") && command -v "$name" > /dev/null 2>&1; }
action=${1:-}
[ $# -gt 0 ] && shift
missing=""
for pkg in "$@"; do
	case $pkg in -*) continue ;; esac
	here "$pkg" || missing="$missing $pkg"
done
case $action in
info) [ -z "$missing" ] ;;
add)
	if [ -n "$missing" ]; then
		echo "ERROR: unable to select packages:" >&2
		for pkg in $missing; do
			echo "  $pkg (no such package: the OrbitLab twin installs none)" >&2
		done
		exit 1
	fi
	;;
update | upgrade | del | cache | fix) ;;
*)
	echo "apk (OrbitLab twin stand-in): '$action' is not emulated" >&2
	exit 1
	;;
esac
"""

RC_UPDATE = r"""#!/bin/sh
# rc-update of an OrbitLab twin container (a stand-in): a service in a runlevel is the file
# /etc/runlevels/RUNLEVEL/SERVICE in the container's own /etc.
set -u
say() { echo " * $*" >&2; }
known() {
	case $1 in __KNOWN__) return 0 ;; esac
	[ -f "/etc/init.d/$1" ]
}
usage() {
	echo "usage: rc-update add|del SERVICE [RUNLEVEL] | show" >&2
	exit 1
}
action=${1:-show}
case $action in
add)
	[ $# -ge 2 ] || usage
	svc=$2
	level=${3:-default}
	known "$svc" || { say "rc-update: service \`$svc' does not exist"; exit 1; }
	mkdir -p "/etc/runlevels/$level"
	if [ -e "/etc/runlevels/$level/$svc" ]; then
		say "rc-update: $svc already installed in runlevel \`$level'; skipping"
		exit 0
	fi
	echo "$svc (OrbitLab twin: rc-update stand-in)" > "/etc/runlevels/$level/$svc"
	say "service $svc added to runlevel $level"
	;;
del | delete)
	[ $# -ge 2 ] || usage
	svc=$2
	level=${3:-default}
	if [ ! -e "/etc/runlevels/$level/$svc" ]; then
		say "rc-update: service \`$svc' is not in the runlevel \`$level'"
		exit 1
	fi
	rm -f "/etc/runlevels/$level/$svc"
	say "service $svc removed from runlevel $level"
	;;
show)
	for entry in /etc/runlevels/*/*; do
		[ -e "$entry" ] || continue
		level=${entry%/*}
		echo "${entry##*/} | ${level##*/}"
	done
	;;
*) usage ;;
esac
"""

RC_SERVICE = r"""#!/bin/sh
# rc-service of an OrbitLab twin container (a stand-in for OpenRC's): the appliance's
# services mapped to the twin's real daemons, run in this container's namespaces. Pid files
# and logs are in the container's run directory on the twin.
set -u
RUN=__RUN__
OWN=__ROOT__
FRR=$RUN/frr
STARTED=/run/openrc/started

say() { echo " * $*" >&2; }
usage() {
	echo "usage: rc-service SERVICE start|stop|restart|reload|status" >&2
	exit 1
}

# alive PIDFILE NAME: the pid file names a running NAME
alive() {
	[ -s "$1" ] || return 1
	pid=$(cat "$1")
	[ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$2"
}

# halt PIDFILE NAME: stop the NAME the pid file names (TERM, then KILL after 5 s)
halt() {
	if alive "$1" "$2"; then
		pid=$(cat "$1")
		kill "$pid" 2> /dev/null
		n=0
		while kill -0 "$pid" 2> /dev/null && [ "$n" -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -9 "$pid" 2> /dev/null
	fi
	rm -f "$1"
}

# appear FILE: wait up to 5 s for a daemon's pid file or socket
appear() {
	n=0
	while [ ! -e "$1" ] && [ "$n" -lt 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	[ -e "$1" ] || { say "$svc: $1 did not appear (log: $RUN)"; return 1; }
}

# launch LOG COMMAND...: a daemon in a session of its own, nothing inherited but its log
launch() {
	log=$1
	shift
	setsid "$@" < /dev/null >> "$log" 2>&1 &
}

frr_start() {
	mkdir -p "$FRR" && chown frr:frr "$FRR" || return 1
__FRR_START__
	appear "$FRR/zebra.vty" && appear "$FRR/staticd.vty" || return 1
	if ! vtysh --vty_socket "$FRR" --config_dir /etc/frr -b >> "$RUN/frr.log" 2>&1; then
		tail -n 5 "$RUN/frr.log" >&2
		return 1
	fi
}
frr_stop() { halt "$FRR/staticd.pid" staticd && halt "$FRR/zebra.pid" zebra; }
frr_status() { alive "$FRR/zebra.pid" zebra && alive "$FRR/staticd.pid" staticd; }
frr_reload() { frr_stop && frr_start; }

coredns_start() {
	rm -f "$RUN/coredns.pid"
	launch "$RUN/coredns.log" coredns -conf /etc/coredns/Corefile -pidfile "$RUN/coredns.pid"
	appear "$RUN/coredns.pid"
}
coredns_stop() { halt "$RUN/coredns.pid" coredns; }
coredns_status() { alive "$RUN/coredns.pid" coredns; }
coredns_reload() { kill -USR1 "$(cat "$RUN/coredns.pid")"; }

dnsmasq_start() {
	rm -f "$RUN/dnsmasq.pid"
	launch "$RUN/dnsmasq.log" __DNSMASQ__
	appear "$RUN/dnsmasq.pid"
}
dnsmasq_stop() { halt "$RUN/dnsmasq.pid" dnsmasq; }
dnsmasq_status() { alive "$RUN/dnsmasq.pid" dnsmasq; }
dnsmasq_reload() { kill -HUP "$(cat "$RUN/dnsmasq.pid")"; }

haproxy_start() {
	haproxy -D -f /etc/haproxy/haproxy.cfg -p "$RUN/haproxy.pid" \
		< /dev/null >> "$RUN/haproxy.log" 2>&1
}
haproxy_stop() { halt "$RUN/haproxy.pid" haproxy; }
haproxy_status() { alive "$RUN/haproxy.pid" haproxy; }
haproxy_reload() {
	haproxy -D -f /etc/haproxy/haproxy.cfg -p "$RUN/haproxy.pid" -sf "$(cat "$RUN/haproxy.pid")" \
		< /dev/null >> "$RUN/haproxy.log" 2>&1
}

nftables_start() { nft -f /etc/nftables.nft; }
nftables_stop() { nft flush ruleset; }
nftables_reload() { nft -f /etc/nftables.nft; }

# the container's own sysctl files (those in its root), never this machine's
sysctl_start() {
	for file in "$OWN"/etc/sysctl.d/*.conf; do
		[ -e "$file" ] || continue
		sysctl -q -p "/etc/sysctl.d/${file##*/}" || return 1
	done
}
sysctl_stop() { :; }
sysctl_reload() { sysctl_start; }

local_start() {
	for file in /etc/local.d/*.start; do
		[ -x "$file" ] || continue
		"$file" || say "local: $file failed"
	done
}
local_stop() {
	for file in /etc/local.d/*.stop; do
		[ -x "$file" ] || continue
		"$file" || say "local: $file failed"
	done
}
local_reload() { local_start; }

# initd ACTION: an OpenRC init script's function, as openrc-run calls it
initd() {
	(
		set +u
		ebegin() { say "$*"; }
		eend() { return "${1:-0}"; }
		einfo() { say "$*"; }
		ewarn() { say "$*"; }
		eerror() { say "$*"; }
		. "/etc/init.d/$svc"
		"$1"
	)
}

[ $# -ge 2 ] || usage
svc=$1
action=$2
case $svc in
__DAEMONS__) kind=daemon ;;
__ONESHOTS__) kind=oneshot ;;
*)
	[ -f "/etc/init.d/$svc" ] || { say "rc-service: service \`$svc' does not exist"; exit 1; }
	kind=initd
	;;
esac

run() {
	if [ "$kind" = initd ]; then
		initd "$1"
	else
		"${svc}_$1"
	fi
}
marked() { [ -e "$STARTED/$svc" ]; }
running() {
	marked || return 3
	[ "$kind" != daemon ] || "${svc}_status" || return 32
}
start() {
	if running; then
		say "WARNING: $svc has already been started"
		return 0
	fi
	if run start; then
		mkdir -p "$STARTED" && : > "$STARTED/$svc"
	else
		say "ERROR: $svc failed to start"
		return 1
	fi
}
stop() {
	[ "$kind" = initd ] && ! marked || run stop
	rm -f "$STARTED/$svc"
}

case $action in
start) start ;;
stop) stop ;;
restart) stop && start ;;
reload)
	running || { say "ERROR: $svc is not running"; exit 1; }
	if [ "$kind" = initd ]; then stop && start; else run reload; fi
	;;
status) running ;;
*) usage ;;
esac
"""

OPENRC = r"""#!/bin/sh
# openrc RUNLEVEL of an OrbitLab twin container (a stand-in): start the services of the
# runlevel (boot, default), in the order their dependencies give, then the others.
level=${1:-default}
status=0
for svc in __ORDER__; do
	[ -e "/etc/runlevels/$level/$svc" ] || continue
	rc-service "$svc" start || status=1
done
for entry in /etc/runlevels/"$level"/*; do
	[ -e "$entry" ] || continue
	svc=${entry##*/}
	case " __ORDER__ " in *" $svc "*) continue ;; esac
	rc-service "$svc" start || status=1
done
exit $status
"""

SYSCTL = r"""#!/bin/sh
# sysctl of an OrbitLab twin container (a stand-in): this container's network settings
# (net.ipv4.*, net.ipv6.*: its own namespace) are set with the real sysctl; any other key
# belongs to the whole machine and is refused. Reading is free.
REAL=__REAL__
refuse() {
	echo "sysctl (OrbitLab twin): $1: a container may set only net.ipv4.* and net.ipv6.*" >&2
	exit 1
}
check_key() {
	key=$(printf '%s' "$1" | tr -d ' \t' | tr '/' '.')
	key=${key#-}
	case $key in
	net.ipv4.* | net.ipv6.*) ;;
	*) refuse "$key" ;;
	esac
}
check_file() {
	[ -r "$1" ] || { echo "sysctl: cannot open \"$1\"" >&2; exit 1; }
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in '#'* | ';'*) continue ;; *=*) check_key "${line%%=*}" ;; esac
	done < "$1"
}
expect=""
for arg in "$@"; do
	if [ "$expect" = file ]; then
		check_file "$arg"
		expect=done
		continue
	fi
	case $arg in
	-p | --load) expect=file ;;
	--load=*) check_file "${arg#--load=}"; expect=done ;;
	--system) refuse "--system (this machine's files)" ;;
	-*) ;;
	*=*) check_key "${arg%%=*}" ;;
	esac
done
[ "$expect" != file ] || refuse "-p without a file (this machine's /etc/sysctl.conf)"
exec "$REAL" "$@"
"""


def _case_lines(mapping: dict[str, str]) -> str:
    return "\n".join(f"\t{name}) echo {program} ;;" for name, program in mapping.items())


def _frr_start(state_dir: Path) -> str:
    lines = []
    for daemon in FRR_DAEMONS:
        argv = " ".join(shlex.quote(part) for part in frr_daemon_argv(daemon, state_dir))
        pidfile = shlex.quote(str(state_dir / f"{daemon}.pid"))
        lines.append(f"\trm -f {pidfile}")
        lines.append(f'\t{argv} < /dev/null >> "$RUN/frr.log" 2>&1 || return 1')
    return "\n".join(lines)


def real_sysctl() -> str:
    """This machine's sysctl (the stand-in calls it by its absolute path)."""
    for candidate in ("/usr/sbin/sysctl", "/sbin/sysctl"):
        if Path(candidate).exists():
            return candidate
    return shutil.which("sysctl") or "/sbin/sysctl"


def standin_scripts(run: Path, root: Path) -> dict[str, str]:
    """The stand-ins of one container: ``run`` is its run directory on the twin (pid files,
    logs), ``root`` its own files (what it wrote over ``/etc``, ``/var``, ``/run``)."""
    dnsmasq = " ".join(shlex.quote(part) for part in dnsmasq_argv(run / "dnsmasq.pid"))
    order = " ".join(BOOT_ORDER)
    rc_service = (
        RC_SERVICE.replace("__RUN__", shlex.quote(str(run)))
        .replace("__ROOT__", shlex.quote(str(root)))
        .replace("__FRR_START__", _frr_start(run / "frr"))
        .replace("__DNSMASQ__", dnsmasq)
        .replace("__DAEMONS__", " | ".join(DAEMONS))
        .replace("__ONESHOTS__", " | ".join(ONESHOTS))
    )
    return {
        "apk": APK.replace("__PACKAGES__", _case_lines(PACKAGES)),
        "rc-update": RC_UPDATE.replace("__KNOWN__", " | ".join((*DAEMONS, *ONESHOTS))),
        "rc-service": rc_service,
        "openrc": OPENRC.replace("__ORDER__", order),
        "sysctl": SYSCTL.replace("__REAL__", real_sysctl()),
    }


INIT_SCRIPT = """#!/sbin/openrc-run
# {service}: installed, as apk (a stand-in) reports it; rc-service (a stand-in) runs it with
# the OrbitLab twin's daemon.
"""


def write_init_scripts(etc: Path) -> None:
    """``/etc/init.d`` entries of the services the packages bring (those apk reports
    installed) and OpenRC's own (``sysctl``, ``local``), as an appliance template with its
    packages has them: a script that retires a service finds it there."""
    init_d = etc / "init.d"
    init_d.mkdir(parents=True, exist_ok=True)
    for service in (*DAEMONS, *ONESHOTS):
        path = init_d / service
        if not path.exists():
            path.write_text(INIT_SCRIPT.format(service=service))
            path.chmod(0o755)


def write_standins(directory: Path, run: Path, root: Path) -> list[Path]:
    """Write a container's stand-ins into ``directory`` (executable); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in standin_scripts(run, root).items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
        written.append(path)
    return written
