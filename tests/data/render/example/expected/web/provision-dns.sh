#!/bin/sh
# OrbitLab provisioning of olvn1001-dns: the dns of Sector web (tag 1001).
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

say() { echo "orbitlab[olvn1001-dns]: $*" >&2; }

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
	put_file /etc/coredns/Corefile 644 <<'ORBITLAB_EOF_1f7a96f2838c2996'
# OrbitLab Sector DNS olvn1001-dns: Sector web (tag 1001).
# Rendered by OrbitLab; local changes are overwritten. Answers the Sector's own names
# (NXDOMAIN for unknown ones, never forwarded) and forwards the rest; only the Sector's
# subnets may query.
web.internal {
	bind 172.16.0.2
	acl {
		allow net 172.16.0.0/24 172.16.1.0/24
		block
	}
	file /etc/coredns/db.web.internal web.internal
	errors
}

0.16.172.in-addr.arpa {
	bind 172.16.0.2
	acl {
		allow net 172.16.0.0/24 172.16.1.0/24
		block
	}
	file /etc/coredns/db.0.16.172.in-addr.arpa 0.16.172.in-addr.arpa
	errors
}

1.16.172.in-addr.arpa {
	bind 172.16.0.2
	acl {
		allow net 172.16.0.0/24 172.16.1.0/24
		block
	}
	file /etc/coredns/db.1.16.172.in-addr.arpa 1.16.172.in-addr.arpa
	errors
}

. {
	bind 172.16.0.2
	acl {
		allow net 172.16.0.0/24 172.16.1.0/24
		block
	}
	forward . 192.0.2.53
	cache 300
	loop
	errors
}
ORBITLAB_EOF_1f7a96f2838c2996
	put_file /etc/coredns/db.web.internal 644 <<'ORBITLAB_EOF_f2f46d1b2e637b6f'
; OrbitLab Sector DNS zone web.internal: Sector web (tag 1001).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN web.internal.
$TTL 300
@ IN SOA dns.web.internal. hostmaster.web.internal. ( 366475030 3600 600 86400 60 )
@ IN NS dns.web.internal.
gateway IN A 172.16.0.1
dns IN A 172.16.0.2
lb IN A 172.16.0.3
app1 IN A 172.16.0.21
app2 IN A 172.16.1.22
ORBITLAB_EOF_f2f46d1b2e637b6f
	put_file /etc/coredns/db.0.16.172.in-addr.arpa 644 <<'ORBITLAB_EOF_0b1c1f3a1e9ae4eb'
; OrbitLab Sector DNS zone 0.16.172.in-addr.arpa: Sector web (tag 1001).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN 0.16.172.in-addr.arpa.
$TTL 300
@ IN SOA dns.web.internal. hostmaster.web.internal. ( 1945512089 3600 600 86400 60 )
@ IN NS dns.web.internal.
1.0.16.172.in-addr.arpa. IN PTR gateway.web.internal.
2.0.16.172.in-addr.arpa. IN PTR dns.web.internal.
3.0.16.172.in-addr.arpa. IN PTR lb.web.internal.
21.0.16.172.in-addr.arpa. IN PTR app1.web.internal.
ORBITLAB_EOF_0b1c1f3a1e9ae4eb
	put_file /etc/coredns/db.1.16.172.in-addr.arpa 644 <<'ORBITLAB_EOF_177577b78c9ee2ba'
; OrbitLab Sector DNS zone 1.16.172.in-addr.arpa: Sector web (tag 1001).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN 1.16.172.in-addr.arpa.
$TTL 300
@ IN SOA dns.web.internal. hostmaster.web.internal. ( 1666471844 3600 600 86400 60 )
@ IN NS dns.web.internal.
22.1.16.172.in-addr.arpa. IN PTR app2.web.internal.
ORBITLAB_EOF_177577b78c9ee2ba
}

# --- commands ------------------------------------------------------------------------
prepare() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	if apk info -e coredns >/dev/null 2>&1; then
		return 0
	fi
	wait_for "a default route" 120 has_default_route
	wait_for "DNS (dl-cdn.alpinelinux.org)" 120 nslookup dl-cdn.alpinelinux.org
	grep -q '/community$' /etc/apk/repositories || sed -n 's#/main$#/community#p' /etc/apk/repositories >> /etc/apk/repositories
	apk update --quiet
	say "installing coredns"
	apk add --quiet --no-progress coredns
}

# Each service: enabled; started (its config checked first) when it is not running, else
# reloaded (checked first) when one of its files is pending.
activate() {
	[ -e /etc/runlevels/default/coredns ] || rc-update add coredns default
	if ! rc-service coredns status >/dev/null 2>&1; then
		say "starting coredns"
		rc-service coredns start
	elif grep -qxF -e /etc/coredns/Corefile -e /etc/coredns/db.web.internal -e /etc/coredns/db.0.16.172.in-addr.arpa -e /etc/coredns/db.1.16.172.in-addr.arpa "$PENDING" 2>/dev/null; then
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
