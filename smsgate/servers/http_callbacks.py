"""Delivery reports over HTTP: a GET to the customer's `dlrurl` on every status change.

Every status change (ACCEPTD, and the final one: DELIVRD, UNDELIV, EXPIRED, REJECTD,
DELETED, UNKNOWN) of a message submitted with a `dlrurl` makes a callback: GET
<dlrurl>?status=DELIVRD&id=<message id>&ref=<ref>&time=<ISO 8601 UTC>&error=<code> (the
customer's own query parameters are kept). The 'sent upstream' step is no status change
(the message stays ATES), so it makes no callback.

Durable, at least once. A callback is a row of the store's `dlr_callbacks` table (an
outbox) before its status is stored: the dispatcher hands the status to `record`
(core/dispatcher.py, "recorder"), which queues the row for the next callback commit and
lets the status go to the writer only when that commit has returned. So whenever the
process dies (kill -9 included), a stored status has its callback stored; after a
restart it is sent, with the retries and backoff it had left. A row is deleted only
once the customer's server has answered (or after `max_age`), so a crash between that
answer and the delete's commit sends the callback again: at least once, duplicates
possible. Two edges: a crash after the callback's commit and before its status's sends a
callback whose status the store lost; the store keeps the message's earlier status (the
message is sent again if its sent mark was not stored either, core/dispatcher.py, or
else expires), so the customer may hear of two outcomes. And a DELETED made by
cancel_sm is stored by the cancel itself, its callback just after: a crash between those
two loses that one callback. Customers order the callbacks of a message by `time`; the
final status wins.

Callbacks never block the submit path, and the status path waits for one group commit:
rows are written by `CallbackJournal`, one transaction for everything recorded,
delivered or rescheduled while the previous commit ran. Memory holds at most
`max_in_memory` callbacks (queued or in flight). A row held in a node's memory carries
that node's name (`holder`); the others wait in the store, and are claimed in pages of
`page` (due first) whenever there is room, every `poll` seconds. A failed attempt
(connection refused, timeout, HTTP 5xx, 408 or 429) stores the next attempt's time and
gives the row back to the store, which keeps memory bounded however long a customer's
server is down; the other answers (2xx-4xx) end the callback. At start a node first
takes back what its previous run held.

Requests go out through servers/outbound_http.py (SPEC §11): a target that is not a
public address is refused where we connect, after DNS resolution, unless
`allow_private`; such a callback is a permanent failure (deleted, logged, counted in
`refused`), not retried. Redirects are not followed (a 3xx answer ends the callback like
any other) and at most `max_answer` bytes of an answer are read.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from ..core.models import Message, PendingCallback, StatusUpdate
from ..core.ports import Store
from . import outbound_http

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})
DELIVERED, RETRY, REFUSED = "delivered", "retry", "refused"  # an attempt's outcome
COMMIT_RETRY_SECONDS = 1.0  # after a failed callback commit
STOP_FLUSH_SECONDS = 5.0


@dataclass
class CallbackConfig:
    workers: int = 32  # requests in flight at once
    max_in_memory: int = 10_000  # queued + in flight; the others wait in the store
    page: int = 1_000  # rows claimed from the store at once
    poll: float = 1.0  # seconds between looks for due rows in the store
    timeout: float = 10.0  # seconds per attempt
    backoff: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0)  # then every 900 s
    max_age: float = 24 * 3600.0  # give up on a callback this long after its status
    # SPEC §11: loopback, private, link-local, multicast... targets are refused unless
    # allowed (`serve --callbacks-allow-private`); checked where we connect
    allow_private: bool = False
    max_answer: int = 4096  # bytes of the customer's answer read; the rest is not


def callback_url(message: Message, update: StatusUpdate) -> str:
    """The customer's URL with our parameters added after its own."""
    at = datetime.fromtimestamp(update.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ours = urlencode({"status": update.status, "id": message.id, "ref": message.ref,
                      "time": at, "error": update.error_code})
    url = urlsplit(message.dlr_url)
    query = f"{url.query}&{ours}" if url.query else ours
    return urlunsplit(url._replace(query=query, fragment=""))


class CallbackJournal:
    """The group commit of callback rows: whatever was added while a commit ran goes
    into the next one, in one transaction (`Store.write_callbacks`).

    A failed commit fails the futures of its new rows (the caller decides what then),
    and keeps its deletes and reschedules, which are idempotent, for the next commit.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._new: list[PendingCallback] = []
        self._futures: list[asyncio.Future[int]] = []
        self._done: list[int] = []
        self._retry: list[tuple[int, int, float]] = []
        self._task: asyncio.Task | None = None
        self.commits = 0

    def add(self, callback: PendingCallback) -> "asyncio.Future[int]":
        """The row's id once stored."""
        future = asyncio.get_running_loop().create_future()
        self._new.append(callback)
        self._futures.append(future)
        self._kick()
        return future

    def done(self, callback_id: int) -> None:
        """Delete the row (delivered, or given up)."""
        self._done.append(callback_id)
        self._kick()

    def retry(self, callback_id: int, attempts: int, at: float) -> None:
        """Store the next attempt's time and give the row back to the store."""
        self._retry.append((callback_id, attempts, at))
        self._kick()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until everything added so far is committed (or `timeout` passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._task is not None and not self._task.done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            await asyncio.wait({self._task}, timeout=left)

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="dlr-callback-journal")

    async def _run(self) -> None:
        while self._new or self._done or self._retry:
            new, futures, done, retry = self._new, self._futures, self._done, self._retry
            self._new, self._futures, self._done, self._retry = [], [], [], []
            self.commits += 1
            try:
                ids = await self.store.write_callbacks(new, done, retry)
            except Exception as exc:
                log.error("callback commit of %d rows failed: %s",
                          len(new) + len(done) + len(retry), exc)
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                        future.exception()  # handled by the caller's done callback
                self._done[:0], self._retry[:0] = done, retry
                await asyncio.sleep(COMMIT_RETRY_SECONDS)
                continue
            for future, callback_id in zip(futures, ids, strict=True):
                if not future.done():
                    future.set_result(callback_id)


class DlrCallbacks:
    """Records, stores and sends the callbacks; `attach` gives it the store first."""

    def __init__(self, config: CallbackConfig | None = None,
                 committed: Callable[[], Awaitable[None]] | None = None) -> None:
        self.config = config or CallbackConfig()
        self.node = ""
        self._journal: CallbackJournal | None = None
        # Awaited before a first attempt, so that a customer who queries the status on
        # hearing the callback sees the new status (the writer has committed it).
        self._committed = committed
        self._queue: asyncio.Queue[PendingCallback] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None
        self._sending = False
        self.in_memory = 0  # queued or in flight here
        self.delivered = 0
        self.retried = 0  # failed attempts, rescheduled
        self.failed = 0  # given up after max_age
        self.refused = 0  # the target is not a public address: not sent, not retried
        self.unstored = 0  # their row could not be written: kept in memory only

    def attach(self, store: Store, node: str) -> None:
        """The store that keeps the callbacks, and this node's name in it."""
        self.node = node
        self._journal = CallbackJournal(store)

    @property
    def journal(self) -> CallbackJournal:
        if self._journal is None:
            raise RuntimeError("DlrCallbacks.attach(store, node) first")
        return self._journal

    async def start(self) -> None:
        await self.journal.store.release_callbacks(self.node)  # what the previous run held
        self._session = outbound_http.client_session(
            allow_private=self.config.allow_private, timeout=self.config.timeout,
            connections=self.config.workers, user_agent="smsgate-dlr/1")
        self._sending = True
        self._tasks = [asyncio.create_task(self._work(), name=f"dlr-callback-{i}")
                       for i in range(self.config.workers)]
        self._tasks.append(asyncio.create_task(self._poll(), name="dlr-callback-poll"))

    async def stop(self) -> None:
        """Stop sending. Statuses still recorded from now on are stored for the next
        run; so are the callbacks that were in memory (this node holds their rows)."""
        self._sending = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.journal.flush(STOP_FLUSH_SECONDS)
        if self.in_memory:
            log.info("%d delivery report callbacks stay stored for the next start",
                     self.in_memory)
        self.in_memory = 0
        self._queue = asyncio.Queue()

    async def flush(self) -> None:
        """Wait until the rows recorded so far are committed."""
        await self.journal.flush()

    # -- the dispatcher's recorder -----------------------------------------------------

    def record(self, message: Message, update: StatusUpdate,
               then: Callable[[], None] | None) -> bool:
        """Store the status's callback; then() (the status's own write) runs after."""
        if not message.dlr_url:
            return False
        try:
            url = callback_url(message, update)
        except (ValueError, TypeError):
            log.warning("message %s has an unusable dlr_url %r", message.id, message.dlr_url)
            return False
        now = time.time()
        keep = self._sending and self.in_memory < self.config.max_in_memory
        if keep:
            self.in_memory += 1
        callback = PendingCallback(message.id, url, update.status, created_at=now,
                                   next_attempt_at=now, holder=self.node if keep else "")
        self.journal.add(callback).add_done_callback(
            lambda future: self._recorded(future, callback, keep, then))
        return True

    def _recorded(self, future: "asyncio.Future[int]", callback: PendingCallback, keep: bool,
                  then: Callable[[], None] | None) -> None:
        if then is not None:
            then()  # the status goes to the writer only now
        if future.cancelled() or future.exception() is not None:
            self.unstored += 1
            if not keep:
                log.error("callback %s for message %s lost: not stored, no room in memory",
                          callback.status, callback.message_id)
                return
        else:
            callback.id = future.result()
        if keep and self._sending:  # (stopped meanwhile: the row waits for the next start)
            self._queue.put_nowait(callback)

    # -- sending -----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            callback = await self._queue.get()
            if callback.attempts == 0 and self._committed is not None:
                with contextlib.suppress(Exception):  # a failed commit is logged there
                    await self._committed()
            outcome = await self._attempt(callback)
            self.in_memory -= 1
            callback.attempts += 1
            if outcome == DELIVERED:
                self.delivered += 1
            elif outcome == REFUSED:
                self.refused += 1
            else:
                self._reschedule(callback)
                continue
            if callback.id:
                self.journal.done(callback.id)

    async def _attempt(self, callback: PendingCallback) -> str:
        """DELIVERED, RETRY or REFUSED (the target may never be called)."""
        assert self._session is not None
        try:
            answer = await outbound_http.get(self._session, callback.url,
                                             self.config.max_answer)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if outbound_http.is_refused(exc):
                log.warning("callback %s for message %s not sent: %s", callback.status,
                            callback.message_id, exc)
                return REFUSED
            log.info("callback for message %s failed: %r", callback.message_id, exc)
            return RETRY
        if answer.status >= 500 or answer.status in RETRY_STATUSES:
            log.info("callback for message %s: HTTP %s", callback.message_id, answer.status)
            return RETRY
        return DELIVERED

    def _reschedule(self, callback: PendingCallback) -> None:
        backoff = self.config.backoff
        at = time.time() + backoff[min(callback.attempts - 1, len(backoff) - 1)]
        if at - callback.created_at > self.config.max_age:
            self._give_up(callback)
            return
        self.retried += 1
        if callback.id:
            self.journal.retry(callback.id, callback.attempts, at)
        else:  # its row could not be written when recorded: try again now
            callback.next_attempt_at, callback.holder = at, ""
            self.journal.add(callback).add_done_callback(
                lambda future: self._stored_late(future, callback))

    def _stored_late(self, future: "asyncio.Future[int]", callback: PendingCallback) -> None:
        if future.cancelled() or future.exception() is not None:
            log.error("callback %s for message %s lost: it could not be stored",
                      callback.status, callback.message_id)

    def _give_up(self, callback: PendingCallback) -> None:
        self.failed += 1
        log.warning("callback %s for message %s given up after %d attempts",
                    callback.status, callback.message_id, callback.attempts)
        if callback.id:
            self.journal.done(callback.id)

    # -- claiming what waits in the store ----------------------------------------------

    async def _poll(self) -> None:
        while True:
            try:
                await self._claim_due()
            except Exception:  # the store may be back at the next look
                log.exception("loading delivery report callbacks failed")
            await asyncio.sleep(self.config.poll)

    async def _claim_due(self) -> None:
        """Take due rows into memory, a page at a time, while there is room."""
        while self._sending:
            room = min(self.config.page, self.config.max_in_memory - self.in_memory)
            if room <= 0:
                return
            now = time.time()
            claimed = await self.journal.store.claim_callbacks(self.node, now, room)
            self._take(claimed, now)
            if len(claimed) < room:
                return

    def _take(self, claimed: Sequence[PendingCallback], now: float) -> None:
        for callback in claimed:
            if now - callback.created_at > self.config.max_age:
                self._give_up(callback)  # e.g. the gateway was down longer than that
            elif self._sending:
                self.in_memory += 1
                self._queue.put_nowait(callback)
            # else: stopped during the claim; the rows are released at the next start
