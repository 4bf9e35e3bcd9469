"""The cluster's throughput over the last minutes, for the dashboard's live chart.

Every node reports its rates (accepted, DELIVRD and failed messages per second) with
its heartbeat each second (cluster/nodes.py); the nodes table keeps only the latest.
`Throughput` samples the sum over the live nodes once a second and keeps the last
`keep` samples in memory, so a chart opened now shows the recent past, and any number
of dashboards cost one small read a second.

It samples only while someone looks: the first `series` call starts the sampler, which
stops after `idle` seconds without one. No read per second is spent on a gateway that
nobody watches; the samples kept from the last watch age out of the window.

The rates are the heartbeats' own (each a mean over about one second), read by a
sampler that does not beat in step with them: a sample may see a heartbeat twice or
miss one. For a chart that is noise of one second; totals are in `/stats`.
"""

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from .models import ALIVE
from .ports import Store, StoreError
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

SAMPLE_INTERVAL = 1.0
KEEP = 900  # samples: 15 minutes at one a second
IDLE = 120.0  # seconds without a reader before the sampler stops


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # epoch seconds
    accepted: float  # messages per second, summed over the live nodes
    delivered: float
    failed: float
    nodes: int  # live nodes counted


class Throughput:
    def __init__(self, store: Store, interval: float = SAMPLE_INTERVAL, keep: int = KEEP,
                 idle: float = IDLE) -> None:
        self._store = store
        self.interval, self.idle = interval, idle
        self._samples: deque[Sample] = deque(maxlen=keep)
        self._task: asyncio.Task | None = None
        self._asked_at = 0.0  # monotonic time of the last series() call

    async def series(self, seconds: float) -> list[Sample]:
        """The samples of the last `seconds`, oldest first; starts the sampler, and
        waits for its first sample when there is none yet."""
        self._asked_at = time.monotonic()
        if not self.sampling:
            await self.sample()  # the first point now, not a second later
            if not self.sampling:  # (another caller may have started it meanwhile)
                self._task = asyncio.create_task(self._run(), name="throughput-sampler")
        since = time.time() - seconds
        return [s for s in self._samples if s.at >= since]

    @property
    def sampling(self) -> bool:
        return self._task is not None and not self._task.done()

    async def sample(self) -> None:
        """Read the live nodes' latest rates and keep their sum."""
        nodes = [n for n in await self._store.list_nodes() if n.state == ALIVE]
        self._samples.append(Sample(
            at=time.time(),
            accepted=round(sum(n.figures.messages_per_second for n in nodes), 1),
            delivered=round(sum(n.figures.delivered_per_second for n in nodes), 1),
            failed=round(sum(n.figures.failed_per_second for n in nodes), 1),
            nodes=len(nodes)))

    async def _run(self) -> None:
        while time.monotonic() - self._asked_at < self.idle:
            await asyncio.sleep(self.interval)
            try:
                await self.sample()
            except StoreError as exc:  # a gap in the chart; the next second may do
                log.warning("throughput sample failed: %s", exc)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
