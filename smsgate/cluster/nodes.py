"""This node's registration and heartbeat (SPEC §9).

`serve` claims its node id before it takes any traffic or any per-node claim (callbacks
held by the node, ...): two processes under one identity would each take the other's
claims for their own. Once it listens it heartbeats every second with its live figures,
read from the running parts through plain callables (no server touches the store). A
clean stop marks the row stopped; the row stays, so `smsgate nodes` tells a clean stop
from a crash (a node silent for 5 s is dead).

The lease: a node that stalls (a long GC pause, a stopped VM, a SIGSTOP) is taken for
dead after 5 s of silence, and the others take its unsent messages over. When it wakes,
its dispatcher still holds them. So the node acts as their owner only while its last
beat was sent less than LEASE seconds ago (the row's time is read after that send, so
the others' 5 s run from later than ours); past that its dispatcher sends nothing, and
the first beat that gets through starts a reclaim: the dispatcher forgets its queue and
takes again from the store only what is still this node's.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from ..core.models import NODE_DEAD_AFTER, NodeFigures
from ..core.ports import Store, StoreError

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0
LEASE = NODE_DEAD_AFTER - 1.5  # the margin: a send under way, clocks running apart
Counts = tuple[int, int, int]  # messages accepted, DELIVRD, failed (counters)


class NodeHeartbeat:
    def __init__(self, store: Store, node_id: str, figures: Callable[[], NodeFigures],
                 counts: Callable[[], Counts], on_lost: Callable[[], None],
                 on_lease_regained: Callable[[], Awaitable[None]] | None = None,
                 interval: float = HEARTBEAT_INTERVAL) -> None:
        self.store = store
        self.node_id = node_id
        self.run_id = secrets.token_hex(8)  # this process, as the row knows it
        self.address = ""
        self._figures = figures
        self._counts = counts  # (accepted, delivered, failed) so far: counters
        self._on_lost = on_lost
        self._on_lease_regained = on_lease_regained
        self._lease_until = 0.0  # monotonic time: see LEASE
        self.interval = interval
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._claimed = False
        self.lost = False  # another process took this node id over while we ran

    async def claim(self) -> None:
        """Raises NodeInUse while another live process is this node."""
        sent = time.monotonic()
        await self.store.claim_node(self.node_id, self.run_id)
        self._claimed = True
        self._lease_until = sent + LEASE

    def holds_lease(self) -> bool:
        """Whether this node may act as the owner of its messages now (see LEASE)."""
        return time.monotonic() < self._lease_until

    def start(self, address: str) -> None:
        self.address = address
        self._task = asyncio.create_task(self._beat(), name="node-heartbeat")

    async def stop(self) -> None:
        """Let the current beat finish (a beat cut off mid-statement could leave the
        lock's connection unusable), then mark the node stopped."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._claimed:
            self._claimed = False
            try:
                await self.store.stop_node(self.node_id, self.run_id)
            except StoreError as exc:  # it will read as dead in 5 s: no harm done
                log.warning("node %s not marked stopped: %s", self.node_id, exc)

    async def _beat(self) -> None:
        last, last_at = self._counts(), time.monotonic()
        while not self._stopping.is_set():
            counts, now = self._counts(), time.monotonic()
            figures = self._figures()
            elapsed = max(now - last_at, 1e-3)
            (figures.messages_per_second, figures.delivered_per_second,
             figures.failed_per_second) = (round((n - n0) / elapsed, 1)
                                           for n, n0 in zip(counts, last, strict=True))
            last, last_at = counts, now
            try:
                sent = time.monotonic()
                if not await self.store.node_heartbeat(self.node_id, self.run_id,
                                                       self.address, figures):
                    self._lost()
                    return
                await self._renew(sent)
            except StoreError as exc:  # the store may be back at the next beat
                log.warning("node heartbeat failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def _renew(self, sent: float) -> None:
        lapsed = sent >= self._lease_until
        self._lease_until = sent + LEASE
        if lapsed and self._on_lease_regained is not None:
            log.warning("node %s was silent for over %.1f s and may have been taken for "
                        "dead: reclaiming its messages from the store", self.node_id, LEASE)
            try:
                await self._on_lease_regained()
            except Exception:  # the next beat tries again; nothing is sent meanwhile
                self._lease_until = 0.0
                log.exception("node %s: reclaiming its messages failed", self.node_id)

    def _lost(self) -> None:
        log.error("node %s: another process has taken this node id over; stopping",
                  self.node_id)
        self._claimed = False
        self.lost = True
        self._on_lost()
