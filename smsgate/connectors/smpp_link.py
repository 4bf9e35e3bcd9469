"""One SMPP session to an upstream SMSC: a thin asyncio adapter around `smpp.Session`
in the ESME role, the twin of servers/smpp_server.py's connection.

Bytes go into the session with the loop's time; the PDUs it accepts are handed to the
owner (the connector, smpp_client.py): answers to our submit_sm, and deliver_sm /
data_sm from the SMSC. Everything the session queues goes out in one socket write per
event-loop turn. The protocol's timers are the session's: this adapter wakes it when
`next_deadline()` says, hands back requests that went unanswered, and aborts the
connection when an expired timer says the link is dead.

A link lives for one TCP connection: it binds as soon as it is connected, and when
the connection ends every submit_sm still unanswered goes back to the owner. The
connector makes a new link to reconnect.
"""

import asyncio
import contextlib
import logging
import ssl
from functools import partial
from typing import Any, Protocol

from ..core.ports import Done
from ..smpp.codec import Codec
from ..smpp.constants import INTERFACE_VERSION_34, RESPONSE_BIT, CommandId, Status
from ..smpp.pdu import Pdu
from ..smpp.session import TX_SIDE, LocalProtocolError, Role, Session, State
from ..smpp.timers import RequestTimedOut, SessionConfig
from .settings import PASSWORD_MAX, SmppSettings

log = logging.getLogger(__name__)

BIND_COMMAND = {"trx": CommandId.bind_transceiver, "tx": CommandId.bind_transmitter,
                "rx": CommandId.bind_receiver}
# The SMSC's requests we have not answered yet (receipts and MO waiting for the core
# to store them); more are answered ESME_RMSGQFUL by the session until some are done.
MAX_PENDING_IN = 1000
WRITE_HIGH_WATER = 256 * 1024  # unread by the SMSC: send no more submit_sm until it drains
LOGGED_ERRORS = 5  # protocol errors logged per connection; the rest are counted


class LinkOwner(Protocol):
    """What a link tells its connector. A ticket is the connector's note of what a
    submit_sm was (its message and part); the link only hands it back."""

    def link_bound(self, link: "SmppLink") -> None: ...
    def link_ready(self, link: "SmppLink") -> None: ...
    def answered(self, link: "SmppLink", ticket: Any, response: Pdu) -> None: ...
    def unanswered(self, link: "SmppLink", ticket: Any, why: str, timed_out: bool) -> None: ...
    def received(self, link: "SmppLink", pdu: Pdu) -> None: ...
    def link_lost(self, link: "SmppLink") -> None: ...


def session_config(settings: SmppSettings) -> SessionConfig:
    """The client's timers: enquire_link after `enquire_link` s of silence, every
    request (bind included) answered within `response_timeout` or the link is dead
    (submit_sm: handed back, and the link probed with an enquire_link at once). No
    inactivity timer: an enquire_link left unanswered says more, sooner."""
    return SessionConfig(
        window=settings.window, max_pending_in=MAX_PENDING_IN,
        bind_timeout=settings.response_timeout, enquire_link_interval=settings.enquire_link,
        inactivity_timeout=0, response_timeout=settings.response_timeout,
        probe_on_timeout=True)


def client_tls_context(settings: SmppSettings) -> ssl.SSLContext | None:
    """The TLS context of an SMPP connector, or None without TLS. ValueError (one line)
    when the CA file cannot be used."""
    if not settings.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=settings.tls_ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"tls_ca {settings.tls_ca!r} cannot be used: {exc}") from None
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def status_name(status: int) -> str:
    try:
        return f"{Status(status).name} (0x{status:08x})"
    except ValueError:
        return f"status 0x{status:08x}"


