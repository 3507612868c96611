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

The package's modules, one concern each: :mod:`~orbitlab.discover.client` (the token,
the endpoint, TLS and :class:`ProxmoxClient`, the only part that talks HTTP, with the
standard library's ``urllib``), :mod:`~orbitlab.discover.reads` (what is read through it),
:mod:`~orbitlab.discover.transform` (pure functions from API answers to node settings and
the merge), :mod:`~orbitlab.discover.splice` (the stack file's text) and
:mod:`~orbitlab.discover.command` (the command line).

Example::

    $ export PROXMOX_VE_ENDPOINT=https://192.0.2.11:8006/
    $ export PROXMOX_VE_API_TOKEN='orbitlab@pve!discover=<secret>'
    $ orbitlab discover --stack-file stacks/Pulumi.home.yaml
"""

from __future__ import annotations

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
from orbitlab.discover.command import (
    add_api_arguments,
    add_discover_parser,
    api_client,
    cmd_discover,
)
from orbitlab.discover.errors import ApiError, DiscoverError
from orbitlab.discover.reads import (
    discover,
    permissions_reader,
    read_bridge,
    read_cluster_facts,
    read_interfaces,
    read_sdn_facts,
    read_storage_servers,
    storage_config,
    write_snapshot,
)
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
