"""``orbitlab discover`` on the command line, and the API options it shares with
``orbitlab show --cluster``: the glue between argparse, the environment, the stack file
(:mod:`orbitlab.discover.splice`) and the cluster (:mod:`orbitlab.discover.reads`).

Example::

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_api_arguments(parser)
    >>> parser.parse_args(["--endpoint", "https://192.0.2.11:8006/"]).timeout
    10.0
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from orbitlab.discover.client import (
    ENDPOINT_ENV,
    INSECURE_ENV,
    TOKEN_ENV,
    ApiToken,
    ProxmoxClient,
    api_base,
    parse_token,
    ssl_context,
)
from orbitlab.discover.reads import discover, read_storage_servers, write_snapshot
from orbitlab.discover.splice import (
    existing_nodes,
    existing_protected,
    read_stack_document,
    render_backplane,
    stack_endpoint,
    write_stack,
)
from orbitlab.discover.transform import BRIDGE, merge_nodes, protected_proposal


def add_discover_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``orbitlab discover`` on the CLI's subcommands."""
    parser = commands.add_parser(
        "discover",
        help="fill in the Backplane's nodes from a running Proxmox VE cluster",
        description=(
            f"Read each online node's {BRIDGE} address and MTU through the Proxmox API. "
            f"Token from ${TOKEN_ENV} (USER@REALM!TOKENID=SECRET; needs Sys.Audit on /nodes)."
        ),
    )
    add_api_arguments(parser)
    parser.add_argument(
        "--stack-file", help="update orbitlab:backplane.nodes in this Pulumi.<stack>.yaml"
    )
    parser.add_argument(
        "--snapshot",
        metavar="FILE",
        help="also write what the cluster holds (SDN objects, guests, storages) to FILE, "
        "for `orbitlab emulate start STACKFILE --seed FILE`",
    )
    parser.set_defaults(handler=cmd_discover)
    return parser


def cmd_discover(args: argparse.Namespace) -> int:
    """Run discovery and print the nodes, or write them into ``--stack-file``."""
    token = parse_token(os.environ.get(TOKEN_ENV))
    document, text = read_stack_document(args.stack_file) if args.stack_file else (None, "")
    client = api_client(args, document, token)
    discovered, offline = discover(client)
    if args.snapshot:
        write_snapshot(client, Path(args.snapshot))
    merge = merge_nodes(existing_nodes(document), discovered, offline)
    for warning in merge.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for line in protected_proposal(read_storage_servers(client), existing_protected(document)):
        print(f"proposal: {line}", file=sys.stderr)
    if not args.stack_file:
        sys.stdout.write(render_backplane(merge.nodes))
        return 0
    write_stack(Path(args.stack_file), text, document, merge.nodes)
    return 0


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say how to reach the Proxmox API (``discover``, ``show``)."""
    parser.add_argument(
        "--endpoint",
        help=f"e.g. https://192.0.2.11:8006/ (default: ${ENDPOINT_ENV}, then the stack "
        "file's proxmoxve:endpoint)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help=f"do not verify the API's TLS certificate (or set {INSECURE_ENV}=true)",
    )
    parser.add_argument("--ca-file", help="PEM file of the CA to trust (pve-root-ca.pem)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")


def api_client(
    args: argparse.Namespace, document: dict[str, Any] | None, token: ApiToken
) -> ProxmoxClient:
    """A client for the options of :func:`add_api_arguments`.

    The endpoint is ``--endpoint``, else ``$PROXMOX_VE_ENDPOINT``, else the stack file's
    ``proxmoxve:endpoint``; the token is read with :func:`parse_token`.
    """
    endpoint = args.endpoint or os.environ.get(ENDPOINT_ENV) or stack_endpoint(document)
    insecure = args.insecure or os.environ.get(INSECURE_ENV, "").lower() in ("1", "true", "yes")
    return ProxmoxClient(
        api_base(endpoint), token, ssl_context(insecure, args.ca_file), args.timeout
    )
