"""The group commit: many callers' writes, one transaction.

Callers queue work and get a future at once, without awaiting the database. One task
commits: whenever work is waiting and no commit is in flight it takes everything queued
(new messages up to `max_batch`) as one `WriteBatch`, awaits `store.write`, and
resolves every future of that batch. While a commit is in flight new work piles up for
the next one, so the batch size follows the load by itself: one message when idle,
thousands under pressure.

One timer, at partial load only (`gather_seconds`, `gather_below`): when work came in
during the previous commit but fewer than `gather_below` items, the next commit waits
`gather_seconds` for more (settings `commit_gather_ms`, 2 ms, and `commit_gather_below`,
32). At half the peak a commit otherwise carried ~15 items, ~700 commits a second, and
each rewrote the pages of every index it touched: the wait takes a fifth of the
process's CPU off at 4-5k submit_sm/s for ~2.5 ms more at the median, the p99 and the
peak unchanged (docs/performance.md). The first commit after a pause, and one a flush
or close waits for, start at once; at the peak commits carry hundreds of items and
never wait.

A failed commit fails every future of its batch with StoreError (nothing of it was
written: the store rolled back) and the writer carries on with the next batch.

Where the store splits commits (`Store.split_commits`: PostgreSQL), a batch's new
messages and the rest of it (statuses, sent marks, receipts, callbacks, MO) go as two
transactions side by side, each told its own outcome: at the peak the statuses' UPDATE
no longer lengthens the commit that new messages wait for (+15-20 % submit_sm/s on
PostgreSQL, docs/performance.md). Nothing of the rest belongs with a new message of the
same batch: a message is sent, and so gets a status, a receipt or a callback, only
once its own commit is done.

One commit for what belongs together: `_commit_next` takes everything queued at once,
so whatever a caller adds without awaiting in between (in one loop turn) is written in
one transaction -- a status and its dlrurl callback row, an MO with its deliver_sm and
its mo-url request. (New messages are the exception: past `max_batch` they wait for the
next commit, whole atomic groups at a time, and where the store splits commits they go
in a transaction of their own, see above.) This is the only writer: every durable
row of the hot path (messages, statuses, receipts, callbacks, MO) goes through it.

New messages can be added without a Future (`add_message_then`): the writer calls the
caller's function right after the commit. On the SMPP hot path that saves a Future, its
done-callbacks and their trips through the event loop's ready queue for every message;
`add_each_then` goes further: a read's submits, each charged on its own, are told
together, one call a commit instead of one a message.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from ..core.models import (
    BatchResult,
    InboundMessage,
    Message,
    PendingCallback,
    PendingReceipt,
    SentUpdate,
    StatusUpdate,
    UpstreamReport,
    WriteBatch,
)
from ..core.ports import Store, StoreError
from ..core.traffic import LatencyHistogram

# Seconds a group commit takes (store.write): ~1 ms idle, tens of ms at full load; a
# checkpoint's fsync or a lock wait shows up in the top buckets.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

log = logging.getLogger(__name__)

Future = asyncio.Future
# Told a new message's fate: True (stored and charged), False (refused for credit), or
# the StoreError of a failed commit.
MessageWaiter = Callable[[bool | StoreError], None]
# Told the fate of messages queued together (add_each_then), once a commit that carries
# some of them returns: those messages, in order, and the ids of the ones refused for
# credit (the rest are stored and charged), or the StoreError of the failed commit.
EachWaiter = Callable[[list[Message], set[int] | StoreError], None]
# The waiters of the queued messages, run-length encoded: (count, waiter, together).
# One message: (1, MessageWaiter, False); `count` messages told together: (count,
# EachWaiter, True). A commit that takes part of a run splits the entry in two.
Waiters = list[tuple[int, Callable, bool]]
# What a commit did: its result, or the StoreError of its failure (nothing of it written).
Outcome = BatchResult | StoreError


class BatchWriter:
    def __init__(self, store: Store, max_batch: int = 5000, gather_seconds: float = 0.0,
                 gather_below: int = 32) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._store = store
        self._split = store.split_commits
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self.gather_below = gather_below
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._wakeup = asyncio.Event()
        self._closing = False
        self._closed = False
        self._queued = 0
        self._reset_queues()
        self._messages: list[Message] = []
        self._message_waiters: Waiters = []
        self._group_of: dict[int, list[int]] = {}  # message id -> its atomic group
        # flush(): (batches that must be done, messages that must be done, future)
        self._flush_waiters: list[tuple[int, int, Future]] = []
        self._messages_added = 0
        self._messages_done = 0
        self._batches_done = 0
        # Counters for metrics.
        self.batches = 0  # commits started
        self.items = 0  # items written (or failed) in them
        self.last_batch_size = 0
        self.failed_batches = 0
        self.commit_seconds = LatencyHistogram(COMMIT_BUCKETS)
        self._commit_started: float | None = None  # monotonic time of the one in flight
        self._gathering: Future | None = None  # done when the commit may start

    def _reset_queues(self) -> None:
        """Fresh lists for everything but new messages (which a batch may leave behind)."""
        self._sent: list[SentUpdate] = []
        self._statuses: list[StatusUpdate] = []
        self._receipts: list[PendingReceipt] = []
        self._receipt_futures: list[Future] = []
        self._done: list[int] = []
        self._retry: list[tuple[int, float]] = []
        self._part_statuses: list[tuple[int, int, str]] = []
        self._unmatched: list[UpstreamReport] = []
        self._rematched: list[UpstreamReport] = []
        self._callbacks: list[PendingCallback] = []
        self._callback_futures: list[Future] = []
        self._done_callbacks: list[int] = []
        self._given_up_callbacks: list[int] = []
        self._retry_callbacks: list[tuple[int, int, float]] = []
        self._inbound: list[InboundMessage] = []
        self._joined: list[int] = []
        self._other_futures: list[Future] = []

    # -- adding work (synchronous, cheap) ------------------------------------------------

    def _future(self) -> Future:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._closed:
            _fail(future, StoreError("the batch writer is closed"))
        return future

    def add_message(self, message: Message) -> "Future[bool]":
        """True once stored and charged; False if refused for credit."""
        future = self._future()
        if not self._closed:
            self.add_message_then(message, partial(_settle, future))
        return future

    def add_message_then(self, message: Message, then: MessageWaiter) -> None:
        """Like add_message, but `then(result)` is called once the commit returns (at
        once with a StoreError if the writer is closed)."""
        if self._closed:
            then(StoreError("the batch writer is closed"))
            return
        self._messages.append(message)
        self._message_waiters.append((1, then, False))
        self._messages_added += 1
        self._queued += 1
        self._wakeup.set()

    def add_each_then(self, messages: list[Message], then: EachWaiter) -> None:
        """Messages charged each on its own, like add_message_then, told together:
        `then(messages, refused)` once per commit that carries some of them, in order
        (at once with a StoreError if the writer is closed)."""
        if self._closed:
            then(messages, StoreError("the batch writer is closed"))
            return
        if not messages:
            return
        self._messages += messages
        self._message_waiters.append((len(messages), then, True))
        self._messages_added += len(messages)
        self._queued += len(messages)
        self._wakeup.set()

    def add_messages(self, messages: list[Message]) -> "Future[bool]":
        """All or nothing: True once every message is stored and charged, False when
        none is (refused for credit). The group always goes into one commit, so one
        future tells the whole group's fate (one per message cost a 10,000-number HTTP
        submit ~50 ms of futures and callbacks)."""
        future = self._future()
        if self._closed or not messages:
            if not future.done():
                future.set_result(True)
            return future
        self.add_each_then(messages, partial(_settle_group, future))  # never split
        if len(messages) > 1:
            group = [m.id for m in messages]
            for message_id in group:
                self._group_of[message_id] = group
        return future

    def add_receipt(self, receipt: PendingReceipt) -> "Future[int]":
        """The receipt's (or MO deliver_sm's) new id once stored."""
        return self._add_with_id(self._receipts, self._receipt_futures, receipt)

    def add_callback(self, callback: PendingCallback) -> "Future[int]":
        """A new row of the HTTP callback outbox; its id once stored."""
        return self._add_with_id(self._callbacks, self._callback_futures, callback)

    def _add_with_id(self, queue: list, futures: list[Future], item: object) -> Future:
        future = self._future()
        if not self._closed:
            futures.append(future)
            self._enqueue(queue, item)
        return future

    def _add(self, queue: list, item: object) -> "Future[None]":
        future = self._future()
        if not self._closed:
            self._other_futures.append(future)
            self._enqueue(queue, item)
        return future

    def _enqueue(self, queue: list, item: object) -> None:
        queue.append(item)
        self._queued += 1
        self._wakeup.set()

    def add_sent(self, update: SentUpdate) -> "Future[None]":
        return self._add(self._sent, update)

    def add_status(self, update: StatusUpdate) -> "Future[None]":
        """Its `refund`, if any, is granted in the same commit, and only if this status
        ends the message (store/charging.py): there is no refund on its own."""
        return self._add(self._statuses, update)

    def add_statuses(self, updates: list[StatusUpdate]) -> "Future[None]":
        """`add_status` for many, with one Future for them all."""
        future = self._future()
        if not self._closed:
            self._other_futures.append(future)
            self._statuses += updates
            self._queued += len(updates)
            self._wakeup.set()
        return future

    def queue_status(self, update: StatusUpdate) -> None:
        """`add_status` for a caller that does not wait for the commit: no Future (one
        per message was a measurable part of the simulator's status path)."""
        if not self._closed:
            self._enqueue(self._statuses, update)

    def done_receipt(self, receipt_id: int) -> "Future[None]":
        return self._add(self._done, receipt_id)

    def retry_receipt(self, receipt_id: int, at: float) -> "Future[None]":
        return self._add(self._retry, (receipt_id, at))

    def add_part_status(self, message_id: int, part: int, status: str) -> "Future[None]":
        """The final status of one part of a message split upstream."""
        return self._add(self._part_statuses, (message_id, part, status))

    def drop_unmatched(self, report: UpstreamReport) -> "Future[None]":
        """A report kept as unmatched found its message after all: its row goes."""
        return self._add(self._rematched, report)

    def add_unmatched(self, report: UpstreamReport) -> "Future[None]":
        """A delivery report that matched no message, kept for the operator."""
        return self._add(self._unmatched, report)

    def done_callback(self, callback_id: int, delivered: bool = True) -> "Future[None]":
        """Delete an outbox row: sent (`delivered`), or refused or given up."""
        return self._add(self._done_callbacks if delivered else self._given_up_callbacks,
                         callback_id)

    def retry_callback(self, callback_id: int, attempts: int, at: float) -> "Future[None]":
        """Store an outbox row's attempts and next attempt's time, and give it back to
        the store (holder '') for whichever node claims it then."""
        return self._add(self._retry_callbacks, (callback_id, attempts, at))

    def add_inbound(self, message: InboundMessage) -> "Future[None]":
        """An MO as received (its id given by the caller)."""
        return self._add(self._inbound, message)

    def joined_inbound(self, inbound_id: int) -> "Future[None]":
        """An MO part whose concatenated message is settled: no longer `joining`."""
        return self._add(self._joined, inbound_id)

    @property
    def queued(self) -> int:
        """Items waiting for a commit (not counting the one in flight)."""
        return self._queued

    def stalled_for(self) -> float:
        """Seconds the commit in flight has been waiting for the store (0 when none
        is), or infinity once the writer has stopped: what /health calls stuck. The
        oldest unwritten item is about that old, since a commit takes everything queued
        when it starts and the next starts the moment it returns."""
        if self._closed:
            return float("inf")
        started = self._commit_started
        return 0.0 if started is None else time.monotonic() - started

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="batch-writer")

    async def flush(self) -> None:
        """Wait until everything added so far is committed (or has failed)."""
        in_flight = self.batches > self._batches_done
        if not self._queued and not in_flight:
            return
        self.start()
        need_batches = self.batches + (1 if self._queued else 0)
        future = self._loop.create_future()
        self._flush_waiters.append((need_batches, self._messages_added, future))
        self._wakeup.set()
        self._stop_gathering()
        await future

    async def close(self) -> None:
        """Commit everything queued, then stop. Later additions fail with StoreError."""
        if self._closed:
            return
        self.start()
        self._closing = True
        self._wakeup.set()
        self._stop_gathering()
        # wait() neither cancels the writer when our caller is cancelled nor raises if
        # the writer itself was cancelled.
        await asyncio.wait({self._task})
        self._closed = True

    # -- the commit loop -----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                under_load = False  # the first commit after a pause starts at once
                while self._queued:
                    if under_load and self._should_gather():
                        await self._gather()
                    await self._commit_next()
                    under_load = True  # what is queued now came in during that commit
                if self._closing:
                    return
        except BaseException:  # cancelled (or a bug): fail what waits, never leave it hanging
            self._fail_queued(StoreError("the batch writer was stopped"))
            raise
        finally:
            self._closed = True
            self._release_flushes(force=True)

    async def _commit_next(self) -> None:
        messages, message_waiters = self._take_messages()
        batch = WriteBatch(messages, self._sent, self._statuses, self._receipts, self._done,
                           self._retry, self._take_groups(messages), self._part_statuses,
                           self._unmatched, self._callbacks, self._done_callbacks,
                           self._retry_callbacks, self._inbound, self._joined,
                           self._rematched, self._given_up_callbacks)
        id_futures = (self._receipt_futures, self._callback_futures)
        other_futures = self._other_futures
        self._reset_queues()
        self._queued = len(self._messages)
        size = len(batch)
        self.batches += 1
        self.items += size
        self.last_batch_size = size
        self._commit_started = time.monotonic()
        try:
            told = await self._write(batch)
        except BaseException as exc:  # cancelled: a write's own failure is an outcome
            error = StoreError(f"write failed: {exc!r}")
            told = (error, error)
            raise
        finally:
            self.commit_seconds.observe(time.monotonic() - self._commit_started)
            self._commit_started = None
            _tell_all(messages, message_waiters,
                      told[0] if isinstance(told[0], StoreError) else told[0].refused)
            _settle_rest(id_futures, other_futures, told[1])
            self._batches_done += 1
            self._messages_done += len(messages)
            self._release_flushes()

    async def _write(self, batch: WriteBatch) -> tuple[Outcome, Outcome]:
        """The outcome of the batch's new messages, and that of the rest of it: one
        transaction, or two side by side where the store splits commits (see above)."""
        if not (self._split and batch.new_messages and len(batch) > len(batch.new_messages)):
            outcome = await self._write_part(batch)
            return outcome, outcome
        messages = WriteBatch(new_messages=batch.new_messages, atomic=batch.atomic)
        rest = replace(batch, new_messages=[], atomic=[])
        charged, written = await asyncio.gather(self._write_part(messages),
                                                self._write_part(rest))
        return charged, written

    async def _write_part(self, batch: WriteBatch) -> Outcome:
        try:
            return await self._store.write(batch)
        except Exception as exc:
            self.failed_batches += 1
            log.error("group commit of %d items failed: %s", len(batch), exc)
            return exc if isinstance(exc, StoreError) else StoreError(f"write failed: {exc!r}")

    def _should_gather(self) -> bool:
        """A small commit under load waits for more work, unless someone waits for the
        commit itself (flush, close)."""
        return self._queued < self.gather_below and self.gather_seconds > 0 \
            and not self._closing and not self._flush_waiters

    async def _gather(self) -> None:
        """Up to gather_seconds; a flush or close ends it (`_stop_gathering`)."""
        self._gathering = self._loop.create_future()
        timer = self._loop.call_later(self.gather_seconds, self._stop_gathering)
        try:
            await self._gathering
        finally:
            timer.cancel()
            self._gathering = None

    def _stop_gathering(self) -> None:
        if self._gathering is not None and not self._gathering.done():
            self._gathering.set_result(None)

    def _take_messages(self) -> tuple[list[Message], Waiters]:
        messages, waiters = self._messages, self._message_waiters
        cut = self.max_batch
        if len(messages) > cut and self._group_of:
            # never split an atomic group: the batch grows to the group's end
            while cut < len(messages) and messages[cut].id in self._group_of and \
                    self._group_of.get(messages[cut - 1].id) is self._group_of[messages[cut].id]:
                cut += 1
        if len(messages) <= cut:
            self._messages, self._message_waiters = [], []
            return messages, waiters
        self._messages = messages[cut:]
        taken, self._message_waiters = _split_waiters(waiters, cut)
        return messages[:cut], taken

    def _take_groups(self, messages: list[Message]) -> list[list[int]]:
        if not self._group_of:
            return []
        groups: dict[int, list[int]] = {}
        for message in messages:
            group = self._group_of.pop(message.id, None)
            if group is not None:
                groups[group[0]] = group
        return list(groups.values())

    def _release_flushes(self, force: bool = False) -> None:
        if not self._flush_waiters:
            return
        waiting = []
        for need_batches, need_messages, future in self._flush_waiters:
            if force or (self._batches_done >= need_batches
                         and self._messages_done >= need_messages):
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((need_batches, need_messages, future))
        self._flush_waiters = waiting

    def _fail_queued(self, error: StoreError) -> None:
        _tell_all(self._messages, self._message_waiters, error)
        for future in (*self._receipt_futures, *self._callback_futures,
                       *self._other_futures):
            _fail(future, error)
        self._messages, self._message_waiters = [], []
        self._group_of.clear()
        self._reset_queues()
        self._queued = 0


