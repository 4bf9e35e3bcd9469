"""Routing (SPEC §8): which routes may carry a message to a destination, in which order.

1. A route limited to sender ids (`route add --sender`) exists only for those senders.
2. The account's own routes are searched first, the global ones only when none of the
   account's matches: an operator who gives a customer a catch-all route means all of
   its traffic.
3. Of the routes left, those of the longest prefix of the destination are the candidates;
   shorter prefixes are never fallen back to.
4. The candidates are ordered by priority (LOWER first), then cost (lower first:
   least-cost routing). Routes equal in both form a tier that shares the load by weight:
   the tier comes in a weighted random order, in which a route of weight w is first with
   probability w / (the tier's total weight).

The order is the failover order: a dispatcher skips a route whose connector is disabled,
not bound or failing temporarily, for the next. The customer pays the price of the first
route of the order whichever route carries the message, so failover never changes it.
Until 0004_upstreams a higher priority won; that migration negated stored priorities.
"""

import random
from collections.abc import Iterable, Sequence
from itertools import groupby

from .errors import Err, GatewayError
from .models import Route


def _rank(route: Route) -> tuple[int, int]:
    return route.priority, route.cost


def _weighted_order(tier: Sequence[Route], rng: random.Random) -> list[Route]:
    """A weighted random order (Efraimidis-Spirakis: sort by u ** (1/w), largest
    first): each position takes route i with probability w_i / the weight of the routes
    not yet placed. A weight below 1 (not stored by the CLI) sorts last."""
    return sorted(tier, key=lambda r: rng.random() ** (1.0 / r.weight) if r.weight > 0
                  else -1.0, reverse=True)


def order_routes(routes: Iterable[Route], rng: random.Random) -> list[Route]:
    """Routes sorted by (priority, cost), each tier of equal ones in weighted random
    order. Pure: the same `rng` state gives the same order."""
    ordered: list[Route] = []
    for _rank_key, tier in groupby(sorted(routes, key=_rank), key=_rank):
        same = list(tier)
        ordered.extend(_weighted_order(same, rng) if len(same) > 1 else same)
    return ordered


def _for_sender(routes: tuple[Route, ...], sender: str) -> tuple[Route, ...]:
    if not any(r.senders for r in routes):
        return routes
    return tuple(r for r in routes if not r.senders or sender in r.senders)


MATCH_MEMO_SIZE = 100_000  # remembered lookups (keys of at most max_len digits)


class RoutingTable:
    """The routes in force, indexed for lookup; rebuilt whenever the routes change.

    `rng` draws the weighted choices (give a seeded one for reproducible tests)."""

    def __init__(self, routes: Iterable[Route], rng: random.Random | None = None) -> None:
        grouped: dict[int | None, dict[str, list[Route]]] = {}
        for route in routes:
            grouped.setdefault(route.account_id, {}).setdefault(route.prefix, []).append(route)
        # (account id or None) -> prefix -> its routes sorted by (priority, cost, id)
        self._tables: dict[int | None, dict[str, tuple[Route, ...]]] = {
            account: {prefix: tuple(sorted(same, key=lambda r: (*_rank(r), r.id)))
                      for prefix, same in table.items()}
            for account, table in grouped.items()}
        self._max_len = max((len(p) for t in self._tables.values() for p in t), default=0)
        self._random = rng or random.Random()
        self._matched: dict[tuple, tuple[Route, ...]] = {}  # see matching()

    def matching(self, account_id: int | None, destination: str,
                 sender: str | None = None) -> tuple[Route, ...]:
        """The candidates (rules 1-3), sorted by (priority, cost) but with tiers not yet
        shuffled; empty when no route matches. `sender` None ignores sender limits
        (coverage and price lists, which have no sender).

        Remembered by the destination's first `max_len` digits, all the longest-prefix
        walk reads (a 10,000-number POST to one country walks once); the table is
        rebuilt when routes change, so nothing remembered outlives them."""
        key = (account_id, destination[:self._max_len], sender)
        found = self._matched.get(key)
        if found is None:
            if len(self._matched) >= MATCH_MEMO_SIZE:
                self._matched.clear()
            found = self._matched[key] = self._match(account_id, destination, sender)
        return found

    def _match(self, account_id: int | None, destination: str,
               sender: str | None) -> tuple[Route, ...]:
        for table in (self._tables.get(account_id), self._tables.get(None)):
            if table is None:
                continue
            for length in range(min(len(destination), self._max_len), -1, -1):
                routes = table.get(destination[:length])
                if routes is not None and sender is not None:
                    routes = _for_sender(routes, sender)
                if routes:
                    return routes
        return ()

    def candidates(self, account_id: int | None, destination: str,
                   sender: str | None = None, prefer: str | None = None) -> list[Route]:
        """The failover order for a message; the customer's price is the first's.

        `prefer` puts the route of that connector first, if it is a candidate: a message
        priced and given a connector at submit keeps them when the dispatcher asks for
        its failover order later (a weighted tier would otherwise draw anew)."""
        ordered = order_routes(self.matching(account_id, destination, sender), self._random)
        if prefer is not None:
            for n, route in enumerate(ordered):
                if route.connector == prefer:
                    if n:
                        ordered.insert(0, ordered.pop(n))
                    break
        return ordered

    def lookup(self, account_id: int | None, destination: str,
               sender: str | None = None) -> Route:
        """The first candidate; GatewayError NO_ROUTE when there is none. The common
        case, one route or a first route alone in its tier, draws no random number."""
        routes = self.matching(account_id, destination, sender)
        if not routes:
            raise GatewayError(Err.NO_ROUTE, f"no route for {destination}")
        first = routes[0]
        if len(routes) == 1 or _rank(routes[1]) != _rank(first):
            return first
        tier = [r for r in routes if _rank(r) == _rank(first)]
        return _weighted_order(tier, self._random)[0]

    def price_for(self, account_id: int, destination: str) -> int | None:
        try:
            return self.lookup(account_id, destination).price
        except GatewayError:
            return None
