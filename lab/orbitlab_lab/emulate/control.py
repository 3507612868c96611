"""Start, describe and stop an emulated cluster; the environment ``pulumi`` runs in.

``start`` creates the cluster from a stack file's nodes, writes the stand-in plugins into
``bin/`` (small launchers running this Python, which has the lab installed), a file backend, a
Pulumi home and a passphrase of the rehearsal's own. With ``twin=True`` the cluster is
backed by the twin (:mod:`~orbitlab_lab.emulate.twin_backend`): its external side and nodes are
built first, and ``stop`` removes them again. ``environment`` is what
``orbitlab emulate env`` prints: PATH with the stand-ins, the built Pulumi CLI and language
host, and this virtualenv's ``bin`` first (the language host runs ``python3`` from PATH).

>>> print("\\n".join(export_lines({"A": "x y", "PATH": "/b:$PATH"})))
export A='x y'
export PATH="/b:$PATH"
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from orbitlab.errors import OrbitLabError
from orbitlab.facts import ClusterFacts, DatastoreFact, plan_for_cluster
from orbitlab.privileges import pveum_script
from orbitlab.settings import StackSettings
from orbitlab.snapshot import load_snapshot
from orbitlab.stack import load_stack_file
from orbitlab_lab.emulate import EmulateError
from orbitlab_lab.emulate.access import Access, PveumError, parse_pveum
from orbitlab_lab.emulate.cluster import APPLY_S, DEFAULT_PVE, LOCK_WAIT_S, Node, create_cluster
from orbitlab_lab.emulate.seed import SeededState, seed_state
from orbitlab_lab.emulate.store import DIR_ENV, Store
from orbitlab_lab.twin import runner
from orbitlab_lab.twin.state import TWIN_DIR_ENV, load_state, twin_dir

PULUMI_VERSION = "v3.250.0"
PULUMI_DIR_ENV = "ORBITLAB_PULUMI_DIR"
#: The build recipe ships with the lab (package data), so a wheel install can build the CLI.
BUILD_SCRIPT = Path(__file__).resolve().parent / "build-pulumi.sh"
STAND_INS = {"pulumi-resource-proxmoxve": "proxmoxve", "pulumi-resource-command": "command"}


def pulumi_bin() -> Path:
    """Where the build script puts the CLI and the language host: ``$ORBITLAB_PULUMI_DIR``,
    else the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    root = os.environ.get(PULUMI_DIR_ENV)
    if root:
        return Path(root) / "bin"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "orbitlab" / "pulumi" / PULUMI_VERSION / "bin"


def pulumi_built() -> bool:
    return all((pulumi_bin() / name).exists() for name in ("pulumi", "pulumi-language-python"))


def ensure_pulumi(say: Any = print) -> Path:
    """The built CLI's directory, building it first if needed (minutes, once)."""
    if pulumi_built():
        return pulumi_bin()
    say(f"building the Pulumi CLI {PULUMI_VERSION} first (minutes, once): {BUILD_SCRIPT}")
    if build_pulumi() != 0:
        raise EmulateError("building the Pulumi CLI failed; `orbitlab emulate build` shows why")
    return pulumi_bin()


def build_pulumi(*arguments: str) -> int:
    """Run the build script (``--print``: only print where it builds); its exit status."""
    return subprocess.run(["bash", str(BUILD_SCRIPT), *arguments], check=False).returncode


def launcher(module: str) -> str:
    """A stand-in plugin's executable: this Python (which has the lab installed) and that
    module's ``main``."""
    return (
        f"#!{sys.executable}\n"
        f'"""Stand-in Pulumi plugin (orbitlab emulate): orbitlab_lab.emulate.{module}."""\n'
        f"from orbitlab_lab.emulate.{module} import main, stand_in\n"
        "main(stand_in())\n"
    )


