"""A tiny service run inside twin namespaces: it answers who it is and who asked.

Every TCP connection gets an HTTP/1.0 response whose body is ``<name> <peer address>``, so
an HTTP health check (HAProxy) and a raw TCP client both work, and a test can see both who
answered and the source address the server saw (SNAT, DNAT, proxying). What a proxy passed
on is appended: ``xff=<address>`` (an ``X-Forwarded-For`` header) and ``proxy=<address>``
(a PROXY protocol v2 header). UDP datagrams get ``<name> <peer address>`` back::

    python -m orbitlab_lab.twin.echo --name app1 --tcp 8080,22 --udp 53 --ready /run/x.ready

Standard library only; it runs under the twin's Python inside the namespace.
"""

from __future__ import annotations

import argparse
import re
import socket
import socketserver
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

REQUEST_WAIT_S = 0.3
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PROXY_V2_TCP4 = 0x11
FORWARDED_FOR = re.compile(rb"^x-forwarded-for:[ \t]*([^\r\n]+)", re.IGNORECASE | re.MULTILINE)


def response(name: str, peer: str, extra: Sequence[str] = ()) -> bytes:
    """The HTTP response carrying ``name peer`` and what a proxy passed on.

    >>> response("app1", "10.0.0.1").split(b"\\r\\n\\r\\n")[1]
    b'app1 10.0.0.1\\n'
    >>> response("app1", "10.0.0.3", ["xff=192.0.2.100"]).split(b"\\r\\n\\r\\n")[1]
    b'app1 10.0.0.3 xff=192.0.2.100\\n'
    """
    body = " ".join([name, peer, *extra]).encode() + b"\n"
    head = f"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def proxy_v2_source(data: bytes) -> tuple[str | None, bytes]:
    """The client address a PROXY v2 header carries (None for LOCAL, e.g. a health check),
    and the bytes after the header; ``(None, data)`` when there is no header.

    >>> header = PROXY_V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", 12)
    >>> addresses = bytes([192, 0, 2, 100, 10, 200, 0, 11]) + struct.pack("!HH", 40000, 80)
    >>> proxy_v2_source(header + addresses + b"GET /")
    ('192.0.2.100', b'GET /')
    """
    if not data.startswith(PROXY_V2_SIGNATURE) or len(data) < 16:
        return None, data
    command, family = data[12] & 0x0F, data[13]
    (length,) = struct.unpack("!H", data[14:16])
    rest = data[16 + length :]
    if command == 1 and family == PROXY_V2_TCP4 and length >= 12:
        return socket.inet_ntoa(data[16:20]), rest
    return None, rest


def passed_on(received: bytes) -> list[str]:
    """What a proxy told us about the client: ``proxy=`` and ``xff=`` entries."""
    source, request = proxy_v2_source(received)
    found = [f"proxy={source}"] if source else []
    forwarded = FORWARDED_FOR.search(request)
    if forwarded:
        found.append("xff=" + forwarded.group(1).decode(errors="replace").strip())
    return found


def _read_request(connection: socket.socket) -> bytes:
    """Read what the client sends first (an HTTP request, or nothing for raw TCP)."""
    connection.settimeout(REQUEST_WAIT_S)
    received = b""
    try:
        while b"\r\n\r\n" not in received and len(received) < 65536:
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        pass
    return received


def _tcp_server(name: str, port: int) -> socketserver.ThreadingTCPServer:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            extra = passed_on(_read_request(self.request))
            self.request.sendall(response(name, self.client_address[0], extra))

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    return server


def _udp_server(name: str, port: int) -> socketserver.ThreadingUDPServer:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            _, sock = self.request
            sock.sendto(f"{name} {self.client_address[0]}\n".encode(), self.client_address)

    return socketserver.ThreadingUDPServer(("0.0.0.0", port), Handler)


def _ports(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="answer '<name> <peer>' on TCP and UDP ports")
    parser.add_argument("--name", required=True)
    parser.add_argument("--tcp", default="", help="comma-separated TCP ports")
    parser.add_argument("--udp", default="", help="comma-separated UDP ports")
    parser.add_argument("--ready", help="file written once every port is bound")
    args = parser.parse_args(argv)
    servers: list[socketserver.BaseServer] = [
        *(_tcp_server(args.name, port) for port in _ports(args.tcp)),
        *(_udp_server(args.name, port) for port in _ports(args.udp)),
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    if args.ready:
        Path(args.ready).write_text("ready\n")
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
