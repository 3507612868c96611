"""The ``orbitlab`` command line.

orbitlab validate stacks/Pulumi.example.yaml
orbitlab render stacks/Pulumi.example.yaml --out out/
orbitlab diagram stacks/Pulumi.example.yaml --out docs/example-stack.svg
orbitlab show stacks/Pulumi.example.yaml [--json] [--cluster]
orbitlab emulate start stacks/Pulumi.example.yaml   # then: eval "$(orbitlab emulate env)"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from orbitlab.errors import OrbitLabError, SettingsError
from orbitlab.plan import StackPlan, plan_stack
from orbitlab.stack import load_plan, load_stack_file
from orbitlab.views.diagram import FORMATS, diagram, format_for
from orbitlab.views.table import allocation, table_text


def cmd_validate(args: argparse.Namespace) -> int:
    plan = load_plan(args.stack_file)
    print(
        f"{args.stack_file}: valid - {len(plan.backplane.nodes)} node(s), "
        f"{len(plan.sectors)} Sector(s), Backplane {plan.backplane.cidr} "
        f"(MTU {plan.backplane.mtu})"
    )
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from orbitlab.rendering import write_rendered_tree

    plan = load_plan(args.stack_file)
    written = write_rendered_tree(plan, Path(args.out))
    print(f"rendered {len(written)} files for {len(plan.sectors)} Sector(s) under {args.out}")
    return 0


def write_output(out: str | None, text: str) -> None:
    """Write to the file ``out``, or to stdout when it is None or ``-``."""
    if out in (None, "-"):
        sys.stdout.write(text)
        return
    try:
        Path(out).write_text(text)
    except OSError as error:
        raise OrbitLabError(f"{out}: cannot write the diagram: {error.strerror}") from None


def cmd_diagram(args: argparse.Namespace) -> int:
    """Draw the stack in the chosen format, to ``--out`` or stdout."""
    plan = load_plan(args.stack_file)
    fmt = format_for(args.out, args.format)
    write_output(args.out, diagram(plan, fmt, args.out))
    if args.out not in (None, "-"):
        print(f"wrote {args.out} ({fmt}): {len(plan.sectors)} Sector(s)", file=sys.stderr)
    return 0


def plan_on_cluster(args: argparse.Namespace) -> tuple[StackPlan, str | None]:
    """The plan, made as the Pulumi program makes it: against the cluster's SDN when asked
    (``--cluster`` or ``--endpoint``), else as on an empty cluster. Also returns the API read.
    """
    stack, settings = load_stack_file(args.stack_file)
    if not (args.cluster or args.endpoint):
        return plan_stack(stack, settings), None
    from orbitlab import discover
    from orbitlab.facts import plan_for_cluster

    token = discover.parse_token(os.environ.get(discover.TOKEN_ENV), discover.SDN_PRIVILEGE_HINT)
    document, _ = discover.read_stack_document(args.stack_file)
    client = discover.api_client(args, document, token)
    return plan_for_cluster(stack, settings, discover.read_sdn_facts(client)), client.base


def cmd_show(args: argparse.Namespace) -> int:
    """Print the allocation table, or its JSON with ``--json``."""
    plan, planned_against = plan_on_cluster(args)
    document = allocation(plan, planned_against)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        sys.stdout.write(table_text(document))
    return 0


def add_view_parsers(commands: argparse._SubParsersAction) -> None:
    """``orbitlab diagram`` and ``orbitlab show``."""
    from orbitlab.discover import add_api_arguments

    draw = commands.add_parser(
        "diagram",
        help="draw the network: SVG (Graphviz), Mermaid (Markdown) or DOT",
        description="Draw the stack's network: nodes, Backplane, every Sector and appliance.",
    )
    draw.add_argument("stack_file", help="Pulumi.<stack>.yaml")
    draw.add_argument("--out", help="output file (default: stdout)")
    draw.add_argument(
        "--format",
        choices=FORMATS,
        help="default: from --out's suffix (.svg, .mmd or .md for Mermaid, .dot/.gv), else svg",
    )
    draw.set_defaults(handler=cmd_diagram)

    show = commands.add_parser(
        "show",
        help="a table of everything allocated: tags, IDs, VMIDs, addresses, placement",
        description=(
            "Print what the stack allocates, one row per Sector. Tags are planned as on an "
            "empty cluster unless --cluster (or --endpoint) reads the tags in use from the "
            "Proxmox API (token from $PROXMOX_VE_API_TOKEN; needs SDN.Audit on /sdn)."
        ),
    )
    show.add_argument("stack_file", help="Pulumi.<stack>.yaml")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.add_argument(
        "--cluster",
        action="store_true",
        help="plan against the cluster's SDN (VNets, zones) as the Pulumi program does",
    )
    add_api_arguments(show)
    show.set_defaults(handler=cmd_show)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orbitlab",
        description=(
            "OrbitLab Networks as code: validate, render, diagram, show, discover, twin, emulate."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check a stack file; exit 0 when valid")
    validate.add_argument("stack_file", help="Pulumi.<stack>.yaml")
    validate.set_defaults(handler=cmd_validate)

    render = commands.add_parser(
        "render", help="write every appliance's files and provisioning script"
    )
    render.add_argument("stack_file", help="Pulumi.<stack>.yaml")
    render.add_argument("--out", required=True, help="output directory")
    render.set_defaults(handler=cmd_render)

    add_view_parsers(commands)

    from orbitlab.discover import add_discover_parser

    add_discover_parser(commands)

    from orbitlab.twin.cli import add_twin_parser

    add_twin_parser(commands)

    from orbitlab.emulate.cli import add_emulate_parser

    add_emulate_parser(commands)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SettingsError as error:
        print(f"invalid stack ({len(error.problems)} problem(s)):", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except OrbitLabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
