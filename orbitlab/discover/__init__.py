"""``orbitlab discover``: fill in the Backplane's nodes from a running Proxmox VE cluster.

It reads these through the Proxmox API, with an API token:

- ``GET /api2/json/nodes``: the cluster's nodes and whether each is ``online``;
- ``GET /api2/json/nodes/{node}/network/vmbr0``: each online node's ``vmbr0`` bridge as
  configured in ``/etc/network/interfaces`` (``cidr`` or ``address``, and ``mtu``, which
  the API returns as a string and leaves out when the file sets none: that means 1500);
- ``GET /api2/json/nodes/{node}/network``: each online node's interfaces, for its other
  IPv4 addresses (``other_addresses``) and the IPv4 networks of its interfaces
  (``networks``, ``vmbr0``'s first: the Sector Gateways drop directed broadcasts to them).

The Proxmox API does not expose a node's SSH host key, so ``host_key`` is never
discovered; a ``host_key`` already in the stack file is kept.

Offline nodes cannot be read. A node that is offline keeps its entry from the stack file
unchanged (dropping it would silently take it out of the EVPN peers on the next
``pulumi up``); an offline node the stack file does not list yet is skipped with a
warning. Both are reported on stderr.

``orbitlab show --cluster`` reuses the client, its options (:func:`add_api_arguments`,
:func:`api_client`) and :func:`read_sdn_facts`: ``GET /cluster/sdn/vnets`` and
``GET /cluster/sdn/zones``, the facts the Pulumi program plans against.

The pure functions (token and endpoint parsing, turning API answers into node settings,
merging them into a stack, splicing them into the stack file's text) are kept apart from
:class:`ProxmoxClient`, the only part that talks HTTP (standard library ``urllib``).

Example::

    $ export PROXMOX_VE_ENDPOINT=https://192.0.2.11:8006/
    $ export PROXMOX_VE_API_TOKEN='orbitlab@pve!discover=<secret>'
    $ orbitlab discover --stack-file stacks/Pulumi.home.yaml
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from orbitlab.discover.client import (
    API_PREFIX,
    ENDPOINT_ENV,
    INSECURE_ENV,
    PRIVILEGE_HINT,
    SDN_PRIVILEGE_HINT,
    TOKEN_ENV,
    TOKEN_SHAPE,
    ApiToken,
    ProxmoxClient,
    api_base,
    describe_http_error,
    parse_token,
    ssl_context,
)
from orbitlab.discover.errors import ApiError, DiscoverError
from orbitlab.discover.splice import (
    BACKPLANE_KEY,
    existing_nodes,
    existing_protected,
    read_stack_document,
    render_backplane,
    render_nodes,
    rewrite_nodes,
    splice_nodes,
    stack_endpoint,
    write_stack,
)
from orbitlab.discover.transform import (
    BRIDGE,
    DEFAULT_MTU,
    NETWORK_STORAGE_TYPES,
    Merge,
    StorageServer,
    interface_network,
    merge_nodes,
    node_from_bridge,
    node_networks,
    other_addresses,
    protected_proposal,
    split_by_status,
    storage_servers,
)
from orbitlab.facts import ClusterFacts, DatastoreFact, facts_from_api
from orbitlab.snapshot import read_snapshot, snapshot_text, storage_from_api

# --- pure functions -------------------------------------------------------------------------


# --- HTTP -----------------------------------------------------------------------------------


def discover(client: ProxmoxClient) -> tuple[list[dict[str, Any]], list[str]]:
    """Read every online node's ``vmbr0``; return ``(nodes, names of nodes not online)``."""
    listing = client.get("/nodes")
    if not isinstance(listing, list) or not listing:
        raise DiscoverError("the Proxmox API lists no nodes; " + PRIVILEGE_HINT)
    online, offline = split_by_status(listing)
    if not online:
        raise DiscoverError(f"no node is online (offline or unknown: {', '.join(offline)})")
    nodes = [
        node_from_bridge(name, read_bridge(client, name), read_interfaces(client, name))
        for name in online
    ]
    return nodes, offline


def read_interfaces(client: ProxmoxClient, node: str) -> list[dict[str, Any]]:
    """``GET /nodes/{node}/network``: every interface of the node."""
    path = f"/nodes/{urllib.parse.quote(node, safe='')}/network"
    listing = client.get(path)
    if not isinstance(listing, list):
        raise DiscoverError(f"GET {path}: expected a list of interfaces, got {listing!r}")
    return [entry for entry in listing if isinstance(entry, dict)]


def read_bridge(client: ProxmoxClient, node: str) -> dict[str, Any]:
    """``GET /nodes/{node}/network/vmbr0``, with a clear message when there is no vmbr0."""
    path = f"/nodes/{urllib.parse.quote(node, safe='')}/network/{BRIDGE}"
    try:
        bridge = client.get(path)
    except ApiError as error:
        if "does not exist" in error.errors.get("iface", ""):
            raise DiscoverError(
                f"node {node} has no {BRIDGE} bridge: OrbitLab peers the nodes over {BRIDGE}; "
                f"create it (System > Network on {node}) or write the node in by hand"
            ) from None
        raise
    if not isinstance(bridge, dict):
        raise DiscoverError(f"GET {path}: expected an interface object, got {bridge!r}")
    return bridge


