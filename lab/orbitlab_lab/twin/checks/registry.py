"""The catalogue of ``twin test``: every check once, with the groups its rows carry, when it
runs and on what.

A check is a function returning :class:`~orbitlab_lab.twin.results.CheckResult` rows; its
:class:`CheckSpec` says which groups those rows belong to (what ``--check`` selects), its
:class:`Phase` (side by side with the others, or alone because it changes the twin) and its
:class:`Scope` (once per Sector, per pair of overlapping Sectors, once for all of them). The
scheduler (:mod:`~orbitlab_lab.twin.checks.scheduler`) reads nothing else: the table shows
the rows phase by phase, in :data:`CATALOGUE` order within a phase.

    >>> GROUPS[:3]
    ('egress SNAT', 'overlap', 'isolation')
    >>> spec_of("dns reverse").groups
    ('dns forward', 'dns reverse', 'dns nxdomain', 'dns forwarding')
    >>> sorted(groups(Phase.SEQUENTIAL, Scope.SECTOR))
    ['conntrack bound', 'ingress', 'lb routing']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any

from orbitlab_lab.twin.checks import (
    appliance,
    dns,
    egress,
    failover,
    guard,
    isolation,
    lb,
    leases,
    routing,
)
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.results import CheckResult
from orbitlab_lab.twin.topology import SectorTwin

PairFinder = Callable[[TwinContext], Iterable[tuple[SectorTwin, SectorTwin]]]


class Phase(IntEnum):
    """When a check runs; the phases run in this order, each after the previous ended."""

    #: Disturbs no other check: all of them side by side.
    PARALLEL = 1
    #: Changes the twin for a moment (counters, routes, sysctls): alone, one after another.
    SEQUENTIAL = 2
    #: Changes a Sector's DHCP leases: the Sectors side by side (``--skip-dhcp-changes``).
    LEASES = 3
    #: Stops a gateway: last, alone (``--skip-failover``).
    FAILOVER = 4

    @property
    def concurrent(self) -> bool:
        """Whether the phase's checks run side by side (in a pool of workers)."""
        return self in (Phase.PARALLEL, Phase.LEASES)


class Scope(Enum):
    """What a check runs on, and so the arguments it takes after the twin."""

    #: Once per chosen Sector: ``run(twin, sector)``, its rows' "where" the Sector.
    SECTOR = "sector"
    #: Once per pair (from the spec's ``pairs``) with a chosen Sector: ``run(twin, a, b)``.
    PAIR = "pair"
    #: Once for the chosen Sectors together: ``run(twin, sectors)``.
    ALL = "all"
    #: Once, on the first chosen Sector: ``run(twin, sector)``.
    FIRST = "first"


@dataclass(frozen=True)
class CheckSpec:
    """One check of the catalogue.

    ``groups``: the groups of its rows, the first one the group of its error row when it
    cannot run; ``announce``: a progress line before it runs (``{first}``: the first chosen
    Sector's name); ``chosen_rows_only``: its groups are steps of one run, and only the rows
    of the chosen groups are kept (otherwise every row of a chosen check is).
    """

    run: Callable[..., list[CheckResult]]
    groups: tuple[str, ...]
    phase: Phase = Phase.PARALLEL
    scope: Scope = Scope.SECTOR
    pairs: PairFinder | None = None
    announce: str = ""
    chosen_rows_only: bool = False

    def __post_init__(self) -> None:
        if not self.groups:
            raise ValueError(f"{self.name}: a check needs a group")
        if (self.scope is Scope.PAIR) != (self.pairs is not None):
            raise ValueError(f"{self.name}: pairs go with Scope.PAIR, and only with it")

    @property
    def name(self) -> str:
        """The check's function, as ``module.function`` within the package."""
        return f"{self.run.__module__.rsplit('.', 1)[-1]}.{self.run.__name__}"

    def chosen(self, selected: frozenset[str]) -> str | None:
        """Its first group among ``selected``, or None when it is not selected."""
        return next((group for group in self.groups if group in selected), None)


def _spec(run: Callable[..., list[CheckResult]], *groups: str, **how: Any) -> CheckSpec:
    return CheckSpec(run, groups, **how)


#: Every check, in table order within its phase.
CATALOGUE: tuple[CheckSpec, ...] = (
    _spec(egress.check_egress, "egress SNAT"),
    _spec(egress.check_overlap, "overlap", scope=Scope.PAIR, pairs=egress.overlapping_pairs),
    _spec(isolation.check_isolation, "isolation"),
    _spec(egress.check_egress_policy, "egress policy"),
    _spec(routing.check_routing, "subnet routing"),
    _spec(dns.check_dns, "dns forward", "dns reverse", "dns nxdomain", "dns forwarding"),
    _spec(lb.check_lb, "lb ingress", "lb client address"),
    _spec(lb.check_port_forwards, "port forward"),
    _spec(dns.check_dns_spoofing, "dns spoofing"),
    _spec(routing.check_redirects, "icmp redirects"),
    _spec(appliance.check_gateway_services, "gateway services"),
    _spec(appliance.check_mss, "mss clamp"),
    _spec(appliance.check_foreign_source, "anti-spoofing"),
    _spec(appliance.check_directed_broadcasts, "directed broadcast"),
    _spec(leases.check_reserved, "dhcp reserved"),
    _spec(leases.check_pool, "dhcp pool"),
    _spec(leases.check_options, "dhcp options"),
    _spec(leases.check_names, "dhcp names"),
    _spec(leases.check_sectors, "dhcp sectors"),
    _spec(guard.check_rogue_dhcp, "rogue dhcp"),
    _spec(guard.check_dhcp_identity, "dhcp identity"),
    _spec(guard.check_rogue_ipv6, "rogue ipv6"),
    _spec(
        isolation.check_invalid,
        "invalid pkts",
        phase=Phase.SEQUENTIAL,
        scope=Scope.ALL,
        announce="sending invalid packets (SYN+FIN)...",
    ),
    _spec(appliance.check_ingress, "ingress", phase=Phase.SEQUENTIAL),
    _spec(appliance.check_lb_routing, "lb routing", phase=Phase.SEQUENTIAL),
    _spec(appliance.check_conntrack_bound, "conntrack bound", phase=Phase.SEQUENTIAL),
    _spec(
        leases.lifecycle,
        "dhcp guard",
        "dhcp release",
        "dhcp restart",
        phase=Phase.LEASES,
        chosen_rows_only=True,
        announce="releasing, renaming and renewing DHCP leases, restarting each Sector DNS...",
    ),
    _spec(
        failover.check_failover,
        "failover",
        phase=Phase.FAILOVER,
        scope=Scope.FIRST,
        announce="stopping and restarting the {first} gateway...",
    ),
)


def in_table_order(catalogue: Iterable[CheckSpec]) -> list[CheckSpec]:
    """The checks as the table shows their rows: by phase, then in catalogue order."""
    return sorted(catalogue, key=lambda spec: spec.phase)


#: Every group, in table order (what ``--check`` accepts).
GROUPS: tuple[str, ...] = tuple(
    group for spec in in_table_order(CATALOGUE) for group in spec.groups
)


def spec_of(group: str) -> CheckSpec:
    """The check whose rows carry ``group``."""
    return next(spec for spec in CATALOGUE if group in spec.groups)


def groups(phase: Phase, scope: Scope | None = None) -> frozenset[str]:
    """The groups of the checks of ``phase`` (and ``scope``, when given)."""
    return frozenset(
        group
        for spec in CATALOGUE
        if spec.phase is phase and scope in (None, spec.scope)
        for group in spec.groups
    )
