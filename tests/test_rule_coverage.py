"""Every rule of the gateway's, the load balancer's and the Sector guard's rulesets is
proven by a twin check.

For each rule of the rendered rulesets of the three-Sector stack (three gateways, two load
balancers, three Sector guards on each node), a mutation below removes it (or weakens a
chain's policy), the mutated ruleset is loaded into the running appliance (a guard: into
every node), and the named `twin test` check group must then FAIL for that Sector (or the
one it names). A rule that no mutation covers fails the test: a rule without a check that
catches its absence is not proven. Rules are compared by shape (addresses, ports and MACs
abstracted), so one mutation covers the same rule in every Sector.

The coverage table (rule → the check that caught its removal) is printed at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from orbitlab.rendering import guard_ruleset, sector_bundles
from orbitlab.stack import load_plan
from orbitlab_lab.twin import guards
from orbitlab_lab.twin.checks.registry import Phase, Scope, groups
from orbitlab_lab.twin.checks.scheduler import run_checks
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.results import render_table
from orbitlab_lab.twin.runner import context_of
from orbitlab_lab.twin.state import load_state
from tests.test_twin import REPO, THREE, e2e, orbitlab, our_namespaces

RULESET = "/etc/nftables.nft"
#: Per-Sector checks that change routes or sysctls (run alone).
SEQUENTIAL_GROUPS = groups(Phase.SEQUENTIAL, Scope.SECTOR)
STRUCTURE = re.compile(r"^(flush ruleset|define |(add |delete )?table |chain |\}|#|$)")
NAT_CHAIN = re.compile(r"type nat hook")


@dataclass(frozen=True)
class Mutation:
    """Remove (``replace=None``) or rewrite the one line of ``sector``'s ``role`` ruleset
    that contains ``line``; then the check ``group`` must fail for that Sector."""

    sector: str
    role: str
    line: str
    group: str
    replace: str | None = None
    #: The Sector whose check must fail, when it is not the mutated one.
    seen_in: str | None = None

    @property
    def id(self) -> str:
        action = "weaken" if self.replace is not None else "remove"
        return f"{self.sector}/{self.role}: {action} {self.line[:60]}"


GW, LB, GUARD = "gateway", "lb", "guard"
INPUT_DROP = "hook input priority filter; policy drop;"
FORWARD_DROP = "hook forward priority filter; policy drop;"


def weaken(policy: str) -> str:
    return policy.replace("policy drop;", "policy accept;")


MUTATIONS = (
    # NAT
    Mutation("shop", GW, "tcp dport 8022 dnat", "port forward"),
    Mutation("shop", GW, "udp dport 5353 dnat", "port forward"),
    Mutation("shop", GW, "masquerade", "egress SNAT"),
    # the gateway's own input
    Mutation("red", GW, INPUT_DROP, "gateway services", replace=weaken(INPUT_DROP)),
    Mutation("shop", GW, 'iifname "lo" accept', "gateway services"),
    Mutation("red", GW, 'iifname "lo" accept\n\t\tct state established', "gateway services"),
    Mutation(
        "shop",
        GW,
        'whoever it names\n\t\tiifname "eth0" ip saddr != $sector_nets drop',
        "anti-spoofing",
    ),
    Mutation("shop", GW, 'iifname "eth0" ip daddr $sector_gateways icmp', "gateway services"),
    Mutation("blue", GW, 'echo-request accept\n\t\tiifname "eth0" reject', "gateway services"),
    Mutation("blue", GW, 'iifname "eth1" ip daddr $gateway_backplane icmp', "gateway services"),
    # forwarding
    Mutation("red", GW, FORWARD_DROP, "ingress", replace=weaken(FORWARD_DROP)),
    Mutation("red", GW, "tcp option maxseg size set rt mtu", "mss clamp"),
    Mutation("red", GW, "ct state invalid drop", "invalid pkts"),
    Mutation(
        "shop",
        GW,
        'not to the sender\n\t\tiifname "eth0" ip saddr != $sector_nets drop',
        "anti-spoofing",
    ),
    Mutation("red", GW, "$sector_nets drop\n\t\tct state established", "egress SNAT"),
    Mutation("shop", GW, "ct count over", "conntrack bound"),
    Mutation("shop", GW, "ip saddr $sector_nets ip daddr $sector_nets", "subnet routing"),
    Mutation("blue", GW, "ip daddr $backplane reject", "isolation"),
    Mutation("blue", GW, "ip daddr $nodes reject", "isolation"),
    Mutation("shop", GW, "ip daddr $node_broadcasts drop", "directed broadcast"),
    Mutation("blue", GW, "ip daddr $protected reject", "isolation"),
    Mutation("blue", GW, "ether saddr . ip saddr != ", "isolation"),
    Mutation("red", GW, "ip daddr 203.0.113.20/32 reject", "egress policy"),
    Mutation("red", GW, "th dport { 53, 853 } accept", "dns forwarding"),
    Mutation("red", GW, "ip daddr 192.0.2.80 tcp dport 80 accept", "egress policy"),
    Mutation("red", GW, "ip daddr 203.0.113.0/24 accept", "egress policy"),
    Mutation("shop", GW, 'oifname "eth1" ip saddr $sector_nets accept', "egress SNAT"),
    Mutation("shop", GW, "ip daddr 10.20.1.20 tcp dport 22 ct status dnat accept", "port forward"),
    Mutation("shop", GW, "udp dport 5353 ct status dnat accept", "port forward"),
    Mutation("red", GW, 'DNAT-ed on the way in\n\t\tiifname "eth0" reject', "egress policy"),
    # the load balancer
    Mutation("shop", LB, INPUT_DROP, "gateway services", replace=weaken(INPUT_DROP)),
    Mutation("shop", LB, 'iifname "lo" accept', "gateway services"),
    Mutation("red", LB, "ct state established,related accept", "lb ingress"),
    Mutation("red", LB, "tcp dport { 8080 } accept", "lb ingress"),
    Mutation("shop", LB, FORWARD_DROP, "lb routing", replace=weaken(FORWARD_DROP)),
    # the Sector guard on the nodes
    Mutation("red", GUARD, "meta ibrname", "rogue dhcp", seen_in="shop"),
    Mutation("shop", GUARD, "udp sport 67 udp dport 68", "rogue dhcp"),
    Mutation("shop", GUARD, "@th,288,48 0xbc2411200010", "dhcp identity"),
    Mutation("shop", GUARD, "nd-router-advert", "rogue ipv6"),
    Mutation("shop", GUARD, "udp sport 547", "rogue ipv6"),
)


def rulesets() -> Iterator[tuple[str, str, str]]:
    """(sector, role, ruleset text) of every gateway, load balancer and Sector guard."""
    plan = load_plan(str(THREE))
    for sector in plan.sectors:
        for role, bundle in sector_bundles(plan, sector).items():
            if role in (GW, LB):
                yield sector.name, role, bundle.file(RULESET).content
        yield sector.name, GUARD, guard_ruleset(sector)


def key(role: str, rule: str) -> str:
    """What a mutation covers: a rule's shape on an appliance of a role."""
    return f"{role} {shape(rule)}"


