"""BatchWriter: the group commit in front of the store."""

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_helpers import funded, message, receipt

from smsgate.core.models import (
    CREDIT_SCALE,
    DELIVRD,
    REJECTD,
    BatchResult,
    Refund,
    SentUpdate,
    StatusUpdate,
    WriteBatch,
)
from smsgate.core.ports import StoreError
from smsgate.store import BatchWriter
from smsgate.store.writer import _split_waiters

C = CREDIT_SCALE


class GatedStore:
    """A fake store: records batches; each write waits for `gate`; fails on demand."""

    split_commits = False

    def __init__(self) -> None:
        self.batches: list[WriteBatch] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: BaseException | None = None

    async def write(self, batch: WriteBatch) -> BatchResult:
        self.batches.append(batch)
        await self.gate.wait()
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        return BatchResult(receipt_ids=[1000 + n for n in range(len(batch.new_receipts))])


class SplittingStore(GatedStore):
    """A fake store that splits commits; fails the part `fail` names ("messages" or
    "rest"), once."""

    split_commits = True

    def __init__(self) -> None:
        super().__init__()
        self.fail: str | None = None

    async def write(self, batch: WriteBatch) -> BatchResult:
        part = "messages" if batch.new_messages else "rest"
        if self.fail == part:
            self.fail = None
            self.fail_with = StoreError(f"{part} failed")
        return await super().write(batch)


@pytest.fixture
async def writer_on(request):
    """writer_on(store, **kw): a started writer, closed at the end of the test."""
    writers = []

    def make(store, **kwargs) -> BatchWriter:
        writer = BatchWriter(store, **kwargs)
        writer.start()
        writers.append(writer)
        return writer
    yield make
    for writer in writers:
        await writer.close()


async def test_concurrent_messages_are_committed_in_few_batches(store, writer_on) -> None:
    account = await funded(store, credits=2000)
    writer = writer_on(store)
    messages = [message(account.id, price=C) for _ in range(2000)]

    async def submit(m):  # what the SMPP/HTTP handlers do: add, then await
        return await writer.add_message(m)
    results = await asyncio.gather(*(submit(m) for m in messages))
    assert results == [True] * 2000
    assert writer.items == 2000
    assert writer.batches < writer.items
    assert writer.batches <= 3
    assert (await store.get_account_by_id(account.id)).balance == 0
    assert await store.get_message(messages[-1].id) == messages[-1]


async def test_refusals_reach_the_right_futures(store, writer_on) -> None:
    account = await funded(store, credits=1500)
    writer = writer_on(store)
    messages = [message(account.id, price=C) for _ in range(2000)]
    results = await asyncio.gather(*(writer.add_message(m) for m in messages))
    assert results == [True] * 1500 + [False] * 500  # one batch: accepted in order
    assert (await store.get_account_by_id(account.id)).balance == 0
    assert await store.get_message(messages[1500].id) is None


async def test_max_batch_splits_messages_in_order(writer_on) -> None:
    fake = GatedStore()
    writer = writer_on(fake, max_batch=300)
    messages = [message(1) for _ in range(1000)]
    futures = [writer.add_message(m) for m in messages]
    status = writer.add_status(StatusUpdate(1, DELIVRD, time.time()))
    assert await asyncio.gather(*futures) == [True] * 1000
    await status
    sizes = [len(b.new_messages) for b in fake.batches]
    assert sizes == [300, 300, 300, 100]
    assert [m for b in fake.batches for m in b.new_messages] == messages
    assert len(fake.batches[0].statuses) == 1  # other work rides with the first batch


async def test_work_accumulates_while_a_commit_is_in_flight(writer_on) -> None:
    fake = GatedStore()
    fake.gate.clear()
    writer = writer_on(fake)
    first = writer.add_message(message(1))
    await asyncio.sleep(0)  # the writer takes it and blocks in write()
    await asyncio.sleep(0)
    assert len(fake.batches) == 1
    later = [writer.add_message(message(1)) for _ in range(100)]
    sent = writer.add_sent(SentUpdate(1, "sim", time.time()))
    assert writer.queued == 101
    fake.gate.set()
    assert await first is True
    assert await asyncio.gather(*later, sent) == [True] * 100 + [None]
    assert [len(b) for b in fake.batches] == [1, 101]
    assert (writer.batches, writer.items, writer.last_batch_size) == (2, 102, 101)


async def _first_commit_in_flight(fake: GatedStore, writer: BatchWriter) -> asyncio.Future:
    """A message whose commit is in write(), waiting for the gate."""
    fake.gate.clear()
    before = len(fake.batches)
    first = writer.add_message(message(1))
    await asyncio.sleep(0)  # the writer takes it and blocks in write()
    await asyncio.sleep(0)
    assert len(fake.batches) == before + 1
    return first


