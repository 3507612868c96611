#!/bin/sh
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
