"""``orbitlab emulate``: start, env, status, stop, and what an admin does on the cluster.

    orbitlab emulate start stacks/Pulumi.example.yaml [--twin] [--pve 8|9] [--seed FILE]
    eval "$(orbitlab emulate env)"
    pulumi preview && pulumi up
    orbitlab emulate join                  # --twin: the declared hosts no container provides
    orbitlab twin test                     # --twin: what the engine built, probed
    orbitlab emulate status
    orbitlab emulate lock                  # VE 9: hold the SDN lock (prints its token)
    orbitlab emulate unlock --token T      # ... and release it (or --force)
    orbitlab emulate fail-reload pve2      # pve2's network reloads fail (--clear: no more)
    orbitlab emulate apply                 # apply SDN by hand (pvesh set /cluster/sdn)
    orbitlab emulate stop

Added to the main parser by one call in :func:`orbitlab.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orbitlab_lab.emulate import EmulateError, ProxmoxError, control
from orbitlab_lab.emulate import cluster as c
from orbitlab_lab.emulate.cluster import APPLY_S, DEFAULT_PVE, LOCK_WAIT_S, PVE_VERSIONS
from orbitlab_lab.emulate.status import status_lines, summary
from orbitlab_lab.emulate.store import Store, emulate_dir
from orbitlab_lab.emulate.twin_backend import join_hosts


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_start(args: argparse.Namespace) -> int:
    store = Store(emulate_dir())
    made = control.start(
        store,
        args.stack_file,
        apply_s=args.apply_seconds,
        lock_wait_s=args.lock_wait_seconds,
        twin=args.twin,
        pve=args.pve,
        seed=args.seed,
        pveum=args.pveum,
        say=say,
    )
    backed = f" (Proxmox VE {made['pve']})" + (" backed by the twin" if made["twin"] else "")
    after = "; then `orbitlab emulate join` and `orbitlab twin test`" if made["twin"] else ""
    say(
        f"emulated cluster{backed} started in {store.root}: nodes {', '.join(made['nodes'])}. "
        f'Next: eval "$(orbitlab emulate env)", then pulumi stack init / preview / up{after}'
    )
    return 0


def cmd_join(args: argparse.Namespace) -> int:
    store = control.require(Store(emulate_dir()))
    if not control.twin_backed(store):
        raise EmulateError(
            "`orbitlab emulate join` joins hosts to the twin: start the cluster with "
            "`orbitlab emulate start STACKFILE --twin`"
        )
    joined = join_hosts(store, args.target)
    say(f"joined {len(joined)} host(s) by hand: {', '.join(joined) or 'none missing'}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    del args
    for line in control.export_lines(control.environment(Store(emulate_dir()))):
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = control.require(Store(emulate_dir())).read()
    if args.json:
        print(json.dumps(summary(state), indent=2))
    else:
        print("\n".join(status_lines(state)))
    return 0


def _cluster_call(action: Any) -> Any:
    """A call an admin makes on the cluster; Proxmox's refusal is a user error."""
    try:
        return action(control.require(Store(emulate_dir())))
    except ProxmoxError as error:
        raise EmulateError(str(error)) from None


def cmd_lock(args: argparse.Namespace) -> int:
    token = _cluster_call(lambda store: c.hold_lock(store, args.allow_pending))
    print(token)
    say("the SDN config is locked: every SDN write without this token fails until "
        "`orbitlab emulate unlock --token ...`")  # fmt: skip
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    _cluster_call(lambda store: c.release_lock(store, args.token, args.force))
    say("the SDN lock is released")
    return 0


def cmd_fail_reload(args: argparse.Namespace) -> int:
    message = None if args.clear else args.message
    _cluster_call(lambda store: c.fail_reload(store, args.node, message))
    say(
        f"network reloads of {args.node} succeed again"
        if message is None
        else f"network reloads of {args.node} fail from now on: {message}"
    )
    return 0


