"""The Sector guards on the twin's nodes, on whatever kernel this machine runs.

A guard (:func:`orbitlab.rendering.guard_ruleset`) tells its VNet's frames apart with
``meta ibrname`` (the bridge a frame came in on), which needs the kernel's
``nft_meta_bridge`` (``CONFIG_NFT_BRIDGE_META``; Proxmox's kernels have it). Where this
machine's kernel lacks it, the twin loads the same ruleset with each ``meta ibrname OP
"X"`` written as ``iifname OP { the ports of bridge X }`` — the same frames, since a frame
comes in on the bridge of the port it comes in on — and writes it again whenever a port
joins a node's bridge (:func:`refresh`). The original of every guard a node holds is kept
in the twin's directory for that.

>>> for_kernel('meta ibrname != "olvn1001" accept', lambda b: ["gw1001s", "vxlan_olvn1001"], False)
'iifname != { "gw1001s", "vxlan_olvn1001" } accept'
>>> for_kernel('meta ibrname != "olvn1001" accept', lambda b: [], False)
'iifname != { "olt-no-port" } accept'
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

from orbitlab_lab.twin import TwinError, system
from orbitlab_lab.twin.state import twin_dir

IBRNAME = re.compile(r'meta ibrname (!= |== )?"([^"]+)"')
TABLE = re.compile(r"^table bridge (\S+) \{", re.MULTILINE)
DELETED = re.compile(r"^delete table bridge (\S+)$", re.MULTILINE)
#: A port name no bridge has: what an empty port list matches instead.
NO_PORT = "olt-no-port"
PROBE_RULESET = 'table bridge orbitlab_probe { chain c { meta ibrname "x" accept; }; }\n'

PortsOf = Callable[[str], Iterable[str]]
#: This machine's nft, whatever PATH says (an emulated node's PATH has a stand-in first).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def nft() -> str:
    return shutil.which("nft", path=SYSTEM_PATH) or "nft"


@cache
def kernel_has_bridge_meta() -> bool:
    """Whether this kernel matches ``meta ibrname`` (checked in a namespace of its own)."""
    done = subprocess.run(
        ["unshare", "--net", nft(), "-c", "-f", "-"],
        input=PROBE_RULESET,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0


def for_kernel(ruleset: str, ports_of: PortsOf, has_bridge_meta: bool | None = None) -> str:
    """``ruleset`` as this kernel can load it (see the module's docstring)."""
    if has_bridge_meta is None:
        has_bridge_meta = kernel_has_bridge_meta()
    if has_bridge_meta:
        return ruleset

    def ports(match: re.Match[str]) -> str:
        names = sorted(ports_of(match.group(2))) or [NO_PORT]
        listed = ", ".join(f'"{name}"' for name in names)
        return f"iifname {match.group(1) or ''}{{ {listed} }}"

    return IBRNAME.sub(ports, ruleset)


def bridge_ports(ns: str) -> PortsOf:
    """The ports of a bridge of namespace ``ns``, read from its ``/sys``."""

    def ports_of(bridge: str) -> list[str]:
        listing = system.run(
            system.in_netns(ns, ["ls", f"/sys/class/net/{bridge}/brif"]), check=False
        )
        return listing.stdout.split() if listing.returncode == 0 else []

    return ports_of


def kept_dir(ns: str) -> Path:
    return twin_dir() / "work" / "guards" / ns  # removed with the twin (twin down)


def load(ns: str, ruleset: str, check_only: bool = False) -> subprocess.CompletedProcess[str]:
    """Load (or only check) a ruleset on the node namespace ``ns`` as its kernel can; keep
    the original of every guard table it defines, forget those it deletes for good."""
    argv = [nft(), *(["-c"] if check_only else []), "-f", "-"]
    text = for_kernel(ruleset, bridge_ports(ns))
    done = system.run(system.in_netns(ns, argv), stdin=text, check=False)
    if done.returncode == 0 and not check_only:
        keep = kept_dir(ns)
        defined = set(TABLE.findall(ruleset))
        for table in set(DELETED.findall(ruleset)) - defined:
            (keep / f"{table}.nft").unlink(missing_ok=True)
        for table in defined:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{table}.nft").write_text(ruleset)
    return done


def refresh(ns: str) -> None:
    """Load the node's guards again: a port joined one of its bridges. Nothing to do on a
    kernel that matches the bridge itself."""
    if kernel_has_bridge_meta() or not kept_dir(ns).is_dir():
        return
    for kept in sorted(kept_dir(ns).glob("*.nft")):
        done = load(ns, kept.read_text())
        if done.returncode != 0:
            raise TwinError(f"{ns}: reloading {kept.name}: {done.stderr.strip()}")
