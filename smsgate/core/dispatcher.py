"""Hands stored messages to their route's connector and records what comes back.

Messages dispatched during one event-loop turn go to each connector as one batch. A
connector that is not ready (an SMPP upstream not bound yet) keeps its queue here and
is retried; nothing is lost if the process dies meanwhile, since undispatched messages
are reloaded from the store at start.
"""

import asyncio
import logging
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


class Dispatcher:
    def __init__(self, writer, refund_upstream_rejections: bool = True) -> None:
        self._writer = writer
        self.refund_upstream_rejections = refund_upstream_rejections
        self.connectors: dict[str, UpstreamConnector] = {}
        self._queues: dict[str, list[Message]] = {}
        self._flush_scheduled = False
        self._listeners: list[StatusListener] = []
        self._cancelled: set[int] = set()  # cancelled while possibly queued or armed
        self.dispatched = 0

    def add_listener(self, listener: StatusListener) -> None:
        """Called on every final or intermediate status (receipts, HTTP callbacks)."""
        self._listeners.append(listener)

    async def add_connector(self, connector: UpstreamConnector) -> None:
        self.connectors[connector.name] = connector
        await connector.start(self.on_status)

    async def stop(self) -> None:
        for connector in self.connectors.values():
            await connector.stop()

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
        if update.status == ATES:
            message.sent_at = update.at
            message.upstream_id = update.upstream_id
            self._writer.add_sent(SentUpdate(message.id, message.connector, update.at,
                                             update.upstream_id))
            return
        self._writer.add_status(update)
        message.status = update.status
        if update.status in FINAL_STATUSES:
            message.done_at = update.at
            if update.status == REJECTD and self._refundable(message):
                self._writer.add_refund(Refund(message.account_id, message.price, message.id,
                                               "refund: rejected upstream"))
        elif update.status == ACCEPTD:
            message.accepted_at = update.at
        self.notify(message, update)

    def notify(self, message: Message, update: StatusUpdate) -> None:
        for listener in self._listeners:
            try:
                listener(message, update)
            except Exception:
                log.exception("status listener failed for message %s", message.id)

    def _refundable(self, message: Message) -> bool:
        # Refused before it was sent: always refunded. Rejected by the upstream: policy.
        return message.sent_at is None or self.refund_upstream_rejections
