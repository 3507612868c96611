#!/bin/sh
# OrbitLab provisioning of olvn1234-dns: the dns of Sector iot (tag 1234).
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

say() { echo "orbitlab[olvn1234-dns]: $*" >&2; }

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
	put_file /etc/coredns/Corefile 644 <<'ORBITLAB_EOF_c5bd265988b91c35'
# OrbitLab Sector DNS olvn1234-dns: Sector iot (tag 1234).
# Rendered by OrbitLab; local changes are overwritten. Answers the Sector's own names
# (NXDOMAIN for unknown ones, never forwarded) and forwards the rest; only the Sector's
# subnets may query.
cams.home.arpa {
	bind 10.10.0.2
	acl {
		allow net 10.10.0.0/22 10.10.8.0/29 10.20.0.0/30
		block
	}
	file /etc/coredns/db.cams.home.arpa cams.home.arpa
	errors
}

0.20.10.in-addr.arpa {
	bind 10.10.0.2
	acl {
		allow net 10.10.0.0/22 10.10.8.0/29 10.20.0.0/30
		block
	}
	file /etc/coredns/db.0.20.10.in-addr.arpa 0.20.10.in-addr.arpa
	errors
}

10.10.in-addr.arpa {
	bind 10.10.0.2
	acl {
		allow net 10.10.0.0/22 10.10.8.0/29 10.20.0.0/30
		block
	}
	file /etc/coredns/db.10.10.in-addr.arpa 10.10.in-addr.arpa
	errors
}

. {
	bind 10.10.0.2
	acl {
		allow net 10.10.0.0/22 10.10.8.0/29 10.20.0.0/30
		block
	}
	forward . 203.0.113.53 203.0.113.54
	cache 300
	loop
	errors
}
ORBITLAB_EOF_c5bd265988b91c35
	put_file /etc/coredns/db.cams.home.arpa 644 <<'ORBITLAB_EOF_457b272b0e207e3c'
; OrbitLab Sector DNS zone cams.home.arpa: Sector iot (tag 1234).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN cams.home.arpa.
$TTL 300
@ IN SOA dns.cams.home.arpa. hostmaster.cams.home.arpa. ( 1742509564 3600 600 86400 60 )
@ IN NS dns.cams.home.arpa.
gateway IN A 10.10.0.1
dns IN A 10.10.0.2
lb IN A 10.10.0.3
cam1 IN A 10.10.1.5
cam2 IN A 10.10.8.4
hub IN A 10.20.0.2
ORBITLAB_EOF_457b272b0e207e3c
	put_file /etc/coredns/db.0.20.10.in-addr.arpa 644 <<'ORBITLAB_EOF_21135a1fc4365383'
; OrbitLab Sector DNS zone 0.20.10.in-addr.arpa: Sector iot (tag 1234).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN 0.20.10.in-addr.arpa.
$TTL 300
@ IN SOA dns.cams.home.arpa. hostmaster.cams.home.arpa. ( 192041572 3600 600 86400 60 )
@ IN NS dns.cams.home.arpa.
2.0.20.10.in-addr.arpa. IN PTR hub.cams.home.arpa.
ORBITLAB_EOF_21135a1fc4365383
	put_file /etc/coredns/db.10.10.in-addr.arpa 644 <<'ORBITLAB_EOF_d825637fa432ee05'
; OrbitLab Sector DNS zone 10.10.in-addr.arpa: Sector iot (tag 1234).
; Rendered by OrbitLab; local changes are overwritten.
$ORIGIN 10.10.in-addr.arpa.
$TTL 300
@ IN SOA dns.cams.home.arpa. hostmaster.cams.home.arpa. ( 1457059101 3600 600 86400 60 )
@ IN NS dns.cams.home.arpa.
1.0.10.10.in-addr.arpa. IN PTR gateway.cams.home.arpa.
2.0.10.10.in-addr.arpa. IN PTR dns.cams.home.arpa.
3.0.10.10.in-addr.arpa. IN PTR lb.cams.home.arpa.
5.1.10.10.in-addr.arpa. IN PTR cam1.cams.home.arpa.
4.8.10.10.in-addr.arpa. IN PTR cam2.cams.home.arpa.
ORBITLAB_EOF_d825637fa432ee05
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
	elif grep -qxF -e /etc/coredns/Corefile -e /etc/coredns/db.cams.home.arpa -e /etc/coredns/db.0.20.10.in-addr.arpa -e /etc/coredns/db.10.10.in-addr.arpa "$PENDING" 2>/dev/null; then
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
