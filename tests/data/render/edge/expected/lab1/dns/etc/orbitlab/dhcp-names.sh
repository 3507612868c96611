#!/bin/sh
# OrbitLab Sector DHCP olvn1001-dns: names from leases, Sector lab1 (tag 1001).
# Rendered by OrbitLab; local changes are overwritten; holds no secret.
# dnsmasq runs it (dhcp-script) on every lease change: ACTION MAC IP [HOSTNAME], ACTION one
# of add, old (also for every lease at its start) and del (release, expiry). It keeps HOSTS,
# the hosts file the Sector DNS (CoreDNS) serves for lab1.internal and its reverse zones: one
# line per lease whose name is usable. Never usable: a name that is not a DNS label, an
# appliance's name, a declared host's name (a declared dynamic host's: only for its mac).
set -eu
HOSTS=/var/lib/misc/orbitlab-dhcp.hosts
DOMAIN=lab1.internal
action=${1:-}
mac=${2:-}
ip=${3:-}
# shellcheck disable=SC2018,SC2019  # a DNS label is ASCII: only A-Z is lowered
name=$(printf '%s' "${4:-}" | tr 'A-Z' 'a-z')

# usable NAME MAC: may the lease of MAC publish NAME?
usable() {
	case $1 in
	'' | -* | *- | *[!a-z0-9-]*) return 1 ;;
	gateway | dns | lb | localhost | wpad | isatap) return 1 ;;
	*) [ ${#1} -le 63 ] ;;
	esac
}

case $action in
add | old | del) ;;
*) exit 0 ;;
esac
case $ip in
'' | *[!0-9.]*) exit 0 ;;
esac
mkdir -p "${HOSTS%/*}"
touch "$HOSTS"
# the lease's own line goes; a usable name takes its line back (from any other lease too)
if [ "$action" != del ] && usable "$name" "$mac"; then
	awk -v ip="$ip" -v fqdn="$name.$DOMAIN" '$1 != ip && $2 != fqdn' "$HOSTS" > "$HOSTS.new"
	echo "$ip $name.$DOMAIN" >> "$HOSTS.new"
else
	awk -v ip="$ip" '$1 != ip' "$HOSTS" > "$HOSTS.new"
fi
if cmp -s "$HOSTS.new" "$HOSTS"; then
	rm -f "$HOSTS.new"
else
	chmod 644 "$HOSTS.new" # CoreDNS reads it, as whichever user it runs
	mv -f "$HOSTS.new" "$HOSTS"
fi
