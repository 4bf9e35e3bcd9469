"""Hands stored messages to upstream connectors, fails over between routes, and takes
what the connectors report (core/ports.py ConnectorEvents).

Messages wait here in one queue, in order. Each loop turn they go to their connector
in one batch per connector, as many as it has `room` for. A message's connector is the
one its route chose at submit; when that connector is unavailable (disabled, not bound,
failing: `UpstreamConnector.available`), the message goes by the next route of its
failover order (core/routing.py `candidates`), so a fault never changes the price
(the first route's, charged at submit). A connector that is available but full keeps
its messages waiting for it: least-cost routing does not spill to dearer routes under
load. Messages no connector can take now wait and are tried again every
`retry_seconds` (and at once when one frees room: every `room_poll` seconds while a
connector is full).

What comes back: `sent` (the upstream's ids: stored with the next group commit, or held
briefly for the simulator, see core/statuses.py; `sent_all` for a whole send of the
simulator), `failed` (temporary: sent again, by the next route while this one is down;
permanent: REJECTD with the upstream's status), `status` and `status_all` (the
simulator's outcomes, a slot's at once), `report` (receipts matched by upstream id through
core/correlation.py and core/reports.py), `inbound` (MO, to core/inbound.py).

Nothing is lost if the process dies: undispatched messages are reloaded from the store
at start (core/scheduler.py).

Memory stays bounded while an upstream is down for long: past `max_queued` messages
waiting for one connector, new ones stay in the store only ("spilled"); once that
queue has drained to half, the refill (App._refill) reads the unsent ones of this node
from the store again and queues those not already here, until the queue is full again
or none is left.

Cancel and dispatch agree: a message is either cancelled (and refunded) or sent, never
both. A message counts as sent from the moment it is handed to a connector until its
sent mark is committed (`sent_not_stored`); the store refuses to cancel it after that.
A cancel first claims its ids here (`hold`): those already sent are left out, and the
others are held back in their queue while the cancel's transaction runs, so none can
go out meanwhile. `release` then drops from the queues those the store cancelled (or
may have: an unknown commit outcome) and releases the rest. replace_sm does the same,
and `release` puts the new text into the copy waiting here, so that what goes out is
what the store holds. Only ids of changes in flight are remembered. A reader of the
store that dispatches what it read (the scheduler) compares `hold_generation` around
its read, since a change that overlapped the read may have changed what it saw.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence

from .correlation import Match, ReceiptCorrelator
from .models import (
    FINAL_STATUSES,
    REJECTD,
    InboundMessage,
    Message,
    SentUpdate,
    StatusUpdate,
    UpstreamFailure,
    UpstreamReport,
)
from .ports import Done, Store, UpstreamConnector, Writer
from .reports import ReportBook
from .routing import RoutingTable
from .statuses import StatusBook, StatusListener, StatusRecorder

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5  # a message nobody can take, or that failed temporarily, waits this
ROOM_POLL_SECONDS = 0.005  # how often a full connector is asked for room again
InboundHandler = Callable[[InboundMessage, Done], None]


class Dispatcher:
    def __init__(self, writer: Writer, refund_upstream_rejections: bool = True,
                 sent_hold: float = 1.0, store: Store | None = None,
                 routing: Callable[[], RoutingTable] | None = None,
                 max_queued: int = 0, park_seconds: float = 10.0) -> None:
        self._writer = writer
        self.max_queued = max_queued  # per connector, in memory; 0: no cap
        self.spilled = 0  # messages left in the store for want of room here (metrics)
        self._spilling = False  # some wait in the store only: refill when there is room
        self._refill: Callable[[], None] = lambda: None  # set_refill
        self.book = StatusBook(writer, refund_upstream_rejections, sent_hold)
        self._routing = routing
        self.connectors: dict[str, UpstreamConnector] = {}
        # connector name -> messages waiting for it, in order
        self._queues: dict[str, deque[Message]] = {}
        self._retrying: list[Message] = []  # failed temporarily: back in RETRY_SECONDS
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0  # loop time the timer fires at (uvloop's has no when())
        # Handed to a connector that has not reported them sent (or failed) yet
        self._sending: set[int] = set()
        self._holding: dict[int, int] = {}  # id -> cancels/replaces in flight: held back
        self.hold_generation = 0  # changes when a cancel or replace begins or ends
        self._inbound: InboundHandler | None = None
        self.reports = ReportBook(store, writer, self._apply_report) if store else None
        self.correlator = ReceiptCorrelator(
            store, self._matched, self._keep_unmatched,
            lambda report: self._writer.drop_unmatched(report),
            park_seconds=park_seconds) if store else None
        self._holds_lease: Callable[[], bool] = lambda: True  # set_lease
        # While reloads from the store run (refill, reclaim): the ids dispatched, sent or
        # refused since the first began. The store's answer may predate those events.
        self._reloads = 0
        self._touched: set[int] = set()
        self.dispatched = 0
        self.failovers = 0  # messages sent by a later route than their own
        self.retried = 0  # temporary failures sent again
        self.rejected = 0  # permanent refusals by an upstream

    # -- wiring -------------------------------------------------------------------------

    @property
    def statuses(self) -> dict[str, int]:
        return self.book.statuses

    def add_listener(self, listener: StatusListener) -> None:
        """Called on every final or intermediate status (receipts, HTTP callbacks)."""
        self.book.add_listener(listener)

    def set_recorder(self, recorder: StatusRecorder) -> None:
        """Records a status before it is stored (core/statuses.py)."""
        self.book.set_recorder(recorder)

    def set_inbound(self, handler: InboundHandler) -> None:
        """Where MO from upstreams goes (core/inbound.py)."""
        self._inbound = handler

    def set_lease(self, holds: Callable[[], bool]) -> None:
        """Send only while `holds()` (cluster/nodes.py): a node silent for too long may
        have been taken for dead, its queued messages taken over and sent by another."""
        self._holds_lease = holds

    def set_refill(self, refill: Callable[[], None]) -> None:
        """Called when a queue that spilled has room again (see the module's doc)."""
        self._refill = refill

    async def add_connector(self, connector: UpstreamConnector) -> None:
        self.connectors[connector.name] = connector
        await connector.start(self)
        self._schedule(0.0)

    async def remove_connector(self, name: str) -> None:
        """Stop one connector; what it held comes back through `failed`."""
        connector = self.connectors.pop(name, None)
        if connector is not None:
            await connector.stop()

    async def stop(self) -> None:
        for name in list(self.connectors):
            await self.remove_connector(name)
        if self._timer is not None:
            self._timer.cancel()
        if self.correlator is not None:
            self.correlator.stop()
        self.book.stop()

    # -- sending ------------------------------------------------------------------------

    def hold(self, ids: Iterable[int]) -> list[int]:
        """The ids a cancel_sm or replace_sm may change (those not sent), held back from
        their connector until `release`: none goes out while its transaction runs."""
        claimed = [i for i in ids if not self.sent_not_stored(i)]
        for message_id in claimed:
            self._holding[message_id] = self._holding.get(message_id, 0) + 1
        self.hold_generation += 1
        return claimed

    def release(self, claimed: list[int], gone: Collection[int] = (),
                replaced: Callable[[Message], None] | None = None) -> None:
        """The change of `claimed` is over: the `gone` ones (cancelled, or perhaps: the
        commit's outcome is unknown; recovery sends the stored version at the next
        start) never go out from here; `replaced` updates the waiting copy of a
        replaced one; the others are released as they were."""
        for message_id in claimed:
            left = self._holding.pop(message_id) - 1
            if left:
                self._holding[message_id] = left
        if gone or replaced:
            self._amend_queues(set(claimed), set(gone), replaced)
        self.hold_generation += 1
        if self.queued:
            self._schedule(0.0)

    def _amend_queues(self, claimed: set[int], gone: set[int],
                      replaced: Callable[[Message], None] | None) -> None:
        """Apply a replace to the waiting copies, then drop the gone ones and those a
        replace scheduled for later (the scheduler sends them at their time)."""
        if replaced is not None:
            for message in (*self._retrying, *(m for q in self._queues.values() for m in q)):
                if message.id in claimed:
                    replaced(message)
        now = time.time()

        def keep(m: Message) -> bool:
            return m.id not in gone and not (m.id in claimed and m.schedule_at is not None
                                             and m.schedule_at > now)
        for name, queue in self._queues.items():
            if queue:
                self._queues[name] = deque(filter(keep, queue))
        self._retrying = list(filter(keep, self._retrying))

    @property
    def holds_pending(self) -> int:
        """Ids remembered for cancels and replaces: only those of ones in flight."""
        return len(self._holding)

    def dispatch(self, message: Message) -> None:
        if self._reloads:
            self._touched.add(message.id)
        queue = self._queues.get(message.connector)
        if queue is None:
            queue = self._queues[message.connector] = deque()
        elif self.max_queued and len(queue) >= self.max_queued:
            self.spilled += 1
            self._spilling = True
            return  # stored: the refill queues it once there is room
        queue.append(message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Each connector's queue: as much as it has room for to it; the queue of an
        unavailable one is offered to the next routes. Costs O(messages sent) plus, for
        an unavailable connector's queue, one look per message every retry_seconds."""
        self._flush_scheduled = False
        if not self._holds_lease():
            self._schedule(RETRY_SECONDS)
            return
        if self._retrying:
            retrying, self._retrying = self._retrying, []
            for message in retrying:
                self._queues.setdefault(message.connector, deque()).appendleft(message)
        now = time.time()
        full = waiting = False
        moved = self.failovers
        for name, queue in list(self._queues.items()):
            if not queue:
                continue
            connector = self.connectors.get(name)
            if connector is not None and connector.available:
                full |= self._send_from(connector, queue, now)
            else:
                waiting |= self._fail_over(queue, now)
        if self._spilling and all(len(q) <= self.max_queued // 2
                                  for q in self._queues.values()):
            self._spilling = False  # until the refill finds the queue full again
            self._refill()
        if self.failovers != moved:
            self._schedule(0.0)  # the routes that took them may come before in the loop
        elif full:
            self._schedule(ROOM_POLL_SECONDS)
        elif waiting:
            self._schedule(RETRY_SECONDS)

    def _send_from(self, connector: UpstreamConnector, queue: deque[Message],
                   now: float) -> bool:
        """Send the front of `queue`; True when messages are left for lack of room."""
        room = connector.room
        batch = []
        held: list[Message] = []  # a cancel or replace in flight decides these
        while queue and len(batch) < room:
            message = queue.popleft()
            if self._holding and message.id in self._holding:
                held.append(message)
            elif self._sendable(message, now):
                batch.append(message)
        queue.extendleft(reversed(held))
        if batch:
            self.dispatched += len(batch)
            connector.send(batch)
            # Sent now, whenever the upstream answers: those not reported yet stay
            # "sent" for cancel_sm until then (the simulator reports within send()).
            self._sending.update(m.id for m in batch
                                 if m.sent_at is None and m.status not in FINAL_STATUSES)
        return len(queue) > len(held)

    def _fail_over(self, queue: deque[Message], now: float) -> bool:
        """Move what another route can take now to that route's queue; True when
        messages are left waiting."""
        if not any(c.available for c in self.connectors.values()):
            return True
        kept: deque[Message] = deque()
        while queue:
            message = queue.popleft()
            if not self._sendable(message, now):
                continue
            name = self._next_route(message)
            if name is None:
                kept.append(message)
            else:
                message.connector = name
                self.failovers += 1
                self._queues.setdefault(name, deque()).append(message)
        queue.extend(kept)
        return bool(queue)

    @staticmethod
    def _sendable(message: Message, now: float) -> bool:
        # past its validity: the expiry loop stores EXPIRED (core/scheduler.py)
        return message.expires_at is None or message.expires_at >= now

    def _next_route(self, message: Message) -> str | None:
        """The first connector of the message's failover order that is available."""
        if self._routing is None:
            return None
        for route in self._routing().candidates(message.account_id, message.dest_addr,
                                                message.source_addr,
                                                prefer=message.connector):
            connector = self.connectors.get(route.connector)
            if route.connector != message.connector and connector is not None \
                    and connector.available:
                return route.connector
        return None

    def _schedule(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer, self._timer_due = loop.call_later(delay, self._on_timer), due

    def _on_timer(self) -> None:
        self._timer = None
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._flush()

    @property
    def queued(self) -> int:
        return sum(map(len, self._queues.values())) + len(self._retrying)

    # -- ConnectorEvents (core/ports.py) ------------------------------------------------

    def sent(self, message: Message, upstream_ids: Sequence[str]) -> asyncio.Future | None:
        self._sending.discard(message.id)
        if self._reloads:
            self._touched.add(message.id)  # its mark may commit before a reload's read
        connector = self.connectors.get(message.connector)
        hold = connector is not None and connector.resend_safe
        first = upstream_ids[0] if upstream_ids else ""
        parts = tuple(upstream_ids) if len(upstream_ids) > 1 else ()
        stored = self.book.sent(message, SentUpdate(message.id, message.connector,
                                                    time.time(), first, parts), hold)
        if self.correlator is not None and not hold:
            self.correlator.remember(message, message.connector, upstream_ids)
        if parts and self.reports is not None:
            self.reports.split(message, upstream_ids)
        return stored

    def sent_all(self, messages: Sequence[Message], upstream_ids: Sequence[str]) -> None:
        connector = self.connectors.get(messages[0].connector) if messages else None
        if connector is None or not connector.resend_safe:
            for message, upstream_id in zip(messages, upstream_ids, strict=True):
                self.sent(message, (upstream_id,))
            return
        ids = [m.id for m in messages]
        if self._sending:
            self._sending.difference_update(ids)
        if self._reloads:
            self._touched.update(ids)
        self.book.sent_all(messages, upstream_ids, time.time())

    def failed(self, message: Message, failure: UpstreamFailure) -> None:
        self._sending.discard(message.id)
        if self._reloads:
            self._touched.add(message.id)
        if failure.temporary:
            self.retried += 1
            self._retrying.append(message)
            self._schedule(RETRY_SECONDS)
            return
        self.rejected += 1
        log.info("message %s refused by %s: status 0x%x %s", message.id, message.connector,
                 failure.status, failure.detail)
        self.book.apply(message, StatusUpdate(message.id, REJECTD, time.time(),
                                              error_code=failure.status),
                        refund=self.book.refund_upstream_rejections)

    def status(self, message: Message, update: StatusUpdate) -> None:
        if self._sending and update.status in FINAL_STATUSES:
            self._sending.discard(message.id)
        self.book.apply(message, update)

    def status_all(self, outcomes: Sequence[tuple[Message, StatusUpdate]]) -> None:
        sending, apply = self._sending, self.book.apply
        for message, update in outcomes:
            if sending and update.status in FINAL_STATUSES:
                sending.discard(message.id)
            apply(message, update)

    def report(self, report: UpstreamReport, done: Done) -> None:
        if self.correlator is None:
            done(False)
            return
        self.correlator.report(report, done)

    def inbound(self, message: InboundMessage, done: Done) -> None:
        if self._inbound is None:
            log.error("MO from %s to %s not taken: no inbound handler", message.connector,
                      message.dest_addr)
            done(False)
            return
        self._inbound(message, done)

    # -- reports ------------------------------------------------------------------------

    def _matched(self, report: UpstreamReport, match: Match, done: Done) -> None:
        self.reports.deliver(report, match, done)  # type: ignore[union-attr]

    def _apply_report(self, message: Message, update: StatusUpdate, done: Done) -> None:
        self.book.apply(message, update, done)

    def _keep_unmatched(self, report: UpstreamReport, done: Done) -> None:
        future = self._writer.add_unmatched(report)
        future.add_done_callback(lambda f: done(not f.cancelled() and f.exception() is None))

    # -- the status book, for the adapters ----------------------------------------------

    def on_status(self, message: Message, update: StatusUpdate) -> None:
        """A status decided here (validity expiry): stored and told like any other."""
        self.book.apply(message, update)

    def notify(self, message: Message, update: StatusUpdate) -> None:
        """A status stored by someone else (cancel_sm): for the recorder and listeners."""
        self.book.notify(message, update)

    def refill_again(self) -> None:
        """The refill failed, or stopped at a full queue: ask again once there is room
        (a request while it ran was not taken)."""
        self._spilling = True
        self._schedule(RETRY_SECONDS)

    def begin_reload(self, forget_queued: bool = False) -> None:
        """A read of this node's unsent messages from the store begins (App._refill,
        App._lease_regained: `forget_queued`, as the store says which are still ours).
        Until `end_reload`, `not_here` also skips what is in flight or has a sent mark
        not yet stored now, and what is dispatched, sent or refused meanwhile: the
        store's answer may be older than those events. (The caller flushes the writer
        first, so that statuses queued before now are in what the read sees.)"""
        if forget_queued:
            self._queues.clear()
            self._retrying = []
        self._reloads += 1
        self._touched.update(self._sending)
        self._touched.update(self.book.unstored())

    def end_reload(self) -> None:
        self._reloads -= 1
        if not self._reloads:
            self._touched = set()

    def not_here(self, batch: list[Message]) -> list[Message]:
        """The stored messages of `batch` this dispatcher holds in no way (not queued,
        not in flight, not sent awaiting its mark, not touched since the reload began)."""
        here = {m.id for m in self._retrying} | self._touched
        for queue in self._queues.values():
            here.update(m.id for m in queue)
        return [m for m in batch if m.id not in here and not self.sent_not_stored(m.id)]

    def sent_not_stored(self, message_id: int) -> bool:
        """Sent upstream although the store does not say so yet (handed to a connector
        that has not reported it, or its mark is held or not committed): cancel_sm and
        replace_sm must not touch it."""
        return message_id in self._sending or self.book.sent_not_stored(message_id)