def shape(rule: str) -> str:
    """A rule (``chain: rule``) with its addresses, ports and MACs abstracted.

    >>> shape('forward: iifname "eth0" ip daddr 10.20.1.20 tcp dport 22 ct status dnat accept')
    'forward: iifname "eth0" ip daddr A tcp dport N ct status dnat accept'
    """
    text = re.sub(r"([0-9a-f]{2}:){5}[0-9a-f]{2}|0x[0-9a-f]{12}", "M", rule.strip())
    text = re.sub(r'"olvn\d+"', '"VNET"', text)
    text = re.sub(r"\d+\.\d+\.\d+\.\d+(/\d+)?(:\d+)?", "A", text)
    text = re.sub(r"\{ [A, ]+ \}", "A", text)
    return re.sub(r"\b\d+\b", "N", text)


def rules(ruleset: str) -> list[str]:
    """The rules of a ruleset as ``chain: rule``: every line of a chain's body, and the
    policy drop of every filter chain (its "type filter" line); no structure (sets' declarations
    included), no comments."""
    found = []
    chain = ""
    in_set = False
    for line in ruleset.splitlines():
        stripped = line.strip()
        if stripped.startswith("set "):
            in_set = True  # a set's declaration: no rule
        elif in_set:
            in_set = stripped != "}"
        elif stripped.startswith("chain "):
            chain = stripped.split()[1]
        elif stripped.startswith("type "):
            # a NAT chain, or one that accepts what it does not drop, has no policy to weaken
            if not NAT_CHAIN.search(stripped) and "policy accept" not in stripped:
                found.append(f"{chain}: {stripped}")
        elif not STRUCTURE.match(stripped):
            found.append(f"{chain}: {stripped}")
    return found


