"""The HTTP callback outbox: its rows written through Store.write (store_helpers
write_callbacks), claim_callbacks, release_callbacks, on each backend."""

import asyncio
import time

from store_helpers import next_id, write_callbacks

from smsgate.core.models import PendingCallback


def callback(now: float, holder: str = "", **fields) -> PendingCallback:
    message_id = next_id()
    defaults = dict(message_id=message_id, url=f"http://127.0.0.1:9/dlr?id={message_id}",
                    status="DELIVRD", created_at=now, next_attempt_at=now, holder=holder)
    defaults.update(fields)
    return PendingCallback(**defaults)


async def test_write_gives_ids_in_order_and_rows_round_trip(store) -> None:
    now = time.time()
    new = [callback(now), callback(now, status="ACCEPTD"), callback(now + 5, attempts=2)]
    ids = await write_callbacks(store, new, [], [])
    assert len(ids) == 3 and len(set(ids)) == 3 and ids == sorted(ids)
    more = await write_callbacks(store, [callback(now)], [], [])
    assert more[0] > ids[-1]
    assert await store.count_callbacks() == 4
    claimed = await store.claim_callbacks("n1", now + 10, 10)
    first = claimed[0]
    assert (first.id, first.message_id, first.url, first.status, first.created_at,
            first.attempts, first.holder) == (ids[0], new[0].message_id, new[0].url,
                                              "DELIVRD", now, 0, "n1")
    assert {c.id for c in claimed} == {*ids, *more}


async def test_claim_takes_due_rows_held_by_nobody_earliest_first(store) -> None:
    now = time.time()
    late, early, held, future = (callback(now - 1), callback(now - 5),
                                 callback(now - 9, holder="n1"), callback(now + 60))
    late_id, early_id, _held_id, future_id = await write_callbacks(store,
        [late, early, held, future], [], [])
    claimed = await store.claim_callbacks("n2", now, 10)
    assert [c.id for c in claimed] == [early_id, late_id]
    assert all(c.holder == "n2" for c in claimed)
    # claimed rows are held now: nobody takes them again
    assert await store.claim_callbacks("n3", now, 10) == []
    assert [c.id for c in await store.claim_callbacks("n3", now + 61, 10)] == [future_id]


async def test_claim_pages(store) -> None:
    now = time.time()
    ids = await write_callbacks(store, [callback(now - 100 + n) for n in range(25)], [], [])
    pages = []
    while page := await store.claim_callbacks("n1", now, 10):
        pages.append([c.id for c in page])
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for p in pages for i in p] == ids


async def test_done_deletes_and_retry_reschedules_and_gives_back(store) -> None:
    now = time.time()
    delivered, failed, other = await write_callbacks(store,
        [callback(now, holder="n1"), callback(now, holder="n1"), callback(now)], [], [])
    # one commit: a new row, a delete and a reschedule
    [newer] = await write_callbacks(store, [callback(now)], [delivered],
                                          [(failed, 3, now + 30)])
    assert await store.count_callbacks() == 3
    assert {c.id for c in await store.claim_callbacks("n2", now, 10)} == {other, newer}
    [again] = await store.claim_callbacks("n2", now + 31, 10)
    assert (again.id, again.attempts, again.next_attempt_at, again.holder) \
        == (failed, 3, now + 30, "n2")
    await write_callbacks(store, [], [failed, other, newer], [])
    assert await store.count_callbacks() == 0


async def test_release_gives_back_only_that_nodes_rows(store) -> None:
    now = time.time()
    mine, theirs = await write_callbacks(store,
        [callback(now, holder="n1"), callback(now, holder="n2")], [], [])
    assert await store.claim_callbacks("n1", now, 10) == []
    assert await store.release_callbacks("n1") == 1
    [claimed] = await store.claim_callbacks("n3", now, 10)
    assert claimed.id == mine
    assert await store.release_callbacks("n1") == 0
    assert theirs != mine


async def test_concurrent_claims_never_share_a_row(store) -> None:
    now = time.time()
    ids = await write_callbacks(store, [callback(now - 1) for _ in range(200)], [], [])
    pages = await asyncio.gather(*(store.claim_callbacks(f"n{n}", now, 30)
                                   for n in range(10)))
    claimed = [c.id for page in pages for c in page]
    assert sorted(claimed) == ids
