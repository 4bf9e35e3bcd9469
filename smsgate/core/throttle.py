"""Per-account throughput limits: a token bucket per account, counted in SMS parts."""

import time


class Throttle:
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[int, list[float]] = {}  # account id -> [tokens, last time]

    def allow(self, account_id: int, tps: int, count: int = 1) -> bool:
        """Take `count` tokens if the account's bucket (size = one second of tps) has
        them. tps <= 0 means unlimited."""
        if tps <= 0:
            return True
        now = self._clock()
        bucket = self._buckets.get(account_id)
        if bucket is None:
            bucket = self._buckets[account_id] = [float(tps), now]
        tokens = min(float(tps), bucket[0] + (now - bucket[1]) * tps)
        bucket[1] = now
        if tokens < count:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - count
        return True
