"""The SMPP session state machine, for both ends of a connection, with no I/O.

Rules (SMPP 3.4 §2.2–2.3, SMPP34.md §7):
- States: OPEN -> BOUND_TX | BOUND_RX | BOUND_TRX -> UNBOUND -> CLOSED.
- `ALLOWED` below is the one table of which request may be sent by whom in which state.
  A response is allowed exactly when it answers an outstanding request.
- A request the peer may not send in the current state is answered automatically:
  its response with ESME_RINVBNDSTS (ESME_RALYBND for a second bind), or generic_nack
  for requests that have no response PDU. Unknown command ids get generic_nack
  ESME_RINVCMDID. A broken frame gets generic_nack ESME_RINVCMDLEN and `closing`.
  Responses are never answered; unexpected ones are dropped and recorded.
- enquire_link is answered in every state until the socket closes (SMPP34.md §9.7).
- Sequence numbers we allocate run 1..0x7FFFFFFF and wrap to 1; any 32-bit value from the
  peer is echoed unchanged.
- `window` caps our outstanding requests; `max_pending_in` caps the peer's unanswered
  requests, beyond which they are answered ESME_RMSGQFUL without reaching the app.

The adapter feeds bytes to `receive_data`, handles the PDUs it returns, sends with
`send`, and writes `data_to_send()` to the socket after each call.
"""

from collections import Counter
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


class Role(Enum):
    SMSC = "smsc"
    ESME = "esme"


