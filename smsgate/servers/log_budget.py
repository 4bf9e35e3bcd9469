"""A budget of log lines per source (one connection, one session), so that a client
cannot turn cheap bad input into expensive log volume (issue 8 item 7: 468 KB of
unknown command ids once made 3.9 MB of log).

Within each `window` the first `lines` events are logged; the others are only counted,
and the count rides on the next line that gets through (or is logged once at the end
with `take_suppressed`).
"""

import math


class LogBudget:
    __slots__ = ("_start", "_used", "lines", "suppressed", "window")

    def __init__(self, lines: int, window: float = 60.0) -> None:
        self.lines = lines
        self.window = window
        self.suppressed = 0
        self._start = -math.inf
        self._used = 0

    def take(self, now: float) -> bool:
        """Whether an event at `now` may be logged; if not, it is counted."""
        if now - self._start >= self.window:
            self._start, self._used = now, 0
        if self._used < self.lines:
            self._used += 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """How many events went unlogged since the last call."""
        count, self.suppressed = self.suppressed, 0
        return count