def start(
    store: Store,
    stack_file: str,
    *,
    apply_s: float = APPLY_S,
    lock_wait_s: float = LOCK_WAIT_S,
    build: bool = True,
    twin: bool = False,
    pve: int = DEFAULT_PVE,
    seed: str | None = None,
    pveum: str | None = None,
    say: Any = print,
) -> dict[str, Any]:
    """Create the emulated cluster of a stack file's nodes; returns what was made. With
    ``twin``, its nodes and containers are the twin's (built here, in namespaces: root);
    ``pve``: the Proxmox VE major version whose SDN apply it has (8 or 9); ``seed``: a
    snapshot file of an existing cluster to start from (:mod:`orbitlab.snapshot`);
    ``pveum``: a file of ``pveum`` commands that set the API token's privileges (default:
    the least-privilege ones :func:`orbitlab.privileges.pveum_script` gives for the stack)."""
    if store.exists:
        raise EmulateError(
            f"an emulated cluster already runs in {store.root}; `orbitlab emulate stop` first"
        )
    if apply_s < 0 or lock_wait_s < 0:
        raise EmulateError("--apply-seconds and --lock-wait-seconds must not be negative")
    stack, settings = load_stack_file(stack_file)
    nodes = [Node(n.name, str(n.address), n.mtu, n.host_key) for n in settings.backplane.nodes]
    seeded = seed_state(load_snapshot(seed), [n.name for n in nodes]) if seed else None
    access = token_access(stack, settings, seeded, pveum)
    if build:
        ensure_pulumi()
    store.root.mkdir(parents=True, exist_ok=True)
    if twin:
        runner.up_cluster(stack_file, str(store.root), say)
    try:
        create_cluster(
            store,
            nodes,
            apply_s=apply_s,
            lock_wait_s=lock_wait_s,
            stack=stack,
            backend="twin" if twin else "files",
            pve=pve,
            seed=seeded,
            access=access.to_state(),
        )
    except BaseException:
        if twin:
            runner.down(say)
        raise
    bin_dir = store.root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, module in STAND_INS.items():
        path = bin_dir / name
        path.write_text(launcher(module))
        path.chmod(0o755)
    for folder in ("backend", "pulumi-home"):
        (store.root / folder).mkdir(exist_ok=True)
    passphrase = store.root / "passphrase"
    passphrase.write_text(secrets.token_hex(16) + "\n")
    passphrase.chmod(0o600)
    backed = " (backed by the twin)" if twin else ""
    seeded_from = f", seeded from {seed}" if seed else ""
    store.log(
        "emulate",
        f"started from {stack_file}{backed}{seeded_from}: nodes {', '.join(n.name for n in nodes)}",
    )
    return {"stack": stack, "nodes": [n.name for n in nodes], "twin": twin, "pve": pve}


def token_access(
    stack: str, settings: StackSettings, seeded: SeededState | None, pveum: str | None
) -> Access:
    """The API token's ACLs: from a ``pveum`` script file, else the stack's least-privilege
    script (its template storages as the program picks them on the seeded cluster)."""
    if pveum is not None:
        try:
            return parse_pveum(Path(pveum).read_text())
        except OSError as error:
            raise EmulateError(f"--pveum {pveum}: {error.strerror}") from None
        except PveumError as error:
            raise EmulateError(f"--pveum {pveum}: {error.reason}") from None
    datastores = tuple(
        DatastoreFact(storage, node, frozenset(content), storage in seeded.shared)
        for node, storages in (seeded.storages if seeded else {}).items()
        for storage, content in storages.items()
    )
    plan = plan_for_cluster(stack, settings, ClusterFacts(datastores=datastores))
    return parse_pveum(pveum_script(plan))


def require(store: Store) -> Store:
    if not store.exists:
        raise EmulateError(
            f"no emulated cluster in {store.root}; start one with `orbitlab emulate start "
            f"STACKFILE` (or set {DIR_ENV} to where it runs)"
        )
    return store


def environment(store: Store) -> dict[str, str]:
    """What ``pulumi`` needs to rehearse against this cluster (PATH expands ``$PATH``)."""
    require(store)
    path = [str(store.root / "bin"), str(pulumi_bin()), str(Path(sys.executable).parent)]
    env = {
        "PATH": ":".join(path) + ":$PATH",
        "PULUMI_BACKEND_URL": f"file://{store.root / 'backend'}",
        "PULUMI_HOME": str(store.root / "pulumi-home"),
        "PULUMI_CONFIG_PASSPHRASE": (store.root / "passphrase").read_text().strip(),
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        DIR_ENV: str(store.root),
    }
    if twin_backed(store):
        env[TWIN_DIR_ENV] = str(twin_dir())
    return env


def twin_backed(store: Store) -> bool:
    """Whether the cluster was started with ``--twin``."""
    return bool(store.exists and store.read()["settings"].get("backend") == "twin")


def owns_twin(store: Store) -> bool:
    """Whether the twin up on this machine is this cluster's (never another's)."""
    try:
        state = load_state()
    except OrbitLabError:
        return False
    return state is not None and state.kind == "cluster" and state.emulate_dir == str(store.root)


def export_lines(env: dict[str, str]) -> list[str]:
    """``export`` lines for ``eval``: values quoted, ``$PATH`` left to the shell."""
    lines = []
    for key, value in env.items():
        if value.endswith(":$PATH"):
            lines.append(f'export {key}="{value}"')
        else:
            lines.append(f"export {key}={shlex.quote(value)}")
    return lines


def process_environment(store: Store, base: dict[str, str] | None = None) -> dict[str, str]:
    """A process environment for ``pulumi`` (``$PATH`` expanded against ``base``)."""
    base = dict(os.environ if base is None else base)
    for key, value in environment(store).items():
        base[key] = value.replace("$PATH", base.get("PATH", ""))
    return base


def stop(store: Store, say: Any = print) -> None:
    """Remove the cluster, its plugins, backend and Pulumi home (and its twin, if it has
    one: every namespace and process of it)."""
    require(store)
    if twin_backed(store):
        if owns_twin(store):
            runner.down(say)
        else:
            say("the twin on this machine is not this cluster's (or is gone): left alone")
    shutil.rmtree(store.root)
