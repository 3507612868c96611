"""Failover: a stopped gateway cuts only its own Sector; after a restart it works again.

Runs last and alone: it stops the first chosen Sector's gateway, and checks the others'
egress and load balancers while it is down.
"""

from __future__ import annotations

from dataclasses import replace

from orbitlab_lab.twin import lifecycle
from orbitlab_lab.twin.checks.lb import check_lb
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.probing import egress_allowed, probe, shown, source_of
from orbitlab_lab.twin.results import CheckResult
from orbitlab_lab.twin.topology import INTERNET_HOST, SERVICE_PORT, SectorTwin


def _egress_ok(twin: TwinContext, sector: SectorTwin) -> dict[str, str]:
    ns, _ = source_of(sector)
    return probe(twin, ns, "http", INTERNET_HOST, SERVICE_PORT)


def check_failover(twin: TwinContext, failing: SectorTwin) -> list[CheckResult]:
    """Stop a Sector's gateway: only that Sector loses egress; restart: it is back."""
    sectors = twin.topology.sectors
    results = []
    lifecycle.stop_gateway(twin, failing)
    try:
        for sector in sectors:
            if not egress_allowed(sector, INTERNET_HOST):
                continue
            found = _egress_ok(twin, sector)
            down = sector is failing
            results.append(
                CheckResult(
                    "failover",
                    source_of(sector)[0].label,
                    f"internet, {failing.name} gateway stopped",
                    "fails" if down else "still answers",
                    shown(found),
                    (found["result"] != "ok") if down else (found["result"] == "ok"),
                )
            )
        for sector in (s for s in sectors if s is not failing):
            for row in check_lb(twin, sector):
                target = f"{row.target}, {failing.name} gateway stopped"
                results.append(replace(row, check="failover", target=target))
    finally:
        lifecycle.restart_gateway(twin, failing)
    found = _egress_ok(twin, failing)
    results.append(
        CheckResult(
            "failover",
            source_of(failing)[0].label,
            f"internet, {failing.name} gateway restarted",
            "answers again",
            shown(found),
            found["result"] == "ok",
        )
    )
    return results
