"""The SMPP session state machine, for both ends of a connection, with no I/O.

Rules (SMPP 3.4 §2.2–2.3, SMPP34.md §7):
- States: OPEN -> BINDING -> BOUND_TX | BOUND_RX | BOUND_TRX -> UNBINDING -> UNBOUND ->
  CLOSED. A bind request (sent or received) moves OPEN to BINDING; its response moves
  BINDING to the bound state, or back to OPEN when the bind failed. Sending unbind
  moves a bound session to UNBINDING; the unbind exchange (either side's) ends in
  UNBOUND.
- `ALLOWED` below is the one table of which request may be sent by whom in which state.
  A response is allowed exactly when it answers an outstanding request.
- UNBOUND and CLOSED appear in no entry: once unbound the session reads nothing more,
  answers nothing and sends only what answers requests it had already taken; the
  adapter flushes and closes.
- A request the peer may not send in the current state is answered automatically:
  its response with ESME_RINVBNDSTS (ESME_RALYBND for a bind while one is pending or
  done), or generic_nack for requests that have no response PDU. Unknown command ids
  get generic_nack ESME_RINVCMDID. A broken frame gets generic_nack ESME_RINVCMDLEN and
  `closing`. Responses are never answered; unexpected ones are dropped and recorded.
- enquire_link is answered in every live state (OPEN to UNBINDING, SMPP34.md §9.7).
- In UNBINDING (we sent unbind) the peer's requests are still taken as in the bound
  state we left: they crossed our unbind on the wire, and refusing them would fail
  messages a well-behaved peer sent in good faith (a drain would cost every customer
  a burst of errors). Not when the unbind withdrew the peer's access. We send no new
  work ourselves; the unbind's response timeout bounds a peer that ignores it.
- Sequence numbers we allocate run 1..0x7FFFFFFF and wrap to 1; any 32-bit value from the
  peer is echoed unchanged.
- `window` caps our outstanding requests, except the session's own enquire_link and
  unbind; `max_pending_in` caps the peer's unanswered requests, beyond which they are
  answered ESME_RMSGQFUL without reaching the app.
- Abuse limits (`SessionConfig`): more than `max_pdus_before_bind` PDUs before bound, or
  more than `max_protocol_errors` protocol errors, set `closing` (`close_reason` says
  why). A malformed field is not a protocol error: it is answered like a validation
  failure.
- Time (timers.py): the session is told `now` with every `receive_data` and with every
  request it sends; `next_deadline()` says when it next needs `handle_timer(now)`. The
  link counts as alive when whole PDUs arrive (bytes of a frame that never completes
  do not keep it so). With `probe_on_timeout`, a request of the app left unanswered
  sends an enquire_link at once: a peer that answers it is slow, one that does not is
  dead (LinkDead one response_timeout later).

The adapter feeds bytes to `receive_data`, handles the PDUs it returns, answers and
sends with `send`, and writes `data_to_send()` to the socket.
"""

import math
from enum import Enum

from .codec import Codec, Framer, PduError
from .constants import (
    BIND_COMMANDS,
    MAX_SEQUENCE,
    NO_RESPONSE,
    RESPONSE_BIT,
    CommandId,
    Status,
)
from .pdu import Pdu, generic_nack
from .timers import (
    BindTimeout,
    Inactive,
    LinkDead,
    RequestTimedOut,
    ResponseDeadlines,
    SessionConfig,
    TimerEvent,
)


class Role(Enum):
    SMSC = "smsc"
    ESME = "esme"


class State(Enum):
    OPEN = "open"
    BINDING = "binding"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"
    UNBOUND = "unbound"
    CLOSED = "closed"


ESME, SMSC = Role.ESME, Role.SMSC
BOUND = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
TX_SIDE = frozenset({State.BOUND_TX, State.BOUND_TRX})
RX_SIDE = frozenset({State.BOUND_RX, State.BOUND_TRX})
PRE_BIND = frozenset({State.OPEN, State.BINDING})
LIVE = frozenset({*PRE_BIND, *BOUND, State.UNBINDING})
OPEN_ONLY = frozenset({State.OPEN})
# A peer's unbind crossing ours is answered, and ends the session as well.
UNBIND_STATES = frozenset({*BOUND, State.UNBINDING})

