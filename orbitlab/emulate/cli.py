"""``orbitlab emulate``: start, env, status, stop.

    orbitlab emulate start stacks/Pulumi.example.yaml
    eval "$(orbitlab emulate env)"
    pulumi preview && pulumi up
    orbitlab emulate status
    orbitlab emulate stop

Added to the main parser by one call in :func:`orbitlab.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orbitlab.emulate import control
from orbitlab.emulate.cluster import APPLY_S, LOCK_WAIT_S
from orbitlab.emulate.status import status_lines, summary
from orbitlab.emulate.store import Store, emulate_dir


def cmd_start(args: argparse.Namespace) -> int:
    store = Store(emulate_dir())
    made = control.start(
        store, args.stack_file, apply_s=args.apply_seconds, lock_wait_s=args.lock_wait_seconds
    )
    print(
        f"emulated cluster started in {store.root}: nodes {', '.join(made['nodes'])}. "
        'Next: eval "$(orbitlab emulate env)", then pulumi stack init / preview / up',
        file=sys.stderr,
    )
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
    control.stop(store)
    print(f"emulated cluster in {store.root} removed (with its Pulumi backend)", file=sys.stderr)
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
        "--lock-wait-seconds",
        type=float,
        default=LOCK_WAIT_S,
        help=f"how long an apply waits for the SDN lock, as Proxmox (default {LOCK_WAIT_S:g})",
    )
    start.set_defaults(handler=cmd_start)

    env = sub.add_parser("env", help='the environment for pulumi: eval "$(orbitlab emulate env)"')
    env.set_defaults(handler=cmd_env)

    status = sub.add_parser("status", help="nodes, SDN running/pending, containers, applies")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(handler=cmd_status)

    stop = sub.add_parser("stop", help="remove the emulated cluster and its Pulumi backend")
    stop.set_defaults(handler=cmd_stop)
