#!/bin/sh
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