# request command_id -> {role that sends it: states in which it may be sent}
ALLOWED: dict[int, dict[Role, frozenset[State]]] = {
    CommandId.bind_transmitter: {ESME: OPEN_ONLY},
    CommandId.bind_receiver: {ESME: OPEN_ONLY},
    CommandId.bind_transceiver: {ESME: OPEN_ONLY},
    CommandId.outbind: {SMSC: OPEN_ONLY},
    CommandId.unbind: {ESME: UNBIND_STATES, SMSC: UNBIND_STATES},
    CommandId.enquire_link: {ESME: LIVE, SMSC: LIVE},
    CommandId.submit_sm: {ESME: TX_SIDE},
    CommandId.submit_multi: {ESME: TX_SIDE},
    CommandId.query_sm: {ESME: TX_SIDE},
    CommandId.cancel_sm: {ESME: TX_SIDE},
    # Table 2-1 lists only TX for replace_sm, a known omission: TRX allowed too.
    CommandId.replace_sm: {ESME: TX_SIDE},
    CommandId.deliver_sm: {SMSC: RX_SIDE},
    CommandId.data_sm: {ESME: TX_SIDE, SMSC: RX_SIDE},
    CommandId.alert_notification: {SMSC: RX_SIDE},
}

BOUND_STATE_OF_BIND = {
    CommandId.bind_transmitter: State.BOUND_TX,
    CommandId.bind_receiver: State.BOUND_RX,
    CommandId.bind_transceiver: State.BOUND_TRX,
}
# The session's own housekeeping: outside the window, and a link that leaves one of
# them unanswered is dead (binds too: an SMSC that never answers a bind is no SMSC).
SESSION_REQUESTS = frozenset({CommandId.enquire_link, CommandId.unbind})
LINK_REQUESTS = SESSION_REQUESTS | BIND_COMMANDS
MESSAGE_ID_REQUESTS = frozenset({CommandId.submit_sm, CommandId.data_sm})
# Decode failures that mean the peer does not speak the protocol, unlike a malformed
# field (answered with the field's status, as validation would be).
STRUCTURAL_ERRORS = frozenset({Status.ESME_RINVCMDLEN, Status.ESME_RINVCMDID,
                               Status.ESME_RINVOPTPARSTREAM})


class LocalProtocolError(Exception):
    """We tried to send something the protocol does not allow now."""


class WindowFull(LocalProtocolError):
    """All `window` slots for outstanding requests are taken."""


