"""Throughput limits: per account (counted in SMS parts) and, on the HTTP port, for
credential-less status queries per source IP. A GCRA per key.

Each account has a "theoretical arrival time" (`tat`): the moment by which everything
it was allowed so far has drained at `tps` parts a second. A part costs 1/tps seconds of
it; one second of burst (`BURST`, a bucket of `tps` parts) is tolerated. This is the
token bucket of the seed, kept as one float per account instead of tokens and a time.

Two ways to spend it:
- `allow` (SMPP submit_sm, one message at a time): yes if it fits in the burst, else
  no, and the customer gets ESME_RTHROTTLED and retries.
- `pace` (an HTTP request with many numbers): the request is taken whole and its
  messages are spread out in time, each with the delay that keeps the account at its
  rate (the caller schedules them). An account limited to 100/s that posts 10,000
  numbers gets them all accepted and sent over 100 s, instead of HTTP11 forever (a
  bucket of 100 can never hold 10,000). Only a backlog longer than `max_backlog`
  seconds is refused. A request scheduled for later is paced from its own start and
  does not use the account's current allowance.
"""

import time
from collections.abc import Callable, Hashable

BURST = 1.0  # seconds of traffic an account may send at once
_EPSILON = 1e-9  # float sums of 1/tps must not refuse the last part of a full burst


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 0) -> None:
        self._clock = clock
        self._tat: dict[Hashable, float] = {}  # key -> theoretical arrival time
        # 0: unbounded (accounts are few). Keyed by source IP it must be bounded: past
        # max_keys the oldest key is dropped (it starts with a full burst if it comes back).
        self._max_keys = max_keys

    def allow(self, key: Hashable, tps: float, count: int = 1) -> bool:
        """Take `count` parts if they fit in the key's burst. tps <= 0: unlimited."""
        if tps <= 0:
            return True
        now = self._clock()
        previous = self._tat.get(key)
        tat = (now if previous is None else max(previous, now)) + count / tps
        if tat - now > BURST + _EPSILON:
            return False
        if previous is None and self._max_keys and len(self._tat) >= self._max_keys:
            del self._tat[next(iter(self._tat))]
        self._tat[key] = tat
        return True

    def __len__(self) -> int:
        return len(self._tat)

    def pace(self, account_id: int, tps: int, parts: int, messages: int,
             max_backlog: float, later: bool = False) -> list[float] | None:
        """Delays (seconds from now, or from the request's own start when `later`) for
        `messages` messages of `parts` parts each that keep the account at `tps`; None
        when all may go at once. Raises Backlog when the last one would wait longer than
        `max_backlog` seconds; nothing is taken then."""
        if tps <= 0:
            return None
        now = self._clock()
        start = 0.0 if later else max(self._tat.get(account_id, now), now) - now
        step = parts / tps
        end = start + messages * step
        if end - BURST > max_backlog + _EPSILON:
            raise Backlog(f"{end - BURST:.0f} s of traffic queued at {tps}/s")
        if not later:
            self._tat[account_id] = now + end
        if end <= BURST + _EPSILON:
            return None
        return [max(0.0, start + (n + 1) * step - BURST) for n in range(messages)]


class Backlog(Exception):
    """A paced request would queue more than the allowed backlog."""
