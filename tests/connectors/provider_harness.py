"""A real HTTP provider for the HTTP connector's tests: an aiohttp.web server on an
ephemeral loopback port that records every request and answers as the test says, and
the core's side of a connector (`RecordingEvents`: what it reported, awaitable).

Test modules import it by name (`from provider_harness import Provider`).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from smsgate.core.models import Message, UpstreamFailure
from smsgate.text import gsm7

Answer = Callable[["Seen"], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """One request as the provider received it."""

    method: str
    path: str
    raw_query: str
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]
    at: float  # time.monotonic() of its arrival
    request: web.Request


async def answer_ok(seen: Seen) -> web.StreamResponse:
    return web.Response(text="OK")


class Provider:
    """The provider: `answer` decides each response (default 200 "OK")."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.answer: Answer = answer_ok
        self.in_flight = 0
        self.max_in_flight = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path, request.rel_url.raw_query_string,
                    dict(request.query), await request.read(), dict(request.headers),
                    time.monotonic(), request)
        self.requests.append(seen)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.answer(seen)
        finally:
            self.in_flight -= 1


class RecordingEvents:
    """ConnectorEvents (core/ports.py) as the core would get them; each message may be
    reported once only."""

    def __init__(self) -> None:
        self.ids: dict[int, tuple[str, ...]] = {}  # message id -> upstream ids (sent)
        self.failures: dict[int, UpstreamFailure] = {}  # message id -> why (failed)
        self.order: list[int] = []  # message ids as reported
        self._changed = asyncio.Event()

    def sent(self, message: Message, upstream_ids) -> None:
        self._record(message)
        self.ids[message.id] = tuple(upstream_ids)

    def failed(self, message: Message, failure: UpstreamFailure) -> None:
        self._record(message)
        self.failures[message.id] = failure

    def status(self, message, update) -> None:
        raise AssertionError("the HTTP connector reports no status of its own")

    def report(self, report, done) -> None:
        raise AssertionError("its reports come through the DLR endpoint")

    def inbound(self, message, done) -> None:
        raise AssertionError("no MO over HTTP")

    def _record(self, message: Message) -> None:
        assert message.id not in self.order, f"message {message.id} reported twice"
        self.order.append(message.id)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 10.0) -> None:
        """Until `count` messages have been reported."""
        async with asyncio.timeout(timeout):
            while len(self.order) < count:
                self._changed.clear()
                await self._changed.wait()


def message(message_id: int, text: str = "hello", **fields) -> Message:
    """A GSM-7 message as the submit pipeline stores it."""
    base = {"account_id": 1, "source_addr": "Test", "dest_addr": "96170123456",
            "payload": gsm7.encode(text), "data_coding": 0}
    base.update(fields)
    return Message(id=message_id, **base)
