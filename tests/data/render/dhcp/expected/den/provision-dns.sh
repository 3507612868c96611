#!/bin/sh
# OrbitLab provisioning of olvn1002-dns: the dns of Sector den (tag 1002).
# Rendered by OrbitLab; holds no secret. Idempotent: a second run changes nothing.
#
#   sh provision.sh              in the appliance (pct exec VMID -- /bin/sh -s < provision.sh):
#                                install packages, write the files, enable and reload services
#   sh provision.sh --root DIR   write only the files, under DIR; runs no command (tests, twin)
set -eu
umask 022

ROOT=""
FILES_ONLY=0
case "${1:-}" in
	"") ;;
	--root)
		[ -n "${2:-}" ] || { echo "usage: provision.sh [--root DIR]" >&2; exit 64; }
		ROOT="${2%/}"
		FILES_ONLY=1
		;;
	*) echo "usage: provision.sh [--root DIR]" >&2; exit 64 ;;
esac

say() { echo "orbitlab[olvn1002-dns]: $*" >&2; }

# A service is reloaded when one of its files changed in this run or in an earlier run that
# did not get to reload it (failed or interrupted): a changed file is recorded in $PENDING
# before it is replaced, and the record goes only once every service is active.
PENDING=/run/orbitlab-pending

# put_file PATH MODE < CONTENT: replace PATH only when its content differs.
put_file() {
	target="$ROOT$1"
	mkdir -p "$(dirname "$target")"
	cat > "$target.orbitlab-new"
	if [ -f "$target" ] && cmp -s "$target.orbitlab-new" "$target"; then
		rm -f "$target.orbitlab-new"
	else
		if [ "$FILES_ONLY" = 0 ]; then
			mkdir -p "$(dirname "$PENDING")"
			echo "$1" >> "$PENDING"
		fi
		chmod "$2" "$target.orbitlab-new"
		mv -f "$target.orbitlab-new" "$target"
		say "wrote $1"
	fi
	[ "$(stat -c %a "$target")" = "$2" ] || chmod "$2" "$target"
}

# wait_for WHAT SECONDS COMMAND...: bounded wait, fails loudly.
wait_for() {
	what=$1
	limit=$2
	shift 2
	waited=0
	until "$@" >/dev/null 2>&1; do
		if [ "$waited" -ge "$limit" ]; then
			say "gave up after ${limit}s waiting for $what"
			exit 1
		fi
		sleep 2
		waited=$((waited + 2))
	done
}
has_default_route() { ip route show default | grep -q via; }

# --- files ---------------------------------------------------------------------------
write_files() {
	mkdir -p "$ROOT/var/lib/misc"
	put_file /etc/coredns/Corefile 644 <<'ORBITLAB_EOF_051b47974f3c04ed'
# OrbitLab Sector DNS olvn1002-dns: Sector den (tag 1002).
# Rendered by OrbitLab; local changes are overwritten. Answers the Sector's own names
# (NXDOMAIN for unknown ones, never forwarded) and forwards the rest; only the Sector's
# subnets may query. Bounded for a 128 MiB appliance: at most
# 500 queries forwarded at once (more are REFUSED), and
# 4096 + 1024 cached answers.
# Names of DHCP leases come from a hosts file (plugin hosts, re-read every 1s),
# ahead of the zone files: the lease script never writes a declared name into it.
den.internal {
	bind 10.40.0.2
	acl {
		allow net 10.40.0.0/24
		block
	}
	hosts /var/lib/misc/orbitlab-dhcp.hosts den.internal {
		ttl 30
		reload 1s
		fallthrough
	}
	file /etc/coredns/db.den.internal den.internal
	errors
}

0.40.10.in-addr.arpa {
	bind 10.40.0.2
	acl {
		allow net 10.40.0.0/24
		block
	}
	hosts /var/lib/misc/orbitlab-dhcp.hosts den.internal 0.40.10.in-addr.arpa {
		ttl 30
		reload 1s
		fallthrough
	}
	file /etc/coredns/db.0.40.10.in-addr.arpa 0.40.10.in-addr.arpa
	errors
}

. {
	bind 10.40.0.2
	acl {
		allow net 10.40.0.0/24
		block
	}
	forward . 198.51.100.53 {
		max_concurrent 500
	}
	cache 300 {
		success 4096
		denial 1024
	}
	loop
	errors
}
ORBITLAB_EOF_051b47974f3c04ed
	put_file /etc/coredns/db.den.internal 644 <<'ORBITLAB_EOF_c8c0141f698489c0'
; OrbitLab Sector DNS zone den.internal: Sector den (tag 1002).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN den.internal.
$TTL 300
@ IN SOA dns.den.internal. hostmaster.den.internal. ( 1138309014 3600 600 86400 60 )
@ IN NS dns.den.internal.
gateway IN A 10.40.0.1
dns IN A 10.40.0.2
nas IN A 10.40.0.200
ORBITLAB_EOF_c8c0141f698489c0
	put_file /etc/coredns/db.0.40.10.in-addr.arpa 644 <<'ORBITLAB_EOF_2e0f733f1228adec'
; OrbitLab Sector DNS zone 0.40.10.in-addr.arpa: Sector den (tag 1002).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN 0.40.10.in-addr.arpa.
$TTL 300
@ IN SOA dns.den.internal. hostmaster.den.internal. ( 1260410959 3600 600 86400 60 )
@ IN NS dns.den.internal.
1.0.40.10.in-addr.arpa. IN PTR gateway.den.internal.
2.0.40.10.in-addr.arpa. IN PTR dns.den.internal.
200.0.40.10.in-addr.arpa. IN PTR nas.den.internal.
ORBITLAB_EOF_2e0f733f1228adec
	put_file /etc/dnsmasq.conf 644 <<'ORBITLAB_EOF_cea2b50613ce9bca'
# OrbitLab Sector DHCP olvn1002-dns: Sector den (tag 1002).
# Rendered by OrbitLab; local changes are overwritten. DHCP only (port=0): CoreDNS answers
# every name, those of leases too (the lease script writes them to a hosts file).
# All subnets of the Sector share its VNet: eth0 holds the first one and serves the others
# as shared networks. Replies to clients that have no address yet are broadcast (a unicast
# to an address outside eth0's subnet would follow the default route to the gateway).
# A client is its NIC's MAC: the client identifier it sends (any value it likes) is
# ignored, so a client cannot take more than one lease by rotating it.
port=0
interface=eth0
no-hosts
dhcp-authoritative
dhcp-broadcast
dhcp-ignore-clid
dhcp-leasefile=/var/lib/misc/dnsmasq.leases
dhcp-script=/etc/orbitlab/dhcp-names.sh
domain=den.internal
dhcp-option=option:dns-server,10.40.0.2
dhcp-option=option:mtu,1450

# 10.40.0.0/24: the pool
dhcp-range=set:subnet0,10.40.0.128,10.40.0.199,255.255.255.0,600
dhcp-option=tag:subnet0,option:router,10.40.0.1
ORBITLAB_EOF_cea2b50613ce9bca
	put_file /etc/orbitlab/dhcp-names.sh 755 <<'ORBITLAB_EOF_4ee5344f3bf9781d'
#!/bin/sh
# OrbitLab Sector DHCP olvn1002-dns: names from leases, Sector den (tag 1002).
# Rendered by OrbitLab; local changes are overwritten; holds no secret.
# dnsmasq runs it (dhcp-script) on every lease change: ACTION MAC IP [HOSTNAME], ACTION one
# of add, old (also for every lease at its start) and del (release, expiry). It keeps HOSTS,
# the hosts file the Sector DNS (CoreDNS) serves for den.internal and its reverse zones: one
# line per lease whose name is usable. Never usable: a name that is not a DNS label, an
# appliance's name, a declared host's name (a declared dynamic host's: only for its mac).
set -eu
HOSTS=/var/lib/misc/orbitlab-dhcp.hosts
DOMAIN=den.internal
action=${1:-}
mac=${2:-}
ip=${3:-}
# shellcheck disable=SC2018,SC2019  # a DNS label is ASCII: only A-Z is lowered
name=$(printf '%s' "${4:-}" | tr 'A-Z' 'a-z')

# usable NAME MAC: may the lease of MAC publish NAME?
usable() {
	case $1 in
	'' | -* | *- | *[!a-z0-9-]*) return 1 ;;
	gateway | dns | lb | localhost | wpad | isatap | nas) return 1 ;;
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
ORBITLAB_EOF_4ee5344f3bf9781d
	put_file /etc/sysctl.d/90-orbitlab.conf 644 <<'ORBITLAB_EOF_4eba77928488852c'
