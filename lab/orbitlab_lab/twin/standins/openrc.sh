#!/bin/sh
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
