"""Retention (SPEC §10): history older than `retention_days` is deleted in the
background, and `smsgate purge --older-than DAYS` does it at once.

On PostgreSQL, old messages go first as whole time partitions (store/partitions.py).
Deletion goes in steps of `step_rows` rows, each a short transaction of its own with a
pause after it, so that live traffic's group commits keep their turn (the store module
store/retention.py says how a step reads and deletes). A message still waiting to be
sent is never purged, however old.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from .ports import Store
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

DAY = 86_400.0
# The tables retention purges, in this order (store/retention.py: BY_NAME)
TABLES = ("messages", "ledger", "dlr_callbacks", "inbound_messages", "unmatched_reports",
          "status_counts")
STEP_ROWS = 500
PAUSE = 0.005  # seconds after each step: live traffic's group commits go first

# Told (table, rows deleted so far) after each step
Progress = Callable[[str, int], None]


async def purge(store: Store, before: float, step_rows: int = STEP_ROWS, pause: float = 0.0,
                progress: Progress | None = None) -> dict[str, int]:
    """Delete what is older than `before` (a Unix time) in every table; rows deleted
    per table."""
    deleted: dict[str, int] = {table: 0 for table in TABLES}
    # Whole partitions first, where the store has them; the steps take what is left.
    deleted["messages"] = await store.drop_partitions(before)
    if progress is not None and deleted["messages"]:
        progress("messages", deleted["messages"])
    for table in TABLES:
        after_id = 0
        while True:
            step = await store.purge_step(table, before, after_id, step_rows)
            deleted[table] += step.deleted
            if progress is not None:
                progress(table, deleted[table])
            if step.done:
                break
            after_id = step.last_id
            await asyncio.sleep(pause)  # even 0: the loop's other work goes first
    return deleted


class Retention:
    """The background purge: a pass every `interval` seconds, the first soon after start."""

    def __init__(self, store: Store, days: float, interval: float = 3600.0,
                 first_after: float = 60.0, pause: float = PAUSE) -> None:
        self._store = store
        self.days = days
        self.interval = interval
        self.first_after = first_after
        self.pause = pause
        self._task: asyncio.Task | None = None
        self.purged = 0  # rows, for metrics

    def start(self) -> None:
        if self.days > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="retention")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        await asyncio.sleep(self.first_after)
        while True:
            try:
                await self.pass_once()
            except Exception as exc:  # the store is down: the next pass tries again
                log.error("retention pass failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def pass_once(self) -> dict[str, int]:
        before = time.time() - self.days * DAY
        deleted = await purge(self._store, before, pause=self.pause)
        self.purged += sum(deleted.values())
        if any(deleted.values()):
            log.info("retention: deleted %s (older than %g days)",
                     ", ".join(f"{n} {table}" for table, n in deleted.items() if n), self.days)
        return deleted
