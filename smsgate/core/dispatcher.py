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

Cancel and dispatch agree: a message is either cancelled (and refunded) or sent, never
both. A message counts as sent from the moment it is handed to a connector until its
sent mark is committed (`sent_not_stored`); the store refuses to cancel it after that.
A cancel first claims its ids here (`begin_cancel`): those already sent are left out,
and the others are held back in their queue while the cancel's transaction runs, so
none can go out meanwhile. `end_cancel` then drops from the queues those the store
cancelled (or may have: an unknown commit outcome) and releases the rest. Only ids of
cancels in flight are remembered. A reader of the store that dispatches what it read
(the scheduler) compares `cancel_generation` around its read, since a cancel that
overlapped the read may have cancelled what it saw as pending.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable

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
        # Handed to a connector that has not reported them sent yet (an SMPP upstream
        # answers later); emptied by their first ATES or final report, which the port
        # promises for every message it takes: so it holds what is in flight upstream.
        self._sending: set[int] = set()
        self._hold_timer: asyncio.TimerHandle | None = None
        self.refund_upstream_rejections = refund_upstream_rejections
        self.connectors: dict[str, UpstreamConnector] = {}
        self._queues: dict[str, list[Message]] = {}
        self._flush_scheduled = False
        self._listeners: list[StatusListener] = []
        self._recorder: StatusRecorder | None = None
        self._cancelling: dict[int, int] = {}  # id -> cancels in flight: held back
        self.cancel_generation = 0  # changes when a cancel begins or ends
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

    def begin_cancel(self, ids: Iterable[int]) -> list[int]:
        """The ids a cancel may take (those not sent), held back from their connector
        until end_cancel: none goes out while the cancel's transaction runs."""
        claimed = [i for i in ids if not self.sent_not_stored(i)]
        for message_id in claimed:
            self._cancelling[message_id] = self._cancelling.get(message_id, 0) + 1
        self.cancel_generation += 1
        return claimed

    def end_cancel(self, claimed: list[int], gone: Collection[int]) -> None:
        """The cancel of `claimed` is over: the `gone` ones (cancelled, or perhaps: the
        commit's outcome is unknown) never go out; the others are released."""
        for message_id in claimed:
            left = self._cancelling.pop(message_id) - 1
            if left:
                self._cancelling[message_id] = left
        if gone:
            gone = set(gone)
            for name, queue in list(self._queues.items()):
                if queue:
                    self._queues[name] = [m for m in queue if m.id not in gone]
        self.cancel_generation += 1
        if self.queued:
            self._schedule_flush()

    @property
    def cancels_pending(self) -> int:
        """Ids remembered for cancels: only those of cancels in flight."""
        return len(self._cancelling)

    def dispatch(self, message: Message) -> None:
        self._queues.setdefault(message.connector, []).append(message)
        self._schedule_flush()

    def _schedule_flush(self, delay: float = 0.0) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = asyncio.get_running_loop()
            if delay:
                loop.call_later(delay, self._flush)
            else:
                loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        waiting = False
        for name, queue in list(self._queues.items()):
            if not queue:
                continue
            connector = self.connectors.get(name)
            if connector is None or not connector.ready:
                waiting = True
                continue
            kept: list[Message] = []
            if self._cancelling:  # a cancel in flight decides these; end_cancel flushes
                held = self._cancelling
                kept = [m for m in queue if m.id in held]
                queue = [m for m in queue if m.id not in held]
            self._queues[name] = kept
            if queue:
                self._hand_over(connector, queue)
        if waiting:
            self._schedule_flush(RETRY_SECONDS)

    def _hand_over(self, connector: UpstreamConnector, queue: list[Message]) -> None:
        self.dispatched += len(queue)
        connector.send(queue)
        # Sent now, whenever the upstream answers: those not reported yet stay "sent"
        # for cancel_sm until their report (the simulator reports within send()).
        self._sending.update(m.id for m in queue
                             if m.sent_at is None and m.status not in FINAL_STATUSES)

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def on_status(self, message: Message, update: StatusUpdate) -> None:
        """A connector's report: sent (ATES + upstream id), ACCEPTD, or a final state."""
        self.statuses[update.status] = self.statuses.get(update.status, 0) + 1
        if self._sending and (update.status == ATES or update.status in FINAL_STATUSES):
            self._sending.discard(message.id)
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
        """Sent upstream although the store does not say so yet (handed to a connector
        that has not reported it, or its mark is held or not committed): cancel_sm and
        replace_sm must not touch it."""
        return (message_id in self._sending or message_id in self._held
                or message_id in self._writing)

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
