"""core/status_history.py on a real store: each node adds what its status counters grew
by to 10-second buckets; the admin API sums the nodes' buckets over its window, never
reading the messages table; a failed write keeps its counts for the next."""

import time

from smsgate.core.admin import Admin
from smsgate.core.ports import StoreError
from smsgate.core.status_history import BUCKET_SECONDS, StatusHistory, bucket_of


def admin(store) -> Admin:
    return Admin(store, lambda kind, config: ("", config, config))


async def test_nodes_counts_are_summed_per_bucket_and_step(store):
    counts = {"a": {"ATES": 5, "DELIVRD": 1}, "b": {"ATES": 0}}
    histories = {node: StatusHistory(store, node, lambda node=node: counts[node])
                 for node in counts}
    for history in histories.values():
        history.collect(0.0)  # the counts before: not this run's
    now = time.time()
    counts["a"] = {"ATES": 15, "DELIVRD": 8, "UNDELIV": 2}
    counts["b"] = {"ATES": 4, "DELIVRD": 3}
    for history in histories.values():
        history.collect(now - BUCKET_SECONDS)  # in the bucket before now's
        await history.write()  # grows nothing more: written to the earlier bucket
    counts["a"] = {"ATES": 16, "DELIVRD": 9, "UNDELIV": 2}
    await histories["a"].write()  # now's bucket
    since, step, series = await admin(store).status_series(60, 3, now=now)
    assert step == BUCKET_SECONDS and since == bucket_of(now - 60)
    earlier, current = bucket_of(now - BUCKET_SECONDS), bucket_of(now)
    assert sorted(series) == sorted([
        (earlier, "ATES", 14), (earlier, "DELIVRD", 10), (earlier, "UNDELIV", 2),
        (current, "ATES", 1), (current, "DELIVRD", 1)])
    _, step, wide = await admin(store).status_series(600, 600, now=now)
    assert step == 600
    totals = {}
    for _, status, n in wide:
        totals[status] = totals.get(status, 0) + n
    assert totals == {"ATES": 15, "DELIVRD": 11, "UNDELIV": 2}


class BrokenStore:
    def __init__(self, store) -> None:
        self.store, self.broken = store, True

    async def add_status_counts(self, node, counts) -> None:
        if self.broken:
            raise StoreError("down")
        await self.store.add_status_counts(node, counts)


async def test_a_failed_write_is_written_with_the_next(store):
    counts = {"DELIVRD": 0}
    flaky = BrokenStore(store)
    history = StatusHistory(flaky, "a", lambda: counts)  # type: ignore[arg-type]
    history.collect(0.0)
    counts["DELIVRD"] = 3
    await history.write()  # refused: kept
    counts["DELIVRD"] = 5
    flaky.broken = False
    await history.write()
    _, _, series = await admin(store).status_series(60, 60)
    assert sum(n for _, _, n in series) == 5
