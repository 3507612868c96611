#!/bin/sh
# OrbitLab provisioning of olvn1003-router: the gateway of Sector vault (tag 1003).
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

CHANGED=""
say() { echo "orbitlab[olvn1003-router]: $*" >&2; }

# put_file PATH MODE < CONTENT: replace PATH only when its content differs.
put_file() {
	target="$ROOT$1"
	mkdir -p "$(dirname "$target")"
	cat > "$target.orbitlab-new"
	if [ -f "$target" ] && cmp -s "$target.orbitlab-new" "$target"; then
		rm -f "$target.orbitlab-new"
	else
		chmod "$2" "$target.orbitlab-new"
		mv -f "$target.orbitlab-new" "$target"
		CHANGED="$CHANGED $1"
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
	put_file /etc/frr/frr.conf 644 <<'ORBITLAB_EOF_4cbe2666abbe8fc7'
! OrbitLab Sector Gateway olvn1003-router: Sector vault (tag 1003).
! Rendered by OrbitLab; local changes are overwritten. Static routing only, by design.
frr defaults traditional
hostname olvn1003-router
log syslog informational
no ipv6 forwarding
ip forwarding
!
interface eth0
 ip address 10.50.0.1/24
 no shutdown
!
interface eth1
 ip address 10.200.0.14/16
 no shutdown
!
ip route 0.0.0.0/0 10.200.0.1
!
end
ORBITLAB_EOF_4cbe2666abbe8fc7
	put_file /etc/nftables.nft 755 <<'ORBITLAB_EOF_8ec06181d25253ef'
#!/usr/sbin/nft -f
# OrbitLab Sector Gateway olvn1003-router: Sector vault (tag 1003).
# Rendered by OrbitLab; local changes are overwritten. eth0 = Sector, eth1 = Backplane.
# Interface names are matched by name (iifname/oifname), so the rules load before the
# interfaces exist. Filter chains drop by default; IPv6 is never forwarded.
flush ruleset

define sector_nets = { 10.50.0.0/24 }
define sector_gateways = { 10.50.0.1 }
define sector_dns = 10.50.0.2
define sector_dns_mac = 02:4f:4c:20:03:eb
define backplane = 10.200.0.0/16
define gateway_backplane = 10.200.0.14
define nodes = { 198.51.100.11, 198.51.100.12 }

table inet orbitlab {
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
		ct state invalid drop
		ct state established,related accept
		meta nfproto ipv6 drop
		iifname "eth0" ip daddr $sector_gateways icmp type echo-request accept
		iifname "eth0" reject with icmpx type admin-prohibited
		iifname "eth1" ip daddr $gateway_backplane icmp type echo-request accept
		iifname "eth1" ip daddr $gateway_backplane tcp dport 22 accept
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
		tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
		ct state invalid drop
		ct state established,related accept
		meta nfproto ipv6 drop
		# between the Sector's own subnets
		iifname "eth0" oifname "eth0" ip saddr $sector_nets ip daddr $sector_nets accept
		# never the Backplane, never a node (their LAN addresses, their GUI)
		iifname "eth0" ip daddr $backplane reject with icmpx type admin-prohibited
		iifname "eth0" ip daddr $nodes reject with icmpx type admin-prohibited
		# only the Sector DNS queries resolvers directly: its address and its pinned MAC
		# together, so a host that takes its address does not pass
		iifname "eth0" ip saddr != $sector_dns meta l4proto { tcp, udp } th dport { 53, 853 } reject with icmpx type admin-prohibited
		iifname "eth0" ether saddr != $sector_dns_mac meta l4proto { tcp, udp } th dport { 53, 853 } reject with icmpx type admin-prohibited
		# the Sector DNS appliance (address and MAC) forwards to its resolvers and installs
		# packages, whatever the egress policy; the rest of its traffic follows the policy
		iifname "eth0" oifname "eth1" ether saddr $sector_dns_mac ip saddr $sector_dns ip daddr { 198.51.100.53 } meta l4proto { tcp, udp } th dport { 53, 853 } accept
		iifname "eth0" oifname "eth1" ether saddr $sector_dns_mac ip saddr $sector_dns tcp dport { 80, 443 } accept
		iifname "eth0" oifname "eth1" ip saddr $sector_nets accept
		# declared port forwards, DNAT-ed on the way in
		iifname "eth0" reject with icmpx type admin-prohibited
	}
}
ORBITLAB_EOF_8ec06181d25253ef
	put_file /etc/sysctl.d/90-orbitlab.conf 644 <<'ORBITLAB_EOF_aaef616fedb7ef57'
# OrbitLab Sector Gateway: forward IPv4 between the Sector and the Backplane; no IPv6,
# no ICMP redirects (hosts in different subnets share eth0). Rendered by OrbitLab.
net.ipv4.ip_forward = 1
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.default.send_redirects = 0
net.ipv4.conf.all.accept_redirects = 0
net.ipv4.conf.default.accept_redirects = 0
net.ipv6.conf.all.disable_ipv6 = 1
net.ipv6.conf.default.disable_ipv6 = 1
ORBITLAB_EOF_aaef616fedb7ef57
}

# --- commands ------------------------------------------------------------------------
prepare() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	if apk info -e frr nftables iproute2 >/dev/null 2>&1; then
		return 0
	fi
	wait_for "a default route" 120 has_default_route
	wait_for "DNS (dl-cdn.alpinelinux.org)" 120 nslookup dl-cdn.alpinelinux.org
	grep -q '/community$' /etc/apk/repositories || sed -n 's#/main$#/community#p' /etc/apk/repositories >> /etc/apk/repositories
	apk update --quiet
	say "installing frr nftables iproute2"
	apk add --quiet --no-progress frr nftables iproute2
}

# A service is reloaded when one of its files changed in this run or in an earlier run
# that failed before reloading (kept in $PENDING), or when it is not running.
PENDING=/run/orbitlab-pending
activate() {
	mkdir -p "$(dirname "$PENDING")"
	for path in $CHANGED; do echo "$path" >> "$PENDING"; done
	sysctl -q -p /etc/sysctl.d/90-orbitlab.conf
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
