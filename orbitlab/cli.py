"""The ``orbitlab`` command line.

orbitlab validate stacks/Pulumi.example.yaml
orbitlab render stacks/Pulumi.example.yaml --out out/
orbitlab diagram stacks/Pulumi.example.yaml --out docs/example-stack.svg
orbitlab show stacks/Pulumi.example.yaml [--json] [--cluster]
orbitlab check stacks/Pulumi.example.yaml [--pveum]   # the API token's privileges

With the lab installed (``orbitlab-lab``), its commands join these: ``orbitlab twin ...`` and
``orbitlab emulate ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from orbitlab.errors import OrbitLabError, SettingsError
from orbitlab.plan import StackPlan, plan_stack
from orbitlab.stack import load_plan, load_stack_file
from orbitlab.views.diagram import FORMATS, diagram, format_for
from orbitlab.views.table import allocation, table_text

if TYPE_CHECKING:
    from orbitlab.discover import ProxmoxClient

#: The entry-point group through which other packages add commands (the lab: twin, emulate).
PLUGIN_GROUP = "orbitlab.commands"


def cmd_validate(args: argparse.Namespace) -> int:
    plan = load_plan(args.stack_file)
    print(
        f"{args.stack_file}: valid - {len(plan.backplane.nodes)} node(s), "
        f"{len(plan.sectors)} Sector(s), Backplane {plan.backplane.cidr} "
        f"(MTU {plan.backplane.mtu})"
    )
    for warning in trust_warnings(plan):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def trust_warnings(plan: StackPlan) -> list[str]:
    """What the stack leaves open that it could close: the LAN's trust in the exit node,
    directed broadcasts to the nodes' networks, and node networks that look wrong."""
    return [*exit_node_warnings(plan), *node_network_warnings(plan)]


def node_network_warnings(plan: StackPlan) -> list[str]:
    """A node without ``networks``: no Sector Gateway drops directed broadcasts to its
    LAN. A node whose address lies in none of its networks: suspicious, not refused."""
    warnings = []
    for node in plan.backplane.nodes:
        if not node.networks:
            warnings.append(
                f"directed broadcasts to node {node.name}'s networks are not refused; add "
                "backplane.nodes[].networks (orbitlab discover fills them in)"
            )
        elif not any(node.address in network for network in node.networks):
            listed = ", ".join(str(network) for network in node.networks)
            warnings.append(
                f"node {node.name}'s address {node.address} lies in none of its networks "
                f"({listed}); backplane.nodes[].networks should hold vmbr0's network first "
                "(orbitlab discover fills them in)"
            )
    return warnings


def exit_node_warnings(plan: StackPlan) -> list[str]:
    """A Sector whose egress is allowed, with no protected networks: it reaches the LAN as
    the primary exit node's address, so whatever trusts that node trusts the Sector."""
    if plan.backplane.protected_networks:
        return []
    allowed = [sector.name for sector in plan.sectors if sector.gateway.egress.default == "allow"]
    if not allowed:
        return []
    primary = plan.backplane.primary_exit_node
    address = next(node.address for node in plan.backplane.nodes if node.name == primary)
    return [
        f"Sector(s) {', '.join(allowed)} may reach the LAN (egress: allow) as the primary "
        f"exit node {primary}'s address ({address}), and "
        "orbitlab:backplane.protected_networks is empty: a LAN service that trusts the "
        "node (an NFS export to it, a backup server) trusts those Sectors too; list such "
        "servers there (`orbitlab discover` proposes the cluster's storage servers)"
    ]


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

    client = api_session(args)
    facts = discover.read_cluster_facts(client, settings.backplane.node_names)
    return plan_for_cluster(stack, settings, facts), client.base


def api_session(args: argparse.Namespace) -> ProxmoxClient:
    """A client of the API the options and the stack file name, with $PROXMOX_VE_API_TOKEN."""
    from orbitlab import discover

    token = discover.parse_token(os.environ.get(discover.TOKEN_ENV), discover.SDN_PRIVILEGE_HINT)
    document, _ = discover.read_stack_document(args.stack_file)
    return discover.api_client(args, document, token)


def cmd_show(args: argparse.Namespace) -> int:
    """Print the allocation table, or its JSON with ``--json``."""
    plan, planned_against = plan_on_cluster(args)
    document = allocation(plan, planned_against)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        sys.stdout.write(table_text(document))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Print the stack's least-privilege ``pveum`` commands (``--pveum``), or read the token's
    privileges (``GET /access/permissions``) and name each one the stack needs and it lacks."""
    from orbitlab import discover, privileges

    if args.pveum:
        plan, _ = plan_on_cluster(args)
        sys.stdout.write(privileges.pveum_script(plan, args.user, args.token_name))
        return 0
    from orbitlab.facts import plan_for_cluster

    client = api_session(args)
    token = client.token
    stack, settings = load_stack_file(args.stack_file)
    facts = discover.read_cluster_facts(client, settings.backplane.node_names)
    plan = plan_for_cluster(stack, settings, facts)
    needs = privileges.requirements(plan)
    lacking = privileges.missing(needs, discover.permissions_reader(client))
    paths = len({need.path for need in needs})
    if not lacking:
        print(
            f"the token {token.token_id} holds every privilege the stack needs "
            f"({len(needs)} on {paths} paths)"
        )
        return 0
    print(f"the token {token.token_id} lacks {len(lacking)} privilege(s) the stack needs:")
    for need in lacking:
        print(f"  - {need.describe()}")
    print(
        f"grant them with `orbitlab check {args.stack_file} --pveum` (run as root on a node), "
        "or your own role on those paths",
    )
    return 1


def add_check_parser(commands: argparse._SubParsersAction) -> None:
    from orbitlab.discover import add_api_arguments

    check = commands.add_parser(
        "check",
        help="the API token's privileges: what the stack needs, what the token lacks",
        description=(
            "Read the API token's privileges on every path the stack's pulumi up and destroy "
            "use (GET /access/permissions; token from $PROXMOX_VE_API_TOKEN) and name each "
            "one it lacks; exit 1 if any. With --pveum, print the pveum commands that create "
            "a user, its token and exactly those privileges instead."
        ),
    )
    check.add_argument("stack_file", help="Pulumi.<stack>.yaml")
    check.add_argument(
        "--pveum", action="store_true", help="print the least-privilege pveum commands"
    )
    check.add_argument("--user", default="orbitlab@pve", help="--pveum: the user to create")
    check.add_argument(
        "--token-name", default="pulumi", help="--pveum: the API token's name (user!name)"
    )
    check.add_argument(
        "--cluster",
        action="store_true",
        help="--pveum: plan against the cluster's SDN (tags, VMIDs) as the program does",
    )
    add_api_arguments(check)
    check.set_defaults(handler=cmd_check)


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
            "OrbitLab Networks as code: validate, render, diagram, show, check, discover "
            "(and twin, emulate with the lab installed)."
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
    add_check_parser(commands)

    from orbitlab.discover import add_discover_parser

    add_discover_parser(commands)

    add_plugin_parsers(commands)
    return parser


def add_plugin_parsers(commands: argparse._SubParsersAction) -> None:
    """The commands other installed packages add (the lab's ``twin`` and ``emulate``): each
    entry point of the ``orbitlab.commands`` group adds its parser to ``commands``."""
    for entry_point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        entry_point.load()(commands)


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
