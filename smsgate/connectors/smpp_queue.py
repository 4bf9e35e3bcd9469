"""What an SMPP connector holds before it is sent, and how it goes out: messages on
their way (Submission), the parts waiting for a window slot (PartQueue), and the pump
that moves them into the sessions' free windows at the connector's rate (Pump).

A part is a (submission, index) ticket: the link hands it back with the answer, so the
connector knows which message and part an answer is about without a lookup table.
"""

import asyncio
import math
from collections import deque
from collections.abc import Callable

from ..core.models import Message
from ..smpp.pdu import Pdu
from ..smpp.session import LocalProtocolError
from .flow_control import Pacer
from .smpp_link import SmppLink

Ticket = tuple["Submission", int]


class Submission:
    """One message on its way: its parts' submit_sm, their ids as they come back."""

    __slots__ = ("acked", "finished", "ids", "message", "next_part", "pdus", "retries",
                 "unsettled")

    def __init__(self, message: Message, pdus: list[Pdu]) -> None:
        self.message = message
        self.pdus = pdus
        self.ids: list[str] | None = [""] * len(pdus) if len(pdus) > 1 else None
        self.next_part = 0  # the next part to take from the queue
        self.acked = 0  # parts the SMSC took (multipart only)
        self.retries = 0  # parts sent again after a temporary failure
        self.finished = False  # sent or failed has been reported
        self.unsettled: list[SmppLink] = []  # a window slot each until the mark is stored


class PartQueue:
    """Parts to send: those to send again first (throttled, or a failed part of a
    message the SMSC took in part), then new messages in the order given. Parts of a
    message already reported (failed) are skipped as they come up."""

    __slots__ = ("_again", "_new", "parts")

    def __init__(self) -> None:
        self._new: deque[Submission] = deque()
        self._again: deque[Ticket] = deque()
        self.parts = 0  # parts waiting, skipped ones included until they come up

    def add(self, submission: Submission) -> None:
        self._new.append(submission)
        self.parts += len(submission.pdus)

    def again(self, submission: Submission, part: int) -> None:
        self._again.append((submission, part))
        self.parts += 1

    def next_part(self) -> Ticket | None:
        """The next part to send, or None when there is none."""
        again = self._again
        while again:
            self.parts -= 1
            ticket = again.popleft()
            if not ticket[0].finished:
                return ticket
        new = self._new
        while new:
            submission = new[0]
            part = submission.next_part
            submission.next_part = part + 1
            if part + 1 >= len(submission.pdus):
                new.popleft()
            self.parts -= 1
            if not submission.finished:
                return submission, part
        return None

    def take_all(self) -> list[Submission]:
        """Empty the queue; returns the messages it held (each once, unfinished)."""
        held = {id(s): s for s, _ in self._again}
        held.update((id(s), s) for s in self._new)
        self._again.clear()
        self._new.clear()
        self.parts = 0
        return [s for s in held.values() if not s.finished]


class Pump:
    """Queued parts into the sending sessions' free windows: at most once per loop turn
    (however many answers freed slots in it), at most what the pacer allows, starting
    with another session each time so that they share the load. It wakes by itself
    only when the pacer, a paused (throttled) session or a hold says when; a full window
    wakes it with its next answer. One timer for the connector, none per message."""

    def __init__(self, queue: PartQueue, pacer: Pacer, senders: list[SmppLink],
                 unencodable: Callable[[Submission, Exception], None]) -> None:
        self.queue = queue
        self.pacer = pacer
        self.senders = senders  # the connector's list: bound sessions that send
        self._unencodable = unencodable
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hold_until = 0.0
        self._stopped = False
        self._scheduled = False
        self._rotor = 0
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = math.inf

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def schedule(self) -> None:
        """Run this loop turn (once, however often asked)."""
        if not self._scheduled and self._loop is not None and not self._stopped:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def hold(self, until: float) -> None:
        """Send nothing before `until` (the connector's cool-down)."""
        self._hold_until = until
        self._wake_at_most(until)

    def stop(self) -> None:
        self._stopped = True
        if self._wake is not None:
            self._wake.cancel()

    def _run(self) -> None:
        self._scheduled = False
        if not self.queue.parts or self._stopped:
            return
        now = self._loop.time()  # type: ignore[union-attr]
        if now < self._hold_until:
            return self._wake_at_most(self._hold_until)
        allowed = self.pacer.available(now)
        senders = self.senders
        count = len(senders)
        sent = 0
        for n in range(count):
            if sent >= allowed or not self.queue.parts:
                break
            link = senders[(self._rotor + n) % count]
            if link.ready(now):
                took = self._fill(link, min(link.free, allowed - sent), now)
                if took:
                    link.requests_sent()
                    sent += took
        self._rotor += 1
        self.pacer.take(sent, now)
        if self.queue.parts:
            self._wake_when_possible(now, sent >= allowed)

    def _fill(self, link: SmppLink, room: int, now: float) -> int:
        """Up to `room` queued parts into `link`; returns how many went."""
        took = 0
        while took < room:
            ticket = self.queue.next_part()
            if ticket is None:
                break
            try:
                link.submit(ticket[0].pdus[ticket[1]], ticket, now)
            except (ValueError, LocalProtocolError) as exc:  # a field the codec refuses
                self._unencodable(ticket[0], exc)
                continue
            took += 1
        return took

    def _wake_when_possible(self, now: float, paced: bool) -> None:
        if paced:
            return self._wake_at_most(self.pacer.next_at(now))
        paused = [link.paused_until for link in self.senders
                  if link.paused_until > now and link.free > 0]
        if paused:
            self._wake_at_most(min(paused))

    def _wake_at_most(self, at: float) -> None:
        if self._loop is None or self._stopped:
            return
        if self._wake is not None:
            if self._wake_at <= at:
                return
            self._wake.cancel()
        self._wake_at = at
        self._wake = self._loop.call_at(at, self._on_wake)

    def _on_wake(self) -> None:
        self._wake = None
        self._wake_at = math.inf
        self._run()
