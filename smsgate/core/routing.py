"""Routing by longest destination prefix.

An account's own routes are searched first, global ones only when none of the account's
matches: an operator who gives a customer a catch-all route means all of its traffic.
Among routes of the same prefix, the highest priority wins.
"""

from collections.abc import Iterable

from .errors import Err, GatewayError
from .models import Route


class RoutingTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        # (account id or None) -> prefix -> best route for that exact prefix
        self._tables: dict[int | None, dict[str, Route]] = {}
        for route in routes:
            table = self._tables.setdefault(route.account_id, {})
            current = table.get(route.prefix)
            if current is None or route.priority > current.priority:
                table[route.prefix] = route
        self._max_len = max((len(p) for t in self._tables.values() for p in t), default=0)

    def lookup(self, account_id: int, destination: str) -> Route:
        for table in (self._tables.get(account_id), self._tables.get(None)):
            if table is None:
                continue
            for length in range(min(len(destination), self._max_len), -1, -1):
                route = table.get(destination[:length])
                if route is not None:
                    return route
        raise GatewayError(Err.NO_ROUTE, f"no route for {destination}")

    def price_for(self, account_id: int, destination: str) -> int | None:
        try:
            return self.lookup(account_id, destination).price
        except GatewayError:
            return None
