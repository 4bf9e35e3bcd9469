"""Routing (SPEC §8): longest prefix, account first, sender limits, priority (lower
first), cost (lower first), weights; `lookup` is the first candidate."""

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.core.errors import GatewayError
from smsgate.core.models import Route
from smsgate.core.routing import RoutingTable, order_routes


def table(seed: int = 1):
    return RoutingTable([
        Route("", "default", 10, id=1),
        Route("961", "lebanon", 20, id=2),
        Route("9613", "alfa", 30, id=3),
        Route("9613", "alfa-backup", 31, priority=1, id=4),
        Route("44", "uk-vip", 5, account_id=7, id=5),
    ], random.Random(seed))


def test_longest_prefix_wins():
    assert table().lookup(1, "9613123456").connector == "alfa"
    assert table().lookup(1, "9617123456").connector == "lebanon"
    assert table().lookup(1, "3312345678").connector == "default"


def test_lower_priority_first_and_failover_stays_in_the_longest_prefix():
    assert table().lookup(1, "96131").price == 30
    assert [r.connector for r in table().candidates(1, "96131")] == ["alfa", "alfa-backup"]
    assert [r.connector for r in table().candidates(1, "9617")] == ["lebanon"]


def test_account_routes_come_before_global_ones():
    assert table().lookup(7, "447700900000").connector == "uk-vip"
    assert table().lookup(7, "9613123456").connector == "alfa"  # no own match: global
    assert table().lookup(8, "447700900000").connector == "default"
    # an account's own catch-all beats a longer global prefix, and no global route is a
    # failover candidate for it
    own = RoutingTable([Route("", "own", 1, account_id=7), Route("44", "global", 2)])
    assert [r.connector for r in own.candidates(7, "447700")] == ["own"]


def test_no_route():
    with pytest.raises(GatewayError) as info:
        RoutingTable([Route("961", "x", 1)]).lookup(1, "4412345678")
    assert info.value.error.http_code == "HTTP23"
    assert RoutingTable([]).candidates(1, "44") == []
    assert RoutingTable([Route("961", "x", 1)]).price_for(1, "44") is None


def test_lower_cost_first_among_equal_priorities():
    routes = RoutingTable([Route("44", "dear", 50, cost=30), Route("44", "cheap", 50, cost=10),
                           Route("44", "backup", 50, priority=5, cost=1)])
    assert [r.connector for r in routes.candidates(1, "4477")] == ["cheap", "dear", "backup"]


def test_sender_limits():
    routes = RoutingTable([Route("44", "bank-line", 9, senders=("Bank", "12345")),
                           Route("44", "open", 5, priority=1),
                           Route("", "catch-all", 1)])
    assert [r.connector for r in routes.candidates(1, "4477", "Bank")] == ["bank-line", "open"]
    assert [r.connector for r in routes.candidates(1, "4477", "Shop")] == ["open"]
    assert routes.lookup(1, "4477", "12345").connector == "bank-line"
    # a prefix whose every route excludes the sender falls back to a shorter prefix
    only = RoutingTable([Route("44", "bank-line", 9, senders=("Bank",)), Route("", "all", 1)])
    assert only.lookup(1, "4477", "Shop").connector == "all"
    # ... and an account whose own routes all exclude it to the global routes
    own = RoutingTable([Route("44", "own", 9, account_id=7, senders=("Bank",)),
                        Route("44", "global", 1)])
    assert own.lookup(7, "4477", "Shop").connector == "global"
    # no sender (coverage, price lists): limits do not apply
    assert only.lookup(1, "4477").connector == "bank-line"


def test_prefer_puts_the_given_connector_first():
    routes = RoutingTable([Route("44", "a", 1, id=1), Route("44", "b", 2, priority=1, id=2),
                           Route("44", "c", 3, priority=2, id=3)])
    assert [r.connector for r in routes.candidates(1, "44", prefer="c")] == ["c", "a", "b"]
    assert [r.connector for r in routes.candidates(1, "44", prefer="a")] == ["a", "b", "c"]
    assert [r.connector for r in routes.candidates(1, "44", prefer="zz")] == ["a", "b", "c"]


def test_weights_share_the_load():
    """Three routes equal in priority and cost, weights 1:3:6: each comes first about
    that often (a fixed seed, generous bounds), and the others still follow."""
    routes = RoutingTable([Route("44", "one", 1, weight=1), Route("44", "three", 1, weight=3),
                           Route("44", "six", 1, weight=6),
                           Route("44", "last", 1, priority=9)], random.Random(20240501))
    draws = 20_000
    firsts = Counter(routes.lookup(1, "4477").connector for _ in range(draws))
    assert set(firsts) == {"one", "three", "six"}
    for name, share in (("one", 0.1), ("three", 0.3), ("six", 0.6)):
        assert abs(firsts[name] / draws - share) < 0.03, firsts
    orders = [[r.connector for r in routes.candidates(1, "4477")] for _ in range(draws)]
    first = Counter(o[0] for o in orders)
    assert abs(first["six"] / draws - 0.6) < 0.03, first
    assert all(sorted(o[:3]) == ["one", "six", "three"] and o[3] == "last" for o in orders)
    # second place given "six" first: "three" with probability 3 / (1 + 3)
    seconds = Counter(o[1] for o in orders if o[0] == "six")
    assert abs(seconds["three"] / sum(seconds.values()) - 0.75) < 0.04, seconds


