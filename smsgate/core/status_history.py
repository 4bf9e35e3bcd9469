"""Status changes over time, per node, for the admin API's /stats (SPEC §10: "messages/s
and statuses over time") without reading the messages table, which would hold the
store for seconds per million rows (on SQLite, the group commits' own thread).

The node already counts its statuses in memory (core/statuses.py) and the messages it
accepted (core/submit.py, counted here as ATES). Every few seconds what those counters
grew by is added to the store's row of (node, 10-second bucket, status); the admin API
sums the rows of all nodes over the buckets of its window. A write that fails keeps its
counts for the next one.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from .ports import Store, StoreError
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

BUCKET_SECONDS = 10
WRITE_SECONDS = 2.0


def bucket_of(at: float) -> int:
    return int(at // BUCKET_SECONDS) * BUCKET_SECONDS


class StatusHistory:
    def __init__(self, store: Store, node: str, counts: Callable[[], Mapping[str, int]],
                 interval: float = WRITE_SECONDS) -> None:
        self._store = store
        self._node = node
        self._counts = counts  # status -> changes so far on this node (counters)
        self._interval = interval
        self._last: dict[str, int] = {}
        self._pending: dict[tuple[int, str], int] = {}  # (bucket, status) -> not written
        self._task: asyncio.Task | None = None
        self._failing = False

    def start(self) -> None:
        self._last = dict(self._counts())  # what came before the start is not ours
        self._task = asyncio.create_task(self._run(), name="status-history")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.write()  # the last seconds too, on a clean stop

    def collect(self, now: float) -> None:
        """Add what the counters grew by since the last look to the bucket of `now`."""
        counts = dict(self._counts())
        bucket = bucket_of(now)
        for status, count in counts.items():
            grown = count - self._last.get(status, 0)
            if grown > 0:
                key = (bucket, status)
                self._pending[key] = self._pending.get(key, 0) + grown
        self._last = counts

    async def write(self) -> None:
        self.collect(time.time())
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            await self._store.add_status_counts(
                self._node, [(bucket, status, n) for (bucket, status), n in pending.items()])
        except StoreError as exc:
            for key, n in pending.items():  # kept for the next write
                self._pending[key] = self._pending.get(key, 0) + n
            if not self._failing:
                log.warning("status counts not stored (kept for the next try): %s", exc)
            self._failing = True
        else:
            self._failing = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.write()
