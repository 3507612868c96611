"""The emulated node's ``systemctl``: the unit files a node's scripts install, enabled as
systemd enables them, and nothing started (the node runs no systemd here).

- ``daemon-reload``: nothing to do;
- ``enable [--quiet] UNIT``: ``multi-user.target.wants/UNIT`` links to the unit (its
  ``[Install]`` section must say ``WantedBy=multi-user.target``); a unit that does not
  exist is systemd's error;
- ``is-enabled UNIT``: ``enabled`` (exit 0) or ``disabled`` (exit 1).

Unit files are under the node's directory: the node maps ``/etc/systemd/system/`` there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from orbitlab_lab.emulate.store import DIR_ENV, NODE_ENV, Store

UNITS = Path("etc/systemd/system")
WANTS = "multi-user.target.wants"


def units_dir() -> Path:
    return Store(Path(os.environ[DIR_ENV])).node_dir(os.environ[NODE_ENV]) / UNITS


def enable(units: Path, unit: str) -> tuple[int, str]:
    path = units / unit
    if not path.is_file():
        return 1, f"Failed to enable unit: Unit file {unit} does not exist.\n"
    if "WantedBy=multi-user.target" not in path.read_text():
        return 1, f"The unit files have no installation config (WantedBy=...) ({unit}).\n"
    link = units / WANTS / unit
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(Path("..") / unit)
    return 0, ""


def main(argv: Sequence[str] | None = None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--quiet"]
    units = units_dir()
    if args == ["daemon-reload"]:
        return 0
    if len(args) == 2 and args[0] == "enable":
        status, error = enable(units, args[1])
        sys.stderr.write(error)
        return status
    if len(args) == 2 and args[0] == "is-enabled":
        enabled = (units / WANTS / args[1]).is_symlink()
        print("enabled" if enabled else "disabled")
        return 0 if enabled else 1
    known = "daemon-reload, enable and is-enabled"
    print(f"the emulated node's systemctl runs {known} (got {' '.join(args)})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