async def test_under_load_a_small_commit_waits_for_more_work(writer_on) -> None:
    fake = GatedStore()
    writer = writer_on(fake, gather_seconds=1.0, gather_below=32)
    first = await _first_commit_in_flight(fake, writer)
    early = [writer.add_message(message(1)) for _ in range(2)]  # came in during it
    fake.gate.set()
    assert await first is True
    await asyncio.sleep(0.1)
    assert len(fake.batches) == 1  # gathering
    late = [writer.add_message(message(1)) for _ in range(3)]
    started = time.monotonic()
    assert await asyncio.gather(*early, *late) == [True] * 5
    assert 0.5 < time.monotonic() - started < 5.0  # the rest of the 1 s wait
    assert [len(b) for b in fake.batches] == [1, 5]


async def test_commits_start_at_once_after_a_pause_at_the_threshold_or_for_a_flush(
        writer_on) -> None:
    fake = GatedStore()
    writer = writer_on(fake, gather_seconds=30.0, gather_below=3)
    # the first commit after a pause: no wait
    await asyncio.wait_for(writer.add_message(message(1)), 1.0)
    # work queued during a commit that reaches gather_below: no wait
    first = await _first_commit_in_flight(fake, writer)
    enough = [writer.add_message(message(1)) for _ in range(3)]
    fake.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *enough), 1.0)
    # fewer than gather_below: it waits, until a flush or a close wants them
    for end in (writer.flush, writer.close):
        first = await _first_commit_in_flight(fake, writer)
        few = writer.add_message(message(1))
        fake.gate.set()
        await asyncio.sleep(0.05)
        assert writer.queued == 1  # gathering
        await asyncio.wait_for(end(), 1.0)
        assert await first is True and await few is True
    assert [len(b) for b in fake.batches] == [1, 1, 3, 1, 1, 1, 1]


