#!/bin/sh
# OrbitLab provisioning of olvn1002-router: the gateway of Sector den (tag 1002).
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

say() { echo "orbitlab[olvn1002-router]: $*" >&2; }

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
	put_file /etc/frr/daemons 644 <<'ORBITLAB_EOF_db323b561066fc3b'
# OrbitLab Sector Gateway: zebra and staticd only (always started); no dynamic routing.
# Rendered by OrbitLab; local changes are overwritten.
bgpd=no
ospfd=no
ospf6d=no
ripd=no
ripngd=no
isisd=no
pimd=no
pim6d=no
ldpd=no
nhrpd=no
eigrpd=no
babeld=no
sharpd=no
pbrd=no
bfdd=no
fabricd=no
vrrpd=no
pathd=no
vtysh_enable=yes
zebra_options="-A 127.0.0.1 -s 90000000"
mgmtd_options="-A 127.0.0.1"
staticd_options="-A 127.0.0.1"
ORBITLAB_EOF_db323b561066fc3b
	put_file /etc/frr/frr.conf 644 <<'ORBITLAB_EOF_303c2c5f7ace46c1'
! OrbitLab Sector Gateway olvn1002-router: Sector den (tag 1002).
! Rendered by OrbitLab; local changes are overwritten. Static routing only, by design.
frr defaults traditional
hostname olvn1002-router
log syslog informational
no ipv6 forwarding
! IPv4 forwarding is not FRR's: the orbitlab-forwarding service turns it on only once
! nftables has loaded the ruleset (fail closed).
!
interface eth0
 ip address 10.40.0.1/24
 no shutdown
!
interface eth1
 ip address 10.200.0.12/16
 no shutdown
!
ip route 0.0.0.0/0 10.200.0.1
!
end
ORBITLAB_EOF_303c2c5f7ace46c1
	put_file /etc/nftables.nft 755 <<'ORBITLAB_EOF_bbb0955d70c24384'
#!/usr/sbin/nft -f
# OrbitLab Sector Gateway olvn1002-router: Sector den (tag 1002).
# Rendered by OrbitLab; local changes are overwritten. eth0 = Sector, eth1 = Backplane.
# Interface names are matched by name (iifname/oifname), so the rules load before the
# interfaces exist. Filter chains drop by default, and every accept matches IPv4 only
# (ip ...), so IPv6 is never forwarded nor answered (the appliance also disables it).
# Every rule here is proven by a twin check that fails without it (tests/test_rule_coverage.py).
flush ruleset

define sector_nets = { 10.40.0.0/24 }
define sector_gateways = { 10.40.0.1 }
define sector_dns = 10.40.0.2
define sector_dns_mac = 02:4f:4c:20:03:ea
define backplane = 10.200.0.0/16
define gateway_backplane = 10.200.0.12
define nodes = { 198.51.100.11, 198.51.100.12 }

table inet orbitlab {
	# the Sector hosts with connections through the gateway, each with their count
	set per_host {
		type ipv4_addr
		size 65535
		flags dynamic
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		# no port forwards declared
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth1" ip saddr $sector_nets masquerade
	}

	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		# a source outside the Sector is dropped, not answered: an answer would go to
		# whoever it names
		iifname "eth0" ip saddr != $sector_nets drop
		iifname "eth0" ip daddr $sector_gateways icmp type echo-request accept
		iifname "eth0" reject with icmpx type admin-prohibited
		iifname "eth1" ip daddr $gateway_backplane icmp type echo-request accept
		# nothing else: no SSH (the appliance runs no sshd; the node uses pct enter)
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
		tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
		ct state invalid drop
		# a forged source is dropped, not rejected: the reject would go to the address it
		# names (a reflection), not to the sender
		iifname "eth0" ip saddr != $sector_nets drop
		ct state established,related accept
		# at most 4096 tracked connections per Sector host: a flood cannot
		# fill the node's connection tracking, which every Sector shares
		iifname "eth0" ct state new add @per_host { ip saddr ct count over 4096 } drop
		# between the Sector's own subnets
		iifname "eth0" oifname "eth0" ip saddr $sector_nets ip daddr $sector_nets accept
		# never the Backplane, never a node (any of its addresses: LAN, GUI, storage ...)
		iifname "eth0" ip daddr $backplane reject with icmpx type admin-prohibited
		iifname "eth0" ip daddr $nodes reject with icmpx type admin-prohibited
		# only the Sector DNS queries resolvers directly: its pinned MAC and its address
		# together, so a host that takes its address (or its MAC) does not pass
		iifname "eth0" ether saddr . ip saddr != { $sector_dns_mac . $sector_dns } meta l4proto { tcp, udp } th dport { 53, 853 } reject with icmpx type admin-prohibited
		# an explicit deny always wins, for the appliances too
		iifname "eth0" oifname "eth1" ip saddr $sector_nets accept
		# declared port forwards, DNAT-ed on the way in
		iifname "eth0" reject with icmpx type admin-prohibited
	}
}
ORBITLAB_EOF_bbb0955d70c24384
	put_file /etc/sysctl.d/90-orbitlab.conf 644 <<'ORBITLAB_EOF_c0b9813af92fef05'
