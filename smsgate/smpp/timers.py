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