def cmd_sysctl(args: argparse.Namespace) -> int:
    key, sep, value = args.setting.partition("=")
    if not sep or not key or not value:
        raise EmulateError(f"{args.setting!r} is not KEY=VALUE (e.g. net.ipv4.ip_forward=0)")
    _cluster_call(lambda store: c.set_sysctl(store, args.node, key, value))
    say(f"node {args.node}: {key} = {value}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    del args
    record = _cluster_call(lambda store: c.apply_sdn(store, "admin", "pvesh set /cluster/sdn"))
    warned = "".join(f"; WARNING {warning}" for warning in record["warnings"])
    say(f"SDN applied: version {record['version']}{warned}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    del args
    store = Store(emulate_dir())
    control.stop(store, say)
    say(f"emulated cluster in {store.root} removed (with its Pulumi backend)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    return control.build_pulumi(*(["--print"] if args.print else []))


def add_emulate_parser(commands: Any) -> None:
    """Add ``emulate`` and its subcommands to the ``orbitlab`` subparsers."""
    emulate = commands.add_parser(
        "emulate",
        help="an emulated Proxmox cluster to rehearse `pulumi up` against (no cluster needed)",
    )
    sub = emulate.add_subparsers(dest="emulate_command", required=True)

    start = sub.add_parser("start", help="start an emulated cluster with a stack file's nodes")
    start.add_argument("stack_file", help="Pulumi.<stack>.yaml (its orbitlab:backplane.nodes)")
    start.add_argument(
        "--apply-seconds",
        type=float,
        default=APPLY_S,
        help=f"how long an SDN apply's node reloads take in all (default {APPLY_S})",
    )
    start.add_argument(
        "--pve",
        type=int,
        choices=PVE_VERSIONS,
        default=DEFAULT_PVE,
        help=f"the Proxmox VE major version whose SDN apply to emulate (default {DEFAULT_PVE})",
    )
    start.add_argument(
        "--seed",
        metavar="FILE",
        help="start from a snapshot of an existing cluster (`orbitlab discover --snapshot "
        "FILE`): its SDN objects, guests' VMIDs and storages",
    )
    start.add_argument(
        "--pveum",
        metavar="FILE",
        help="the API token's privileges as pveum commands (role add, acl modify; default: "
        "the least-privilege ones `orbitlab check --pveum` prints for the stack)",
    )
    start.add_argument(
        "--twin",
        action="store_true",
        help="back the cluster with the twin: nodes, VNets and containers become namespaces "
        "(root); `orbitlab twin test` then probes what the engine built",
    )
    start.add_argument(
        "--lock-wait-seconds",
        type=float,
        default=LOCK_WAIT_S,
        help=f"how long an apply waits for the SDN lock, as Proxmox (default {LOCK_WAIT_S:g})",
    )
    start.set_defaults(handler=cmd_start)

    join = sub.add_parser(
        "join",
        help="--twin: join declared hosts that no container provides, as VMs joined by hand",
    )
    join.add_argument(
        "target",
        nargs="*",
        metavar="SECTOR/HOST",
        help="the hosts to join (default: every declared host that has no namespace yet)",
    )
    join.set_defaults(handler=cmd_join)

    env = sub.add_parser("env", help='the environment for pulumi: eval "$(orbitlab emulate env)"')
    env.set_defaults(handler=cmd_env)

    status = sub.add_parser("status", help="nodes, SDN running/pending, containers, applies")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(handler=cmd_status)

    lock = sub.add_parser(
        "lock", help="VE 9: hold the SDN lock, as an admin in the web UI (prints its token)"
    )
    lock.add_argument(
        "--allow-pending", action="store_true", help="lock although changes are pending"
    )
    lock.set_defaults(handler=cmd_lock)
    unlock = sub.add_parser("unlock", help="VE 9: release the SDN lock")
    unlock.add_argument("--token", help="the token `orbitlab emulate lock` printed")
    unlock.add_argument("--force", action="store_true", help="release it without the token")
    unlock.set_defaults(handler=cmd_unlock)
    fail = sub.add_parser(
        "fail-reload", help="make a node's network reloads fail (an SDN apply only warns)"
    )
    fail.add_argument("node")
    fail.add_argument(
        "--message",
        default="error: netlink: operation failed (emulated)",
        help="what the failed reload says in its task",
    )
    fail.add_argument("--clear", action="store_true", help="let the node's reloads succeed")
    fail.set_defaults(handler=cmd_fail_reload)
    sysctl = sub.add_parser(
        "sysctl", help="change a node's kernel setting (what `sysctl -n KEY` answers there)"
    )
    sysctl.add_argument("node")
    sysctl.add_argument("setting", help="KEY=VALUE, e.g. net.core.devconf_inherit_init_net=0")
    sysctl.set_defaults(handler=cmd_sysctl)
    apply = sub.add_parser("apply", help="apply SDN by hand, as `pvesh set /cluster/sdn`")
    apply.set_defaults(handler=cmd_apply)

    stop = sub.add_parser("stop", help="remove the emulated cluster and its Pulumi backend")
    stop.set_defaults(handler=cmd_stop)

    build = sub.add_parser(
        "build", help="build the Pulumi CLI the rehearsal runs (Go module proxy; minutes, once)"
    )
    build.add_argument(
        "--print", action="store_true", help="print where it is built, build nothing"
    )
    build.set_defaults(handler=cmd_build)
