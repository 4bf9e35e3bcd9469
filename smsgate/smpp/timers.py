"""A session's settings and the small immutable events its timers produce (no I/O).

The session keeps time the aioquic way: the adapter tells it `now` (any monotonic clock,
in seconds) when bytes arrive and when it sends a request, asks `next_deadline()` when
to wake it, and calls `handle_timer(now)` then; that returns the events below. The
session itself queues what the protocol needs (enquire_link when the link is idle,
unbind after inactivity); the events tell the adapter what only it can do: drop the
connection, or retry / fail a request of its own that went unanswered.

A timer set to 0 (or less) is off.
"""

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from .pdu import Pdu


@dataclass(frozen=True, slots=True)
class SessionConfig:
    window: int = 10  # our requests outstanding at once (the session's own excepted)
    max_pending_in: int = 100  # the peer's unanswered requests before ESME_RMSGQFUL
    bind_timeout: float = 30.0  # from connect to bound (both roles), else close
    enquire_link_interval: float = 30.0  # nothing received this long: send enquire_link
    inactivity_timeout: float = 300.0  # nothing received this long: unbind
    response_timeout: float = 30.0  # our request unanswered this long: expired
    # Abuse limits: PDUs a peer may send before it is bound, and protocol errors
    # (unknown commands, PDUs refused in this state, broken framing, unexpected
    # responses) a session may make before it is closed. 0 = no limit.
    max_pdus_before_bind: int = 10
    max_protocol_errors: int = 100
    # An app request unanswered for response_timeout: probe the link with an
    # enquire_link at once (the SMPP client: tells a slow SMSC from a dead or garbled
    # link within one more response_timeout, without dropping a merely slow one).
    probe_on_timeout: bool = False

    def seconds(self, name: str) -> float:
        """A timer's value, with "off" as infinity so that comparisons need no case."""
        value = getattr(self, name)
        return value if value > 0 else math.inf


@dataclass(frozen=True, slots=True)
class TimerEvent:
    """Something a timer decided. When `closes` is true the adapter must drop the
    connection at once (abort: a peer that stopped answering may not read either)."""

    closes: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class BindTimeout(TimerEvent):
    """Not bound within bind_timeout of the connection opening."""

    closes: ClassVar[bool] = True
    waited: float

    def __str__(self) -> str:
        return f"not bound within {self.waited:g} s"


@dataclass(frozen=True, slots=True)
class LinkDead(TimerEvent):
    """One of the session's own requests (enquire_link, bind, unbind) went unanswered:
    the peer is gone or wedged."""

    closes: ClassVar[bool] = True
    request: Pdu

    def __str__(self) -> str:
        return f"{self.request.name} unanswered"


@dataclass(frozen=True, slots=True)
class Inactive(TimerEvent):
    """Nothing received for inactivity_timeout: the session has queued an unbind."""

    idle: float

    def __str__(self) -> str:
        return f"nothing received for {self.idle:.0f} s, unbinding"


@dataclass(frozen=True, slots=True)
class RequestTimedOut(TimerEvent):
    """An application request (deliver_sm, submit_sm, ...) went unanswered for
    response_timeout. Its window slot is free again; a late response is dropped as
    unexpected. The application retries or fails it."""

    request: Pdu

    def __str__(self) -> str:
        return f"{self.request.name} {self.request.sequence} unanswered"


class ResponseDeadlines:
    """When each of our outstanding requests expires. One response_timeout for all
    means sending order is expiry order: a deque, O(1) per request, no timer each.
    Answered requests leave `pending` (the session's pending_out) and are skipped here
    when they reach the front."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: deque[tuple[float, int, Pdu]] = deque()

    def add(self, deadline: float, request: Pdu) -> None:
        self._queue.append((deadline, request.sequence, request))

    def first(self, pending: dict[int, Pdu]) -> float:
        """The earliest deadline of a request still pending (inf: none)."""
        queue = self._queue
        while queue and pending.get(queue[0][1]) is not queue[0][2]:
            queue.popleft()
        return queue[0][0] if queue else math.inf

    def expired(self, now: float, pending: dict[int, Pdu]) -> Iterator[Pdu]:
        """Pending requests whose deadline is past, oldest first, taken out of
        `pending` as they are yielded."""
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, sequence, request = queue.popleft()
            if pending.get(sequence) is request:
                del pending[sequence]
                yield request

    def clear(self) -> None:
        self._queue.clear()
