"""What ``orbitlab emulate status`` shows: nodes, SDN (running and pending), templates,
containers, the SDN applies and the containers' reboots so far, and any failed task.

>>> state = {"nodes": {"pve1": {"address": "192.0.2.11", "bridges": ["vmbr0"]}},
...          "sdn": {"version": 0, "config": {k: {} for k in SDN_KINDS},
...                  "running": {k: {} for k in SDN_KINDS}},
...          "volumes": {"pve1": {}}, "containers": {}, "applies": [], "failed_tasks": [],
...          "runs": []}
>>> print("\\n".join(status_lines(state)))
Proxmox VE 9
nodes: pve1 192.0.2.11 (bridges: vmbr0; SDN version 0)
SDN (version 0): nothing
templates: none
containers: none
SDN applies: 0
reboots: 0
commands run: 0
"""

from __future__ import annotations

from typing import Any

from orbitlab_lab.emulate.cluster import DEFAULT_PVE, SDN_KINDS, sdn_listing


def summary(state: dict[str, Any]) -> dict[str, Any]:
    """The state as plain facts (``status --json``): what tests and benchmarks read."""
    sdn = {
        kind: {object_id: status or "running" for object_id, _, status in sdn_listing(state, kind)}
        for kind in SDN_KINDS
    }
    return {
        "backend": state.get("settings", {}).get("backend", "files"),
        "pve": state.get("settings", {}).get("pve", DEFAULT_PVE),
        "nodes": {
            name: {
                "address": node["address"],
                "bridges": node["bridges"],
                "sdn_version": node.get("sdn_version", 0),
                "reload_fails": state.get("reload_failures", {}).get(name),
            }
            for name, node in state["nodes"].items()
        },
        "sdn_version": state["sdn"]["version"],
        "sdn_locked": state["sdn"].get("lock_token") is not None,
        "sdn": sdn,
        "volumes": {node: sorted(volumes) for node, volumes in state["volumes"].items()},
        "containers": state["containers"],
        "guests": state.get("guests", {}),
        "storages": {name: node.get("storages", {}) for name, node in state["nodes"].items()},
        "shared_storages": state.get("shared_storages", []),
        "applies": state["applies"],
        "reboots": state.get("reboots", []),
        "failed_tasks": state["failed_tasks"],
        "runs": state["runs"],
    }


def status_lines(state: dict[str, Any]) -> list[str]:
    facts = summary(state)
    twin = ["backend: the twin (`orbitlab twin status` shows its namespaces)"]
    lines = (twin if facts["backend"] == "twin" else []) + [
        f"Proxmox VE {facts['pve']}"
        + (", SDN locked (a lock token is held)" if facts["sdn_locked"] else ""),
        "nodes: "
        + "; ".join(
            f"{name} {node['address']} (bridges: {', '.join(node['bridges'])}; SDN version "
            f"{node['sdn_version']}"
            + (f"; reloads fail: {node['reload_fails']}" if node["reload_fails"] else "")
            + ")"
            for name, node in facts["nodes"].items()
        ),
    ]
    objects = [
        f"  {kind.removesuffix('s')} {object_id}: {status}"
        for kind in SDN_KINDS
        for object_id, status in facts["sdn"][kind].items()
    ]
    lines.append(f"SDN (version {facts['sdn_version']}): " + ("" if objects else "nothing"))
    lines.extend(objects)
    volumes = [f"{node}:{volid}" for node, ids in facts["volumes"].items() for volid in ids]
    lines.append("templates: " + (", ".join(volumes) or "none"))
    containers = [
        f"  CT {vmid} {ct['hostname']} on {ct['node']}, {ct['status']}, "
        f"bridges {', '.join(nic['bridge'] for nic in ct['nics'])}"
        for vmid, ct in sorted(facts["containers"].items(), key=lambda item: int(item[0]))
    ]
    lines.append("containers: " + ("" if containers else "none"))
    lines.extend(containers)
    guests = facts["guests"]
    if guests:  # a seeded cluster's own VMs and containers: their VMIDs are taken
        lines.append("the cluster's own guests: " + ", ".join(
            f"{'VM' if g['type'] == 'qemu' else 'CT'} {vmid} on {g['node']}"
            for vmid, g in sorted(guests.items(), key=lambda item: int(item[0]))
        ))  # fmt: skip
    if facts["shared_storages"]:
        lines.append("shared storages: " + ", ".join(facts["shared_storages"]))
    applies = facts["applies"]
    lines.append(f"SDN applies: {len(applies)}")
    lines.extend(
        f"  #{a['n']} by {a['by']} ({a['why']}): version {a['version']}, "
        + ("ok" if a["ok"] else f"FAILED: {a['error']}")
        + "".join(f"; WARNING {warning}" for warning in a.get("warnings", []))
        for a in applies
    )
    lines.append(f"reboots: {len(facts['reboots'])}")
    lines.extend(
        f"  CT {r['vmid']} {r['hostname']} on {r['node']}, for {', '.join(r['why'])}"
        for r in facts["reboots"]
    )
    for task in facts["failed_tasks"]:
        lines.append(f"FAILED task {task['task']} on {task['node']}: {task['error']}")
    lines.append(f"commands run: {len(facts['runs'])}")
    return lines
