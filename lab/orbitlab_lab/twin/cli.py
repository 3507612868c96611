"""``orbitlab twin``: up, test, exec, status, down.

    orbitlab twin up stacks/Pulumi.example.yaml
    orbitlab twin test
    orbitlab twin exec web/app1 -- dig app2.web.internal
    orbitlab twin status
    orbitlab twin down

Added to the main parser by one call in :func:`orbitlab.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from orbitlab_lab.twin import TwinError, system
from orbitlab_lab.twin.state import require_state

EXEC_HELP = (
    "SECTOR/HOST (HOST: a declared host, gateway, dns or lb), node:NAME, "
    "external:router|client|inet|resolver, or ct:VMID (a container of the emulated cluster)"
)


def say(message: str) -> None:
    print(message, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from orbitlab_lab.twin import runner

    started = time.monotonic()
    try:
        twin = runner.up(args.stack_file, say)
    except KeyboardInterrupt:
        print("interrupted: the twin was removed", file=sys.stderr)
        return 130
    topology = twin.topology
    hosts = sum(len(sector.hosts) for sector in topology.sectors)
    say(
        f"twin up in {time.monotonic() - started:.1f}s: {len(topology.nodes)} nodes, "
        f"{len(topology.sectors)} Sectors, {hosts} hosts, "
        f"{len(twin.state.processes)} processes. Next: `orbitlab twin test`, "
        "`orbitlab twin status`, `orbitlab twin down`"
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from orbitlab_lab.twin import runner

    del args
    system.preflight()
    runner.down(say)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from orbitlab_lab.twin import runner
    from orbitlab_lab.twin.status import status_lines

    del args
    system.preflight()
    state = require_state()
    for line in status_lines(runner.context_of(state)):
        print(line)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from orbitlab_lab.twin import runner

    system.preflight()
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise TwinError("nothing to run; usage: orbitlab twin exec SECTOR/HOST -- CMD ...")
    from orbitlab_lab.twin.containers import find_target

    twin = runner.context_of(require_state())
    return subprocess.call(twin.command(find_target(twin, args.target), command))


def cmd_test(args: argparse.Namespace) -> int:
    from orbitlab_lab.twin import runner
    from orbitlab_lab.twin.checks.scheduler import run_checks
    from orbitlab_lab.twin.results import render_table

    system.preflight(system.CORE_TOOLS, system.TEST_TOOLS)
    twin = runner.context_of(require_state())
    try:
        with runner.interruptible():  # SIGTERM too: a stopped gateway restarts on the way out
            results = run_checks(
                twin,
                skip_failover=args.skip_failover,
                progress=say,
                sectors=args.sector,
                checks=args.check,
                skip_dhcp_changes=args.skip_dhcp_changes,
            )
    except KeyboardInterrupt:
        print("interrupted: checks stopped (the twin is still up)", file=sys.stderr)
        return 130
    print(render_table(results))
    failed = [result for result in results if not result.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def add_twin_parser(commands: Any) -> None:
    """Add ``twin`` and its subcommands to the ``orbitlab`` subparsers."""
    twin = commands.add_parser(
        "twin", help="run the declared network for real in namespaces on this machine (root)"
    )
    sub = twin.add_subparsers(dest="twin_command", required=True)

    up = sub.add_parser("up", help="build the twin of a stack file")
    up.add_argument("stack_file", help="Pulumi.<stack>.yaml")
    up.set_defaults(handler=cmd_up)

    test = sub.add_parser("test", help="check the traffic rules; a table, exit 1 on failure")
    test.add_argument(
        "--sector",
        action="append",
        default=[],
        metavar="NAME",
        help="check only this Sector (repeat for more); default: every Sector",
    )
    test.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="GROUP",
        help="run only this check group, e.g. 'egress policy' (repeat for more); default: all",
    )
    test.add_argument(
        "--skip-failover", action="store_true", help="leave out the gateway failure check"
    )
    test.add_argument(
        "--skip-dhcp-changes",
        action="store_true",
        help="leave out the DHCP checks that rename, release and renew leases and restart "
        "each Sector DNS",
    )
    test.set_defaults(handler=cmd_test)

    run = sub.add_parser("exec", help="run a command in a namespace of the twin")
    run.add_argument("target", help=EXEC_HELP)
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ...")
    run.set_defaults(handler=cmd_exec)

    status = sub.add_parser("status", help="what runs, with its addresses")
    status.set_defaults(handler=cmd_status)

    down = sub.add_parser("down", help="stop and remove everything the twin created")
    down.set_defaults(handler=cmd_down)
