"""The HTTP port's connections (SPEC §11; issue 8, item 1): caps, and a deadline at each
step, so that no client holds a connection, a task or memory for long by being slow.

aiohttp builds one `RequestHandler` (the asyncio Protocol of one connection) per
connection through its `web.Server`. `GuardedRequestHandler` adds what aiohttp lacks,
and `GuardedAppRunner` makes aiohttp's runner build those. A connection's steps:

- connect: caps per source IP and in all. `connection_made` aborts a refused one at
  once: no task, no read, no answer.
- waiting for a request: `keepalive_timeout` from the connect or the previous response
  until a complete head (aiohttp's keep-alive timer; partial data does not extend it).
- the request head: `header_timeout` from its first byte (the head timer here); the
  line, field and header count limits of aiohttp's parser.
- the body: `max_body` (Content-Length checked before reading) and `body_timeout`, in
  http_api.py where bodies are read.
- the response: `write_timeout` while the client takes nothing of it (`pause_writing`
  here: the transport's buffer is full).
- the close: `write_timeout` for what is left in the buffer (the close watchdog here).

A dropped connection is reset (sockets.reset: an RST, buffers freed) rather than
closed: `close()` waits for the write buffer to drain, and a plain abort leaves the
kernel's queue and FIN behind it, which a client that does not read never lets go.
The timers cost nothing per request on a keep-alive connection: the head timer
is armed only when a head arrives in pieces, the write timer only when the transport
says its buffer is full.

Why a subclass rather than another server: aiohttp already has the parser limits, the
keep-alive timer and flow control; what it lacks fits in a few hooks of its Protocol.
They touch aiohttp internals (`_request_count`, `_messages`, `_request_in_progress`,
`AppRunner._make_server`), which is why aiohttp is pinned exactly and every behaviour
here has a test over real sockets (tests/servers/test_http_connections.py): an upgrade
that changes them fails there, loudly.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from ..core.errors import Err
from .connection_limits import ConnectionLimiter
from .sockets import reset

log = logging.getLogger(__name__)

# How long aiohttp reads (and drops) an unread request body after answering, so that
# the client sees the answer before the close (a close with unread data sends RST).
LINGER_SECONDS = 2.0


@dataclass
class ConnectionGuard:
    """What all connections of the port share: caps, deadlines, counters for metrics."""

    limiter: ConnectionLimiter
    header_timeout: float
    write_timeout: float
    timed_out: int = 0  # connections dropped for a missed deadline
    malformed: int = 0  # requests aiohttp's parser refused (400)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol with caps and deadlines (module docstring)."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._peer_ip: str | None = None  # set once admitted
        self._last_body: StreamReader | None = None  # of the last request head parsed
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None

    # -- connect and lose ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        ip = peer[0] if peer else ""
        if not self._guard.limiter.admit(ip):
            log.debug("http %s: connection refused by the caps", ip)
            reset(transport)
            return
        self._peer_ip = ip
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._peer_ip is None:  # refused in connection_made: aiohttp never saw it
            return
        self._guard.limiter.release(self._peer_ip)
        self._peer_ip = None
        for timer in (self._head_timer, self._write_timer, self._abort_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._write_timer = self._abort_timer = None
        super().connection_lost(exc)

    # -- request head ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # one or more heads are complete
            self._stop_head_timer()
            if self._messages:
                self._last_body = self._messages[-1][1]
        elif data and self._head_timer is None and self._awaiting_head():
            self._head_timer = self._loop.call_later(self._guard.header_timeout,
                                                     self._head_deadline)

    def _awaiting_head(self) -> bool:
        """Whether new bytes start a head (rather than continue a body)."""
        return self._last_body is None or self._last_body.is_eof()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self._request_in_progress or self._messages:
            # a pipelined head behind a request being answered: its time starts later
            self._head_timer = self._loop.call_later(self._guard.header_timeout,
                                                     self._head_deadline)
            return
        self._drop("request head not complete within %.0f s", self._guard.header_timeout)

    # -- response and close ----------------------------------------------------------

    def pause_writing(self) -> None:
        """The transport's buffer is full: the client has stopped reading."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self._loop.call_later(self._guard.write_timeout,
                                                      self._write_deadline)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_deadline(self) -> None:
        self._write_timer = None
        self._drop("client read nothing for %.0f s", self._guard.write_timeout)

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        if not resp.keep_alive:  # aiohttp closes the connection next
            self._abort_if_not_gone()
        return result

    def close(self) -> None:
        super().close()
        self._abort_if_not_gone()

    def force_close(self) -> None:
        transport = self.transport
        super().force_close()  # transport.close(): waits for the write buffer to drain
        self._abort_if_not_gone(transport)

    def _abort_if_not_gone(self, transport: asyncio.Transport | None = None) -> None:
        """Bound the time a closing connection may take to flush what it has left."""
        transport = transport or self.transport
        if transport is not None and self._abort_timer is None and self._peer_ip is not None:
            # cancelled by connection_lost: when it fires, the socket is still this one
            self._abort_timer = self._loop.call_later(self._guard.write_timeout,
                                                      partial(reset, transport, not_lost=True))

    def _drop(self, reason: str, *args: Any) -> None:
        self._guard.timed_out += 1
        log.debug("http %s: dropped, " + reason, self._peer_ip, *args)
        if self.transport is not None:
            reset(self.transport)

    # -- malformed requests ----------------------------------------------------------

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request aiohttp's parser refused (400: bad syntax, line or headers too
        long) gets the HTTP16 line, and one debug line in the log: no traceback per
        malformed request, no echo of a request line that may hold a password."""
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        self._guard.malformed += 1
        log.debug("http %s: malformed request: %s", self._peer_ip, exc)
        response = web.Response(status=status, text=Err.BAD_REQUEST.http_line,
                                content_type="text/plain", charset="utf-8")
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's Server, building a GuardedRequestHandler per connection."""

    def __init__(self, handler: Any, *, make_handler: Callable[[web.Server], RequestHandler],
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._make_handler = make_handler

    def __call__(self) -> RequestHandler:
        return self._make_handler(self)


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose server's connections are GuardedRequestHandlers.

    `handler_options` are RequestHandler's keyword arguments (keepalive_timeout,
    max_line_size, ...)."""

    def __init__(self, app: web.Application, guard: ConnectionGuard,
                 handler_options: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._guard = guard
        self._handler_options = handler_options

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts and freezes the application
        loop = asyncio.get_running_loop()

        def make_handler(server: web.Server) -> RequestHandler:
            return GuardedRequestHandler(server, loop=loop, guard=self._guard,
                                         **self._handler_options)

        return GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                             handler_cancellation=plain.handler_cancellation, loop=loop,
                             make_handler=make_handler)
