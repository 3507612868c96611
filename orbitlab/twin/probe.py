"""A tiny client run inside twin namespaces: connect, read the answer, name the outcome.

Prints one JSON object: ``result`` is ``ok`` (answered; ``body`` holds the answer),
``refused`` (a TCP reset or ICMP port unreachable: the target was reached), ``rejected``
(an ICMP "prohibited"/unreachable came back: a filter rejected it), ``timeout`` or
``error``::

    python -m orbitlab.twin.probe tcp 203.0.113.10 80
    {"result": "ok", "body": "internet 192.0.2.11"}

Standard library only; it runs under the twin's Python inside the namespace.
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
from collections.abc import Sequence

BLOCKED = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}


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


def probe_tcp(address: str, port: int, timeout: float, http: bool) -> dict[str, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((address, port))
        if http:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return {"result": "ok", "body": body_of(answer)}


def probe_udp(address: str, port: int, timeout: float) -> dict[str, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((address, port))
        sock.send(b"orbitlab twin probe\n")
        return {"result": "ok", "body": sock.recv(4096).decode(errors="replace").strip()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="probe a TCP/UDP service, print JSON")
    parser.add_argument("protocol", choices=["tcp", "udp", "http"])
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    try:
        if args.protocol == "udp":
            found = probe_udp(args.address, args.port, args.timeout)
        else:
            found = probe_tcp(args.address, args.port, args.timeout, args.protocol == "http")
    except OSError as error:
        found = {"result": outcome(error), "body": "", "detail": str(error)}
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
