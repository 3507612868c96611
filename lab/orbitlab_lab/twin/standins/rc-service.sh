#!/bin/sh
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
	# shellcheck disable=SC2317  # the e* helpers are called by the sourced init script
	(
		set +u
		ebegin() { say "$*"; }
		eend() { return "${1:-0}"; }
		einfo() { say "$*"; }
		ewarn() { say "$*"; }
		eerror() { say "$*"; }
		# shellcheck source=/dev/null  # the container's own init script, not known here
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
	if [ "$kind" != initd ] || marked; then
		run stop
	fi
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