def _split_waiters(waiters: Waiters, cut: int) -> tuple[Waiters, Waiters]:
    """The entries of the first `cut` messages and those of the rest; a run of messages
    told together that the cut crosses is told twice, once per commit."""
    seen = 0
    for index, (count, then, together) in enumerate(waiters):
        if seen + count > cut:
            head, tail = waiters[:index], waiters[index + 1:]
            if cut > seen:
                head.append((cut - seen, then, together))
            tail.insert(0, (seen + count - cut, then, together))
            return head, tail
        seen += count
    return waiters, []


def _settle_rest(id_futures: tuple[list[Future], list[Future]], other_futures: list[Future],
                 outcome: Outcome) -> None:
    """The futures of everything but new messages: the new rows' ids, or done."""
    if isinstance(outcome, StoreError):
        for future in (*id_futures[0], *id_futures[1], *other_futures):
            _fail(future, outcome)
        return
    _give_ids(id_futures[0], outcome.receipt_ids, "receipt")
    _give_ids(id_futures[1], outcome.callback_ids, "callback")
    for future in other_futures:
        if not future.done():
            future.set_result(None)


def _give_ids(futures: list[Future], ids: list[int], what: str) -> None:
    if len(ids) == len(futures):
        for future, row_id in zip(futures, ids, strict=True):
            if not future.done():
                future.set_result(row_id)
    else:  # a store bug; still never leave a future hanging
        error = StoreError(f"store returned {len(ids)} {what} ids for {len(futures)} rows")
        for future in futures:
            _fail(future, error)


def _tell_all(messages: list[Message], waiters: Waiters,
              outcome: set[int] | StoreError) -> None:
    """Each waiter its messages' fate: `outcome` is the set of ids refused for credit
    (the rest stored and charged), or the error that failed them all."""
    failed = isinstance(outcome, StoreError)
    start = 0
    for count, then, together in waiters:
        try:
            if together:
                then(messages[start:start + count], outcome)
            elif failed:
                then(outcome)
            else:
                then(not outcome or messages[start].id not in outcome)
        except Exception:  # one caller's bug must not cost the others their answer
            log.exception("a stored-message callback failed")
        start += count


def _settle_group(future: Future, messages: list[Message],
                  refused: set[int] | StoreError) -> None:
    """An atomic group's one future: refused for credit all or none."""
    if isinstance(refused, StoreError):
        _fail(future, refused)
    elif not future.done():
        future.set_result(messages[-1].id not in refused)


def _settle(future: Future, result: bool | StoreError) -> None:
    if isinstance(result, StoreError):
        _fail(future, result)
    elif not future.done():
        future.set_result(result)


def _fail(future: Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        # Marks it retrieved: callers may ignore these futures, and the writer has logged
        # the failure once, instead of one "never retrieved" warning per item.
        future.exception()