# OrbitLab Sector DNS: no IPv6 (it answers and forwards over IPv4 only; a host could
# otherwise reach it by a link-local or autoconfigured address), no forwarding, no ICMP
# redirects. Rendered by OrbitLab.
net.ipv4.ip_forward = 0
net.ipv4.conf.all.accept_redirects = 0
net.ipv4.conf.default.accept_redirects = 0
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.default.send_redirects = 0
net.ipv6.conf.all.disable_ipv6 = 1
net.ipv6.conf.default.disable_ipv6 = 1
ORBITLAB_EOF_4eba77928488852c
}

# --- commands ------------------------------------------------------------------------
prepare() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	if apk info -e coredns dnsmasq >/dev/null 2>&1; then
		return 0
	fi
	wait_for "a default route" 120 has_default_route
	wait_for "DNS (dl-cdn.alpinelinux.org)" 120 nslookup dl-cdn.alpinelinux.org
	grep -q '/community$' /etc/apk/repositories || { community=$(sed -n 's#/main$#/community#p' /etc/apk/repositories); [ -z "$community" ] || printf '%s\n' "$community" >> /etc/apk/repositories; }
	apk update --quiet
	say "installing coredns dnsmasq"
	apk add --quiet --no-progress coredns dnsmasq
}

# Each service: enabled; started (its config checked first) when it is not running, else
# reloaded (checked first) when one of its files is pending.
activate() {
	[ -e /etc/runlevels/boot/sysctl ] || rc-update add sysctl boot
	sysctl -q -p /etc/sysctl.d/90-orbitlab.conf
	[ -e /etc/runlevels/default/coredns ] || rc-update add coredns default
	if ! rc-service coredns status >/dev/null 2>&1; then
		say "starting coredns"
		rc-service coredns start
	elif grep -qxF -e /etc/coredns/Corefile -e /etc/coredns/db.den.internal -e /etc/coredns/db.0.40.10.in-addr.arpa "$PENDING" 2>/dev/null; then
		say "reloading coredns"
		rc-service coredns restart
	fi
	[ -e /etc/runlevels/default/dnsmasq ] || rc-update add dnsmasq default
	if ! rc-service dnsmasq status >/dev/null 2>&1; then
		dnsmasq --test -C /etc/dnsmasq.conf
		say "starting dnsmasq"
		rc-service dnsmasq start
	elif grep -qxF -e /etc/dnsmasq.conf -e /etc/orbitlab/dhcp-names.sh "$PENDING" 2>/dev/null; then
		dnsmasq --test -C /etc/dnsmasq.conf
		say "reloading dnsmasq"
		rc-service dnsmasq restart
	fi
	rm -f "$PENDING"
}

if [ "$FILES_ONLY" = 1 ]; then
	write_files
	exit 0
fi
prepare
write_files
activate
say "provisioned"