class Session:
    def __init__(self, role: Role, codec: Codec | None = None,
                 config: SessionConfig | None = None, now: float = 0.0) -> None:
        self.role = role
        self.peer = ESME if role is SMSC else SMSC
        self.codec = codec or Codec()
        self.config = config = config or SessionConfig()
        self.framer = Framer(self.codec.max_length)
        self.state = State.OPEN
        self._bound_as = State.OPEN  # the bound state our unbind left (see _refusal)
        self.window = config.window
        self.max_pending_in = config.max_pending_in
        self.pending_out: dict[int, Pdu] = {}  # our requests awaiting a response
        # peer requests we have not answered yet: (command_id, sequence) -> count
        # (a plain dict: Counter's __delitem__ is Python code, once per answer)
        self._unanswered: dict[tuple[int, int], int] = {}
        self._unanswered_count = 0  # == _unanswered.total(), kept to avoid an O(n) sum
        self.closing = False  # framing lost, unbound or over a limit: flush and close
        self.close_reason = ""  # why the session set `closing` itself (not for unbind)
        self.rejected: list[PduError] = []  # protocol errors answered automatically
        self.protocol_errors = 0
        self._pdus_before_bind = 0
        self._last_sequence = 0
        self._outbox = bytearray()
        self._opened_at = self._last_rx = now
        self._deadlines = ResponseDeadlines()
        self._link_check = 0  # sequence of our enquire_link awaiting its response

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Pdu]:
        """The PDUs of `data` the app must handle; automatic answers go to the outbox."""
        if self.closing or self.state is State.UNBOUND or self.state is State.CLOSED:
            return []
        frames = self.framer.feed(data)
        if frames:  # alive means whole PDUs arrive: stray bytes of a broken frame do not
            self._last_rx = now
        counting = self.state in PRE_BIND and self.config.max_pdus_before_bind > 0
        accepted = []
        for frame in frames:
            if self.closing:
                return accepted
            if counting and self.state in PRE_BIND and not self._count_before_bind():
                return accepted
            pdu = self._receive_frame(frame)
            if pdu is not None:
                accepted.append(pdu)
        if self.framer.error is not None and not self.closing:
            self._reject_frame_error(self.framer.error)
        return accepted

    def _count_before_bind(self) -> bool:
        """One more PDU while not bound; False (and closing) past the budget. Counted
        frame by frame: what follows a bind_resp in the same read is not before bind
        (an SMSC often sends receipts right behind it)."""
        self._pdus_before_bind += 1
        if self._pdus_before_bind <= self.config.max_pdus_before_bind:
            return True
        self._close(f"over {self.config.max_pdus_before_bind} PDUs before bind")
        return False

    def _reject_frame_error(self, exc: PduError) -> None:
        self._reject(exc)
        self._queue(generic_nack(exc.sequence, exc.status))
        self._close(f"framing lost: {exc.reason}")

    def _receive_frame(self, frame: bytes) -> Pdu | None:
        try:
            pdu = self.codec.decode(frame)
        except PduError as exc:
            return self._answer_decode_error(exc)
        if pdu.command_id & RESPONSE_BIT:
            return self._receive_response(pdu)
        return self._receive_request(pdu)

    def _answer_decode_error(self, exc: PduError) -> Pdu | None:
        """Answer an undecodable PDU. A garbled response to one of our requests still
        ends that request: the app gets a generic_nack carrying the decode status."""
        if exc.fatal:
            self._reject_frame_error(exc)
            return None
        self._reject(exc, counts=exc.status in STRUCTURAL_ERRORS)
        if exc.command_id & RESPONSE_BIT:
            request = self.pending_out.get(exc.sequence)
            if request is not None:
                return self._end_request(generic_nack(exc.sequence, exc.status), request)
        elif exc.status == Status.ESME_RINVCMDID or exc.command_id in NO_RESPONSE:
            self._queue(generic_nack(exc.sequence, exc.status))
        else:
            self._queue(Pdu(exc.command_id | RESPONSE_BIT, exc.sequence, exc.status))
        return None

    def _receive_request(self, pdu: Pdu) -> Pdu | None:
        status = self._refusal(pdu.command_id, self.peer)
        counts = status is not None
        if status is None and self._unanswered_count >= self.max_pending_in:
            status = Status.ESME_RMSGQFUL  # flow control, not a protocol error
        if status is not None:
            self._reject(PduError(status, f"{pdu.name} refused in {self.state.value}",
                                  pdu.command_id, pdu.sequence), counts)
            self._queue(pdu.response(status))
            return None
        if pdu.command_id in BIND_COMMANDS:
            self.state = State.BINDING
        if pdu.command_id not in NO_RESPONSE:
            key = pdu.command_id, pdu.sequence
            self._unanswered[key] = self._unanswered.get(key, 0) + 1
            self._unanswered_count += 1
        return pdu

    def _receive_response(self, pdu: Pdu) -> Pdu | None:
        request = self.pending_out.get(pdu.sequence)
        if request is None or pdu.command_id not in (request.command_id | RESPONSE_BIT,
                                                     CommandId.generic_nack):
            self._reject(PduError(pdu.status, f"unexpected {pdu.name}", pdu.command_id,
                                  pdu.sequence))
            return None
        return self._end_request(pdu, request)

    def _end_request(self, response: Pdu, request: Pdu) -> Pdu:
        """`response` answers our `request`: free its slot, follow its state change."""
        del self.pending_out[request.sequence]
        command_id = request.command_id
        ok = response.status == Status.ESME_ROK and response.command_id != CommandId.generic_nack
        if command_id in BIND_COMMANDS and self.state is State.BINDING:
            self.state = BOUND_STATE_OF_BIND[command_id] if ok else State.OPEN
        elif command_id == CommandId.unbind:
            self._unbound()
        elif request.sequence == self._link_check:
            self._link_check = 0
        return response

    def _refusal(self, command_id: int, sender: Role) -> int | None:
        """The status to refuse a request with, or None when it is allowed."""
        allowed = ALLOWED[command_id].get(sender)
        if allowed is None:
            return Status.ESME_RINVCMDID  # e.g. an ESME sending deliver_sm or outbind
        if self.state in allowed:
            return None
        if sender is self.peer and self.state is State.UNBINDING and self._bound_as in allowed:
            return None  # sent before the peer saw our unbind: it could not know
        if command_id in BIND_COMMANDS and self.state is not State.OPEN:
            return Status.ESME_RALYBND  # a bind pending or done
        return Status.ESME_RINVBNDSTS

    # -- sending -----------------------------------------------------------------------

    def send(self, pdu: Pdu, now: float | None = None) -> int:
        """Queue `pdu` for the wire after checking it is allowed now; returns its
        sequence number. `pdu` itself is never changed.

        A request with sequence 0 goes out with the next sequence number. A request
        that expects a response needs `now`: its response_timeout runs from it.
        """
        if self.state is State.CLOSED:
            raise LocalProtocolError("session is closed")
        # Check, encode, then change state: a PDU that fails to encode changes nothing.
        if pdu.command_id & RESPONSE_BIT:
            key = self._answered_request(pdu)
            self._outbox += self.codec.encode(pdu)
            self._send_response(pdu, key)
            return pdu.sequence
        return self._send_request(pdu, now)

    def send_message_ids(self, requests: list[Pdu], message_ids: list[str]) -> None:
        """`send(request.response(message_id=...))` for each pair, in order: the ESME_ROK
        answers of accepted submit_sm and data_sm, many at a time (one call, no Pdu
        object an answer). Raises as `send` would before queueing anything."""
        if self.state is State.CLOSED:
            raise LocalProtocolError("session is closed")
        unanswered, answer = self._unanswered, self.codec.message_id_answer
        out = bytearray()
        keys = []
        for request, message_id in zip(requests, message_ids, strict=True):
            key = (request.command_id, request.sequence)
            if request.command_id not in MESSAGE_ID_REQUESTS or key not in unanswered:
                raise LocalProtocolError(f"no answer with a message_id owed to {request.name} "
                                         f"{request.sequence}")
            out += answer(request.command_id, request.sequence, message_id)
            keys.append(key)
        for key in keys:  # encoded, all of them: now the bookkeeping
            self._mark_answered(key)
        self._outbox += out

    def _send_request(self, pdu: Pdu, now: float | None) -> int:
        if self._refusal(pdu.command_id, self.role) is not None:
            raise LocalProtocolError(f"{self.role.value} may not send {pdu.name} "
                                     f"in {self.state.value}")
        expects_response = pdu.command_id not in NO_RESPONSE
        deadline = 0.0
        if expects_response:
            if now is None:
                raise LocalProtocolError(f"{pdu.name}: a request needs `now`")
            if len(self.pending_out) >= self.window and \
                    pdu.command_id not in SESSION_REQUESTS:
                raise WindowFull(f"{len(self.pending_out)} requests outstanding")
            if pdu.sequence in self.pending_out:
                raise LocalProtocolError(f"sequence {pdu.sequence} is already outstanding")
            deadline = now + self.config.seconds("response_timeout")
        numbered = pdu.sequence == 0
        if numbered:
            pdu = Pdu(pdu.command_id, self._peek_sequence(), pdu.status, pdu.fields, pdu.tlvs)
        self._outbox += self.codec.encode(pdu)
        if numbered:
            self._last_sequence = pdu.sequence  # taken only once the PDU could be encoded
        if expects_response:
            self.pending_out[pdu.sequence] = pdu
            self._deadlines.add(deadline, pdu)
        if pdu.command_id in BIND_COMMANDS:
            self.state = State.BINDING
        elif pdu.command_id == CommandId.unbind and self.state in BOUND:
            self._bound_as, self.state = self.state, State.UNBINDING
        return pdu.sequence

    def _answered_request(self, pdu: Pdu) -> tuple[int, int]:
        """The unanswered peer request `pdu` answers (generic_nack answers any kind)."""
        if pdu.command_id == CommandId.generic_nack:
            key = next((k for k in self._unanswered if k[1] == pdu.sequence), None)
        else:
            key = (pdu.command_id & ~RESPONSE_BIT, pdu.sequence)
        if key is None or key not in self._unanswered:
            raise LocalProtocolError(f"{pdu.name} {pdu.sequence} answers no pending request")
        return key

    def _send_response(self, pdu: Pdu, key: tuple[int, int]) -> None:
        self._mark_answered(key)
        request_id = key[0]
        if request_id in BIND_COMMANDS and self.state is State.BINDING:
            ok = pdu.status == Status.ESME_ROK and pdu.command_id != CommandId.generic_nack
            self.state = BOUND_STATE_OF_BIND[request_id] if ok else State.OPEN
        elif request_id == CommandId.unbind:
            self._unbound()

    def _mark_answered(self, key: tuple[int, int]) -> None:
        """One answer owed to the request `key` (command_id, sequence) is given."""
        left = self._unanswered[key] - 1
        self._unanswered_count -= 1
        if left:
            self._unanswered[key] = left
        else:
            del self._unanswered[key]

    def _peek_sequence(self) -> int:
        """The sequence number the next request will take (not taken yet)."""
        seq = self._last_sequence + 1
        if seq > MAX_SEQUENCE:
            seq = 1
        while seq in self.pending_out:  # only after a full wrap with stuck requests
            seq = seq + 1 if seq < MAX_SEQUENCE else 1
        return seq

    def next_sequence(self) -> int:
        """Take a sequence number, for a request the caller numbers itself."""
        self._last_sequence = self._peek_sequence()
        return self._last_sequence

    def unbind(self, now: float, take_crossing: bool = True) -> bool:
        """Start a graceful unbind. False when not bound: then there is nothing to say
        and the adapter just closes. `take_crossing=False` refuses the peer's requests
        that cross the unbind too (its access was withdrawn)."""
        if self.state is State.UNBINDING:
            return True
        if self.state not in BOUND:
            return False
        self.send(Pdu(CommandId.unbind), now)
        if not take_crossing:
            self._bound_as = State.OPEN
        return True

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._outbox)

    def data_to_send(self) -> bytes:
        """Everything queued for the wire since the last call."""
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    # -- time --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `handle_timer` must next be called (None: no timer needed)."""
        if self.closing or self.state is State.UNBOUND or self.state is State.CLOSED:
            return None
        cfg = self.config
        deadline = self._deadlines.first(self.pending_out)
        if self.state in PRE_BIND:
            deadline = min(deadline, self._opened_at + cfg.seconds("bind_timeout"))
        elif self.state in BOUND:
            idle = cfg.seconds("inactivity_timeout")
            if not self._link_check:
                idle = min(idle, cfg.seconds("enquire_link_interval"))
            deadline = min(deadline, self._last_rx + idle)
        return None if deadline == math.inf else deadline

    def handle_timer(self, now: float) -> list[TimerEvent]:
        """What expired by `now`. The session queues the enquire_link or unbind it
        decided on (see `data_to_send`); the events say what the adapter must do."""
        if self.closing or self.state is State.UNBOUND or self.state is State.CLOSED:
            return []
        cfg = self.config
        if self.state in PRE_BIND and now >= self._opened_at + cfg.seconds("bind_timeout"):
            self._close("bind timeout")
            return [BindTimeout(cfg.bind_timeout)]
        events = self._expire_requests(now)
        if self.closing or self.state not in BOUND:
            return events
        idle = now - self._last_rx
        if idle >= cfg.seconds("inactivity_timeout"):
            self.unbind(now)
            events.append(Inactive(idle))
        elif idle >= cfg.seconds("enquire_link_interval") and not self._link_check:
            self._link_check = self.send(Pdu(CommandId.enquire_link), now)
        return events

    def _expire_requests(self, now: float) -> list[TimerEvent]:
        events: list[TimerEvent] = []
        for request in self._deadlines.expired(now, self.pending_out):
            if request.command_id in LINK_REQUESTS:
                self._close(f"{request.name} unanswered")
                events.append(LinkDead(request))
                return events  # the rest is lost with the link: see close()
            events.append(RequestTimedOut(request))
        if events and self.config.probe_on_timeout and self.state in BOUND \
                and not self._link_check:
            self._link_check = self.send(Pdu(CommandId.enquire_link), now)
        return events

    # -- state -------------------------------------------------------------------------

    @property
    def pending_in(self) -> int:
        """How many peer requests we have not answered yet."""
        return self._unanswered_count

    @property
    def bound(self) -> bool:
        return self.state in BOUND

    @property
    def can_send_request(self) -> bool:
        return len(self.pending_out) < self.window

    @property
    def can_receive(self) -> bool:
        """Whether deliver_sm may go to the peer now (SMSC side: RX or TRX bound)."""
        return self.state in RX_SIDE

    def close(self) -> list[Pdu]:
        """Mark the connection closed; returns our requests that will never be answered."""
        self.state = State.CLOSED
        lost = list(self.pending_out.values())
        self.pending_out.clear()
        self._deadlines.clear()
        return lost

    def _unbound(self) -> None:
        self.state = State.UNBOUND
        self.closing = True

    def _close(self, reason: str) -> None:
        self.closing = True
        self.close_reason = self.close_reason or reason

    def _reject(self, exc: PduError, counts: bool = True) -> None:
        self.rejected.append(exc)
        if not counts:
            return
        self.protocol_errors += 1
        limit = self.config.max_protocol_errors
        if limit > 0 and self.protocol_errors >= limit:
            self._close(f"{self.protocol_errors} protocol errors")

    def _queue(self, pdu: Pdu) -> None:
        self._outbox += self.codec.encode(pdu)
