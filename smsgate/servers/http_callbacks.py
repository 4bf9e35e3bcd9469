"""Delivery reports over HTTP: a GET to the customer's `dlrurl` on every status change.

A dispatcher listener turns each status change (ACCEPTD, and the final one: DELIVRD,
UNDELIV, EXPIRED, REJECTD, DELETED, UNKNOWN) of a message submitted with a `dlrurl` into
a callback: GET <dlrurl>?status=DELIVRD&id=<message id>&ref=<ref>&time=<ISO 8601 UTC>
&error=<code> (the customer's own query parameters are kept). The 'sent upstream' step
is no status change (the message stays ATES), so it makes no callback.

Callbacks never block the submit path: the listener only queues them. A fixed number of
workers send them over one aiohttp ClientSession. A callback that fails (connection
refused, timeout, HTTP 5xx, 408 or 429) is retried with backoff until `max_age`; the
other answers (2xx-4xx) end it. Pending callbacks are kept in memory, at most
`max_pending` (the newest are dropped, and logged, beyond that), and are lost if the
process stops: the status stays queryable through /websmpp/websmsstatus.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from ..core.models import Message, StatusUpdate

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})


@dataclass
class CallbackConfig:
    workers: int = 32  # requests in flight at once
    max_pending: int = 100_000  # queued + waiting for a retry
    timeout: float = 10.0  # seconds per attempt
    backoff: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0)  # then every 900 s
    max_age: float = 24 * 3600.0  # give up on a callback this long after its status


@dataclass(slots=True)
class Callback:
    url: str
    message_id: int
    created: float  # time.monotonic() when queued
    attempts: int = 0


def callback_url(message: Message, update: StatusUpdate) -> str:
    """The customer's URL with our parameters added after its own."""
    at = datetime.fromtimestamp(update.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ours = urlencode({"status": update.status, "id": message.id, "ref": message.ref,
                      "time": at, "error": update.error_code})
    url = urlsplit(message.dlr_url)
    query = f"{url.query}&{ours}" if url.query else ours
    return urlunsplit(url._replace(query=query, fragment=""))


class DlrCallbacks:
    def __init__(self, config: CallbackConfig | None = None,
                 committed: Callable[[], Awaitable[None]] | None = None) -> None:
        self.config = config or CallbackConfig()
        # Awaited before a first attempt, so that a customer who queries the status on
        # hearing the callback sees the new status (the writer has committed it).
        self._committed = committed
        self._queue: asyncio.Queue[Callback] = asyncio.Queue()
        self._retries: set[asyncio.TimerHandle] = set()
        self._workers: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None
        self.pending = 0  # queued, in flight or waiting for a retry
        self.delivered = 0
        self.failed = 0  # given up after max_age
        self.dropped = 0  # refused because max_pending were waiting

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.workers)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            headers={"User-Agent": "smsgate-dlr/1"})
        self._workers = [asyncio.create_task(self._work(), name=f"dlr-callback-{i}")
                         for i in range(self.config.workers)]

    async def stop(self) -> None:
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.pending:
            log.warning("%d delivery report callbacks were not sent before stop", self.pending)

    # -- dispatcher listener -----------------------------------------------------------

    def on_status(self, message: Message, update: StatusUpdate) -> None:
        if not message.dlr_url or self._session is None:
            return
        if self.pending >= self.config.max_pending:
            self.dropped += 1
            log.warning("callback queue full: dropped %s for message %s", update.status,
                        message.id)
            return
        try:
            url = callback_url(message, update)
        except (ValueError, TypeError):
            log.warning("message %s has an unusable dlr_url %r", message.id, message.dlr_url)
            return
        self.pending += 1
        self._queue.put_nowait(Callback(url, message.id, time.monotonic()))

    # -- sending -----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            callback = await self._queue.get()
            if callback.attempts == 0 and self._committed is not None:
                with contextlib.suppress(Exception):  # a failed commit is logged there
                    await self._committed()
            callback.attempts += 1
            if await self._attempt(callback):
                self.pending -= 1
                self.delivered += 1
            else:
                self._retry_later(callback)

    async def _attempt(self, callback: Callback) -> bool:
        assert self._session is not None
        try:
            async with self._session.get(callback.url) as response:
                await response.read()
                ok = response.status < 500 and response.status not in RETRY_STATUSES
                if not ok:
                    log.info("callback for message %s: HTTP %s", callback.message_id,
                             response.status)
                return ok
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.info("callback for message %s failed: %r", callback.message_id, exc)
            return False

    def _retry_later(self, callback: Callback) -> None:
        backoff = self.config.backoff
        delay = backoff[min(callback.attempts - 1, len(backoff) - 1)]
        if time.monotonic() + delay - callback.created > self.config.max_age:
            self.pending -= 1
            self.failed += 1
            log.warning("callback for message %s given up after %d attempts",
                        callback.message_id, callback.attempts)
            return
        handle: asyncio.TimerHandle | None = None

        def requeue() -> None:
            self._retries.discard(handle)  # type: ignore[arg-type]
            self._queue.put_nowait(callback)

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._retries.add(handle)
