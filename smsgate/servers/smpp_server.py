"""The SMPP 3.4 server: a thin asyncio adapter around `smpp.Session` and the core.

One `SmppConnection` per TCP connection. Bytes go into the session with the loop's
time; the PDUs it accepts are turned into core calls (message operations live in
smpp_messages.py); everything the session queues goes out in one socket write per
event-loop turn (one per read when a turn reads more than once). submit_sm is
answered from the group-commit callback, i.e. only once the message is durably stored
and charged. The protocol's timers are the session's:
this adapter only wakes it when `next_deadline()` says, and drops the connection when
an expired timer says so.

Limits (SPEC §11): connection caps per IP and in all (both ports share them), refused
in `connection_made` with an abort; reading pauses while the peer does not take our
writes, and a write buffer past `max_write_buffer` aborts; every timeout aborts (a
`close()` would wait for a flush a peer that does not read never allows).
"""

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field

from ..core.accounts import refusal_after_login
from ..core.binds import RX, TRX, TX
from ..core.errors import Err, GatewayError
from ..core.gateway import Gateway
from ..core.models import Account
from ..smpp.codec import Codec
from ..smpp.constants import INTERFACE_VERSION_34, CommandId, Status, Tag
from ..smpp.pdu import Pdu
from ..smpp.session import MESSAGE_ID_REQUESTS, LocalProtocolError, Role, Session, State
from ..smpp.timers import RequestTimedOut, SessionConfig
from .connection_limits import ConnectionCaps, ConnectionLimiter
from .log_budget import LogBudget
from .log_format import SessionLog
from .smpp_messages import MessageHandlers
from .sockets import reset, set_option

log = logging.getLogger(__name__)

BIND_KINDS = {
    CommandId.bind_transmitter: TX,
    CommandId.bind_receiver: RX,
    CommandId.bind_transceiver: TRX,
}
BACKOFF_ERRORS = frozenset({Err.LOGIN_BACKOFF, Err.LOGIN_BACKOFF_UNKNOWN})


@dataclass
class SmppServerConfig:
    system_id: str = "smsgate"
    max_pdu_size: int = 64 * 1024
    password_max: int = 64  # 3.4 says 8; many operators issue longer ones (SPEC §2)
    window: int = 10  # our outstanding deliver_sm per session
    max_pending: int = 1000  # customer's unanswered requests before ESME_RMSGQFUL
    bind_timeout: float = 30.0
    enquire_link_interval: float = 30.0
    inactivity_timeout: float = 300.0
    response_timeout: float = 30.0
    tls_handshake_timeout: float = 10.0  # TLS port: seconds to finish the handshake
    # -- abuse limits (SPEC §11; docs/operations.md) --
    max_pdus_before_bind: int = 10  # then the connection is closed; 0 = no limit
    max_protocol_errors: int = 100  # per session, then closed; 0 = no limit
    log_errors_per_minute: int = 5  # protocol-error lines per session; the rest counted
    write_high_water: int = 64 * 1024  # buffered for the peer: stop reading from it
    max_write_buffer: int = 1024 * 1024  # buffered for the peer: abort the connection
    # SO_SNDBUF of each connection (0: the kernel's autotuning, up to tcp_wmem's max,
    # 4 MiB by default). Capped, a peer that does not read fills it soon, so that
    # write_high_water pauses our reading of it, and the kernel holds at most this
    # (Linux doubles it for its bookkeeping) per connection.
    socket_send_buffer: int = 128 * 1024
    receipt_backlog: int = 1000  # receipts waiting for a window slot, per session
    login_backoff_delay: float = 1.0  # bind refused by the failed-login back-off: answer after
    caps: ConnectionCaps = field(default_factory=ConnectionCaps)  # both SMPP ports

    def session_config(self) -> SessionConfig:
        return SessionConfig(
            window=self.window, max_pending_in=self.max_pending,
            bind_timeout=self.bind_timeout, enquire_link_interval=self.enquire_link_interval,
            inactivity_timeout=self.inactivity_timeout,
            response_timeout=self.response_timeout,
            max_pdus_before_bind=self.max_pdus_before_bind,
            max_protocol_errors=self.max_protocol_errors)


