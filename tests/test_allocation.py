"""Allocation properties: no collisions, stability, exhaustion, a /8 Backplane."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from netaddr import IPAddress, IPNetwork

from orbitlab import allocation
from orbitlab.allocation import (
    SECTOR_TAG_MAX,
    SECTOR_TAG_MIN,
    allocate_tags,
    appliance_backplane_addresses,
    max_sector_tag,
    place,
)
from orbitlab.errors import AllocationError

names = st.lists(
    st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=1, max_size=30, unique=True
)
cluster_tags = st.sets(st.integers(min_value=SECTOR_TAG_MIN, max_value=SECTOR_TAG_MAX), max_size=60)


def test_examples_from_the_spec():
    assert str(allocation.backplane_gateway(IPNetwork("172.16.0.0/16"))) == "172.16.0.1"
    assert str(allocation.backplane_gateway(IPNetwork("10.200.0.0/16"))) == "10.200.0.1"
    assert allocate_tags([("a", None), ("b", None)], {1001, 1003}, {}) == {"a": 1002, "b": 1004}
    gateway, lb = appliance_backplane_addresses(IPNetwork("10.200.0.0/16"), 1001)
    assert (str(gateway), str(lb)) == ("10.200.0.10", "10.200.0.11")
    assert allocation.zone_id(1001) == "olvz1001"
    assert allocation.vnet_id(9999) == "olvn9999"
    assert allocation.vmid(1001, "gateway") == 10011


def test_vrf_and_vnet_tags_both_count_as_in_use():
    # 1001 is a VNet tag, 1002 an EVPN zone's VRF tag: both are taken.
    assert allocate_tags([("a", None)], {1001, 1002}, {}) == {"a": 1003}


@given(names, cluster_tags)
def test_no_collisions_and_lowest_free(sector_names, in_use):
    tags = allocate_tags([(n, None) for n in sector_names], in_use, {})
    assigned = [tags[n] for n in sector_names]
    assert len(set(assigned)) == len(assigned)
    assert not set(assigned) & in_use
    assert all(SECTOR_TAG_MIN <= tag <= SECTOR_TAG_MAX for tag in assigned)
    taken = set(in_use)
    for tag in assigned:  # each is the lowest free one at its turn
        assert tag == min(t for t in range(SECTOR_TAG_MIN, SECTOR_TAG_MAX + 1) if t not in taken)
        taken.add(tag)


@given(names, cluster_tags, st.data())
def test_explicit_free_tags_are_honoured(sector_names, in_use, data):
    free = sorted(set(range(SECTOR_TAG_MIN, SECTOR_TAG_MAX + 1)) - in_use)
    chosen = data.draw(st.lists(st.sampled_from(free), unique=True, max_size=len(sector_names)))
    requests = [(n, chosen[i] if i < len(chosen) else None) for i, n in enumerate(sector_names)]
    tags = allocate_tags(requests, in_use, {})
    for name, explicit in requests:
        if explicit is not None:
            assert tags[name] == explicit
    assert len(set(tags.values())) == len(tags)


@given(names, names, cluster_tags, st.data())
def test_existing_sectors_keep_their_tags_when_others_come_and_go(first, added, in_use, data):
    before = allocate_tags([(n, None) for n in first], in_use, {})
    kept = data.draw(st.lists(st.sampled_from(first), unique=True))
    newcomers = [n for n in added if n not in first]
    # On the next run the cluster holds the kept Sectors' VNets (and the removed ones are gone).
    existing = {name: before[name] for name in kept}
    now_in_use = in_use | set(existing.values())
    order = data.draw(st.permutations(kept + newcomers))
    after = allocate_tags([(n, None) for n in order], now_in_use, existing)
    for name in kept:
        assert after[name] == before[name]
    assert len(set(after.values())) == len(after)
    assert not {after[n] for n in newcomers} & now_in_use


def test_exhaustion_is_a_clear_error():
    with pytest.raises(AllocationError, match=r"no free VNet tag left for Sector 'x'"):
        allocate_tags([("x", None)], range(SECTOR_TAG_MIN, SECTOR_TAG_MAX + 1), {})


def test_exhaustion_by_own_sectors():
    requests = [(f"s{i}", None) for i in range(SECTOR_TAG_MAX - SECTOR_TAG_MIN + 2)]
    with pytest.raises(AllocationError, match=r"all of 1001-9999 are in use"):
        allocate_tags(requests, set(), {})


def test_explicit_tag_in_use_is_refused():
    with pytest.raises(AllocationError, match=r"tag 1003 is already in use on the cluster"):
        allocate_tags([("x", 1003)], {1003}, {})


def test_slash8_backplane_gives_every_tag_distinct_addresses():
    cidr = IPNetwork("10.0.0.0/8")
    seen: set[IPAddress] = set()
    gateway = allocation.backplane_gateway(cidr)
    for tag in range(SECTOR_TAG_MIN, SECTOR_TAG_MAX + 1):
        pair = appliance_backplane_addresses(cidr, tag)
        for address in pair:
            assert address in cidr
            assert address not in (cidr.network, cidr.broadcast, gateway)
        seen.update(pair)
    assert len(seen) == 2 * (SECTOR_TAG_MAX - SECTOR_TAG_MIN + 1)


@given(
    st.integers(min_value=8, max_value=27),
    st.integers(min_value=SECTOR_TAG_MIN, max_value=SECTOR_TAG_MAX),
)
@settings(max_examples=300)
def test_addresses_fit_or_fail_clearly(prefix, tag):
    cidr = IPNetwork(f"10.0.0.0/{prefix}")
    if tag <= max_sector_tag(cidr):
        gateway, lb = appliance_backplane_addresses(cidr, tag)
        assert int(gateway) >= cidr.first + 10
        assert int(lb) == int(gateway) + 1
        assert int(lb) < cidr.last
    else:
        with pytest.raises(AllocationError, match="use a larger Backplane"):
            appliance_backplane_addresses(cidr, tag)


def test_a_slash17_holds_every_tag():
    assert max_sector_tag(IPNetwork("10.200.0.0/17")) == SECTOR_TAG_MAX
    assert max_sector_tag(IPNetwork("10.200.0.0/18")) < SECTOR_TAG_MAX


@given(
    names,
    st.lists(st.from_regex(r"pve[0-9]{1,2}", fullmatch=True), min_size=1, max_size=6, unique=True),
)
def test_placement_moves_only_to_a_new_node(sector_names, nodes):
    before = {name: place(name, nodes) for name in sector_names}
    assert all(node in nodes for node in before.values())
    after = {name: place(name, [*nodes, "newnode"]) for name in sector_names}
    for name in sector_names:
        assert after[name] in (before[name], "newnode")