class SmppLink(asyncio.Protocol):
    def __init__(self, owner: LinkOwner, settings: SmppSettings, label: str, kind: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        self.settings = settings
        self.label = label  # for logs: "connector#2 trx"
        self.kind = kind  # "trx" | "tx" | "rx"
        self._loop = loop
        codec = Codec(field_limits={"password": PASSWORD_MAX + 1}, lenient=True)
        self.session = Session(Role.ESME, codec, session_config(settings), loop.time())
        self.transport: asyncio.Transport | None = None
        self.inflight: dict[int, Any] = {}  # our submit_sm sequence -> its ticket
        # answered ESME_ROK, its sent mark not stored yet: still in the window (a crash
        # now would send it again), see SmppConnector.answered
        self.unsettled = 0
        self.paused_until = 0.0  # throttled by the SMSC: no submit_sm before this
        self.throttles = 0  # throttling answers in a row (the pause doubles with them)
        self.writable = True
        self.was_bound = False
        self.end_reason = ""  # why the connection ended, for the reconnect log line
        self._smsc_unbind: Pdu | None = None  # answered once our submit_sm in flight are
        self.finished: asyncio.Future[None] = loop.create_future()
        self._bind_sequence = 0
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._errors_logged = 0

    @property
    def sends(self) -> bool:
        """Whether this link's kind carries submit_sm (TRx, Tx)."""
        return self.kind != "rx"

    @property
    def bound(self) -> bool:
        return self.session.bound

    def ready(self, now: float) -> bool:
        """Bound for sending, the socket taking writes, and not told to slow down nor
        to unbind."""
        return (self.session.state in TX_SIDE and self.writable and self._smsc_unbind is None
                and now >= self.paused_until and not self.session.closing)

    @property
    def free(self) -> int:
        """submit_sm that may go out now: the window less what is outstanding or
        answered but not stored yet."""
        return self.session.window - len(self.session.pending_out) - self.unsettled

    # -- transport events --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        s = self.settings
        self._bind_sequence = self.session.send(Pdu(BIND_COMMAND[self.kind], fields={
            "system_id": s.system_id, "password": s.password, "system_type": s.system_type,
            "interface_version": INTERFACE_VERSION_34}), self._loop.time())
        self._after_requests()

    def data_received(self, data: bytes) -> None:
        session = self.session
        for pdu in session.receive_data(data, self._loop.time()):
            try:
                self._handle(pdu)
            except Exception:  # a bug must cost this PDU, not the link's other answers
                log.exception("smpp %s: handling %s failed", self.label, pdu.name)
        if session.rejected:
            self._log_rejected()
        if session.closing:
            self.end_reason = self.end_reason or session.close_reason
            self.close()
        elif session.has_data_to_send:
            self._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.session.close()
        self.end_reason = self.end_reason or (f"connection lost: {exc}" if exc
                                              else "connection closed by the SMSC")
        tickets, self.inflight = self.inflight, {}
        for ticket in tickets.values():
            self.owner.unanswered(self, ticket, f"link lost ({self.end_reason})", False)
        if self._errors_logged > LOGGED_ERRORS:
            log.info("smpp %s: %d more protocol errors not logged", self.label,
                     self._errors_logged - LOGGED_ERRORS)
        self.owner.link_lost(self)
        if not self.finished.done():
            self.finished.set_result(None)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.owner.link_ready(self)

    # -- what the SMSC sends -----------------------------------------------------------

    def _handle(self, pdu: Pdu) -> None:
        command_id = pdu.command_id
        if command_id & RESPONSE_BIT:
            ticket = self.inflight.pop(pdu.sequence, None)
            if ticket is not None:
                self.owner.answered(self, ticket, pdu)
                self._answer_unbind_when_done()
            elif pdu.sequence == self._bind_sequence:
                self._bind_answered(pdu)
        elif command_id == CommandId.deliver_sm or command_id == CommandId.data_sm:
            self.owner.received(self, pdu)
        elif command_id == CommandId.enquire_link:
            self.session.send(pdu.response(Status.ESME_ROK))
        elif command_id == CommandId.unbind:
            self.end_reason = "unbound by the SMSC"
            self._smsc_unbind = pdu
            self._answer_unbind_when_done()
        # alert_notification and anything else the session let through: nothing to do

    def _answer_unbind_when_done(self) -> None:
        """Answer the SMSC's unbind once no submit_sm of ours is in flight: those sent
        before its unbind reached us may still be answered (our own server takes them),
        and closing first would lose the answers and send the messages again. Nothing
        more is sent meanwhile (`ready`); unanswered ones time out as ever."""
        if self._smsc_unbind is None or self.inflight:
            return
        unbind, self._smsc_unbind = self._smsc_unbind, None
        self.session.send(unbind.response(Status.ESME_ROK))
        self.close()  # unbound: flush the answer and close

    def _bind_answered(self, response: Pdu) -> None:
        self._bind_sequence = 0
        if self.session.bound:
            self.was_bound = True
            log.info("smpp %s bound to %s:%d (%s)", self.label, self.settings.host,
                     self.settings.port, response.get("system_id", "") or "no system_id")
            self.owner.link_bound(self)
            return
        self.end_reason = f"bind refused: {status_name(response.status)}"
        self.close()

    def answer_later(self, request: Pdu) -> Done:
        """The `done` of a deliver_sm/data_sm handed to the core: ESME_ROK once it is
        stored, ESME_RX_T_APPN (the SMSC sends it again) when it could not be."""
        return partial(self._answer, request)

    def _answer(self, request: Pdu, stored: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.session.state is State.CLOSED:
            return  # the SMSC will send it again on another connection
        status = Status.ESME_ROK if stored else Status.ESME_RX_T_APPN
        with contextlib.suppress(LocalProtocolError):  # answered already (done twice)
            self.session.send(request.response(status))
            self._schedule_flush()

    # -- what we send ------------------------------------------------------------------

    def submit(self, pdu: Pdu, ticket: Any, now: float) -> None:
        """Queue one submit_sm (ValueError when a field cannot be encoded); the caller
        calls `requests_sent` after a batch."""
        self.inflight[self.session.send(pdu, now)] = ticket

    def requests_sent(self) -> None:
        """Requests were queued: out this turn, and their deadline may be the next."""
        self._after_requests()

    def slow_down(self, now: float, base: float, limit: float) -> float:
        """The SMSC throttled us: pause this link, longer while it keeps doing so."""
        pause = min(base * (1 << min(self.throttles, 16)), limit)
        self.throttles += 1
        self.paused_until = max(self.paused_until, now + pause)
        return pause

    def unbind(self) -> None:
        """End gracefully: unbind (the SMSC answers, then we close), or close when not
        bound. An unbind left unanswered is the session's timer to end (abort)."""
        if self.transport is None or self.transport.is_closing():
            return
        self.end_reason = self.end_reason or "stopped"
        if self.session.unbind(self._loop.time()):
            self._after_requests()
        else:
            self.close()

    def _after_requests(self) -> None:
        self._schedule_flush()
        self._arm_timer()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.session.data_to_send()
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        """Flush, then close; abort when the SMSC is not taking what we wrote."""
        self._flush()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

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
        now = max(self._loop.time(), self._timer_at)  # a timer may run a hair early
        for event in self.session.handle_timer(now):
            if isinstance(event, RequestTimedOut):
                ticket = self.inflight.pop(event.request.sequence, None)
                if ticket is not None:
                    self.owner.unanswered(self, ticket, f"no response within "
                                          f"{self.settings.response_timeout:g} s", True)
                    self._answer_unbind_when_done()
                continue
            if event.closes:
                self.end_reason = str(event)
                return self.abort()
        self.owner.link_ready(self)  # timed-out requests freed window slots
        self._schedule_flush()  # e.g. the enquire_link the session queued
        self._arm_timer()

    def _log_rejected(self) -> None:
        """Protocol errors of the SMSC that the session answered or dropped by itself:
        a few lines per connection, then only a count."""
        for error in self.session.rejected:
            self._errors_logged += 1
            if self._errors_logged <= LOGGED_ERRORS:
                log.info("smpp %s: %s (status 0x%x)", self.label, error.reason, error.status)
        self.session.rejected.clear()

