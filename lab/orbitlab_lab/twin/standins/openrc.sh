#!/bin/sh
# openrc RUNLEVEL of an OrbitLab twin container (a stand-in): start the services of the
# runlevel (boot, default), in the order their dependencies give, then the others.
level=${1:-default}
order="__ORDER__"
status=0
for svc in $order; do
	[ -e "/etc/runlevels/$level/$svc" ] || continue
	rc-service "$svc" start || status=1
done
for entry in /etc/runlevels/"$level"/*; do
	[ -e "$entry" ] || continue
	svc=${entry##*/}
	case " $order " in *" $svc "*) continue ;; esac
	rc-service "$svc" start || status=1
done
exit $status