# --- SDN, for `orbitlab show --cluster` ------------------------------------------------------


def permissions_reader(client: ProxmoxClient) -> Callable[[str], frozenset[str]]:
    """The token's privileges on a path, as ``GET /access/permissions?path=<path>`` reports
    them (inherited ACLs and the token's privilege separation applied); read once per path.
    """
    cache: dict[str, frozenset[str]] = {}

    def held(path: str) -> frozenset[str]:
        if path not in cache:
            query = urllib.parse.urlencode({"path": path})
            answer = client.get(f"/access/permissions?{query}")
            if not isinstance(answer, dict):
                raise DiscoverError(f"GET /access/permissions: expected a mapping, got {answer!r}")
            cache[path] = frozenset((answer.get(path) or {}).keys())
        return cache[path]

    return held


def read_sdn_facts(client: ProxmoxClient) -> ClusterFacts:
    """``GET /cluster/sdn/vnets``, ``/cluster/sdn/zones`` and ``/cluster/resources?type=vm``
    (the guests): the facts the program plans on."""
    answers = []
    for path in ("/cluster/sdn/vnets", "/cluster/sdn/zones", "/cluster/resources?type=vm"):
        try:
            answer = client.get(path)
        except ApiError as error:
            if error.status == 403:
                raise DiscoverError(
                    f"permission denied for GET {path} (HTTP 403): {SDN_PRIVILEGE_HINT}"
                ) from None
            raise
        if not isinstance(answer, list) or not all(isinstance(a, dict) for a in answer):
            raise DiscoverError(f"GET {path}: expected a list of objects, got {answer!r}")
        answers.append(answer)
    try:
        return facts_from_api(*answers)
    except (KeyError, TypeError, ValueError) as error:
        raise DiscoverError(
            f"the SDN configuration the API returned is not understood: {error!r}"
        ) from None


# --- command line ---------------------------------------------------------------------------


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


def read_cluster_facts(client: ProxmoxClient, nodes: Iterable[str]) -> ClusterFacts:
    """What the program plans on (:func:`read_sdn_facts`), with the storages ``nodes`` have
    (``GET /storage``, the cluster's storage configuration; none known when the token may
    not list them: the configured or default names are planned then)."""
    storages = [storage_from_api(item) for item in storage_config(client)]
    datastores = tuple(
        DatastoreFact(storage.id, node, storage.content, storage.shared)
        for node in nodes
        for storage in storages
        if storage.on(node)
    )
    return replace(read_sdn_facts(client), datastores=datastores)


def storage_config(client: ProxmoxClient) -> list[dict[str, Any]]:
    """``GET /storage``'s entries (none when the token may not list them)."""
    try:
        listing = client.get("/storage")
    except ApiError:
        return []
    return [item for item in listing or [] if isinstance(item, dict) and item.get("storage")]


def read_storage_servers(client: ProxmoxClient) -> list[StorageServer]:
    """The network storages' servers (a token that sees none proposes nothing)."""
    return storage_servers(storage_config(client))


def write_snapshot(client: ProxmoxClient, path: Path) -> None:
    """``--snapshot``: the cluster's SDN objects, guests and storages, written to ``path``."""
    document = read_snapshot(client)
    try:
        path.write_text(snapshot_text(document))
    except OSError as error:
        raise DiscoverError(f"{path}: cannot write the snapshot: {error.strerror}") from None
    sdn = document["sdn"]
    counts = ", ".join(f"{len(sdn[kind])} {kind}" for kind in sdn)
    print(
        f"wrote {path}: {counts}, {len(document['guests'])} guests, "
        f"{len(document['storages'])} storages",
        file=sys.stderr,
    )


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


__all__ = [
    "API_PREFIX",
    "BACKPLANE_KEY",
    "BRIDGE",
    "DEFAULT_MTU",
    "ENDPOINT_ENV",
    "INSECURE_ENV",
    "NETWORK_STORAGE_TYPES",
    "PRIVILEGE_HINT",
    "SDN_PRIVILEGE_HINT",
    "TOKEN_ENV",
    "TOKEN_SHAPE",
    "ApiError",
    "ApiToken",
    "DiscoverError",
    "Merge",
    "ProxmoxClient",
    "StorageServer",
    "add_api_arguments",
    "add_discover_parser",
    "api_base",
    "api_client",
    "cmd_discover",
    "describe_http_error",
    "discover",
    "existing_nodes",
    "existing_protected",
    "interface_network",
    "merge_nodes",
    "node_from_bridge",
    "node_networks",
    "other_addresses",
    "parse_token",
    "permissions_reader",
    "protected_proposal",
    "read_bridge",
    "read_cluster_facts",
    "read_interfaces",
    "read_sdn_facts",
    "read_stack_document",
    "read_storage_servers",
    "render_backplane",
    "render_nodes",
    "rewrite_nodes",
    "splice_nodes",
    "split_by_status",
    "ssl_context",
    "stack_endpoint",
    "storage_config",
    "storage_servers",
    "write_snapshot",
]
