"""core/health.py without a network: one probe shared by concurrent checks, answers
reused briefly, a hanging store answered by the timeout without a second probe, and a
stuck or stopped group commit reported. (tests/servers/test_health.py runs the real
stores behind a real HTTP port.)"""

import asyncio

from smsgate.core.health import HealthCheck
from smsgate.core.ports import StoreError


class HeartbeatStore:
    """Only what the check uses: set_setting, gated by `gate` when it is not None."""

    backend = "memory"

    def __init__(self) -> None:
        self.writes = 0
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def set_setting(self, key: str, value: str) -> None:
        self.writes += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error


class Writer:
    def __init__(self) -> None:
        self.stalled = 0.0

    def stalled_for(self) -> float:
        return self.stalled


def check(store: HeartbeatStore, writer: Writer | None = None, **options) -> HealthCheck:
    return HealthCheck(store, writer or Writer(), "n1",  # type: ignore[arg-type]
                       lambda: {"sim": "up"}, **options)


async def test_concurrent_checks_share_one_write_and_reuse_it():
    store = HeartbeatStore()
    health = check(store)
    reports = await asyncio.gather(*(health.report() for _ in range(20)))
    assert all(r.ok for r in reports) and store.writes == 1
    await health.report()
    assert store.writes == 1  # within cache_seconds
    health.cache_seconds = 0
    await health.report()
    assert store.writes == 2
    assert reports[0].body() == {"status": "ok", "node": "n1", "store": "memory",
                                 "store_ms": reports[0].store_ms, "connectors": {"sim": "up"}}


async def test_a_hanging_store_is_a_timeout_and_gets_no_second_probe():
    store = HeartbeatStore()
    store.gate = asyncio.Event()
    health = check(store, timeout=0.1, cache_seconds=0)
    for _ in range(3):
        report = await health.report()
        assert not report.ok and report.reason == "store did not answer within 0.1 s"
    assert store.writes == 1
    store.gate.set()
    assert (await health.report()).ok


async def test_a_failed_write_and_a_stuck_or_stopped_writer_are_failures():
    store, writer = HeartbeatStore(), Writer()
    health = check(store, writer, cache_seconds=0, max_commit_seconds=5)
    store.error = StoreError("sqlite: attempt to write a readonly database")
    report = await health.report()
    assert (report.ok, report.reason, report.store_ms) == (False, "store write failed", None)
    store.error = None
    writer.stalled = 6.0
    assert (await health.report()).reason == "group commit waiting on the store for 6 s"
    writer.stalled = float("inf")
    assert (await health.report()).reason == "group commit has stopped"
    writer.stalled = 1.0
    assert (await health.report()).ok
