"""The catalogue of ``twin test`` and its scheduler, without a twin (no root).

The expected catalogue and row order were read from the scheduler before the checks became
a package (``twin/checks.py``: its ``PARALLEL`` and ``SEQUENTIAL`` tables, the overlap run
beside egress SNAT, invalid packets, the DHCP lease changes and the failover after them),
by running it with every check replaced by a stub that returns one row per group.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from netaddr import IPNetwork

from orbitlab_lab.twin import TwinError
from orbitlab_lab.twin.checks import registry, scheduler
from orbitlab_lab.twin.checks.registry import CATALOGUE, GROUPS, CheckSpec, Phase, Scope
from orbitlab_lab.twin.results import CheckResult

P, S, L, F = Phase.PARALLEL, Phase.SEQUENTIAL, Phase.LEASES, Phase.FAILOVER
#: (check, its groups, phase, scope), in table order.
EXPECTED_CATALOGUE = [
    ("egress.check_egress", ("egress SNAT",), P, Scope.SECTOR),
    ("egress.check_overlap", ("overlap",), P, Scope.PAIR),
    ("isolation.check_isolation", ("isolation",), P, Scope.SECTOR),
    ("egress.check_egress_policy", ("egress policy",), P, Scope.SECTOR),
    ("routing.check_routing", ("subnet routing",), P, Scope.SECTOR),
    (
        "dns.check_dns",
        ("dns forward", "dns reverse", "dns nxdomain", "dns forwarding"),
        P,
        Scope.SECTOR,
    ),
    ("lb.check_lb", ("lb ingress", "lb client address"), P, Scope.SECTOR),
    ("lb.check_port_forwards", ("port forward",), P, Scope.SECTOR),
    ("dns.check_dns_spoofing", ("dns spoofing",), P, Scope.SECTOR),
    ("routing.check_redirects", ("icmp redirects",), P, Scope.SECTOR),
    ("appliance.check_gateway_services", ("gateway services",), P, Scope.SECTOR),
    ("appliance.check_mss", ("mss clamp",), P, Scope.SECTOR),
    ("appliance.check_foreign_source", ("anti-spoofing",), P, Scope.SECTOR),
    ("appliance.check_directed_broadcasts", ("directed broadcast",), P, Scope.SECTOR),
    ("leases.check_reserved", ("dhcp reserved",), P, Scope.SECTOR),
    ("leases.check_pool", ("dhcp pool",), P, Scope.SECTOR),
    ("leases.check_options", ("dhcp options",), P, Scope.SECTOR),
    ("leases.check_names", ("dhcp names",), P, Scope.SECTOR),
    ("leases.check_sectors", ("dhcp sectors",), P, Scope.SECTOR),
    ("guard.check_rogue_dhcp", ("rogue dhcp",), P, Scope.SECTOR),
    ("guard.check_dhcp_identity", ("dhcp identity",), P, Scope.SECTOR),
    ("guard.check_rogue_ipv6", ("rogue ipv6",), P, Scope.SECTOR),
    ("isolation.check_invalid", ("invalid pkts",), S, Scope.ALL),
    ("appliance.check_ingress", ("ingress",), S, Scope.SECTOR),
    ("appliance.check_lb_routing", ("lb routing",), S, Scope.SECTOR),
    ("appliance.check_conntrack_bound", ("conntrack bound",), S, Scope.SECTOR),
    ("leases.lifecycle", ("dhcp guard", "dhcp release", "dhcp restart"), L, Scope.SECTOR),
    ("failover.check_failover", ("failover",), F, Scope.FIRST),
]

#: The rows of a full run on Sectors a, b (overlapping) and c: "group: where where ...".
ALL_ROWS = """
egress SNAT: a b c
overlap: a+b
isolation: a b c
egress policy: a b c
subnet routing: a b c
dns forward: a
dns reverse: a
dns nxdomain: a
dns forwarding: a
dns forward: b
dns reverse: b
dns nxdomain: b
dns forwarding: b
dns forward: c
dns reverse: c
dns nxdomain: c
dns forwarding: c
lb ingress: a
lb client address: a
lb ingress: b
lb client address: b
lb ingress: c
lb client address: c
port forward: a b c
dns spoofing: a b c
icmp redirects: a b c
gateway services: a b c
mss clamp: a b c
anti-spoofing: a b c
directed broadcast: a b c
dhcp reserved: a b c
dhcp pool: a b c
dhcp options: a b c
dhcp names: a b c
dhcp sectors: a b c
rogue dhcp: a b c
dhcp identity: a b c
rogue ipv6: a b c
invalid pkts: all:a,b,c
ingress: a b c
lb routing: a b c
conntrack bound: a b c
dhcp guard: a
dhcp release: a
dhcp restart: a
dhcp guard: b
dhcp release: b
dhcp restart: b
dhcp guard: c
dhcp release: c
dhcp restart: c
failover: a
"""


def test_the_catalogue_is_todays_in_table_order() -> None:
    got = [(s.name, s.groups, s.phase, s.scope) for s in registry.in_table_order(CATALOGUE)]
    assert got == EXPECTED_CATALOGUE


def test_every_group_is_registered_once_with_a_known_phase_and_scope() -> None:
    assert len(GROUPS) == len(set(GROUPS)) == 34
    assert len({spec.run for spec in CATALOGUE}) == len(CATALOGUE)
    for spec in CATALOGUE:
        assert isinstance(spec.phase, Phase) and isinstance(spec.scope, Scope), spec.name
        assert all(registry.spec_of(group) is spec for group in spec.groups)
    listed = tuple(group for _, groups, _, _ in EXPECTED_CATALOGUE for group in groups)
    assert listed == GROUPS


def test_a_spec_declares_pairs_with_the_pair_scope_only() -> None:
    def check(*_: object) -> list[CheckResult]:
        return []

    with pytest.raises(ValueError, match=r"pairs go with Scope\.PAIR"):
        CheckSpec(check, ("x",), scope=Scope.PAIR)
    with pytest.raises(ValueError, match="needs a group"):
        CheckSpec(check, ())


# --- the scheduler, every check a stub ---------------------------------------------------


def _sector(name: str, *cidrs: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, plan=SimpleNamespace(subnets=[_subnet(c) for c in cidrs]))


def _subnet(cidr: str) -> SimpleNamespace:
    return SimpleNamespace(cidr=IPNetwork(cidr))


def _where(args: tuple[Any, ...]) -> str:
    """Where a stub ran: a Sector, a pair "a+b", or all of them "all:a,b"."""
    if len(args) > 1:
        return "+".join(sector.name for sector in args)
    if isinstance(args[0], tuple):
        return "all:" + ",".join(sector.name for sector in args[0])
    return args[0].name


def _stub(groups: tuple[str, ...]) -> Any:
    def run(_twin: object, *args: Any) -> list[CheckResult]:
        return [CheckResult(group, _where(args), "", "", "", True) for group in groups]

    return run


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A twin of Sectors a and b (sharing 172.16.0.0/25) and c, every check a stub."""
    stubs = tuple(replace(spec, run=_stub(spec.groups)) for spec in CATALOGUE)
    monkeypatch.setattr(registry, "CATALOGUE", stubs)
    sectors = (
        _sector("a", "172.16.0.0/24"),
        _sector("b", "172.16.0.0/25"),
        _sector("c", "10.1.0.0/24"),
    )
    return SimpleNamespace(
        topology=SimpleNamespace(sectors=sectors), state=SimpleNamespace(kind="plan")
    )


