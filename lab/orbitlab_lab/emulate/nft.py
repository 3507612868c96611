"""The emulated node's ``nft``: the real nft, on a ruleset that belongs to the node.

- twin-backed cluster: the node is a twin namespace, and this is the real ``nft`` on the
  node's own ruleset; a file loaded with ``-f`` goes through
  :func:`orbitlab_lab.twin.guards.load`, so a Sector guard loads on this machine's kernel too;
- files backend: the node has no network stack of its own. Each run replays what the node
  loaded so far, then the command, in a network namespace made for that run alone (the
  machine's ruleset is never touched); a command that succeeds and changes the ruleset is
  appended to the node's ``nftables.log``. So what the node holds is what real nft made of
  it (one transaction per file, ``delete table`` of an absent table fails, and so on), on
  this machine's kernel (a Sector guard's ``meta ibrname`` where the kernel lacks it:
  :mod:`orbitlab_lab.twin.guards`).

Forms the node's scripts use: ``nft [-c] -f FILE|-`` and ``nft list ...``; any other
command runs too, and is logged when it is not a ``list``.

>>> changes_ruleset(["-f", "guard.nft"]), changes_ruleset(["-c", "-f", "x"])
(True, False)
>>> changes_ruleset(["list", "ruleset"])
False
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from orbitlab_lab.emulate.store import DIR_ENV, NODE_ENV, Store
from orbitlab_lab.twin import guards
from orbitlab_lab.twin.topology import NODE_PREFIX

LOG = "nftables.log"
#: ``sh -c`` of one run: load the logged ruleset (exit 99 if it no longer loads), then the command.
REPLAY = 'h=$1; shift; [ -z "$h" ] || printf %s "$h" | {nft} -f - || exit 99; exec {nft} "$@"'


def changes_ruleset(argv: Sequence[str]) -> bool:
    """Whether a successful ``nft argv`` changes the ruleset (a load, or a command)."""
    if "-c" in argv or "--check" in argv:
        return False
    words = [a for a in argv if not a.startswith("-")]
    return "-f" in argv or (bool(words) and words[0] not in ("list", "describe"))


def _loaded(argv: Sequence[str], stdin: str) -> str:
    """What the command adds to the node's log: a file's text, or the command as a line."""
    if "-f" in argv:
        source = argv[argv.index("-f") + 1]
        return stdin if source == "-" else Path(source).read_text()
    return " ".join(argv) + "\n"


def _isolated() -> list[str]:
    """A network namespace of its own for one run (a user namespace too when not root)."""
    if os.geteuid() == 0:
        return ["unshare", "--net"]
    return ["unshare", "--user", "--map-root-user", "--net"]


def run_on_log(log: Path, argv: Sequence[str], loaded: str) -> subprocess.CompletedProcess[str]:
    """``nft argv`` (``loaded``: what its ``-f`` reads) after the logged ruleset, alone in a
    fresh network namespace (both as this machine's kernel loads them:
    :func:`orbitlab_lab.twin.guards.for_kernel`, no ports)."""

    def for_kernel(text: str) -> str:
        return guards.for_kernel(text, lambda _bridge: ())

    history = for_kernel(log.read_text()) if log.exists() else ""
    nft = guards.nft()
    args = list(argv)
    with tempfile.NamedTemporaryFile("w", dir=log.parent, suffix=".nft") as staged:
        if "-f" in args:
            staged.write(for_kernel(loaded))
            staged.flush()
            args[args.index("-f") + 1] = staged.name
        replay = REPLAY.format(nft=nft)
        return subprocess.run(
            [*_isolated(), "sh", "-c", replay, "nft", history, *args],
            capture_output=True,
            text=True,
            check=False,
        )


def on_twin_node(node: str, argv: Sequence[str], stdin: str) -> int:
    """``nft argv`` on the twin's node: a load (``[-c] -f FILE|-``) as the twin loads a
    guard, anything else as it is."""
    if "-f" not in argv:
        return subprocess.run([guards.nft(), *argv], check=False, stdin=None).returncode
    done = guards.load(f"{NODE_PREFIX}{node}", _loaded(argv, stdin), check_only="-c" in argv)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    store = Store(Path(os.environ[DIR_ENV]))
    stdin = sys.stdin.read() if "-" in args else ""
    if store.read()["settings"].get("backend", "files") == "twin":
        return on_twin_node(os.environ[NODE_ENV], args, stdin)
    log = store.node_dir(os.environ[NODE_ENV]) / LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    # one command at a time on a node: each replays the log the one before it appended to
    with log.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _locked_main(log, args, stdin)


def _locked_main(log: Path, args: list[str], stdin: str) -> int:
    loaded = _loaded(args, stdin)  # read once: the run and the log see the same text
    result = run_on_log(log, args, loaded)
    if result.returncode == 99:
        print("orbitlab emulate: the node's logged ruleset no longer loads", file=sys.stderr)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode == 0 and changes_ruleset(args):
        with log.open("a") as out:
            out.write(loaded)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
