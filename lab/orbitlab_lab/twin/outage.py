"""Measuring an outage from inside the twin: an echo server and a client that watches it.

``serve PORT`` answers every line with the same line (on every connection, until killed).
``watch ADDRESS PORT`` keeps one connection open and sends a line on it every tick, and
every tick also opens a new connection and sends a line on it; it ends when told
(``SIGTERM``) or at ``--deadline``, and prints JSON::

    python -m orbitlab_lab.twin.outage watch 203.0.113.10 9099
    {"ticks": 212, "outage_s": 2.61, "failures": 24, "established": "broken", ...}

``outage_s`` is the longest time no new connection got through: from the end of the last
attempt that did to the start of the next one that did, around a run of failed attempts
(so at most a tick and an attempt's time longer than the real gap); ``established`` says
whether the connection opened first still carried its lines at the end (``open``) or not
(``broken``, with ``broken_after_s``).

The in-namespace part is standard library only (it runs under the twin's Python inside
the namespace); :func:`serving` and :func:`watching` start the two from outside, for the
tests and benchmarks::

    with serving(twin, "external:inet", 9099), watching(twin, "web/app1", "203.0.113.10",
                                                        9099) as report:
        ...                                   # reboot the gateway
        print(report())                       # waits for the watch's end
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orbitlab_lab.twin.context import TwinContext

TICK_S = 0.05
#: A failed attempt (a gateway that is gone answers nothing) takes this long: the
#: resolution of ``outage_s``, with a tick.
ATTEMPT_TIMEOUT_S = 0.25
#: How long the open connection may take to carry a line (TCP retransmits meanwhile).
OPEN_TIMEOUT_S = 5.0


def serve(port: int) -> None:
    """Echo every line, on every connection."""

    class Echo(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("0.0.0.0", port), Echo) as server:
        server.daemon_threads = True
        server.serve_forever()


def _echoes(connection: socket.socket, line: bytes) -> bool:
    connection.sendall(line)
    received = b""
    while not received.endswith(b"\n"):
        chunk = connection.recv(64)
        if not chunk:
            return False
        received += chunk
    return received == line


def attempt(address: str, port: int, line: bytes) -> bool:
    """A new connection carries one line there and back."""
    try:
        with socket.create_connection((address, port), timeout=ATTEMPT_TIMEOUT_S) as connection:
            return _echoes(connection, line)
    except OSError:
        return False


@dataclass
class Watch:
    """What the watch saw, attempt by attempt.

    >>> seen = Watch(started=0.0)
    >>> for ok, start, end in [(True, 0.0, 0.1), (False, 0.2, 0.7), (False, 0.8, 1.3),
    ...                        (True, 1.4, 1.5)]:
    ...     seen.record(ok, start, end)
    >>> round(seen.outage_s, 2), seen.failures, seen.failing
    (1.3, 2, False)
    """

    started: float = field(default_factory=time.monotonic)
    ticks: int = 0
    failures: int = 0
    last_ok_end: float | None = None
    failing: bool = False
    outage_s: float = 0.0
    broken_at: float | None = None

    def record(self, ok: bool, start: float, end: float) -> None:
        self.ticks += 1
        if not ok:
            self.failures += 1
            self.failing = True
            return
        if self.failing:
            since = self.last_ok_end if self.last_ok_end is not None else self.started
            self.outage_s = max(self.outage_s, start - since)
            self.failing = False
        self.last_ok_end = end

    def report(self, established: bool) -> dict[str, object]:
        broken_after = None if self.broken_at is None else self.broken_at - self.started
        return {
            "ticks": self.ticks,
            "failures": self.failures,
            "outage_s": round(self.outage_s, 2),
            "still_failing": self.failing,
            "established": "open" if established else "broken",
            "broken_after_s": None if broken_after is None else round(broken_after, 2),
        }


def _keep_open(address: str, port: int, seen: Watch, done: threading.Event) -> None:
    """Carry a line on one connection every tick until ``done``, or until it breaks."""
    try:
        with socket.create_connection((address, port), timeout=OPEN_TIMEOUT_S) as connection:
            tick = 0
            while not done.is_set():
                if not _echoes(connection, f"open {tick}\n".encode()):
                    break
                tick += 1
                done.wait(TICK_S)
            else:
                return
    except OSError:
        pass
    seen.broken_at = time.monotonic()


def watch(address: str, port: int, deadline_s: float) -> dict[str, object]:
    """Watch until told to stop (``SIGTERM``) or the deadline."""
    seen = Watch()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda number, frame: done.set())
    keeper = threading.Thread(target=_keep_open, args=(address, port, seen, done), daemon=True)
    keeper.start()
    while not done.is_set() and time.monotonic() - seen.started < deadline_s:
        start = time.monotonic()
        ok = attempt(address, port, f"new {seen.ticks}\n".encode())
        seen.record(ok, start, time.monotonic())
        done.wait(TICK_S)
    done.set()
    keeper.join(OPEN_TIMEOUT_S + 1)
    return seen.report(seen.broken_at is None)


# --- from outside the namespaces ---------------------------------------------------------


@contextlib.contextmanager
def serving(twin: TwinContext, target: str, port: int) -> Iterator[None]:
    """The echo server in ``target``'s namespace while the block runs (ended by its PID)."""
    ns = twin.topology.find(target).name
    argv = twin.python(ns, "orbitlab_lab.twin.outage", "serve", str(port))
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not twin.run(ns, ["ss", "-Htln", f"sport = :{port}"], check=False).stdout.strip():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the echo server in {ns} did not start")
            time.sleep(0.1)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextlib.contextmanager
def watching(
    twin: TwinContext, target: str, address: str, port: int, settle_s: float = 2.0
) -> Iterator[Callable[[], dict[str, Any]]]:
    """A watch from ``target`` to ``address:port`` (after a second of the network as it
    was); yields a function that ends it (``settle_s`` later) and returns its report.
    Ended by its PID if left early."""
    ns = twin.topology.find(target).name
    argv = twin.python(ns, "orbitlab_lab.twin.outage", "watch", address, str(port))
    watcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def report() -> dict[str, Any]:
        time.sleep(settle_s)
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=60)
        if watcher.returncode != 0 or not out:
            raise RuntimeError(f"the watch from {ns} failed ({watcher.returncode}): {err}")
        return json.loads(out)

    try:
        time.sleep(1)
        yield report
    finally:
        if watcher.poll() is None:
            watcher.terminate()
            watcher.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="measure an outage: echo server and watch")
    sub = parser.add_subparsers(dest="command", required=True)
    server = sub.add_parser("serve")
    server.add_argument("port", type=int)
    client = sub.add_parser("watch")
    client.add_argument("address")
    client.add_argument("port", type=int)
    client.add_argument("--deadline", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port)
        return 0
    print(json.dumps(watch(args.address, args.port, args.deadline)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
