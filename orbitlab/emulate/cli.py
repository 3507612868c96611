"""``orbitlab emulate``: start, env, status, stop.

    orbitlab emulate start stacks/Pulumi.example.yaml [--twin]
    eval "$(orbitlab emulate env)"
    pulumi preview && pulumi up
    orbitlab emulate join                  # --twin: the declared hosts no container provides
    orbitlab twin test                     # --twin: what the engine built, probed
    orbitlab emulate status
    orbitlab emulate stop

Added to the main parser by one call in :func:`orbitlab.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orbitlab.emulate import EmulateError, control
from orbitlab.emulate.cluster import APPLY_S, LOCK_WAIT_S
from orbitlab.emulate.status import status_lines, summary
from orbitlab.emulate.store import Store, emulate_dir
from orbitlab.emulate.twin_backend import join_hosts


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
        say=say,
    )
    backed = " backed by the twin" if made["twin"] else ""
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


def cmd_stop(args: argparse.Namespace) -> int:
    del args
    store = Store(emulate_dir())
    control.stop(store, say)
    say(f"emulated cluster in {store.root} removed (with its Pulumi backend)")
    return 0


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
        help=f"how long an SDN apply holds the SDN lock (default {APPLY_S})",
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

    stop = sub.add_parser("stop", help="remove the emulated cluster and its Pulumi backend")
    stop.set_defaults(handler=cmd_stop)
