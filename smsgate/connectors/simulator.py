"""The built-in SMSC simulator: accepts every message and reports an outcome later.

Its settings (`settings.SimulatorSettings`, all optional): `min_latency_ms` /
`max_latency_ms` (default 50 / 500: every message is final within a second), `outcomes`
— a weight per final status, default `{"DELIVRD": 1}` — and `accepted` (send an
intermediate ACCEPTD first).
Outcomes due in the same 10 ms slot share one timer, so the simulator keeps up with
tens of thousands of messages per second.
"""

import asyncio
import random
import time
from collections.abc import Sequence

from ..core.models import ACCEPTD, DELIVRD, Message, StatusUpdate
from ..core.ports import ConnectorEvents
from .settings import SimulatorSettings

SLOT_SECONDS = 0.01
ERROR_CODES = {DELIVRD: 0, "UNDELIV": 1, "REJECTD": 2, "EXPIRED": 3, "DELETED": 4,
               "UNKNOWN": 5}


class SimulatorConnector:
    def __init__(self, name: str, config: dict | SimulatorSettings | None = None,
                 seed: int | None = None) -> None:
        """`config` is the connector row's JSON (checked here: SettingsError, a
        ValueError, when bad) or settings already checked."""
        settings = config if isinstance(config, SimulatorSettings) else \
            SimulatorSettings.from_config(config or {})
        self.name = name
        self.min_latency, self.max_latency = settings.latency_bounds
        self._statuses = list(settings.outcomes)
        self._weights = list(settings.outcomes.values())
        self.send_accepted = settings.accepted
        self._random = random.Random(seed)
        self._events: ConnectorEvents | None = None
        self._slots: dict[int, list[Message]] = {}
        self._counter = 0
        self.sent = 0

    resend_safe = True  # nothing leaves the process: a message sent twice costs nothing

    async def start(self, events: ConnectorEvents) -> None:
        self._events = events

    async def stop(self) -> None:
        self._slots.clear()

    @property
    def available(self) -> bool:
        return self._events is not None

    @property
    def room(self) -> int:
        return 1 << 30  # takes everything at once

    def state(self) -> dict:
        return {"available": self.available, "sent": self.sent,
                "pending": sum(map(len, self._slots.values()))}

    def send(self, messages: Sequence[Message]) -> None:
        events = self._events
        assert events is not None, "start() first"
        loop = asyncio.get_running_loop()
        now = time.time()
        first = self._counter + 1
        self._counter += len(messages)
        events.sent_all(messages, [f"sim{n}" for n in range(first, self._counter + 1)])
        if self.send_accepted:
            events.status_all([(m, StatusUpdate(m.id, ACCEPTD, now)) for m in messages])
        for message in messages:
            delay = self._random.uniform(self.min_latency, self.max_latency)
            slot = int((loop.time() + delay) / SLOT_SECONDS)
            bucket = self._slots.get(slot)
            if bucket is None:
                bucket = self._slots[slot] = []
                loop.call_at(slot * SLOT_SECONDS, self._complete, slot)
            bucket.append(message)
        self.sent += len(messages)

    def _complete(self, slot: int) -> None:
        messages = self._slots.pop(slot, [])
        events = self._events
        if not messages or events is None:
            return
        now = time.time()
        statuses = self._random.choices(self._statuses, self._weights, k=len(messages))
        events.status_all([(message, StatusUpdate(message.id, status, now,
                                                error_code=ERROR_CODES.get(status, 0)))
                         for message, status in zip(messages, statuses, strict=True)])
