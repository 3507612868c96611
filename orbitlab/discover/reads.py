"""What ``discover`` and ``show --cluster`` read from the cluster through a
:class:`~orbitlab.discover.client.ProxmoxClient`: the nodes and their ``vmbr0``, the SDN
objects and guests, the storages, the token's privileges.

Each reader turns the API's answer into the library's values with the pure functions of
:mod:`orbitlab.discover.transform` and :mod:`orbitlab.facts`, and raises
:class:`~orbitlab.discover.errors.DiscoverError` with the path when the answer is not the
shape the API documents.

Example::

    >>> from orbitlab.discover.reads import read_bridge
    >>> class NoBridge:
    ...     def get(self, path):
    ...         from orbitlab.discover.errors import ApiError
    ...         raise ApiError("GET failed (HTTP 400)", 400, {"iface": "interface does not exist"})
    >>> try:
    ...     read_bridge(NoBridge(), "pve1")
    ... except DiscoverError as error:
    ...     print(str(error).split(":")[0])
    node pve1 has no vmbr0 bridge
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from orbitlab.discover.client import PRIVILEGE_HINT, SDN_PRIVILEGE_HINT, ProxmoxClient
from orbitlab.discover.errors import ApiError, DiscoverError
from orbitlab.discover.transform import (
    BRIDGE,
    StorageServer,
    node_from_bridge,
    split_by_status,
    storage_servers,
)
from orbitlab.facts import ClusterFacts, DatastoreFact, facts_from_api
from orbitlab.snapshot import read_snapshot, snapshot_text, storage_from_api


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
