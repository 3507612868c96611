"""The ``orbitlab`` command line.

orbitlab validate stacks/Pulumi.example.yaml
orbitlab render stacks/Pulumi.example.yaml --out out/
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from orbitlab.errors import OrbitLabError, SettingsError
from orbitlab.stack import load_plan


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orbitlab", description="OrbitLab Networks as code: validate, render, twin."
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

    from orbitlab.discover import add_discover_parser

    add_discover_parser(commands)

    from orbitlab.twin.cli import add_twin_parser

    add_twin_parser(commands)

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
