#!/bin/sh
# OrbitLab provisioning of olvn1234-lb: the lb of Sector iot (tag 1234).
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

say() { echo "orbitlab[olvn1234-lb]: $*" >&2; }

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
	put_file /etc/haproxy/haproxy.cfg 644 <<'ORBITLAB_EOF_d100b60615ea9c75'
# OrbitLab Sector Load Balancer olvn1234-lb: Sector iot (tag 1234).
# Rendered by OrbitLab; local changes are overwritten. Listens on its Backplane address
# only; its Sector leg (eth1) reaches the backends and never routes.
global
	maxconn 4096
	user haproxy
	group haproxy

defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	timeout check 3s

frontend iot-8443
	mode tcp
	bind 10.99.1.221:8443
	default_backend iot-8443

backend iot-8443
	mode tcp
	balance roundrobin
	server 10-10-1-5-443 10.10.1.5:443 check inter 10s fall 3 rise 2 send-proxy-v2 check-send-proxy
	server cam2-443 10.10.8.4:443 check inter 10s fall 3 rise 2 send-proxy-v2 check-send-proxy
ORBITLAB_EOF_d100b60615ea9c75
	put_file /etc/nftables.nft 755 <<'ORBITLAB_EOF_1db319cb5b9b0786'
#!/usr/sbin/nft -f
# OrbitLab Sector Load Balancer olvn1234-lb: Sector iot (tag 1234).
# Rendered by OrbitLab; local changes are overwritten. eth0 = Backplane, eth1 = Sector.
# In: only the listeners on the Backplane address, and replies (health checks, backends).
# Forwarding is off and dropped; every accept matches IPv4 only. Loaded before HAProxy
# starts. Every rule here is proven by a twin check (tests/test_rule_coverage.py).
flush ruleset

table inet orbitlab {
	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		iifname "eth0" ip daddr 10.99.1.221 tcp dport { 8443 } accept
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
	}
}
ORBITLAB_EOF_1db319cb5b9b0786
	put_file /etc/sysctl.d/90-orbitlab.conf 644 <<'ORBITLAB_EOF_171a91bf0300e52e'
# OrbitLab Sector Load Balancer: its Sector leg must never route; no ICMP redirects on any
# interface; no IPv6. Rendered by OrbitLab.
net.ipv4.ip_forward = 0
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.default.send_redirects = 0
net.ipv4.conf.eth0.send_redirects = 0
net.ipv4.conf.eth1.send_redirects = 0
net.ipv4.conf.all.accept_redirects = 0
net.ipv4.conf.default.accept_redirects = 0
net.ipv4.conf.eth0.accept_redirects = 0
net.ipv4.conf.eth1.accept_redirects = 0
net.ipv6.conf.all.disable_ipv6 = 1
net.ipv6.conf.default.disable_ipv6 = 1
ORBITLAB_EOF_171a91bf0300e52e
	put_file /etc/local.d/orbitlab-routes.start 755 <<'ORBITLAB_EOF_cc6afa29eb6ce1fc'
#!/bin/sh
# OrbitLab Sector Load Balancer olvn1234-lb: routes from its Sector leg (eth1) to the
# Sector's other subnets, via the Sector Gateway. Rendered by OrbitLab.
set -e
ip route replace 10.10.8.0/29 via 10.10.0.1 dev eth1
ip route replace 10.20.0.0/30 via 10.10.0.1 dev eth1
ORBITLAB_EOF_cc6afa29eb6ce1fc
}

# --- commands ------------------------------------------------------------------------
prepare() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	if apk info -e haproxy nftables iproute2 >/dev/null 2>&1; then
		return 0
	fi
	wait_for "a default route" 120 has_default_route
	wait_for "DNS (dl-cdn.alpinelinux.org)" 120 nslookup dl-cdn.alpinelinux.org
	grep -q '/community$' /etc/apk/repositories || { community=$(sed -n 's#/main$#/community#p' /etc/apk/repositories); [ -z "$community" ] || printf '%s\n' "$community" >> /etc/apk/repositories; }
	apk update --quiet
	say "installing haproxy nftables iproute2"
	apk add --quiet --no-progress haproxy nftables iproute2
}

# Each service: enabled; started (its config checked first) when it is not running, else
# reloaded (checked first) when one of its files is pending.
activate() {
	[ -e /etc/runlevels/boot/sysctl ] || rc-update add sysctl boot
	sysctl -q -p /etc/sysctl.d/90-orbitlab.conf
	[ -e /etc/runlevels/default/local ] || rc-update add local default
	/etc/local.d/orbitlab-routes.start
	[ -e /etc/runlevels/default/nftables ] || rc-update add nftables default
	if ! rc-service nftables status >/dev/null 2>&1; then
		nft -c -f /etc/nftables.nft
		say "starting nftables"
		rc-service nftables start
	elif grep -qxF -e /etc/nftables.nft "$PENDING" 2>/dev/null; then
		nft -c -f /etc/nftables.nft
		say "reloading nftables"
		rc-service nftables reload
	fi
	[ -e /etc/runlevels/default/haproxy ] || rc-update add haproxy default
	if ! rc-service haproxy status >/dev/null 2>&1; then
		haproxy -c -q -f /etc/haproxy/haproxy.cfg
		say "starting haproxy"
		rc-service haproxy start
	elif grep -qxF -e /etc/haproxy/haproxy.cfg "$PENDING" 2>/dev/null; then
		haproxy -c -q -f /etc/haproxy/haproxy.cfg
		say "reloading haproxy"
		rc-service haproxy reload
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
