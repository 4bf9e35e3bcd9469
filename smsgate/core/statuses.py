"""What happens to a message after it left: its status changes, stored and told.

Every status change of a message goes through `StatusBook.apply`: the sent mark (ATES
with the upstream's id), ACCEPTD, and the final state. It is stored through the group
commit and told to the listeners (receipts for SMPP customers, HTTP callbacks).

The "sent" mark of a message whose connector can safely send it twice (the simulator,
`resend_safe`) is held back for up to `sent_hold` seconds: when its first status comes
within that time, both go to the store in one row write instead of two. The price: a
message sent in the last `sent_hold` seconds before a crash is sent again after the
restart (so is one still waiting for its outcome at a stop: see `stop`). A real
upstream's sent mark (with its upstream id) goes to the very next group commit, so that
only messages truly in flight at a crash can be sent twice.

The status of such a message (one whose sent mark was held) is itself held, when no one
waits for it (no receipt asked for, no dlrurl: those go out as they come), until its
message is `status_hold` seconds old (0.5 s by default: the simulator's slowest
outcome); then it is written with the other statuses of messages created in the same
`HOLD_TICK`, in id order. A status rewrites its message's row: written as they come,
the statuses of one commit hit rows spread over the last half second of inserts, each
page going to the WAL for one or two of its rows; held, a page goes once for all of
them (docs/performance.md: at the peak +10 % submit_sm/s on SQLite, +12 % on
PostgreSQL, the p99 from ~49 to ~32 ms, 28 % less WAL). Its listeners (metrics) are
told at release; until then `sent_not_stored` holds for the message and `read_through`
gives queries the status held. A crash loses a held status with its held sent mark:
the message is sent again after the restart, as above; a stop writes what is held. A
real upstream's statuses are never held (its report is acknowledged once its status is
stored).

A `recorder` (the dlrurl callback outbox) queues its own row for a status (the
callback) with the writer in the same call in which the status is queued: both are
added in one loop turn with no await between them, so they ride in one WriteBatch and
one transaction (core/ports.py Writer). So no stored status lacks its callback, whenever
the process dies: the commit stores both or neither, and when neither, the status is
told unstored (`done(False)`: an upstream sends its report again, and then both are
queued again). Listeners only hear of statuses; they store nothing the status depends
on. A status stored by someone else (cancel_sm stores DELETED in its own transaction)
has its callback queued right after, in the next commit.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

from .models import (
    ACCEPTD,
    FINAL_STATUSES,
    REJECTD,
    Message,
    Refund,
    SentUpdate,
    StatusUpdate,
)
from .ports import Done, Writer

log = logging.getLogger(__name__)

HOLD_TICK = 0.02  # seconds: held statuses are released in slots of message age this wide

StatusListener = Callable[[Message, StatusUpdate], None]
# recorder(message, update): queues with the writer, in this call, whatever row it keeps
# for the status (nothing for most messages: it must cost nothing then).
StatusRecorder = Callable[[Message, StatusUpdate], None]
# A held status: its message, the update, and who waits for its commit (if anyone).
HeldStatus = tuple[Message, StatusUpdate, Done | None]


class StatusBook:
    def __init__(self, writer: Writer, refund_upstream_rejections: bool = True,
                 sent_hold: float = 1.0, status_hold: float = 0.5) -> None:
        self._writer = writer
        self.sent_hold = sent_hold
        self.status_hold = status_hold
        # held statuses: release slot (by message age) -> (message, update) in order
        self._held_statuses: dict[int, list[HeldStatus]] = {}
        self._held_updates: dict[int, list[StatusUpdate]] = {}  # by message id
        self._status_timer: asyncio.TimerHandle | None = None
        self.refund_upstream_rejections = refund_upstream_rejections
        self._held: dict[int, SentUpdate] = {}  # message id -> sent mark not yet written
        self._writing: set[int] = set()  # sent marks handed to the writer, not committed
        self._hold_timer: asyncio.TimerHandle | None = None
        self._listeners: list[StatusListener] = []
        self._recorder: StatusRecorder | None = None
        self.statuses: dict[str, int] = {}  # status -> reports, for metrics (dict: fast)

    def add_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    def set_recorder(self, recorder: StatusRecorder) -> None:
        self._recorder = recorder

    # -- sent ---------------------------------------------------------------------------

    def sent(self, message: Message, sent: SentUpdate, hold: bool) -> asyncio.Future | None:
        """The upstream accepted `message`; `hold`: its mark may wait (see above).
        Returns the mark's write (None when held)."""
        self.statuses["ATES"] = self.statuses.get("ATES", 0) + 1
        message.sent_at = sent.at
        message.upstream_id = sent.upstream_id
        if not hold or self.sent_hold <= 0:
            future = self._writer.add_sent(sent)
            self._track_write(sent.message_id, future)
            return future
        self._held[sent.message_id] = sent
        self._arm_hold_timer()
        return None

    def sent_all(self, messages: Sequence[Message], upstream_ids: Sequence[str],
                 at: float) -> None:
        """`sent` with `hold` for many messages of one connector, one upstream id each."""
        if self.sent_hold <= 0:
            for message, upstream_id in zip(messages, upstream_ids, strict=True):
                self.sent(message, SentUpdate(message.id, message.connector, at,
                                              upstream_id), hold=True)
            return
        self.statuses["ATES"] = self.statuses.get("ATES", 0) + len(messages)
        held = self._held
        for message, upstream_id in zip(messages, upstream_ids, strict=True):
            message.sent_at, message.upstream_id = at, upstream_id
            held[message.id] = SentUpdate(message.id, message.connector, at, upstream_id)
        self._arm_hold_timer()

    def _arm_hold_timer(self) -> None:
        if self._hold_timer is None:
            self._hold_timer = asyncio.get_running_loop().call_later(
                self.sent_hold / 4, self._on_hold_timer)

    def unstored(self) -> set[int]:
        """The ids whose sent mark is held or not committed yet."""
        return set(self._held) | self._writing | set(self._held_updates)

    def sent_not_stored(self, message_id: int) -> bool:
        """Sent upstream although the store does not say so yet (its mark is held or
        not committed): cancel_sm and replace_sm must not touch it."""
        return message_id in self._held or message_id in self._writing \
            or message_id in self._held_updates

    # -- status changes -----------------------------------------------------------------

    def apply(self, message: Message, update: StatusUpdate, done: Done | None = None,
              refund: bool | None = None) -> None:
        """ACCEPTD or a final state; `done(stored)` once its write commits. A REJECTD
        is refunded as `refund` says, by default as `_refundable` does."""
        self.statuses[update.status] = self.statuses.get(update.status, 0) + 1
        held = self._held.pop(message.id, None)
        if held is not None:
            update.sent_at, update.connector = held.at, held.connector
            update.upstream_id = update.upstream_id or held.upstream_id
        if update.status == REJECTD and message.price and \
                (self._refundable(message) if refund is None else refund):
            # Rides on the status: paid in its commit, and only if that write is what
            # ends the message (a repeated or late REJECTD is not paid again).
            update.refund = Refund(message.account_id, message.price, message.id,
                                   "refund: rejected upstream")
        message.status = update.status
        if update.status in FINAL_STATUSES:
            message.done_at = update.at
        elif update.status == ACCEPTD:
            message.accepted_at = update.at
        if message.id in self._held_updates or (
                held is not None and done is None and self.status_hold > 0
                and not message.registered_delivery and not message.dlr_url):
            self._hold_status(message, update, done)  # after any held before it, in order
        else:
            self._write(message, update, held is not None, done)

    def _write(self, message: Message, update: StatusUpdate, sent_mark: bool,
               done: Done | None) -> None:
        """The status, its callback row and what its listeners queue (a receipt): all
        in this loop turn, so in one commit."""
        if sent_mark:
            self._writing.add(message.id)  # sent, and not stored until the write commits
        self._store(update, sent_mark, done)
        self._record(message, update)
        self._tell(message, update)

    def notify(self, message: Message, update: StatusUpdate) -> None:
        """A status stored by someone else (cancel_sm): for the recorder and listeners."""
        self._record(message, update)
        self._tell(message, update)

    def _record(self, message: Message, update: StatusUpdate) -> None:
        if self._recorder is None:
            return
        try:
            self._recorder(message, update)
        except Exception:  # a recorder's bug must not cost the others their statuses
            log.exception("status recorder failed for message %s", message.id)

    def _store(self, update: StatusUpdate, sent_mark: bool, done: Done | None) -> None:
        if not sent_mark and done is None:
            return self._writer.queue_status(update)
        future = self._writer.add_status(update)
        if sent_mark:
            self._track_write(update.message_id, future)
        if done is not None:
            future.add_done_callback(
                lambda f: done(not f.cancelled() and f.exception() is None))

    # -- held statuses ------------------------------------------------------------------

    def _hold_status(self, message: Message, update: StatusUpdate, done: Done | None) -> None:
        slot = int((message.created_at + self.status_hold) / HOLD_TICK)
        self._held_statuses.setdefault(slot, []).append((message, update, done))
        self._held_updates.setdefault(message.id, []).append(update)
        if self._status_timer is None:
            self._status_timer = asyncio.get_running_loop().call_later(
                HOLD_TICK, self._on_status_timer)

    def _on_status_timer(self) -> None:
        self._status_timer = None
        self.release_statuses(time.time())
        if self._held_statuses:
            self._status_timer = asyncio.get_running_loop().call_later(
                HOLD_TICK, self._on_status_timer)

    def release_statuses(self, now: float = float("inf")) -> None:
        """Write the statuses held for messages old enough by `now` (all by default),
        in id order (a message's own statuses in the order they came)."""
        due = [slot for slot in self._held_statuses if slot * HOLD_TICK <= now]
        released: list[HeldStatus] = []
        for slot in sorted(due):
            released += self._held_statuses.pop(slot)
        if not released:
            return
        released.sort(key=_message_id)  # stable
        held_updates = self._held_updates
        for message, _update, _done in released:
            held_updates.pop(message.id, None)
        self._write_all(released)

    def _write_all(self, released: list[HeldStatus]) -> None:
        """`_write` for many statuses: one write with one Future for them all (a Future
        and its callback for each were a third of the simulator's status path)."""
        updates = [update for _message, update, _done in released]
        marked = [u.message_id for u in updates if u.sent_at is not None]
        self._writing.update(marked)  # sent, and not stored until the write commits
        waiting = [done for _message, _update, done in released if done is not None]
        self._writer.add_statuses(updates).add_done_callback(
            partial(self._all_written, marked, waiting))
        for message, update, _done in released:
            self._record(message, update)
            self._tell(message, update)

    def _all_written(self, marked: list[int], waiting: list[Done],
                     future: asyncio.Future) -> None:
        self._writing.difference_update(marked)
        stored = not future.cancelled() and future.exception() is None
        for done in waiting:
            done(stored)

    def read_through(self, message: Message) -> Message:
        """`message` as stored, with the statuses held for it applied (for queries)."""
        updates = self._held_updates.get(message.id)
        if not updates:
            return message
        message = replace(message)
        for update in updates:
            if message.status in FINAL_STATUSES:
                break  # as the store's guard: a final status stays
            message.status, message.error_code = update.status, update.error_code
            message.upstream_id = update.upstream_id or message.upstream_id
            message.connector = update.connector or message.connector
            if update.sent_at is not None:
                message.sent_at = update.sent_at
            if update.status == ACCEPTD:
                message.accepted_at = update.at
            elif update.status in FINAL_STATUSES:
                message.done_at = update.at
        return message

    def _tell(self, message: Message, update: StatusUpdate) -> None:
        for listener in self._listeners:
            try:
                listener(message, update)
            except Exception:
                log.exception("status listener failed for message %s", message.id)

    def _refundable(self, message: Message) -> bool:
        # Refused before it was sent: always refunded. Rejected by the upstream: policy.
        return message.sent_at is None or self.refund_upstream_rejections

    # -- held sent marks ----------------------------------------------------------------

    def _track_write(self, message_id: int, future: asyncio.Future) -> None:
        self._writing.add(message_id)
        future.add_done_callback(lambda f: self._writing.discard(message_id))

    def _on_hold_timer(self) -> None:
        self._hold_timer = None
        self.release_held(time.time() - self.sent_hold)
        if self._held:
            self._arm_hold_timer()

    def release_held(self, sent_before: float = float("inf")) -> None:
        """Write the sent marks held since before `sent_before` (dict order = time order)."""
        released = 0
        for sent in self._held.values():
            if sent.at >= sent_before:
                break
            self._track_write(sent.message_id, self._writer.add_sent(sent))
            released += 1
        if released == len(self._held):
            self._held.clear()
        else:
            for message_id in list(self._held)[:released]:
                del self._held[message_id]

    def stop(self) -> None:
        """Held sent marks are dropped, not written: a held mark is a message whose
        outcome has not come yet, and its connector (resend_safe: the simulator) forgets
        that outcome when it stops. Unmarked, the message is sent again after the
        restart and gets one; marked, it would stay ATES for good.
        Held statuses are written: each carries its message's sent mark and outcome."""
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._held.clear()
        if self._status_timer is not None:
            self._status_timer.cancel()
            self._status_timer = None
        self.release_statuses()  # outcomes we have: written, sent marks and all


def _message_id(held: HeldStatus) -> int:
    return held[0].id
