"""A tiny client run inside twin namespaces: connect, read the answer, name the outcome.

Prints one JSON object: ``result`` is ``ok`` (answered; ``body`` holds the answer),
``refused`` (a TCP reset or ICMP port unreachable: the target was reached), ``rejected``
(an ICMP "administratively prohibited" came back: a filter rejected it; ``by`` names the
address that sent it, as seen on the wire), ``unreachable`` (another ICMP unreachable, or
none seen), ``timeout`` or ``error``::

    python -m orbitlab_lab.twin.probe tcp 203.0.113.10 80
    {"result": "ok", "body": "internet 192.0.2.11"}

While it waits, a raw ICMP socket watches for the error that answers this very probe (the
ICMP message quotes the probe's own addresses and ports), so a rejection is attributed to
the router that sent it, not guessed from an errno.

Standard library only; it runs under the twin's Python inside the namespace.
"""

from __future__ import annotations

import argparse
import errno
import json
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

BLOCKED = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}
ICMP_UNREACHABLE = 3
#: Codes of "communication administratively prohibited" (RFC 1812): net, host, filtered.
PROHIBITED_CODES = {9, 10, 13}
PORT_UNREACHABLE = 3
ICMP_WAIT_S = 0.3


@dataclass(frozen=True)
class Icmp:
    """An ICMP destination-unreachable that quotes one of our packets."""

    sender: str
    code: int


def quoted_flow(packet: bytes) -> tuple[int, str, int, int] | None:
    """(protocol, destination, source port, destination port) quoted by an ICMP
    unreachable (``packet`` starts at the outer IP header), or None.

    >>> outer = bytes([0x45]) + bytes(8) + bytes([1]) + bytes(10)
    >>> inner = bytes([0x45]) + bytes(8) + bytes([6]) + bytes(6) + bytes([203, 0, 113, 10])
    >>> quoted_flow(outer + bytes([3, 13]) + bytes(6) + inner + struct.pack("!HH", 40000, 80))
    (6, '203.0.113.10', 40000, 80)
    """
    outer_length = (packet[0] & 0x0F) * 4
    icmp = packet[outer_length:]
    if len(icmp) < 8 + 20 + 4 or icmp[0] != ICMP_UNREACHABLE:
        return None
    inner = icmp[8:]
    inner_length = (inner[0] & 0x0F) * 4
    ports = inner[inner_length : inner_length + 4]
    if len(ports) < 4:
        return None
    source_port, destination_port = struct.unpack("!HH", ports)
    return inner[9], socket.inet_ntoa(inner[16:20]), source_port, destination_port


def watch_icmp() -> socket.socket | None:
    """A raw socket that sees incoming ICMP (needs CAP_NET_RAW; None without it)."""
    try:
        sniffer = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except OSError:
        return None
    sniffer.setblocking(False)
    return sniffer


def answer_to(
    sniffer: socket.socket | None, protocol: int, address: str, sport: int, dport: int
) -> Icmp | None:
    """The ICMP unreachable that quotes this flow, waiting a little for it."""
    if sniffer is None:
        return None
    deadline = time.monotonic() + ICMP_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sniffer], [], [], left)[0]:
            break
        packet, origin = sniffer.recvfrom(65535)
        if quoted_flow(packet) == (protocol, address, sport, dport):
            return Icmp(origin[0], packet[(packet[0] & 0x0F) * 4 + 1])
    return None


def classify(error: OSError, icmp: Icmp | None) -> dict[str, str]:
    """The outcome of a failed probe, with the ICMP that explains it when one was seen."""
    if icmp is not None and icmp.code in PROHIBITED_CODES:
        return {"result": "rejected", "body": "", "by": icmp.sender, "code": str(icmp.code)}
    if icmp is not None and icmp.code == PORT_UNREACHABLE:
        return {"result": "refused", "body": "", "by": icmp.sender}
    found = outcome(error)
    if found == "rejected":
        # an errno of the kind, but no prohibited ICMP quoting this probe arrived
        found = "unreachable"
    detail = {"by": icmp.sender, "code": str(icmp.code)} if icmp else {}
    return {"result": found, "body": "", **detail}


def outcome(error: OSError) -> str:
    """Name a socket error the way the twin's checks read it.

    >>> outcome(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    'refused'
    >>> outcome(OSError(errno.EHOSTUNREACH, "no route"))
    'rejected'
    """
    if isinstance(error, TimeoutError):
        return "timeout"
    if error.errno == errno.ECONNREFUSED:
        return "refused"
    if error.errno in BLOCKED:
        return "rejected"
    return "error"


def body_of(answer: bytes) -> str:
    """The body of an HTTP answer (or the whole answer when it has no header)."""
    text = answer.decode(errors="replace")
    return text.split("\r\n\r\n", 1)[-1].strip()


#: What a client may claim to be: an HTTP request of ``http-forged`` carries it as its own
#: X-Forwarded-For, which a proxy must replace, not pass on or append to.
FORGED_CLIENT = "203.0.113.66"


def probe_tcp(
    address: str, port: int, timeout: float, http: bool, forged: bool = False
) -> dict[str, str]:
    sniffer = watch_icmp()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("0.0.0.0", 0))
        sport = sock.getsockname()[1]
        try:
            sock.connect((address, port))
            if http:
                claim = f"X-Forwarded-For: {FORGED_CLIENT}\r\n" if forged else ""
                sock.sendall(f"GET / HTTP/1.0\r\nHost: {address}\r\n{claim}\r\n".encode())
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        except OSError as error:
            return classify(error, answer_to(sniffer, socket.IPPROTO_TCP, address, sport, port))
        finally:
            if sniffer is not None:
                sniffer.close()
    return {"result": "ok", "body": body_of(answer)}


def probe_udp(address: str, port: int, timeout: float, sport: int = 0) -> dict[str, str]:
    sniffer = watch_icmp()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", sport))
        sock.connect((address, port))
        sport = sock.getsockname()[1]
        try:
            sock.send(b"orbitlab twin probe\n")
            return {"result": "ok", "body": sock.recv(4096).decode(errors="replace").strip()}
        except OSError as error:
            return classify(error, answer_to(sniffer, socket.IPPROTO_UDP, address, sport, port))
        finally:
            if sniffer is not None:
                sniffer.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="probe a TCP/UDP service, print JSON")
    parser.add_argument("protocol", choices=["tcp", "udp", "http", "http-forged"])
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument(
        "--sport", type=int, default=0, help="UDP source port (to continue a flow); default any"
    )
    args = parser.parse_args(argv)
    try:
        if args.protocol == "udp":
            found = probe_udp(args.address, args.port, args.timeout, args.sport)
        else:
            http = args.protocol.startswith("http")
            forged = args.protocol == "http-forged"
            found = probe_tcp(args.address, args.port, args.timeout, http, forged)
    except OSError as error:
        found = {"result": outcome(error), "body": "", "detail": str(error)}
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
