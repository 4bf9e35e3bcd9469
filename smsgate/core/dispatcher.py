"""Hands stored messages to their route's connector and records what comes back.

Messages dispatched during one event-loop turn go to each connector as one batch. A
connector that is not ready (an SMPP upstream not bound yet) keeps its queue here and
is retried; nothing is lost if the process dies meanwhile, since undispatched messages
are reloaded from the store at start.

The "sent" mark of a message is held back for up to `sent_hold` seconds: when its first
status (ACCEPTD or final) comes within that time, as the simulator's does, both go to
the store in one row write instead of two. The price: a message sent in the last
`sent_hold` seconds before a crash is sent again after the restart (at least once).

A `recorder` (the dlrurl callback outbox) makes its own record of a status durable
before the status is stored: so that no stored status lacks its record, whenever the
process dies. Listeners only hear of statuses; they store nothing the status depends on.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from .models import (
    ACCEPTD,
    ATES,
    FINAL_STATUSES,
    REJECTD,
    Message,
    Refund,
    SentUpdate,
    StatusUpdate,
)
from .ports import UpstreamConnector

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5
StatusListener = Callable[[Message, StatusUpdate], None]
# recorder(message, update, then): returns False if it records nothing. Otherwise it
# calls then() once its record is committed (or failed), and only then is the status
# handed to the writer. then is None for a status stored already (cancel_sm).
StatusRecorder = Callable[[Message, StatusUpdate, Callable[[], None] | None], bool]


class Dispatcher:
    def __init__(self, writer, refund_upstream_rejections: bool = True,
                 sent_hold: float = 1.0) -> None:
        self._writer = writer
        self.sent_hold = sent_hold
        self._held: dict[int, SentUpdate] = {}  # message id -> sent mark not yet written
        self._writing: set[int] = set()  # sent marks handed to the writer, not committed
        self._hold_timer: asyncio.TimerHandle | None = None
        self.refund_upstream_rejections = refund_upstream_rejections
        self.connectors: dict[str, UpstreamConnector] = {}
        self._queues: dict[str, list[Message]] = {}
        self._flush_scheduled = False
        self._listeners: list[StatusListener] = []
        self._recorder: StatusRecorder | None = None
        self._cancelled: set[int] = set()  # cancelled while possibly queued or armed
        self.dispatched = 0
        self.statuses: dict[str, int] = {}  # status -> reports, for metrics (dict: fast)

    def add_listener(self, listener: StatusListener) -> None:
        """Called on every final or intermediate status (receipts, HTTP callbacks)."""
        self._listeners.append(listener)

    def set_recorder(self, recorder: StatusRecorder) -> None:
        """Records a status before it is stored (see the module docstring)."""
        self._recorder = recorder

    async def add_connector(self, connector: UpstreamConnector) -> None:
        self.connectors[connector.name] = connector
        await connector.start(self.on_status)

    async def stop(self) -> None:
        for connector in self.connectors.values():
            await connector.stop()
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        self._release_held(float("inf"))

    def cancel(self, message_id: int) -> None:
        """A cancelled message must not go out even if it is queued here already."""
        self._cancelled.add(message_id)

    def dispatch(self, message: Message) -> None:
        if self._cancelled and message.id in self._cancelled:
            self._cancelled.discard(message.id)
            return
        self._queues.setdefault(message.connector, []).append(message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        waiting = False
        for name, queue in self._queues.items():
            if not queue:
                continue
            connector = self.connectors.get(name)
            if connector is None or not connector.ready:
                waiting = True
                continue
            self._queues[name] = []
            self.dispatched += len(queue)
            connector.send(queue)
        if waiting and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(RETRY_SECONDS, self._flush)

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def on_status(self, message: Message, update: StatusUpdate) -> None:
        """A connector's report: sent (ATES + upstream id), ACCEPTD, or a final state."""
        self.statuses[update.status] = self.statuses.get(update.status, 0) + 1
        if update.status == ATES:
            message.sent_at = update.at
            message.upstream_id = update.upstream_id
            self._hold_sent(SentUpdate(message.id, message.connector, update.at,
                                       update.upstream_id))
            return
        held = self._held.pop(message.id, None)
        if held is not None:
            update.sent_at, update.connector = held.at, held.connector
            update.upstream_id = update.upstream_id or held.upstream_id
            self._writing.add(message.id)  # sent, and not stored until the write commits
        if update.status == REJECTD and message.price and self._refundable(message):
            # Rides on the status: paid in its commit, and only if that write is what
            # ends the message (a repeated or late REJECTD is not paid again).
            update.refund = Refund(message.account_id, message.price, message.id,
                                   "refund: rejected upstream")
        if not self._record(message, update, lambda: self._store_status(update, held)):
            self._store_status(update, held)
        message.status = update.status
        if update.status in FINAL_STATUSES:
            message.done_at = update.at
        elif update.status == ACCEPTD:
            message.accepted_at = update.at
        self._tell_listeners(message, update)

    def _record(self, message: Message, update: StatusUpdate,
                then: Callable[[], None] | None) -> bool:
        """Whether the recorder took the status (and will call then())."""
        if self._recorder is None:
            return False
        try:
            return self._recorder(message, update, then)
        except Exception:  # never keep a status from the store
            log.exception("status recorder failed for message %s", message.id)
            return False

    def _store_status(self, update: StatusUpdate, held: SentUpdate | None) -> None:
        future = self._writer.add_status(update)
        if held is not None:
            self._track_write(update.message_id, future)

    def notify(self, message: Message, update: StatusUpdate) -> None:
        """A status stored by someone else (cancel_sm): for the recorder and listeners."""
        self._record(message, update, None)
        self._tell_listeners(message, update)

    def _tell_listeners(self, message: Message, update: StatusUpdate) -> None:
        for listener in self._listeners:
            try:
                listener(message, update)
            except Exception:
                log.exception("status listener failed for message %s", message.id)

    def sent_not_stored(self, message_id: int) -> bool:
        """Sent upstream although the store does not say so yet (its mark is held or
        not committed): cancel_sm and replace_sm must not touch it."""
        return message_id in self._held or message_id in self._writing

    def _track_write(self, message_id: int, future: asyncio.Future) -> None:
        self._writing.add(message_id)
        future.add_done_callback(lambda f: self._writing.discard(message_id))

    def _hold_sent(self, sent: SentUpdate) -> None:
        if self.sent_hold <= 0:
            self._track_write(sent.message_id, self._writer.add_sent(sent))
            return
        self._held[sent.message_id] = sent
        if self._hold_timer is None:
            self._hold_timer = asyncio.get_running_loop().call_later(
                self.sent_hold / 4, self._on_hold_timer)

    def _on_hold_timer(self) -> None:
        self._hold_timer = None
        self._release_held(time.time() - self.sent_hold)
        if self._held:
            self._hold_timer = asyncio.get_running_loop().call_later(
                self.sent_hold / 4, self._on_hold_timer)

    def _release_held(self, sent_before: float) -> None:
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

    def _refundable(self, message: Message) -> bool:
        # Refused before it was sent: always refunded. Rejected by the upstream: policy.
        return message.sent_at is None or self.refund_upstream_rejections
