#!/bin/sh
# OrbitLab provisioning of olvn1003-dns: the dns of Sector vault (tag 1003).
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

say() { echo "orbitlab[olvn1003-dns]: $*" >&2; }

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
	put_file /etc/coredns/Corefile 644 <<'ORBITLAB_EOF_38385aca7278540d'
# OrbitLab Sector DNS olvn1003-dns: Sector vault (tag 1003).
# Rendered by OrbitLab; local changes are overwritten. Answers the Sector's own names
# (NXDOMAIN for unknown ones, never forwarded) and forwards the rest; only the Sector's
# subnets may query. Bounded for a 128 MiB appliance: at most
# 500 queries forwarded at once (more are REFUSED), and
# 4096 + 1024 cached answers.
vault.internal {
	bind 10.50.0.2
	acl {
		allow net 10.50.0.0/24
		block
	}
	file /etc/coredns/db.vault.internal vault.internal
	errors
}

0.50.10.in-addr.arpa {
	bind 10.50.0.2
	acl {
		allow net 10.50.0.0/24
		block
	}
	file /etc/coredns/db.0.50.10.in-addr.arpa 0.50.10.in-addr.arpa
	errors
}

. {
	bind 10.50.0.2
	acl {
		allow net 10.50.0.0/24
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
ORBITLAB_EOF_38385aca7278540d
	put_file /etc/coredns/db.vault.internal 644 <<'ORBITLAB_EOF_0ea77e08526a42c5'
; OrbitLab Sector DNS zone vault.internal: Sector vault (tag 1003).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN vault.internal.
$TTL 300
@ IN SOA dns.vault.internal. hostmaster.vault.internal. ( 496224221 3600 600 86400 60 )
@ IN NS dns.vault.internal.
gateway IN A 10.50.0.1
dns IN A 10.50.0.2
safe IN A 10.50.0.9
ORBITLAB_EOF_0ea77e08526a42c5
	put_file /etc/coredns/db.0.50.10.in-addr.arpa 644 <<'ORBITLAB_EOF_8a7ead5dbf612522'
; OrbitLab Sector DNS zone 0.50.10.in-addr.arpa: Sector vault (tag 1003).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN 0.50.10.in-addr.arpa.
$TTL 300
@ IN SOA dns.vault.internal. hostmaster.vault.internal. ( 403956854 3600 600 86400 60 )
@ IN NS dns.vault.internal.
1.0.50.10.in-addr.arpa. IN PTR gateway.vault.internal.
2.0.50.10.in-addr.arpa. IN PTR dns.vault.internal.
9.0.50.10.in-addr.arpa. IN PTR safe.vault.internal.
ORBITLAB_EOF_8a7ead5dbf612522
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
	if apk info -e coredns >/dev/null 2>&1; then
		return 0
	fi
	wait_for "a default route" 120 has_default_route
	wait_for "DNS (dl-cdn.alpinelinux.org)" 120 nslookup dl-cdn.alpinelinux.org
	grep -q '/community$' /etc/apk/repositories || { community=$(sed -n 's#/main$#/community#p' /etc/apk/repositories); [ -z "$community" ] || printf '%s\n' "$community" >> /etc/apk/repositories; }
	apk update --quiet
	say "installing coredns"
	apk add --quiet --no-progress coredns
}

# Each service: enabled; started (its config checked first) when it is not running, else
# reloaded (checked first) when one of its files is pending.
activate() {
	[ -e /etc/runlevels/boot/sysctl ] || rc-update add sysctl boot
	sysctl -q -p /etc/sysctl.d/90-orbitlab.conf
	if [ -e /etc/init.d/dnsmasq ]; then if rc-service dnsmasq status >/dev/null 2>&1; then rc-service dnsmasq stop; fi; [ ! -e /etc/runlevels/default/dnsmasq ] || rc-update del dnsmasq default; fi
	[ -e /etc/runlevels/default/coredns ] || rc-update add coredns default
	if ! rc-service coredns status >/dev/null 2>&1; then
		say "starting coredns"
		rc-service coredns start
	elif grep -qxF -e /etc/coredns/Corefile -e /etc/coredns/db.vault.internal -e /etc/coredns/db.0.50.10.in-addr.arpa "$PENDING" 2>/dev/null; then
		say "reloading coredns"
		rc-service coredns restart
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
