"""Running commands in namespaces, starting and stopping processes, preflight checks.

Every command the twin runs goes through :func:`run`, which fails loudly with the command
and its error output::

    >>> run(["true"]).returncode
    0

Processes the twin starts are recorded as :class:`Proc` (PID plus the kernel's start time,
so a recycled PID is never signalled) and stopped only through :func:`stop_processes`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from orbitlab_lab.twin import TwinError

FRR_DIR = Path("/usr/lib/frr")
CORE_TOOLS: dict[str, str] = {
    "ip": "iproute2",
    "bridge": "iproute2",
    "nft": "nftables",
    "sysctl": "procps",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    str(FRR_DIR / "zebra"): "frr",
    str(FRR_DIR / "staticd"): "frr",
    "vtysh": "frr",
    "haproxy": "haproxy",
    "coredns": "CoreDNS v1.11.3 at /usr/local/bin/coredns (scripts/setup.sh builds it)",
    "dnsmasq": "dnsmasq-base",
    "udhcpc": "udhcpc",
}
TEST_TOOLS: dict[str, str] = {
    "dig": "dnsutils",
    "hping3": "hping3",
    "conntrack": "conntrack",
    "ping": "iputils-ping",
}
BENCH_TOOLS: dict[str, str] = {"iperf3": "iperf3"}


def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; raise :class:`TwinError` if it fails and ``check``."""
    try:
        result = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise TwinError(f"{argv[0]}: command not found (run scripts/setup.sh)") from None
    except subprocess.TimeoutExpired:
        raise TwinError(f"timed out after {timeout:g}s: {' '.join(argv)}") from None
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise TwinError(f"failed ({result.returncode}): {' '.join(argv)}\n  {detail}")
    return result


def in_netns(ns: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run in a network namespace (with its own /sys), e.g. for ``sysctl``."""
    return ["ip", "netns", "exec", ns, *argv]


def in_holder(pid: int, argv: Sequence[str]) -> list[str]:
    """``argv`` run in a holder's network, mount and UTS namespaces (its private /etc view)."""
    return ["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", *argv]


def ip_batch(ns: str, lines: Iterable[str], tool: str = "ip") -> None:
    """Run ``ip`` (or ``bridge``) commands in one namespace in a single call."""
    text = "\n".join(lines)
    if text:
        run([tool, "-n", ns, "-batch", "-"], stdin=text + "\n")


def sysctl(ns: str, values: dict[str, str | int]) -> None:
    """Set per-namespace ``net.*`` sysctls inside ``ns`` (never in the root namespace)."""
    if values:
        run(in_netns(ns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())]))


def nft(ns: str, ruleset: str) -> None:
    run(in_netns(ns, ["nft", "-f", "-"]), stdin=ruleset)


def netns_list() -> list[str]:
    names = run(["ip", "netns", "list"]).stdout.split("\n")
    return [line.split()[0] for line in names if line.strip()]


def netns_pids(ns: str) -> list[int]:
    result = run(["ip", "netns", "pids", ns], check=False)
    return [int(pid) for pid in result.stdout.split()]


@dataclass(frozen=True)
class Proc:
    """A process the twin started: PID, kernel start time, namespace and what it is."""

    pid: int
    start: int
    ns: str
    what: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Proc:
        return cls(int(data["pid"]), int(data["start"]), str(data["ns"]), str(data["what"]))  # type: ignore[arg-type]

    def alive(self) -> bool:
        return start_time(self.pid) == self.start


def start_time(pid: int) -> int | None:
    """The kernel start time of a PID (field 22 of /proc/PID/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def record(pid: int, ns: str, what: str) -> Proc:
    begun = start_time(pid)
    if begun is None:
        raise TwinError(f"{what} in {ns} exited right after it started (pid {pid})")
    return Proc(pid, begun, ns, what)


def spawn(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running process detached from the CLI, its output in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until(what: str, probe: Callable[[], bool], timeout: float, step: float = 0.05) -> None:
    """Poll ``probe`` until it is true; raise :class:`TwinError` naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TwinError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(step)


def read_pidfile(path: Path, timeout: float = 5) -> int:
    wait_until(f"{path}", lambda: path.exists() and path.read_text().strip().isdigit(), timeout)
    return int(path.read_text().strip())


def stop_processes(procs: Iterable[Proc], grace: float = 3) -> None:
    """SIGTERM the recorded processes that are still the same process, then SIGKILL."""
    living = [proc for proc in procs if proc.alive()]
    for proc in living:
        _signal(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while living and time.monotonic() < deadline:
        living = [proc for proc in living if proc.alive()]
        time.sleep(0.05)
    for proc in living:
        _signal(proc.pid, signal.SIGKILL)


def kill_pids(pids: Iterable[int]) -> None:
    """SIGKILL processes found inside one of the twin's own namespaces."""
    for pid in pids:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def missing_tools(tools: dict[str, str]) -> list[str]:
    """``tool (package)`` for each tool that is not installed."""
    return [f"{tool} ({package})" for tool, package in tools.items() if not shutil.which(tool)]


def preflight(*tool_sets: dict[str, str]) -> None:
    """Refuse clearly when not root or a tool is missing."""
    if os.geteuid() != 0:
        raise TwinError(
            "the twin creates network namespaces and must run as root (try: sudo orbitlab twin ...)"
        )
    missing = [entry for tools in tool_sets for entry in missing_tools(tools)]
    if missing:
        raise TwinError(
            "missing tools: " + ", ".join(missing) + "; install them with scripts/setup.sh"
        )
