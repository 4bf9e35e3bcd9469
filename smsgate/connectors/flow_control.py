"""Flow control any upstream connector needs, whatever its protocol: a pacer that keeps
it to its messages a second, a meter of what it actually sent (for its live state), and
a circuit breaker that makes a failing upstream unavailable for a while (so that the
dispatcher fails over). Plain state machines with no I/O and no timers: they take `now`
(any monotonic clock, seconds) from the caller, as the SMPP session does, so that the
connector decides when to wake and tests need no clock.
"""

import math
from collections import deque


class Pacer:
    """A shared limit of `rate` sends a second (GCRA, the virtual-scheduling form of a
    token bucket): the next send is due at `_due`, each one pushes it by 1/rate.

    A small burst is allowed (`burst` sends at once, 1/20 of a second's worth) so that
    a connector sending thousands a second fills its windows in a few batches rather
    than waking once per message; over any second it sends at most rate + burst.
    rate 0 means no limit.
    """

    __slots__ = ("_due", "_interval", "_tolerance", "burst", "rate")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.burst = max(1, rate // 20)
        self._interval = 1.0 / rate if rate else 0.0
        self._tolerance = (self.burst - 1) * self._interval
        self._due = -math.inf

    def available(self, now: float) -> int:
        """How many sends the limit allows at `now` (a large number when unlimited)."""
        if not self.rate:
            return 1 << 30
        start = max(self._due, now)
        slack = now + self._tolerance - start
        if slack < 0:
            return 0
        return min(self.burst, int(slack / self._interval + 1e-9) + 1)

    def take(self, count: int, now: float) -> None:
        """`count` sends went out at `now`."""
        if self.rate and count:
            self._due = max(self._due, now) + count * self._interval

    def next_at(self, now: float) -> float:
        """When the next send will be allowed (now, if it is)."""
        if not self.rate:
            return now
        return max(now, self._due - self._tolerance)


class RateMeter:
    """Events counted per whole second over the last `seconds` seconds: `rate(now)` is
    their mean per second, for `state()` (what an operator watches, not a limit)."""

    __slots__ = ("_buckets", "_seconds")

    def __init__(self, seconds: int = 5) -> None:
        self._seconds = seconds
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first

    def add(self, count: int, now: float) -> None:
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += count
            return
        buckets.append([second, count])
        while buckets[0][0] <= second - self._seconds:
            buckets.popleft()

    def rate(self, now: float) -> float:
        """Mean per second over the last full `seconds` (the current one excluded)."""
        second = int(now)
        total = sum(count for at, count in self._buckets
                    if second - self._seconds <= at < second)
        return total / self._seconds


class Circuit:
    """Opens after `threshold` temporary failures in a row, for `cooldown` seconds;
    then half-open (one probe at a time) until an answer closes it or a failure opens
    it again."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures_in_row = 0
        self.open_until = 0.0
        self.opened = 0  # times it opened, for state()

    def is_open(self, now: float) -> bool:
        return now < self.open_until

    def probing(self, now: float) -> bool:
        return self.failures_in_row >= self.threshold and not self.is_open(now)

    def answered(self) -> None:
        self.failures_in_row = 0

    def failed(self, now: float) -> bool:
        """Count a temporary failure; True when it opens the circuit now."""
        self.failures_in_row += 1
        if self.failures_in_row < self.threshold or self.is_open(now):
            return False
        self.open_until = now + self.cooldown
        self.opened += 1
        return True

    def describe(self, now: float) -> str:
        if self.is_open(now):
            return "open"
        return "half-open" if self.probing(now) else "closed"
