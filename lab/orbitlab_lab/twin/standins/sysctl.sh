#!/bin/sh
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
	if [ "$expect" = path ]; then
		check_file "$arg"
		expect=loaded
		continue
	fi
	case $arg in
	-p | --load) expect=path ;;
	--load=*) check_file "${arg#--load=}"; expect=loaded ;;
	--system) refuse "--system (this machine's files)" ;;
	-*) ;;
	*=*) check_key "${arg%%=*}" ;;
	esac
done
[ "$expect" != path ] || refuse "-p without a file (this machine's /etc/sysctl.conf)"
exec "$REAL" "$@"