async def test_a_failed_commit_fails_its_whole_batch_and_the_writer_goes_on(writer_on) -> None:
    fake = GatedStore()
    fake.gate.clear()
    fake.fail_with = StoreError("disk full")
    writer = writer_on(fake)
    doomed = [writer.add_message(message(1)) for _ in range(10)]
    doomed_receipt = writer.add_receipt(receipt(1, 1, time.time()))
    doomed_status = writer.add_status(StatusUpdate(1, REJECTD, time.time(),
                                                   refund=Refund(1, C, 1)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    survivors = [writer.add_message(message(1)) for _ in range(5)]
    fake.gate.set()
    for future in (*doomed, doomed_receipt, doomed_status):
        with pytest.raises(StoreError, match="disk full"):
            await future
    assert await asyncio.gather(*survivors) == [True] * 5
    assert writer.failed_batches == 1
    assert writer.batches == 2


@pytest.mark.parametrize("failing", [None, "messages", "rest"])
async def test_a_splitting_store_commits_new_messages_beside_the_rest(writer_on,
                                                                      failing) -> None:
    fake = SplittingStore()
    fake.gate.clear()
    writer = writer_on(fake)
    writer.add_message(message(1))  # the first commit, held at the gate
    await asyncio.sleep(0)
    group = [message(1) for _ in range(3)]
    grouped = writer.add_messages(group)
    alone = message(1)
    single = writer.add_message(alone)
    status = writer.add_status(StatusUpdate(7, DELIVRD, time.time()))
    receipt_id = writer.add_receipt(receipt(1, 7, time.time()))
    fake.fail = failing
    fake.gate.set()
    await writer.flush()
    messages_part, rest_part = fake.batches[1:]
    assert messages_part.new_messages == [*group, alone]
    assert messages_part.atomic == [[m.id for m in group]]
    assert len(messages_part) == 4  # nothing else
    assert rest_part.new_messages == [] and rest_part.atomic == []
    assert [u.message_id for u in rest_part.statuses] == [7]
    assert len(rest_part.new_receipts) == 1
    for future, part, result in ((grouped, "messages", True), (single, "messages", True),
                                 (status, "rest", None), (receipt_id, "rest", 1000)):
        if part == failing:
            with pytest.raises(StoreError, match=f"{part} failed"):
                await future
        else:
            assert await future == result
    assert writer.failed_batches == (failing is not None)
    assert writer.batches == 2  # one batch, its two transactions


async def test_a_splitting_store_writes_a_batch_of_one_kind_in_one_commit(writer_on) -> None:
    fake = SplittingStore()
    writer = writer_on(fake)
    assert await writer.add_message(message(1)) is True
    await writer.add_status(StatusUpdate(7, DELIVRD, time.time()))
    assert [len(b) for b in fake.batches] == [1, 1]


async def test_new_messages_fail_alone_where_commits_split(store, writer_on) -> None:
    """On PostgreSQL a batch's new messages and its statuses are two transactions: a
    new message that cannot be stored (its id taken) fails only its own caller. SQLite
    writes one transaction: everything of the batch fails with it."""
    account = await funded(store, credits=10)
    writer = writer_on(store)
    stored = message(account.id)
    assert await writer.add_message(stored) is True
    duplicate = writer.add_message(message(account.id, id=stored.id))
    delivered = writer.add_status(StatusUpdate(stored.id, DELIVRD, time.time()))
    with pytest.raises(StoreError):
        await duplicate
    if store.split_commits:
        await delivered
        assert (await store.get_message(stored.id)).status == DELIVRD
    else:
        with pytest.raises(StoreError):
            await delivered
        assert (await store.get_message(stored.id)).status != DELIVRD
    assert (await store.get_account_by_id(account.id)).balance == 9 * C


async def test_unexpected_errors_become_store_errors(writer_on) -> None:
    fake = GatedStore()
    fake.fail_with = RuntimeError("bug")
    writer = writer_on(fake)
    with pytest.raises(StoreError, match="bug"):
        await writer.add_message(message(1))
    assert await writer.add_message(message(1)) is True


async def test_receipts_and_other_work(store, writer_on) -> None:
    account = await funded(store, credits=10)
    writer = writer_on(store)
    m = message(account.id, price=2 * C)
    assert await writer.add_message(m) is True
    now = time.time()
    futures = [writer.add_sent(SentUpdate(m.id, "sim", now, "U1")),
               writer.add_status(StatusUpdate(m.id, REJECTD, now + 1,
                                              refund=Refund(account.id, 2 * C, m.id)))]
    receipt_ids = await asyncio.gather(*(writer.add_receipt(receipt(account.id, m.id, now))
                                         for _ in range(3)))
    assert await asyncio.gather(*futures) == [None, None]
    assert len(set(receipt_ids)) == 3
    got = await store.get_message(m.id)
    assert (got.status, got.upstream_id, got.done_at) == (REJECTD, "U1", now + 1)
    assert (await store.get_account_by_id(account.id)).balance == 10 * C
    await writer.done_receipt(receipt_ids[0])
    await writer.retry_receipt(receipt_ids[1], now + 30)
    due = await store.pending_receipts(account.id, now, 10)
    assert [r.id for r in due] == [receipt_ids[2]]


async def test_a_queued_status_commits_with_its_turn_and_needs_no_future(store, writer_on
                                                                         ) -> None:
    account = await funded(store, credits=10)
    writer = writer_on(store)
    m = message(account.id, price=C)
    assert await writer.add_message(m) is True
    assert writer.queue_status(StatusUpdate(m.id, DELIVRD, time.time())) is None
    await writer.add_sent(SentUpdate(m.id, "sim", time.time(), "U7"))  # the same commit
    got = await store.get_message(m.id)
    assert (got.status, got.upstream_id) == (DELIVRD, "U7")
    await writer.close()
    writer.queue_status(StatusUpdate(m.id, REJECTD, time.time()))  # closed: dropped
    assert (await store.get_message(m.id)).status == DELIVRD


async def test_flush_waits_for_everything_added_before(writer_on) -> None:
    fake = GatedStore()
    writer = writer_on(fake, max_batch=10)
    await writer.flush()  # nothing to wait for
    futures = [writer.add_message(message(1)) for _ in range(25)]
    futures.append(writer.done_receipt(5))
    await writer.flush()
    assert all(f.done() for f in futures)
    assert writer.queued == 0


async def test_close_flushes_and_later_additions_fail(store) -> None:
    account = await funded(store, credits=100)
    writer = BatchWriter(store)
    writer.start()
    futures = [writer.add_message(message(account.id)) for _ in range(50)]
    await writer.close()
    assert all(f.done() and f.result() is True for f in futures)
    assert (await store.get_account_by_id(account.id)).balance == 50 * C
    with pytest.raises(StoreError, match="closed"):
        await writer.add_message(message(account.id))
    await writer.close()  # twice is fine


async def test_close_without_start_still_commits(writer_on) -> None:
    fake = GatedStore()
    writer = BatchWriter(fake)
    future = writer.add_message(message(1))
    await writer.close()
    assert future.result() is True


async def test_a_caller_cancelling_its_future_does_not_disturb_others(writer_on) -> None:
    fake = GatedStore()
    writer = writer_on(fake)
    mine, theirs = writer.add_message(message(1)), writer.add_message(message(1))
    mine.cancel()
    assert await theirs is True


async def test_an_atomic_group_is_never_split_across_commits(writer_on) -> None:
    fake = GatedStore()
    writer = writer_on(fake, max_batch=300)
    before = [message(1) for _ in range(250)]
    group = [message(1) for _ in range(100)]
    for m in before:
        writer.add_message(m)
    assert await writer.add_messages(group) is True
    first = fake.batches[0]
    assert len(first.new_messages) == 350  # grew past max_batch to the group's end
    assert first.atomic == [[m.id for m in group]]


async def test_add_messages_all_refused_when_credit_is_short(store, writer_on) -> None:
    account = await funded(store, credits=3)
    writer = writer_on(store)
    group = [message(account.id, price=C) for _ in range(4)]
    assert await writer.add_messages(group) is False
    assert (await store.get_account_by_id(account.id)).balance == 3 * C


async def test_add_message_then_tells_each_caller_its_result(store, writer_on) -> None:
    account = await funded(store, credits=2)
    writer = writer_on(store)
    told: list = []
    for _ in range(3):  # two are covered, the third is refused for credit
        writer.add_message_then(message(account.id, price=C), told.append)
    await writer.flush()
    assert sorted(told, key=str) == [False, True, True]


async def test_add_message_then_survives_a_failing_callback_and_a_failed_commit(
        writer_on) -> None:
    fake = GatedStore()
    writer = writer_on(fake)
    told: list = []

    def broken(result):
        raise RuntimeError("caller bug")
    writer.add_message_then(message(1), broken)
    writer.add_message_then(message(1), told.append)
    await writer.flush()
    fake.fail_with = StoreError("disk full")
    writer.add_message_then(message(1), told.append)
    await writer.flush()
    assert told[0] is True and isinstance(told[1], StoreError)
    await writer.close()
    writer.add_message_then(message(1), told.append)  # closed: told at once
    assert "closed" in str(told[2])


async def test_add_each_then_tells_one_call_a_commit_with_the_refused(store, writer_on) -> None:
    account = await funded(store, credits=2)
    writer = writer_on(store)
    single: list = []
    writer.add_message_then(message(account.id, price=C), single.append)  # first: covered
    run = [message(account.id, price=C) for _ in range(3)]  # one covered, two refused
    told: list = []
    writer.add_each_then(run, lambda messages, refused: told.append((messages, refused)))
    await writer.flush()
    assert single == [True]
    [(messages, refused)] = told
    assert messages == run and refused == {m.id for m in run[1:]}
    assert (await store.get_message(run[0].id)) is not None
    assert (await store.get_message(run[1].id)) is None


async def test_add_each_then_run_split_by_max_batch_is_told_per_commit(
        store, writer_on) -> None:
    account = await funded(store, credits=100)
    writer = writer_on(store, max_batch=4)
    first, run = message(account.id), [message(account.id) for _ in range(6)]
    told: list = []
    writer.add_message_then(first, told.append)
    writer.add_each_then(run, lambda messages, refused: told.append((messages, refused)))
    await writer.flush()
    assert told == [True, (run[:3], set()), (run[3:], set())]  # in order, no message twice
    assert writer.batches == 2


@given(st.lists(st.tuples(st.integers(1, 5), st.booleans()), max_size=12), st.data())
def test_split_waiters_cuts_the_runs_at_the_message_count(runs, data) -> None:
    """The entries of the first `cut` messages and of the rest: as many messages on each
    side, each entry's waiter kept, a run crossed by the cut told on both sides."""
    waiters = [(count, object(), together) for count, together in runs]
    total = sum(count for count, _, _ in waiters)
    cut = data.draw(st.integers(0, total))
    head, tail = _split_waiters(waiters, cut)
    assert sum(c for c, _, _ in head) == cut and sum(c for c, _, _ in tail) == total - cut
    assert all(c > 0 for c, _, _ in head + tail)

    def spread(entries):  # one (waiter, together) a message
        return [(then, together) for count, then, together in entries for _ in range(count)]
    assert spread(head) + spread(tail) == spread(waiters)


async def test_add_each_then_failed_commit_and_closed_writer(writer_on) -> None:
    fake = GatedStore()
    writer = writer_on(fake)
    told: list = []
    fake.fail_with = StoreError("disk full")
    run = [message(1), message(1)]
    writer.add_each_then(run, lambda messages, refused: told.append((messages, refused)))
    await writer.flush()
    [(messages, error)] = told
    assert messages == run and isinstance(error, StoreError)
    await writer.close()
    writer.add_each_then(run, lambda messages, refused: told.append((messages, refused)))
    assert told[1][0] == run and "closed" in str(told[1][1])


async def test_stalled_for_is_the_age_of_the_commit_in_flight(writer_on) -> None:
    store = GatedStore()
    writer = writer_on(store)
    assert writer.stalled_for() == 0.0
    store.gate.clear()
    writer.add_sent(SentUpdate(1, "up", time.time()))
    await asyncio.sleep(0.2)
    assert 0.15 < writer.stalled_for() < 5
    store.gate.set()
    await writer.flush()
    assert writer.stalled_for() == 0.0
    await writer.close()
    assert writer.stalled_for() == float("inf")  # stopped: nothing more gets written