def test_same_seed_same_order():
    routes = [Route("44", f"c{i}", 1, weight=i + 1, id=i) for i in range(6)]
    first = RoutingTable(routes, random.Random(5))
    second = RoutingTable(routes, random.Random(5))
    for _ in range(20):
        assert first.candidates(1, "44") == second.candidates(1, "44")


# -- properties ---------------------------------------------------------------------------

_senders = st.sampled_from(["Acme", "Bank", "12345"])
_routes = st.lists(st.builds(
    Route,
    prefix=st.text("0123", max_size=4),
    connector=st.sampled_from(["a", "b", "c", "d"]),
    price=st.integers(0, 100),
    account_id=st.sampled_from([None, None, 7, 8]),
    priority=st.integers(-2, 2),
    cost=st.integers(0, 3),
    weight=st.integers(1, 5),
    senders=st.lists(_senders, max_size=2, unique=True).map(tuple),
), max_size=25).map(lambda rs: [Route(**{**_fields(r), "id": n}) for n, r in enumerate(rs, 1)])


def _fields(route: Route) -> dict:
    return {name: getattr(route, name) for name in Route.__dataclass_fields__}


def _allows(route: Route, sender: str | None) -> bool:
    return sender is None or not route.senders or sender in route.senders


@settings(max_examples=300, deadline=None)
@given(routes=_routes, account=st.sampled_from([7, 8, 9]),
       destination=st.text("0123", min_size=0, max_size=6),
       sender=st.one_of(st.none(), _senders), seed=st.integers(0, 2**32))
def test_candidates_follow_the_rules(routes, account, destination, sender, seed):
    found = RoutingTable(routes, random.Random(seed)).candidates(account, destination, sender)
    usable = [r for r in routes if destination.startswith(r.prefix) and _allows(r, sender)]
    own = [r for r in usable if r.account_id == account]
    pool = own or [r for r in usable if r.account_id is None]
    if not pool:
        assert found == []
        return
    longest = max(len(r.prefix) for r in pool)
    expected = [r for r in pool if len(r.prefix) == longest]
    # exactly the longest prefix's routes of the account (else global), each once
    assert sorted(r.id for r in found) == sorted(r.id for r in expected)
    # priority, then cost, never decrease along the failover order
    ranks = [(r.priority, r.cost) for r in found]
    assert ranks == sorted(ranks)


@settings(max_examples=200, deadline=None)
@given(routes=_routes, seed=st.integers(0, 2**32))
def test_order_is_a_permutation_and_reproducible(routes, seed):
    ordered = order_routes(routes, random.Random(seed))
    assert sorted(r.id for r in ordered) == sorted(r.id for r in routes)
    assert ordered == order_routes(routes, random.Random(seed))
    ranks = [(r.priority, r.cost) for r in ordered]
    assert ranks == sorted(ranks)


@settings(max_examples=200, deadline=None)
@given(routes=_routes, account=st.sampled_from([7, 8]), destination=st.text("0123", max_size=6),
       sender=_senders, seed=st.integers(0, 2**32))
def test_lookup_is_a_first_candidate(routes, account, destination, sender, seed):
    """lookup (the submit pipeline's price and connector) picks from the first tier."""
    routing = RoutingTable(routes, random.Random(seed))
    candidates = routing.candidates(account, destination, sender)
    if not candidates:
        with pytest.raises(GatewayError):
            routing.lookup(account, destination, sender)
        return
    first = routing.lookup(account, destination, sender)
    tier = [r for r in candidates if (r.priority, r.cost) == (first.priority, first.cost)]
    assert first in tier
    assert (first.priority, first.cost) == (candidates[0].priority, candidates[0].cost)


@settings(max_examples=200, deadline=None)
@given(routes=_routes, lookups=st.lists(st.tuples(
    st.sampled_from([7, 8, 9]), st.text("0123", max_size=7), st.one_of(st.none(), _senders)),
    max_size=30))
def test_remembered_matches_are_what_a_fresh_table_finds(routes, lookups):
    """matching() remembers by the destination's first max_len digits: one table asked
    many times answers as a new table asked once."""
    routing = RoutingTable(routes)
    for account, destination, sender in lookups:
        fresh = RoutingTable(routes).matching(account, destination, sender)
        assert routing.matching(account, destination, sender) == fresh