def mutate(ruleset: str, mutation: Mutation) -> str:
    """The ruleset with the mutation applied; it must hit exactly one place."""
    if ruleset.count(mutation.line) != 1:
        raise AssertionError(f"{mutation.id}: {ruleset.count(mutation.line)} matches, expected 1")
    if mutation.replace is not None:
        return ruleset.replace(mutation.line, mutation.replace)
    # remove the whole line that holds the pattern (or its last line for multi-line context)
    start = ruleset.index(mutation.line) + mutation.line.rfind("\n") + 1
    line_start = ruleset.rfind("\n", 0, start) + 1
    line_end = ruleset.index("\n", start) + 1
    return ruleset[:line_start] + ruleset[line_end:]


def removed_rule(ruleset: str, mutation: Mutation) -> str:
    """The rule a mutation takes away (its shape is what it covers)."""
    before, after = rules(ruleset), rules(mutate(ruleset, mutation))
    gone = [rule for rule in before if before.count(rule) != after.count(rule)]
    assert len(gone) == 1, f"{mutation.id}: changes {gone}"
    return gone[0]


def test_every_rule_shape_has_a_mutation() -> None:
    """Static half of the proof: each rule of each ruleset is taken away by one mutation."""
    texts = {(sector, role): text for sector, role, text in rulesets()}
    covered = {key(m.role, removed_rule(texts[m.sector, m.role], m)) for m in MUTATIONS}
    uncovered = sorted(
        {
            key(role, rule)
            for (_, role), text in texts.items()
            for rule in rules(text)
            if key(role, rule) not in covered
        }
    )
    assert uncovered == [], "rules no mutation takes away:\n" + "\n".join(uncovered)


def test_a_rule_without_a_mutation_is_reported() -> None:
    """The coverage check is not vacuous: a rule nobody mutates shows up."""
    text = next(text for sector, role, text in rulesets() if (sector, role) == ("red", GW))
    extra = text.replace("ct state invalid drop", "ct state invalid drop\n\t\tip ttl 1 drop", 1)
    texts = {(sector, role): text for sector, role, text in rulesets()}
    covered = {key(m.role, removed_rule(texts[m.sector, m.role], m)) for m in MUTATIONS}
    assert {key(GW, rule) for rule in rules(extra)} - covered == {"gateway forward: ip ttl N drop"}


# --- the live half: every mutation makes its check fail --------------------------------------

CAUGHT: dict[str, str] = {}


def load(twin: TwinContext, target: str, ruleset: str) -> None:
    """Load a ruleset into an appliance and, as provisioning does on a reload, flush its
    connection tracking, so every flow is checked against the new rules; a Sector guard
    into every node, as the program installs it."""
    if target.endswith(f"/{GUARD}"):
        for node in twin.topology.nodes:
            done = guards.load(node.ns.name, ruleset)
            assert done.returncode == 0, done.stderr
        return
    ns = twin.topology.find(target).name
    twin.run(ns, ["nft", "-f", "-"], stdin=ruleset)
    twin.run(ns, ["conntrack", "-F"], check=False)


