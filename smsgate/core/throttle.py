"""Token buckets: per-account throughput limits (counted in SMS parts), and the HTTP
port's limit on credential-less status queries per source IP."""

import time
from collections.abc import Hashable


class Throttle:
    def __init__(self, clock=time.monotonic, max_keys: int = 0) -> None:
        self._clock = clock
        self._buckets: dict[Hashable, list[float]] = {}  # key -> [tokens, last time]
        # 0: unbounded (accounts are few). Keyed by source IP it must be bounded: past
        # max_keys the oldest bucket is dropped (it starts full again if it comes back).
        self._max_keys = max_keys

    def allow(self, key: Hashable, tps: float, count: int = 1) -> bool:
        """Take `count` tokens if the key's bucket (size = one second of tps) has
        them. tps <= 0 means unlimited."""
        if tps <= 0:
            return True
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if self._max_keys and len(self._buckets) >= self._max_keys:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key] = [float(tps), now]
        tokens = min(float(tps), bucket[0] + (now - bucket[1]) * tps)
        bucket[1] = now
        if tokens < count:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - count
        return True

    def __len__(self) -> int:
        return len(self._buckets)