def _runs(rows: list[CheckResult]) -> str:
    """Rows as "group: where where" lines, consecutive rows of a group on one line."""
    lines = [
        f"{group}: {' '.join(row.source for row in run)}"
        for group, run in itertools.groupby(rows, key=lambda row: row.check)
    ]
    return "\n" + "\n".join(lines) + "\n"


def test_a_full_run_has_todays_rows_in_todays_order(stubbed: SimpleNamespace) -> None:
    notes: list[str] = []
    assert _runs(scheduler.run_checks(stubbed, progress=notes.append)) == ALL_ROWS
    assert notes == [
        "running 64 check groups (8 at a time)...",
        "sending invalid packets (SYN+FIN)...",
        "releasing, renaming and renewing DHCP leases, restarting each Sector DNS...",
        "stopping and restarting the a gateway...",
    ]


def test_skipping_leaves_out_the_lease_changes_and_the_failover(stubbed: SimpleNamespace) -> None:
    rows = scheduler.run_checks(stubbed, skip_failover=True, skip_dhcp_changes=True)
    left_out = {"dhcp guard", "dhcp release", "dhcp restart", "failover"}
    expected = [line for line in ALL_ROWS.splitlines() if line.split(":")[0] not in left_out]
    assert _runs(rows) == "\n".join(expected) + "\n"


def test_chosen_groups_and_sectors(stubbed: SimpleNamespace) -> None:
    chosen = ["dns reverse", "dhcp release", "overlap", "ingress", "failover", "invalid pkts"]
    rows = scheduler.run_checks(stubbed, sectors=["b"], checks=chosen)
    # every row of a chosen check (dns), only the chosen step of the lease changes; the
    # overlap now runs when chosen without egress SNAT too (before, it ran only beside it)
    assert _runs(rows) == (
        "\noverlap: a+b\ndns forward: b\ndns reverse: b\ndns nxdomain: b\ndns forwarding: b\n"
        "invalid pkts: all:b\ningress: b\ndhcp release: b\nfailover: b\n"
    )
    rows = scheduler.run_checks(stubbed, sectors=["c"], checks=["overlap", "egress SNAT"])
    assert _runs(rows) == "\negress SNAT: c\n"  # c overlaps no Sector


def test_a_check_that_cannot_run_is_a_failed_row_of_its_first_chosen_group(
    stubbed: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> list[CheckResult]:
        raise TwinError("olt-s.b.dns is not there")

    lifecycle = registry.spec_of("dhcp release")
    specs = [replace(s, run=broken) if s is lifecycle else s for s in registry.CATALOGUE]
    monkeypatch.setattr(registry, "CATALOGUE", tuple(specs))
    rows = scheduler.run_checks(stubbed, sectors=["b"], checks=["dhcp restart", "dhcp release"])
    assert [(r.check, r.source, r.got, r.ok) for r in rows] == [
        ("dhcp release", "b", "olt-s.b.dns is not there", False)
    ]


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(TwinError, match="no check 'nope'; checks: egress SNAT, overlap, "):
        scheduler.select_groups(["nope"])
