"""Running the catalogue (:mod:`~orbitlab_lab.twin.checks.registry`): the chosen checks on
the chosen Sectors, phase by phase, as their specs declare.

Each check becomes jobs by its scope (one per Sector, per pair, one in all); a concurrent
phase runs its jobs in a pool of :data:`WORKERS`, any other one after the other. Rows come
back in job order, so the table reads the same on every run. A job that fails (a namespace
that is not there, a command that fails) is one failed row of its group, not the end of the
run (:func:`guarded`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from orbitlab_lab.twin import TwinError, dhcp
from orbitlab_lab.twin.checks import registry
from orbitlab_lab.twin.checks.registry import CheckSpec, Phase, Scope
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.results import Check, CheckResult
from orbitlab_lab.twin.topology import SectorTwin

WORKERS = 8
#: A progress line at the start of a phase (``{count}``: its jobs).
PHASE_NOTES = {Phase.PARALLEL: "running {count} check groups ({workers} at a time)..."}

#: A check's job, and the check it is of.
Job = tuple[CheckSpec, Check]


def guarded(check: Check, group: str, where: str) -> Check:
    """``check``, with an error that stops it (a namespace that is not there, a command
    that fails) reported as a failed row of its group instead of ending the whole run.

    >>> def broken():
    ...     raise TwinError("olt-s.web.dns is not there" + chr(10) + "more")
    >>> guarded(broken, "dns forward", "web")()[0].got
    'olt-s.web.dns is not there'
    """

    def run() -> list[CheckResult]:
        try:
            return check()
        except (TwinError, OSError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            return [CheckResult(group, where, "(the check could not run)", "runs", reason, False)]

    return run


def select_sectors(twin: TwinContext, names: Sequence[str] = ()) -> tuple[SectorTwin, ...]:
    """The Sectors to check: all of them, or those named (each must exist)."""
    if not names:
        return twin.topology.sectors
    known = {sector.name: sector for sector in twin.topology.sectors}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise TwinError(
            f"no Sector {', '.join(map(repr, unknown))} in the twin; Sectors: {', '.join(known)}"
        )
    return tuple(known[name] for name in dict.fromkeys(names))


def select_groups(names: Sequence[str] = ()) -> frozenset[str]:
    """The check groups to run: all of them, or those named (each must exist).

    >>> sorted(select_groups(["isolation"]))
    ['isolation']
    """
    unknown = [name for name in names if name not in registry.GROUPS]
    if unknown:
        raise TwinError(
            f"no check {', '.join(map(repr, unknown))}; checks: {', '.join(registry.GROUPS)}"
        )
    return frozenset(names or registry.GROUPS)


def jobs_of(
    twin: TwinContext, spec: CheckSpec, chosen: tuple[SectorTwin, ...], group: str
) -> list[Check]:
    """``spec``'s jobs for the chosen Sectors, by its scope; ``group``: its error row's."""
    if spec.scope is Scope.SECTOR:
        return [guarded(lambda s=s: spec.run(twin, s), group, s.name) for s in chosen]
    if spec.scope is Scope.PAIR:
        assert spec.pairs is not None
        return [
            guarded(lambda a=a, b=b: spec.run(twin, a, b), group, f"{a.name}+{b.name}")
            for a, b in spec.pairs(twin)
            if a in chosen or b in chosen
        ]
    if spec.scope is Scope.ALL:
        return [guarded(lambda: spec.run(twin, chosen), group, "all")]
    return [guarded(lambda: spec.run(twin, chosen[0]), group, chosen[0].name)] if chosen else []


def plan_jobs(
    twin: TwinContext,
    chosen: tuple[SectorTwin, ...],
    groups: frozenset[str],
    phase: Phase,
) -> list[Job]:
    """The jobs of ``phase``'s checks that have a chosen group, in catalogue order."""
    planned: list[Job] = []
    for spec in registry.CATALOGUE:
        group = spec.chosen(groups)
        if spec.phase is phase and group is not None:
            planned += [(spec, job) for job in jobs_of(twin, spec, chosen, group)]
    return planned


def _kept(spec: CheckSpec, rows: list[CheckResult], groups: frozenset[str]) -> list[CheckResult]:
    return [row for row in rows if row.check in groups] if spec.chosen_rows_only else rows


def run_phase(
    planned: list[Job],
    groups: frozenset[str],
    progress: Callable[[str], None],
    first: str,
) -> list[CheckResult]:
    """Run a phase's jobs (side by side when the phase is concurrent); rows in job order.
    Each check with jobs announces itself: all before a concurrent phase, each just before
    its jobs otherwise."""
    specs = list(dict.fromkeys(spec for spec, _ in planned))
    concurrent = bool(planned) and planned[0][0].phase.concurrent
    if concurrent:
        for spec in specs:
            _announce(spec, progress, first)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            done = pool.map(lambda job: _kept(job[0], job[1](), groups), planned)
            return [row for rows in done for row in rows]
    results: list[CheckResult] = []
    for spec in specs:
        _announce(spec, progress, first)
        for _, job in (job for job in planned if job[0] is spec):
            results += _kept(spec, job(), groups)
    return results


def _announce(spec: CheckSpec, progress: Callable[[str], None], first: str) -> None:
    if spec.announce:
        progress(spec.announce.format(first=first))


def run_checks(
    twin: TwinContext,
    skip_failover: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    sectors: Sequence[str] = (),
    checks: Sequence[str] = (),
    skip_dhcp_changes: bool = False,
) -> list[CheckResult]:
    """Run the checks (of the named Sectors and groups, or all) phase by phase: the
    independent ones in parallel, then those that change the twin (counters, routes, DHCP
    leases, a gateway failure) as their phase says."""
    chosen = select_sectors(twin, sectors)
    groups = select_groups(checks)
    if twin.state.kind == "cluster":
        present = set(twin.state.namespaces)
        for sector in chosen:
            for host in dhcp.unbound(twin, sector, present):
                progress(f"{host.ns.label} has no DHCP lease yet (its checks will say so)")
    skipped = {Phase.FAILOVER} if skip_failover else set()
    skipped |= {Phase.LEASES} if skip_dhcp_changes else set()
    first = chosen[0].name if chosen else ""
    results: list[CheckResult] = []
    for phase in sorted(set(Phase) - skipped):
        planned = plan_jobs(twin, chosen, groups, phase)
        if phase in PHASE_NOTES:
            progress(PHASE_NOTES[phase].format(count=len(planned), workers=WORKERS))
        results += run_phase(planned, groups, progress, first)
    return results