# OrbitLab Sector Gateway: no IPv6, no ICMP redirects (hosts in different subnets share
# eth0), on every interface: a redirect is sent if "all" or the interface allows it.
# Forwarding is not set here: orbitlab-forwarding keeps it off until nftables has loaded
# the ruleset, and FRR turns it on. Rendered by OrbitLab.
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
ORBITLAB_EOF_c0b9813af92fef05
	put_file /etc/sysctl.d/89-orbitlab-forwarding.conf 644 <<'ORBITLAB_EOF_92d37697f2024f35'
# OrbitLab Sector Gateway: forwarding starts off at boot; the orbitlab-forwarding service
# turns it on once nftables has loaded the ruleset. Rendered by OrbitLab.
net.ipv4.ip_forward = 0
ORBITLAB_EOF_92d37697f2024f35
	put_file /etc/init.d/orbitlab-forwarding 755 <<'ORBITLAB_EOF_4eeb6395ef469ee7'
#!/sbin/openrc-run
# OrbitLab Sector Gateway: IPv4 forwarding is on only while the ruleset is loaded. It needs
# nftables, so a ruleset that fails to load leaves the gateway not forwarding (boot sets
# forwarding off first: /etc/sysctl.d/89-orbitlab-forwarding.conf). Rendered by OrbitLab.
description="OrbitLab: IPv4 forwarding, once nftables has loaded the ruleset"

depend() {
	need nftables
	before frr
}

start() {
	ebegin "Turning IPv4 forwarding on (the ruleset is loaded)"
	nft list table inet orbitlab >/dev/null && sysctl -q -w net.ipv4.ip_forward=1
	eend $?
}

stop() {
	ebegin "Turning IPv4 forwarding off"
	sysctl -q -w net.ipv4.ip_forward=0
	eend $?
}
ORBITLAB_EOF_4eeb6395ef469ee7
}

# --- commands ------------------------------------------------------------------------
prepare() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	if apk info -e frr nftables iproute2 conntrack-tools >/dev/null 2>&1; then
		return 0
	fi
	wait_for "a default route" 120 has_default_route
	wait_for "DNS (dl-cdn.alpinelinux.org)" 120 nslookup dl-cdn.alpinelinux.org
	grep -q '/community$' /etc/apk/repositories || { community=$(sed -n 's#/main$#/community#p' /etc/apk/repositories); [ -z "$community" ] || printf '%s\n' "$community" >> /etc/apk/repositories; }
	apk update --quiet
	say "installing frr nftables iproute2 conntrack-tools"
	apk add --quiet --no-progress frr nftables iproute2 conntrack-tools
}

# Each service: enabled; started (its config checked first) when it is not running, else
# reloaded (checked first) when one of its files is pending.
activate() {
	[ -e /etc/runlevels/boot/sysctl ] || rc-update add sysctl boot
	sysctl -q -p /etc/sysctl.d/90-orbitlab.conf
	nft list table inet orbitlab >/dev/null 2>&1 || sysctl -q -w net.ipv4.ip_forward=0
	[ -e /etc/runlevels/default/nftables ] || rc-update add nftables default
	if ! rc-service nftables status >/dev/null 2>&1; then
		nft -c -f /etc/nftables.nft
		say "starting nftables"
		rc-service nftables start
	elif grep -qxF -e /etc/nftables.nft "$PENDING" 2>/dev/null; then
		nft -c -f /etc/nftables.nft
		say "reloading nftables"
		rc-service nftables reload && conntrack -F 2>/dev/null
	fi
	[ -e /etc/runlevels/default/orbitlab-forwarding ] || rc-update add orbitlab-forwarding default
	if ! rc-service orbitlab-forwarding status >/dev/null 2>&1; then
		say "starting orbitlab-forwarding"
		rc-service orbitlab-forwarding start
	elif grep -qxF -e /etc/init.d/orbitlab-forwarding -e /etc/nftables.nft "$PENDING" 2>/dev/null; then
		say "reloading orbitlab-forwarding"
		rc-service orbitlab-forwarding restart
	fi
	[ -e /etc/runlevels/default/frr ] || rc-update add frr default
	if ! rc-service frr status >/dev/null 2>&1; then
		vtysh -C -f /etc/frr/frr.conf
		say "starting frr"
		rc-service frr start
	elif grep -qxF -e /etc/frr/frr.conf -e /etc/frr/daemons "$PENDING" 2>/dev/null; then
		vtysh -C -f /etc/frr/frr.conf
		say "reloading frr"
		if [ -x /usr/lib/frr/frr-reload.py ] && command -v python3 >/dev/null; then rc-service frr reload; else rc-service frr restart; fi
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
