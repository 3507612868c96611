"""Raw frames on a twin NIC: what a rogue host sends on its Sector VNet, and what arrives.

Run inside a twin namespace (standard library only, an ``AF_PACKET`` socket on the NIC),
it prints one JSON object:

- ``discover IFACE [--chaddr MAC] [--wait S]``: a DHCPDISCOVER from the NIC's own MAC,
  its payload naming ``--chaddr`` (default: the NIC's MAC), broadcast; then the DHCPOFFERs
  that answer it (same xid) for ``S`` seconds: ``{"offers": [{"server_mac", "server_id",
  "yiaddr"}]}``. A DHCP client cannot do this: it always names its own NIC;
- ``advertise IFACE [--count N]``: ``N`` IPv6 router advertisements and ``N`` DHCPv6
  ADVERTISE messages to all nodes of the link (``ff02::1``): ``{"sent": 2N}``;
- ``listen IFACE [--wait S]``: counts, for ``S`` seconds, router advertisements and DHCPv6
  server messages arriving on the NIC: ``{"ra": n, "dhcpv6": n}``.

>>> frame = discover_frame(bytes(6), bytes.fromhex("bc2411200010"), 0x1234)
>>> len(frame), frame[12:14].hex(), frame[42 + 28:42 + 34].hex()
(342, '0800', 'bc2411200010')
>>> parse_offer(offer_frame(0x1234), 0x1234)["yiaddr"]
'10.20.1.100'
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ETH_P_ALL = 0x0003
IPV4, IPV6 = 0x0800, 0x86DD
UDP, ICMPV6 = 17, 58
BOOTP_SERVER, BOOTP_CLIENT = 67, 68
DHCPV6_SERVER, DHCPV6_CLIENT = 547, 546
ROUTER_ADVERTISEMENT = 134
DHCP_MAGIC = bytes.fromhex("63825363")
DHCPDISCOVER, DHCPOFFER = 1, 2
DHCPV6_ADVERTISE = 2
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_NODES_MAC = bytes.fromhex("333300000001")
BROADCAST_MAC = b"\xff" * 6


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp(source: bytes, destination: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 packet carrying UDP (UDP checksum 0: none, as IPv4 allows)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, UDP, 0, source, destination
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + udp


def ipv6(source: bytes, destination: bytes, next_header: int, body: bytes) -> bytes:
    """An IPv6 packet with ``body``, whose checksum field (at 2, ICMPv6; 6, UDP) is filled."""
    pseudo = source + destination + struct.pack("!I3xB", len(body), next_header)
    at = 2 if next_header == ICMPV6 else 6
    body = body[:at] + struct.pack("!H", checksum(pseudo + body)) + body[at + 2 :]
    header = struct.pack("!IHBB", 6 << 28, len(body), next_header, 255)
    return header + source + destination + body


def link_local(mac: bytes) -> bytes:
    """The EUI-64 link-local address of a MAC."""
    eui = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return bytes.fromhex("fe80000000000000") + eui


def bootp(
    op: int, xid: int, chaddr: bytes, message: int, yiaddr: bytes = bytes(4), extra: bytes = b""
) -> bytes:
    zero = bytes(4)
    fixed = struct.pack("!BBBBIHH4s4s4s4s", op, 1, 6, 0, xid, 0, 0x8000, zero, yiaddr, zero, zero)
    options = bytes([53, 1, message, 55, 3, 1, 3, 6]) + extra + bytes([255])
    body = fixed + chaddr.ljust(16, b"\0") + bytes(64 + 128) + DHCP_MAGIC + options
    return body.ljust(300, b"\0")


def discover_frame(source_mac: bytes, chaddr: bytes, xid: int) -> bytes:
    """A broadcast DHCPDISCOVER from ``source_mac`` whose payload names ``chaddr``."""
    payload = bootp(1, xid, chaddr, DHCPDISCOVER)
    packet = ipv4_udp(bytes(4), b"\xff" * 4, BOOTP_CLIENT, BOOTP_SERVER, payload)
    return BROADCAST_MAC + source_mac + struct.pack("!H", IPV4) + packet


def offer_frame(xid: int) -> bytes:
    """A DHCPOFFER (for the doctest): server 10.20.1.2 offers 10.20.1.100."""
    server = bytes([54, 4]) + socket.inet_aton("10.20.1.2")
    payload = bootp(2, xid, bytes(6), DHCPOFFER, socket.inet_aton("10.20.1.100"), server)
    packet = ipv4_udp(socket.inet_aton("10.20.1.2"), b"\xff" * 4, 67, 68, payload)
    return BROADCAST_MAC + bytes.fromhex("024f4c2003e9") + struct.pack("!H", IPV4) + packet


def _options(data: bytes) -> dict[int, bytes]:
    found, at = {}, 0
    while at < len(data) and data[at] != 255:
        if data[at] == 0:
            at += 1
            continue
        size = data[at + 1]
        found[data[at]] = data[at + 2 : at + 2 + size]
        at += 2 + size
    return found


def parse_offer(frame: bytes, xid: int) -> dict[str, str] | None:
    """The DHCPOFFER answering ``xid`` in ``frame``, or None."""
    if len(frame) < 14 + 20 + 8 + 240 or struct.unpack("!H", frame[12:14])[0] != IPV4:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != UDP:
        return None
    sport, dport = struct.unpack("!HH", ip[ihl : ihl + 4])
    body = ip[ihl + 8 :]
    if (sport, dport) != (BOOTP_SERVER, BOOTP_CLIENT) or body[0] != 2:
        return None
    if struct.unpack("!I", body[4:8])[0] != xid or body[236:240] != DHCP_MAGIC:
        return None
    options = _options(body[240:])
    if options.get(53) != bytes([DHCPOFFER]):
        return None
    server = options.get(54, ip[12:16])
    return {
        "server_mac": frame[6:12].hex(":"),
        "server_id": socket.inet_ntoa(server),
        "yiaddr": socket.inet_ntoa(body[16:20]),
    }


def rogue_v6_frames(mac: bytes) -> list[bytes]:
    """A router advertisement and a DHCPv6 ADVERTISE from ``mac`` to all nodes."""
    source = link_local(mac)
    ra = struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, 64, 0, 1800, 0, 0)
    message = bytes([DHCPV6_ADVERTISE, 0, 0, 1])
    dhcpv6 = struct.pack("!HHHH", DHCPV6_SERVER, DHCPV6_CLIENT, 8 + len(message), 0) + message
    head = ALL_NODES_MAC + mac + struct.pack("!H", IPV6)
    return [head + ipv6(source, ALL_NODES, ICMPV6, ra), head + ipv6(source, ALL_NODES, UDP, dhcpv6)]


def classify_v6(frame: bytes) -> str | None:
    """``ra``, ``dhcpv6`` (a server's message) or None."""
    if len(frame) < 14 + 40 + 4 or struct.unpack("!H", frame[12:14])[0] != IPV6:
        return None
    next_header, body = frame[14 + 6], frame[14 + 40 :]
    if next_header == ICMPV6 and body[0] == ROUTER_ADVERTISEMENT:
        return "ra"
    if next_header == UDP and struct.unpack("!H", body[:2])[0] == DHCPV6_SERVER:
        return "dhcpv6"
    return None


def nic_mac(iface: str) -> bytes:
    text = Path(f"/sys/class/net/{iface}/address").read_text()
    return bytes.fromhex(text.strip().replace(":", ""))


def raw_socket(iface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    return sock


def frames(sock: socket.socket, wait: float) -> list[bytes]:
    """Every frame the NIC receives (not those it sends) for ``wait`` seconds."""
    received, deadline = [], time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            data, address = sock.recvfrom(65535)
            if address[2] != socket.PACKET_OUTGOING:
                received.append(data)
    return received


def discover(iface: str, chaddr: str | None, wait: float) -> dict[str, Any]:
    mac = nic_mac(iface)
    named = bytes.fromhex(chaddr.replace(":", "")) if chaddr else mac
    xid = int.from_bytes(os.urandom(4), "big")
    with raw_socket(iface) as sock:
        sock.send(discover_frame(mac, named, xid))
        offers = [offer for f in frames(sock, wait) if (offer := parse_offer(f, xid))]
    return {"offers": offers}


def advertise(iface: str, count: int) -> dict[str, Any]:
    with raw_socket(iface) as sock:
        for _ in range(count):
            for frame in rogue_v6_frames(nic_mac(iface)):
                sock.send(frame)
            time.sleep(0.05)
    return {"sent": 2 * count}


def listen(iface: str, wait: float) -> dict[str, Any]:
    counts = {"ra": 0, "dhcpv6": 0}
    with raw_socket(iface) as sock:
        print(json.dumps({"listening": iface}), flush=True)
        for frame in frames(sock, wait):
            kind = classify_v6(frame)
            if kind is not None:
                counts[kind] += 1
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="l2probe")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("discover")
    one.add_argument("iface")
    one.add_argument("--chaddr")
    one.add_argument("--wait", type=float, default=3.0)
    two = commands.add_parser("advertise")
    two.add_argument("iface")
    two.add_argument("--count", type=int, default=5)
    three = commands.add_parser("listen")
    three.add_argument("iface")
    three.add_argument("--wait", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.command == "discover":
        result = discover(args.iface, args.chaddr, args.wait)
    elif args.command == "advertise":
        result = advertise(args.iface, args.count)
    else:
        result = listen(args.iface, args.wait)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