@pytest.fixture(scope="module")
def three_twin() -> Iterator[tuple[TwinContext, dict[tuple[str, str], str]]]:
    if our_namespaces():
        pytest.fail("a twin is already up on this machine; run `orbitlab twin down` first")
    result = orbitlab("twin", "up", str(THREE))
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        state = load_state()
        assert state is not None
        twin = context_of(state)
        yield twin, {(sector, role): text for sector, role, text in rulesets()}
    finally:
        orbitlab("twin", "down")


def try_mutation(
    twin: TwinContext, texts: dict[tuple[str, str], str], mutation: Mutation
) -> str | None:
    """Apply one mutation, run its check group for its Sector, restore; return a report of
    the failure to catch it, or None when the check failed as it must."""
    ruleset = texts[mutation.sector, mutation.role]
    target = f"{mutation.sector}/{mutation.role}"
    load(twin, target, mutate(ruleset, mutation))
    try:
        results = run_checks(
            twin,
            skip_failover=True,
            sectors=[mutation.seen_in or mutation.sector],
            checks=[mutation.group],
        )
    finally:
        load(twin, target, ruleset)
    if any(not row.ok and row.check == mutation.group for row in results):
        CAUGHT[key(mutation.role, removed_rule(ruleset, mutation))] = f"{mutation.group} ({target})"
        return None
    return (
        f"removing `{removed_rule(ruleset, mutation)}` from {target} left "
        f"'{mutation.group}' passing:\n{render_table(results)}"
    )


@pytest.mark.twin
def test_removing_any_rule_fails_its_check(three_twin) -> None:
    """Each Sector's mutations run one after the other, the Sectors side by side (their
    checks touch only their own appliances); those whose checks change routes or sysctls
    run alone at the end."""
    for mark in e2e[1:]:
        if mark.args[0]:
            pytest.skip(mark.kwargs["reason"])
    twin, texts = three_twin
    # checks that change routes or sysctls, and mutations seen in another Sector: alone
    alone = [m for m in MUTATIONS if m.group in SEQUENTIAL_GROUPS or m.seen_in]
    by_sector: dict[str, list[Mutation]] = {}
    for mutation in MUTATIONS:
        if mutation not in alone:
            by_sector.setdefault(mutation.sector, []).append(mutation)

    def run_all(mutations: list[Mutation]) -> list[str]:
        return [r for m in mutations if (r := try_mutation(twin, texts, m)) is not None]

    with ThreadPoolExecutor(max_workers=len(by_sector)) as pool:
        reports = [r for rs in pool.map(run_all, by_sector.values()) for r in rs]
    reports += run_all(alone)
    assert reports == [], "\n\n".join(reports)


@pytest.mark.twin
def test_the_restored_rulesets_pass_every_check_and_the_coverage_table(three_twin) -> None:
    for mark in e2e[1:]:
        if mark.args[0]:
            pytest.skip(mark.kwargs["reason"])
    result = orbitlab("twin", "test", "--skip-failover", "--skip-dhcp-changes")
    assert result.returncode == 0, result.stdout
    _, texts = three_twin
    shapes = {key(role, rule) for (_, role), text in texts.items() for rule in rules(text)}
    missing = sorted(shapes - set(CAUGHT))
    assert missing == [], "rules whose removal no check caught:\n" + "\n".join(missing)
    width = max(len(rule) for rule in CAUGHT)
    table = "\n".join(f"{rule.ljust(width)}  {check}" for rule, check in sorted(CAUGHT.items()))
    Path(REPO / ".pytest_cache" / "rule-coverage.txt").parent.mkdir(exist_ok=True)
    (REPO / ".pytest_cache" / "rule-coverage.txt").write_text(table + "\n")
    print("\n" + table)
