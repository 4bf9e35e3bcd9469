"""Timed work: scheduled messages, recovery of undispatched ones, takeover of a dead
node's, validity expiry.

Scheduled messages wait in the store; every `poll_seconds` the scheduler loads those due
within the next `horizon` seconds and arms a timer for each, so a message goes out
within a second of its time, also after a restart.

With a `node`, a node's scheduler recovers and schedules only the messages it owns
(store/ownership.py), and every `takeover_seconds` takes over the unsent messages of
nodes no longer alive: a scheduled message is sent once, by whichever node owns it when
its time comes.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from .models import ALIVE, ATES, EXPIRED, Message, StatusUpdate
from .ports import Store

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, store: Store, dispatch: Callable[[Message], None],
                 on_expired: Callable[[Message, StatusUpdate], None],
                 poll_seconds: float = 0.25, horizon: float = 1.0,
                 expiry_seconds: float = 5.0,
                 hold_generation: Callable[[], int] = lambda: 0,
                 node: str | None = None, takeover_seconds: float = 2.0) -> None:
        self._store = store
        self._node = node
        self._takeover_seconds = takeover_seconds
        self.taken_over = 0
        self._dispatch = dispatch
        # Changes whenever a cancel or replace begins or ends (Dispatcher.hold_generation).
        self._hold_generation = hold_generation
        self._on_expired = on_expired
        self._poll_seconds = poll_seconds
        self._horizon = horizon
        self._expiry_seconds = expiry_seconds
        self._armed: set[int] = set()  # timer set or fired, still unsent in the store
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        await self.recover()
        self._tasks = [asyncio.create_task(self._schedule_loop(), name="scheduler"),
                       asyncio.create_task(self._expiry_loop(), name="expiry")]
        if self._node is not None:
            self._tasks.append(asyncio.create_task(self._takeover_loop(), name="takeover"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def recover(self, select: Callable[[list[Message]], list[Message]] | None = None,
                      enough: Callable[[], bool] = lambda: False) -> int:
        """Dispatch every stored message of ours that is due but was never sent; with
        `select`, only those it keeps of each batch (a refill or reclaim skips what the
        dispatcher holds), and until `enough()`."""
        count, after = 0, 0
        while not enough():
            batch = await self._store.undispatched(time.time(), 5000, after, self._node)
            if not batch:
                break
            due = batch if select is None else select(batch)
            self._dispatch_due(due)
            count += len(due)
            after = batch[-1].id
        return count

    def _dispatch_due(self, messages: list[Message]) -> None:
        for message in messages:
            # Due scheduled messages are also listed by scheduled_until until their
            # sent_at commits: mark them armed so the loop does not send them again.
            if message.schedule_at is not None:
                self._armed.add(message.id)
            self._dispatch(message)

    async def _takeover_loop(self) -> None:
        """Take over the work of nodes no longer alive: at start (what any other node
        id left, a renamed node's too), then whenever another node dies or stops. The
        takeover's scan of the unsent messages runs only then: on one node with a long
        upstream outage it would otherwise read every waiting message each pass."""
        handled: set[str] | None = None  # nodes not alive whose work was taken over
        while True:
            await asyncio.sleep(self._takeover_seconds)
            try:
                gone = {n.id for n in await self._store.list_nodes() if n.state != ALIVE}
                if handled is None or gone - handled:
                    await self._take_over_all()
                handled = gone
            except Exception:
                log.exception("taking over messages failed")

    async def _take_over_all(self) -> None:
        assert self._node is not None
        while taken := await self._store.take_over(self._node, 5000):
            self.taken_over += len(taken)
            log.warning("took over %d unsent messages of nodes no longer alive", len(taken))
            now = time.time()  # later scheduled ones: the schedule loop's
            self._dispatch_due([m for m in taken
                                if m.schedule_at is None or m.schedule_at <= now])

    async def _schedule_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                now = time.time()
                due = await self._store.scheduled_until(now + self._horizon, 10_000,
                                                        self._node)
                # A fired message stays listed until its sent_at is committed: forget only
                # ids the store no longer lists, so nothing is sent twice.
                self._armed &= {m.id for m in due}
                for message in due:
                    if message.id not in self._armed:
                        self._armed.add(message.id)
                        delay = max(0.0, (message.schedule_at or now) - time.time())
                        loop.call_later(delay, self._fire, message)
            except Exception:
                log.exception("loading scheduled messages failed")
            await asyncio.sleep(self._poll_seconds)

    def _fire(self, message: Message) -> None:
        asyncio.get_running_loop().create_task(self._send_fresh(message.id))

    async def _send_fresh(self, message_id: int) -> None:
        # Re-read: replace_sm or cancel_sm may have changed it since it was armed.
        try:
            message = await self._read_fresh(message_id)
        except Exception:
            log.exception("loading scheduled message %s failed", message_id)
            self._armed.discard(message_id)  # the next poll arms it again
            return
        if message is None or message.sent_at is not None or message.status != ATES:
            return
        if self._node is not None and message.node != self._node:
            return  # taken over while this node was silent (cluster/nodes.py: lease)
        if message.schedule_at is not None and message.schedule_at > time.time() + 0.05:
            self._armed.discard(message_id)  # replace_sm moved it later: the poll re-arms it
            return
        message.schedule_at = None
        self._dispatch(message)

    async def _read_fresh(self, message_id: int, attempts: int = 3) -> Message | None:
        """The message as stored, read while no cancel began or ended: a cancel that
        overlapped the read may have cancelled (and refunded) what the read saw as
        pending. One that spans the whole read holds the message back in the dispatcher
        itself. None (the next poll re-arms it) if cancels keep overlapping."""
        for _ in range(attempts):
            generation = self._hold_generation()
            message = await self._store.get_message(message_id)
            if self._hold_generation() == generation:
                return message
        self._armed.discard(message_id)
        return None

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self._expiry_seconds)
            try:
                now = time.time()
                for message in await self._store.expire_due(now, 10_000):
                    self._on_expired(message, StatusUpdate(message.id, EXPIRED, now))
            except Exception:
                log.exception("expiring messages failed")
