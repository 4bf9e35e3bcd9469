"""Flow control an upstream connector needs whatever its protocol: pacing to a TPS
limit, a circuit breaker that makes a failing upstream unavailable for a while (so
that the dispatcher fails over), and the sent-per-second figure of its live state.
Plain state machines that take `now` from the caller: tested without a clock."""

import math
from collections import deque

RATE_WINDOW = 5  # seconds over which SentRate averages


class RequestPacer:
    """A token bucket: at most `rate` request starts a second, in bursts of at most
    50 ms worth (at least one), so that starts are spread over the second."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.burst = max(1, math.ceil(rate / 20))
        self._tokens = float(self.burst)
        self._at = -math.inf

    def available(self, now: float) -> float:
        if not self.rate:
            return math.inf
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, now: float) -> bool:
        """Use one token if there is one."""
        if self.available(now) < 1:
            return False
        self._tokens -= 1
        return True

    def wait(self, now: float) -> float:
        """Seconds until the next token."""
        return max(0.0, (1 - self.available(now)) / self.rate) if self.rate else 0.0


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


class SentRate:
    """Messages sent per second, averaged over the last RATE_WINDOW whole seconds."""

    def __init__(self) -> None:
        self._seconds: deque[list[int]] = deque()  # [second, count], oldest first

    def add(self, now: float) -> None:
        second = int(now)
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1][1] += 1
        else:
            self._seconds.append([second, 1])
        while self._seconds[0][0] < second - RATE_WINDOW:
            self._seconds.popleft()

    def per_second(self, now: float) -> float:
        second = int(now)
        counted = sum(n for s, n in self._seconds if second - RATE_WINDOW <= s < second)
        return counted / RATE_WINDOW
