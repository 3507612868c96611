"""``orbitlab show``: everything a plan allocates, one row per Sector, as text or JSON.

The JSON document (:func:`allocation`) is the source of both outputs: the text table is
that document's values in aligned columns (:data:`COLUMNS`), so the two never disagree.
Addresses and CIDRs are strings, tags, VMIDs and MTUs numbers; a Sector without a load
balancer has ``null`` for its LB VMID and addresses, one without DHCP ``null`` for its pool.

>>> from orbitlab.stack import load_plan
>>> document = allocation(load_plan("stacks/Pulumi.example.yaml"))
>>> web = document["sectors"][0]
>>> web["tag"], web["vmids"]
(1001, {'gateway': 10011, 'dns': 10012, 'lb': 10013})
>>> web["gateway"]
{'sector': ['172.16.0.1', '172.16.1.1'], 'backplane': '10.200.0.10'}
>>> web["dhcp_pool"]
'172.16.0.128-172.16.0.254'
>>> print(table_text(document).splitlines()[4][:49])
SECTOR  TAG   VNET      ZONE      VMIDS GW/DNS/LB
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orbitlab.plan import BackplanePlan, SectorPlan, StackPlan
from orbitlab.roles import ROLES

#: A cell with nothing in it (no load balancer).
NONE = "-"


def backplane_fields(backplane: BackplanePlan) -> dict[str, Any]:
    """The Backplane's header values (JSON key ``backplane``)."""
    return {
        "cidr": str(backplane.cidr),
        "gateway": str(backplane.gateway),
        "mtu": backplane.mtu,
        "asn": backplane.asn,
        "primary_exit_node": backplane.primary_exit_node,
        "nodes": [
            {"name": node.name, "address": str(node.address), "mtu": node.mtu}
            for node in backplane.nodes
        ],
    }


def sector_fields(sector: SectorPlan) -> dict[str, Any]:
    """One Sector's allocation (an item of JSON key ``sectors``)."""
    lb = sector.load_balancer
    return {
        "name": sector.name,
        "tag": sector.tag,
        "vnet_id": sector.vnet_id,
        "zone_id": sector.zone_id,
        "vmids": {
            each.name: sector.vmid(each.name) if each.present_in(sector) else None for each in ROLES
        },
        "node": sector.node,
        "subnets": [str(subnet.cidr) for subnet in sector.subnets],
        "gateway": {
            "sector": [str(subnet.gateway) for subnet in sector.subnets],
            "backplane": str(sector.gateway.backplane_address),
        },
        "dns": {"address": str(sector.dns.sector_address)},
        "dhcp_pool": sector.dns.dhcp.pool_text if sector.dns.dhcp else None,
        "load_balancer": (
            {"sector": str(lb.sector_address), "backplane": str(lb.backplane_address)}
            if lb
            else None
        ),
    }


def allocation(plan: StackPlan, planned_against: str | None = None) -> dict[str, Any]:
    """The whole document: stack, what the tags were planned against, Backplane, Sectors.

    ``planned_against`` is the API the tags in use were read from, or None for a plan made
    as on an empty cluster.
    """
    return {
        "stack": plan.stack,
        "planned_against": planned_against,
        "backplane": backplane_fields(plan.backplane),
        "sectors": [sector_fields(sector) for sector in plan.sectors],
    }


def _joined(values: list[str]) -> str:
    return ",".join(values) or NONE


def _lb(sector: dict[str, Any], leg: str) -> str:
    lb = sector["load_balancer"]
    return lb[leg] if lb else NONE


def _vmids(sector: dict[str, Any]) -> str:
    return "/".join(str(v) if v is not None else NONE for v in sector["vmids"].values())


Column = tuple[str, Callable[[dict[str, Any]], str]]

#: The table's columns: header, and the cell taken from a Sector's JSON item.
COLUMNS: tuple[Column, ...] = (
    ("SECTOR", lambda s: s["name"]),
    ("TAG", lambda s: str(s["tag"])),
    ("VNET", lambda s: s["vnet_id"]),
    ("ZONE", lambda s: s["zone_id"]),
    ("VMIDS GW/DNS/LB", _vmids),
    ("NODE", lambda s: s["node"]),
    ("SUBNETS", lambda s: _joined(s["subnets"])),
    ("GW SECTOR", lambda s: _joined(s["gateway"]["sector"])),
    ("GW BACKPLANE", lambda s: s["gateway"]["backplane"]),
    ("DNS", lambda s: s["dns"]["address"]),
    ("DHCP POOL", lambda s: s["dhcp_pool"] or NONE),
    ("LB SECTOR", lambda s: _lb(s, "sector")),
    ("LB BACKPLANE", lambda s: _lb(s, "backplane")),
)


def aligned(rows: list[list[str]]) -> list[str]:
    """Rows of cells as lines, each column padded to its widest cell.

    >>> aligned([["A", "BB"], ["ccc", "d"]])
    ['A    BB', 'ccc  d']
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def header_lines(document: dict[str, Any]) -> list[str]:
    """The Backplane, its nodes, and what the tags were planned against."""
    bp = document["backplane"]
    nodes = ", ".join(
        f"{n['name']} {n['address']} (MTU {n['mtu']}"
        + (", primary exit node)" if n["name"] == bp["primary_exit_node"] else ")")
        for n in bp["nodes"]
    )
    against = document["planned_against"]
    tags = (
        f"planned against the tags in use at {against}"
        if against
        else "planned as on an empty cluster (--cluster plans against the tags in use)"
    )
    return [
        f"Stack {document['stack']}: Backplane {bp['cidr']}, gateway {bp['gateway']}, "
        f"MTU {bp['mtu']}, ASN {bp['asn']}",
        f"Nodes: {nodes}",
        f"Tags: {tags}",
    ]


def table_text(document: dict[str, Any]) -> str:
    """The header, a blank line, then one aligned row per Sector (or a note: none)."""
    lines = [*header_lines(document), ""]
    if not document["sectors"]:
        return "\n".join([*lines, "No Sectors."]) + "\n"
    rows = [[header for header, _ in COLUMNS]]
    rows += [[cell(sector) for _, cell in COLUMNS] for sector in document["sectors"]]
    return "\n".join([*lines, *aligned(rows)]) + "\n"