class SmppServer:
    def __init__(self, gateway: Gateway, config: SmppServerConfig | None = None) -> None:
        self.gateway = gateway
        self.config = config or SmppServerConfig()
        self.limiter = ConnectionLimiter(self.config.caps)
        self.connections: set[SmppConnection] = set()
        self._servers: list[asyncio.Server] = []
        self.address: tuple[str, int] = ("", 0)
        self.tls_address: tuple[str, int] | None = None
        gateway.accounts.on_reload(self.recheck_accounts)

    async def start(self, host: str, port: int,
                    sock: socket.socket | None = None) -> tuple[str, int]:
        """Listen on host:port, or on `sock`, a listening socket that `serve --workers`
        shares between its worker processes."""
        self.address = await self._listen(host, port, sock)
        return self.address

    async def start_tls(self, context: ssl.SSLContext, host: str, port: int,
                        sock: socket.socket | None = None) -> tuple[str, int]:
        """Also listen on `port` with TLS: the same sessions, limits and accounts. The
        transport does the handshake (in memory, never blocking the loop) before
        `connection_made`; a peer that fails it or stays silent past
        `tls_handshake_timeout` is dropped there and never becomes a session."""
        self.tls_address = await self._listen(
            host, port, sock, ssl=context,
            ssl_handshake_timeout=self.config.tls_handshake_timeout)
        return self.tls_address

    async def _listen(self, host: str, port: int, sock: socket.socket | None,
                      **tls) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        where = {"sock": sock} if sock is not None else {
            "host": host, "port": port, "reuse_address": True, "backlog": 1024}
        server = await loop.create_server(lambda: SmppConnection(self), **where, **tls)
        self._servers.append(server)
        return server.sockets[0].getsockname()[:2]

    def recheck_accounts(self) -> None:
        """After the account directory reloads: unbind the sessions whose account no
        longer allows them (IP allow-list, SMPP access, disabled, expired, removed)."""
        accounts = self.gateway.accounts
        for connection in list(self.connections):
            account = connection.account
            if account is None:
                continue
            reason = refusal_after_login(accounts.by_id(account.id), connection.peer_ip, "smpp")
            if reason:
                connection.revoke(reason)

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening, unbind every session, wait briefly for unbind_resp."""
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.unbind()
        deadline = asyncio.get_running_loop().time() + grace
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.abort()


class SmppConnection(MessageHandlers, asyncio.Protocol):
    def __init__(self, server: SmppServer) -> None:
        self.server = server
        self.gw = server.gateway
        self.cfg = cfg = server.config
        self._loop = asyncio.get_running_loop()
        codec = Codec(cfg.max_pdu_size, field_limits={"password": cfg.password_max + 1})
        self.session = Session(Role.SMSC, codec, cfg.session_config(), self._loop.time())
        self.account: Account | None = None
        self.bind_kind = ""
        self.peer = self.peer_ip = ""
        self.transport: asyncio.Transport | None = None
        self._admitted = False  # counted by the server's limiter (released exactly once)
        self._flush_scheduled = False
        self._writing_paused = False
        self._receipts = {}
        self._receipt_backlog = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._log_budget = LogBudget(cfg.log_errors_per_minute)
        self._unbind_request: Pdu | None = None  # the peer's unbind, owed answers first
        self._close_when_answered = False  # our unbind is answered: close after the rest
        self._tasks: set[asyncio.Task] = set()
        self.log = SessionLog(log, self)  # each line names the session and its account

    # -- transport events --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer_ip = str(peer[0]) if peer else "?"
        if not self.server.limiter.admit(self.peer_ip):
            transport.abort()  # over a cap: no task, no read, no answer
            return
        self._admitted = True
        self.transport = transport  # type: ignore[assignment]
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.server.connections.add(self)
        if self.cfg.socket_send_buffer:
            set_option(transport, socket.SO_SNDBUF, self.cfg.socket_send_buffer)
        self.transport.set_write_buffer_limits(high=self.cfg.write_high_water)
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        session = self.session
        submits: list[Pdu] = []  # a run of submit_sm / data_sm, checked and stored together
        for pdu in session.receive_data(data, self._loop.time()):
            # submit_sm and data_sm: checked and stored by MessageHandlers._on_submits
            if pdu.command_id in MESSAGE_ID_REQUESTS:
                submits.append(pdu)
                continue
            if submits:
                self._on_submits(submits)
                submits = []
            handler = _HANDLERS.get(pdu.command_id)
            if handler is not None:
                try:
                    handler(self, pdu)
                except Exception:  # one PDU's failure must not cost the others' answers
                    self._handler_failed(pdu)
        if submits:
            self._on_submits(submits)
        if session.rejected:
            self._log_rejected()
        if session.closing:
            if session.close_reason:
                self.log.info("smpp %s %s: closing: %s", self.peer, self._who(),
                              session.close_reason)
            elif session.pending_in:  # the peer answered our unbind: owed answers first
                self._close_when_answered = True
                return
            self.close()
        elif session.has_data_to_send:
            if self._flush_scheduled:
                # A second read in one loop turn (libuv reads up to 32 x 250 KB before
                # the loop's next turn): write now, so that a peer that does not read
                # pauses our reading (pause_writing) instead of its answers piling up.
                self._flush()
            else:
                self._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self.server.limiter.release(self.peer_ip)
        self.server.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self.session.close()
        if self.account is not None:
            self.gw.binds.release(self.account.id, self)
            if self.bind_kind in (RX, TRX):
                self.gw.receipts.unregister(self.account.id, self)
            self.log.info("smpp %s %s unbound", self.peer, self._who())
        self._fail_receipts()
        if suppressed := self._log_budget.take_suppressed():
            self.log.info("smpp %s %s: %d more errors not logged", self.peer, self._who(),
                          suppressed)

    def pause_writing(self) -> None:
        """The peer is not reading what we write: stop reading what it sends, so that
        its requests cannot pile answers up here."""
        self._writing_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._send_receipt_backlog()
            self._schedule_flush()

    # -- writing -----------------------------------------------------------------------

    def _respond(self, request: Pdu, status: int, **fields: object) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.session.send(request.response(status, **fields))
        self._answered()

    def _respond_message_ids(self, requests: list[Pdu], message_ids: list[str]) -> None:
        """ESME_ROK with its message_id to each of `requests` (submit_sm, data_sm)."""
        if self.transport is None or self.transport.is_closing():
            return
        self.session.send_message_ids(requests, message_ids)
        self._answered()

    def _answered(self) -> None:
        """After answers: the peer's unbind is answered once it is the last request
        owed one; a close waiting for every answer happens now; else they go out."""
        if self._unbind_request is not None and self.session.pending_in == 1:
            self._answer_unbind()
        elif self._close_when_answered and not self.session.pending_in:
            self.close()
            return
        self._schedule_flush()

    def _after_request(self) -> None:
        """We sent a request: it goes out this turn, and its deadline may be the next.
        A timer due before that deadline stands (it re-arms when it fires): one
        comparison per receipt instead of recomputing the session's next deadline."""
        self._schedule_flush()
        if self._timer is None or \
                self._timer_at > self._loop.time() + self.session.config.response_timeout:
            self._arm_timer()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.session.data_to_send()
        transport = self.transport
        if not data or transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.cfg.max_write_buffer:
            self.log.info("smpp %s %s: over %d bytes unread by the peer, aborting", self.peer,
                          self._who(), self.cfg.max_write_buffer)
            self.abort()

    def close(self) -> None:
        """Flush, then close; abort when the peer is not taking what we wrote, since a
        close would wait for a flush that may never come."""
        self._flush()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():
            self.abort()
        else:
            transport.close()

    def abort(self) -> None:
        """Drop the connection now, with an RST (sockets.reset says why)."""
        if self.transport is not None:
            reset(self.transport)

    def unbind(self, take_crossing: bool = True) -> None:
        """End the session gracefully: unbind, or close when not bound. An unbind left
        unanswered is the session's timer to end (abort)."""
        if self.session.unbind(self._now(), take_crossing):
            self._after_request()
        else:
            self.close()

    def revoke(self, reason: str) -> None:
        """The account no longer allows this session (changed while bound)."""
        if self.session.bound:
            self.log.info("smpp %s %s: %s, unbinding", self.peer, self._who(), reason)
            self.unbind(take_crossing=False)

    def _now(self) -> float:
        return self._loop.time()

    def _who(self) -> str:
        return self.account.system_id if self.account else "(not bound)"

    # -- failures and their logs -------------------------------------------------------

    def _log_rejected(self) -> None:
        """Protocol errors the session answered by itself: a few lines, then a count."""
        now = self._loop.time()
        budget = self._log_budget
        for error in self.session.rejected:
            if budget.take(now):
                skipped = budget.take_suppressed()
                self.log.info("smpp %s %s: %s (status 0x%x)%s", self.peer, self._who(),
                              error.reason, error.status,
                              f" [{skipped} more errors not logged]" if skipped else "")
        self.session.rejected.clear()

    def _handler_failed(self, pdu: Pdu) -> None:
        """A handler raised (a bug): log it within the budget, answer ESME_RSYSERR if the
        request is still unanswered. Called from an `except` block."""
        if self._log_budget.take(self._loop.time()):
            self.log.exception("smpp %s %s: %s failed", self.peer, self._who(), pdu.name)
        with contextlib.suppress(LocalProtocolError):  # answered before the failure
            self._respond(pdu, Status.ESME_RSYSERR)

    def _spawn(self, coroutine: Coroutine) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)  # referenced until done (the loop keeps only weak ones)
        task.add_done_callback(self._tasks.discard)

    # -- timers (the session's; this only wakes it) ------------------------------------

    def _arm_timer(self) -> None:
        deadline = self.session.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer_at <= deadline:
                return  # it fires first; the next deadline is armed then
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        # The loop may run a timer a hair early; the session must see its deadline met.
        now = max(self._loop.time(), self._timer_at)
        for event in self.session.handle_timer(now):
            if isinstance(event, RequestTimedOut):
                self._receipt_timed_out(event.request)
                continue
            self.log.info("smpp %s %s: %s%s", self.peer, self._who(), event,
                          ", closing" if event.closes else "")
            if event.closes:
                return self.abort()
        self._send_receipt_backlog()
        self._schedule_flush()  # e.g. the enquire_link or unbind the session queued
        self._arm_timer()

    # -- bind and session control ------------------------------------------------------

    def _on_bind(self, pdu: Pdu) -> None:
        self._spawn(self._bind(pdu))

    async def _bind(self, pdu: Pdu) -> None:
        """Check the credentials and take a bind slot. The session is BINDING meanwhile,
        so a second bind on this socket gets ESME_RALYBND and never reaches here."""
        kind = BIND_KINDS[pdu.command_id]
        system_id = pdu.get("system_id", "")
        try:
            account = await self.gw.authenticate(system_id, pdu.get("password", ""),
                                                 channel="smpp", peer_ip=self.peer_ip)
            if self.session.state is State.CLOSED:
                return  # the peer left during the password check: take no bind slot
            await self.gw.binds.acquire(account, kind, self)
            if self.session.state is State.CLOSED:  # left while the lease was taken
                self.gw.binds.release(account.id, self)
                return
        except GatewayError as exc:
            return await self._refuse_bind(pdu, kind, exc)
        except Exception:
            self.log.exception("smpp %s bind %s failed", self.peer, system_id,
                               extra={"account": system_id})
            self._respond(pdu, Status.ESME_RSYSERR)
            return self.close()
        self.account, self.bind_kind = account, kind  # from here on, released on loss
        response = pdu.response(system_id=self.cfg.system_id)
        if pdu.get("interface_version", 0) >= INTERFACE_VERSION_34:
            response.tlvs.append((Tag.sc_interface_version, INTERFACE_VERSION_34))
        self.session.send(response)
        self._schedule_flush()
        self._arm_timer()  # bound: the link check may come before the bind timeout did
        self.log.info("smpp %s bound %s as %s", self.peer, system_id, kind)
        if kind in (RX, TRX):
            self.gw.receipts.register(account.id, self)

    async def _refuse_bind(self, pdu: Pdu, kind: str, exc: GatewayError) -> None:
        """Answer a refused bind and close. Inside a failed-login back-off the answer
        waits `login_backoff_delay`, so that a guesser gets few tries a second."""
        if exc.error in BACKOFF_ERRORS:
            await asyncio.sleep(self.cfg.login_backoff_delay)
            if self.session.state is State.CLOSED:
                return
        system_id = pdu.get("system_id", "")
        self.log.info("smpp %s bind %s as %s refused: %s", self.peer, system_id, kind, exc,
                      extra={"account": system_id})
        self._respond(pdu, _bind_status(exc))
        self.close()

    def _on_enquire_link(self, pdu: Pdu) -> None:
        self._respond(pdu, Status.ESME_ROK)

    def _on_unbind(self, pdu: Pdu) -> None:
        """Answer unbind once the requests before it are answered: their answers would
        be lost with the connection (the messages stored, the customer not told)."""
        self._unbind_request = pdu
        if self.session.pending_in == 1:
            self._answer_unbind()

    def _answer_unbind(self) -> None:
        unbind, self._unbind_request = self._unbind_request, None
        self.session.send(unbind.response())  # type: ignore[union-attr]
        self.close()  # UNBOUND now: flush and close


def _bind_status(exc: GatewayError) -> int:
    if exc.error in (Err.UNKNOWN_ACCOUNT, Err.BAD_PASSWORD):
        return exc.smpp_status
    return Status.ESME_RBINDFAIL


_HANDLERS = {
    CommandId.bind_transmitter: SmppConnection._on_bind,
    CommandId.bind_receiver: SmppConnection._on_bind,
    CommandId.bind_transceiver: SmppConnection._on_bind,
    CommandId.enquire_link: SmppConnection._on_enquire_link,
    CommandId.unbind: SmppConnection._on_unbind,
    CommandId.submit_multi: SmppConnection._on_submit_multi,
    CommandId.query_sm: SmppConnection._on_query_sm,
    CommandId.cancel_sm: SmppConnection._on_cancel_sm,
    CommandId.replace_sm: SmppConnection._on_replace_sm,
    CommandId.deliver_sm_resp: SmppConnection._on_deliver_sm_resp,
    CommandId.generic_nack: SmppConnection._on_generic_nack,
}
