"""HTTP callbacks to customers' URLs: a GET to a message's `dlrurl` on every status
change, and to a number's `--mo-url` for every MO. One outbox for both: same table,
same retries, same SSRF guard. The URLs and their parameters: core/callback_urls.py.

Every status change (ACCEPTD, and the final one: DELIVRD, UNDELIV, EXPIRED, REJECTD,
DELETED, UNKNOWN) of a message submitted with a `dlrurl` makes a callback. The 'sent
upstream' step is no status change (the message stays ATES), so it makes no callback.
An MO to a number with an mo-url makes one (a concatenated MO one, once joined:
core/inbound.py).

Durable, at least once. A callback is a row of the store's `dlr_callbacks` table (an
outbox) written in the same transaction as what it reports: the dispatcher hands the
status to `record` (core/statuses.py, "recorder"), which queues the row with the one
group-commit writer in the same loop turn as the status, so both ride in one commit
(core/ports.py Writer); an MO's row is queued with the MO (`add`). So whenever the
process dies (kill -9 included), a stored status or MO has its callback stored, and a
callback is stored only with what it reports. After a restart it is sent, with the
retries and backoff it had left. A row is deleted only once the customer's server has
answered (or after `max_age`), so a crash between that answer and the delete's commit
sends the callback again: at least once, duplicates possible. A DELETED made by
cancel_sm is stored by the cancel itself, its callback in the next commit: a crash
between those two loses that one callback. Customers order the callbacks of a message
by `time`; the final status wins. A commit that fails stores neither the status nor its
callback: the callback is dropped (counted in `unstored`) with its status, which its
upstream reports again.

A callback is sent only after its commit returned: a customer who queries the status on
hearing of it finds it stored. Memory holds at most `max_in_memory` callbacks (queued or
in flight). A row held in a node's memory carries that node's name (`holder`); the
others wait in the store, and are claimed in pages of `page` (due first) whenever there
is room, every `poll` seconds. A failed attempt (connection refused, timeout, HTTP 5xx,
408 or 429) stores the next attempt's time and gives the row back to the store, which
keeps memory bounded however long a customer's server is down; the other answers
(2xx-4xx) end the callback. At start a node first takes back what its previous run held.

Requests go out through servers/outbound_http.py (SPEC §11): a target that is not a
public address is refused where we connect, after DNS resolution, unless
`allow_private`; such a callback is a permanent failure (deleted, logged, counted in
`refused`), not retried. Redirects are not followed (a 3xx answer ends the callback like
any other) and at most `max_answer` bytes of an answer are read.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import aiohttp

from ..core.callback_urls import dlr_url
from ..core.models import Message, PendingCallback, StatusUpdate
from ..core.ports import Store, Writer
from ..core.tasks import cancel_and_wait
from . import outbound_http

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})
DELIVERED, RETRY, REFUSED = "delivered", "retry", "refused"  # an attempt's outcome
COMMIT_RETRY_SECONDS = 1.0  # after a failed delete or reschedule
callback_url = dlr_url  # the dlrurl of one status change


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


class HttpCallbacks:
    """Records, stores and sends the callbacks (core/ports.py CallbackOutbox); `attach`
    gives it the store, the writer and the node's name first."""

    def __init__(self, config: CallbackConfig | None = None) -> None:
        self.config = config or CallbackConfig()
        self.node = ""
        self._store: Store | None = None
        self._writer: Writer | None = None
        self._queue: asyncio.Queue[PendingCallback] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None
        self._sending = False
        self.in_memory = 0  # queued or in flight here
        self.delivered = 0
        self.retried = 0  # failed attempts, rescheduled
        self.failed = 0  # given up after max_age
        self.refused = 0  # the target is not a public address: not sent, not retried
        self.unstored = 0  # their commit failed (and so did what they report)

    def attach(self, store: Store, writer: Writer, node: str) -> None:
        """The store that keeps the callbacks, the writer that writes them, and this
        node's name in the store."""
        self._store, self._writer, self.node = store, writer, node

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("HttpCallbacks.attach(store, writer, node) first")
        return self._store

    @property
    def writer(self) -> Writer:
        if self._writer is None:
            raise RuntimeError("HttpCallbacks.attach(store, writer, node) first")
        return self._writer

    async def start(self) -> None:
        await self.store.release_callbacks(self.node)  # what the previous run held
        self._session = outbound_http.client_session(
            allow_private=self.config.allow_private, timeout=self.config.timeout,
            connections=self.config.workers, user_agent="smsgate-callbacks/1")
        self._sending = True
        self._tasks = [asyncio.create_task(self._work(), name=f"http-callback-{i}")
                       for i in range(self.config.workers)]
        self._tasks.append(asyncio.create_task(self._poll(), name="http-callback-poll"))

    async def stop(self) -> None:
        """Stop sending. Callbacks still recorded from now on are stored for the next
        run (the writer commits them before the store closes); so are the callbacks
        that were in memory (this node holds their rows)."""
        self._sending = False
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.in_memory:
            log.info("%d HTTP callbacks stay stored for the next start", self.in_memory)
        self.in_memory = 0
        self._queue = asyncio.Queue()

    async def flush(self) -> None:
        """Wait until the rows recorded so far are committed."""
        await self.writer.flush()

    # -- recording -----------------------------------------------------------------------

    def record(self, message: Message, update: StatusUpdate) -> None:
        """The dispatcher's recorder: the status's callback, if the message has a
        dlrurl, queued with the writer now (core/statuses.py: in the status's commit)."""
        if not message.dlr_url:
            return
        try:
            url = dlr_url(message, update)
        except (ValueError, TypeError):
            log.warning("message %s has an unusable dlr_url %r", message.id, message.dlr_url)
            return
        self.add(message.id, url, update.status)

    def add(self, owner_id: int, url: str, kind: str) -> None:
        """Queue a callback's row with the writer now, so that it is stored in the same
        commit as what the caller queued in this loop turn; sent once committed."""
        now = time.time()
        keep = self._sending and self.in_memory < self.config.max_in_memory
        if keep:
            self.in_memory += 1
        callback = PendingCallback(owner_id, url, kind, created_at=now,
                                   next_attempt_at=now, holder=self.node if keep else "")
        self.writer.add_callback(callback).add_done_callback(
            lambda future: self._stored(future, callback, keep))

    def _stored(self, future: "asyncio.Future[int]", callback: PendingCallback,
                keep: bool) -> None:
        if future.cancelled() or future.exception() is not None:
            self.unstored += 1
            log.error("callback %s for %s not stored, nor what it reports",
                      callback.status, callback.message_id)
            if keep and self._sending:
                self.in_memory -= 1
            return
        callback.id = future.result()
        if keep and self._sending:  # (stopped meanwhile: the row waits for the next start)
            self._queue.put_nowait(callback)

    # -- sending -----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            callback = await self._queue.get()
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
            self._settle(callback, partial(self.writer.done_callback, callback.id,
                                           outcome == DELIVERED))

    async def _attempt(self, callback: PendingCallback) -> str:
        """DELIVERED, RETRY or REFUSED (the target may never be called)."""
        assert self._session is not None
        try:
            answer = await outbound_http.get(self._session, callback.url,
                                             self.config.max_answer)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if outbound_http.is_refused(exc):
                log.warning("callback %s for %s not sent: %s", callback.status,
                            callback.message_id, exc)
                return REFUSED
            log.info("callback %s for %s failed: %r", callback.status, callback.message_id,
                     exc)
            return RETRY
        if answer.status >= 500 or answer.status in RETRY_STATUSES:
            log.info("callback %s for %s: HTTP %s", callback.status, callback.message_id,
                     answer.status)
            return RETRY
        return DELIVERED

    def _reschedule(self, callback: PendingCallback) -> None:
        backoff = self.config.backoff
        at = time.time() + backoff[min(callback.attempts - 1, len(backoff) - 1)]
        if at - callback.created_at > self.config.max_age:
            self._give_up(callback)
            return
        self.retried += 1
        self._settle(callback, partial(self.writer.retry_callback, callback.id,
                                       callback.attempts, at))

    def _give_up(self, callback: PendingCallback) -> None:
        self.failed += 1
        log.warning("callback %s for %s given up after %d attempts",
                    callback.status, callback.message_id, callback.attempts)
        self._settle(callback, partial(self.writer.done_callback, callback.id, False))

    def _settle(self, callback: PendingCallback,
                write: Callable[[], "asyncio.Future[None]"]) -> None:
        """Write a delete or a reschedule; if its commit fails, write it again a little
        later (both are idempotent): else the row would stay held by this node, and
        wait for the node's next start."""
        def written(future: "asyncio.Future[None]") -> None:
            if (future.cancelled() or future.exception() is not None) and self._sending:
                asyncio.get_running_loop().call_later(
                    COMMIT_RETRY_SECONDS, self._settle, callback, write)
        write().add_done_callback(written)

    # -- claiming what waits in the store ----------------------------------------------

    async def _poll(self) -> None:
        while True:
            try:
                await self._claim_due()
            except Exception:  # the store may be back at the next look
                log.exception("loading HTTP callbacks failed")
            await asyncio.sleep(self.config.poll)

    async def _claim_due(self) -> None:
        """Take due rows into memory, a page at a time, while there is room."""
        while self._sending:
            room = min(self.config.page, self.config.max_in_memory - self.in_memory)
            if room <= 0:
                return
            now = time.time()
            claimed = await self.store.claim_callbacks(self.node, now, room)
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