class State(Enum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


ESME, SMSC = Role.ESME, Role.SMSC
BOUND = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
TX_SIDE = frozenset({State.BOUND_TX, State.BOUND_TRX})
RX_SIDE = frozenset({State.BOUND_RX, State.BOUND_TRX})
LIVE = frozenset({State.OPEN, *BOUND, State.UNBOUND})
OPEN_ONLY = frozenset({State.OPEN})

# request command_id -> {role that sends it: states in which it may be sent}
ALLOWED: dict[int, dict[Role, frozenset[State]]] = {
    CommandId.bind_transmitter: {ESME: OPEN_ONLY},
    CommandId.bind_receiver: {ESME: OPEN_ONLY},
    CommandId.bind_transceiver: {ESME: OPEN_ONLY},
    CommandId.outbind: {SMSC: OPEN_ONLY},
    CommandId.unbind: {ESME: BOUND, SMSC: BOUND},
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


class LocalProtocolError(Exception):
    """We tried to send something the protocol does not allow now."""


class WindowFull(LocalProtocolError):
    """All `window` slots for outstanding requests are taken."""


class Session:
    def __init__(
        self,
        role: Role,
        codec: Codec | None = None,
        window: int = 10,
        max_pending_in: int = 100,
    ) -> None:
        self.role = role
        self.peer = ESME if role is SMSC else SMSC
        self.codec = codec or Codec()
        self.framer = Framer(self.codec.max_length)
        self.state = State.OPEN
        self.window = window
        self.max_pending_in = max_pending_in
        self.pending_out: dict[int, Pdu] = {}  # our requests awaiting a response
        # peer requests we have not answered yet: (command_id, sequence) -> count
        self._unanswered: Counter[tuple[int, int]] = Counter()
        self._unanswered_count = 0  # == _unanswered.total(), kept to avoid an O(n) sum
        self.closing = False  # framing lost or unbound: flush and close
        self.rejected: list[PduError] = []  # protocol errors answered automatically
        self._bind_command = 0
        self._last_sequence = 0
        self._outbox = bytearray()

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Pdu]:
        if self.closing or self.state is State.CLOSED:
            return []
        accepted = []
        for frame in self.framer.feed(data):
            pdu = self._receive_frame(frame)
            if pdu is not None:
                accepted.append(pdu)
        if self.framer.error is not None:
            self._reject_frame_error(self.framer.error)
        return accepted

    def _reject_frame_error(self, exc: PduError) -> None:
        if exc not in self.rejected:
            self.rejected.append(exc)
        self._queue(generic_nack(exc.sequence, exc.status))
        self.closing = True

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
        self.rejected.append(exc)
        if exc.fatal:
            self._reject_frame_error(exc)
        elif exc.command_id & RESPONSE_BIT:
            if self.pending_out.pop(exc.sequence, None) is not None:
                return generic_nack(exc.sequence, exc.status)
        elif exc.status == Status.ESME_RINVCMDID or exc.command_id in NO_RESPONSE:
            self._queue(generic_nack(exc.sequence, exc.status))
        else:
            self._queue(Pdu(exc.command_id | RESPONSE_BIT, exc.sequence, exc.status))
        return None

    def _receive_request(self, pdu: Pdu) -> Pdu | None:
        status = self._refusal(pdu.command_id, self.peer)
        if status is None and self.pending_in >= self.max_pending_in:
            status = Status.ESME_RMSGQFUL
        if status is not None:
            self.rejected.append(PduError(status, f"{pdu.name} refused in {self.state.value}",
                                          pdu.command_id, pdu.sequence))
            self._queue(pdu.response(status))
            return None
        if pdu.command_id in BIND_COMMANDS:
            self._bind_command = pdu.command_id
        if pdu.command_id not in NO_RESPONSE:
            self._unanswered[pdu.command_id, pdu.sequence] += 1
            self._unanswered_count += 1
        return pdu

    def _receive_response(self, pdu: Pdu) -> Pdu | None:
        request = self.pending_out.get(pdu.sequence)
        if request is None or pdu.command_id not in (request.command_id | RESPONSE_BIT,
                                                     CommandId.generic_nack):
            self.rejected.append(PduError(pdu.status, f"unexpected {pdu.name}", pdu.command_id,
                                          pdu.sequence))
            return None
        del self.pending_out[pdu.sequence]
        ok = pdu.status == Status.ESME_ROK and pdu.command_id != CommandId.generic_nack
        if request.command_id in BIND_COMMANDS and ok:
            self.state = BOUND_STATE_OF_BIND[request.command_id]
        elif request.command_id == CommandId.unbind:
            self._unbound()
        return pdu

    def _refusal(self, command_id: int, sender: Role) -> int | None:
        """The status to refuse a request with, or None when it is allowed."""
        allowed = ALLOWED[command_id].get(sender)
        if allowed is None:
            return Status.ESME_RINVCMDID  # e.g. an ESME sending deliver_sm or outbind
        if self.state in allowed:
            return None
        if command_id in BIND_COMMANDS and self.state in BOUND:
            return Status.ESME_RALYBND
        return Status.ESME_RINVBNDSTS

    # -- sending -----------------------------------------------------------------------

    def send(self, pdu: Pdu) -> bytes:
        """Encode `pdu` for the wire after checking it is allowed now.

        Requests with sequence 0 get the next sequence number. Returns the bytes; the
        caller writes them to the socket.
        """
        if self.state is State.CLOSED:
            raise LocalProtocolError("session is closed")
        # Check, encode, then change state: a PDU that fails to encode changes nothing.
        if pdu.command_id & RESPONSE_BIT:
            key = self._answered_request(pdu)
            data = self.codec.encode(pdu)
            self._send_response(pdu, key)
        else:
            self._check_request(pdu)
            data = self.codec.encode(pdu)
            self._send_request(pdu)
        return data

    def _check_request(self, pdu: Pdu) -> None:
        status = self._refusal(pdu.command_id, self.role)
        if status is not None:
            raise LocalProtocolError(f"{self.role.value} may not send {pdu.name} "
                                     f"in {self.state.value}")
        expects_response = pdu.command_id not in NO_RESPONSE
        if expects_response and len(self.pending_out) >= self.window:
            raise WindowFull(f"{len(self.pending_out)} requests outstanding")
        if pdu.sequence == 0:
            pdu.sequence = self.next_sequence()
        elif expects_response and pdu.sequence in self.pending_out:
            raise LocalProtocolError(f"sequence {pdu.sequence} is already outstanding")

    def _send_request(self, pdu: Pdu) -> None:
        if pdu.command_id not in NO_RESPONSE:
            self.pending_out[pdu.sequence] = pdu
        if pdu.command_id in BIND_COMMANDS:
            self._bind_command = pdu.command_id

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
        self._unanswered[key] -= 1
        self._unanswered_count -= 1
        if not self._unanswered[key]:
            del self._unanswered[key]
        request_id = key[0]
        ok = pdu.status == Status.ESME_ROK and pdu.command_id != CommandId.generic_nack
        if request_id in BIND_COMMANDS and ok and self.state is State.OPEN:
            self.state = BOUND_STATE_OF_BIND[request_id]
        elif request_id == CommandId.unbind:
            self._unbound()

    def next_sequence(self) -> int:
        seq = self._last_sequence + 1
        if seq > MAX_SEQUENCE:
            seq = 1
        while seq in self.pending_out:  # only after a full wrap with stuck requests
            seq = seq + 1 if seq < MAX_SEQUENCE else 1
        self._last_sequence = seq
        return seq

    def data_to_send(self) -> bytes:
        """Automatic answers to protocol errors, queued by `receive_data`."""
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

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

    @property
    def bind_command(self) -> int:
        return self._bind_command

    def close(self) -> list[Pdu]:
        """Mark the connection closed; returns our requests that will never be answered."""
        self.state = State.CLOSED
        lost = list(self.pending_out.values())
        self.pending_out.clear()
        return lost

    def _unbound(self) -> None:
        self.state = State.UNBOUND
        self.closing = True

    def _queue(self, pdu: Pdu) -> None:
        self._outbox += self.codec.encode(pdu)
