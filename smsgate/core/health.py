"""Whether this node can take traffic, for GET /health (SPEC §10).

A node is healthy when its store answers AND takes a write, and its group commit is
not stuck. The write is real (an upsert of this node's heartbeat key in `settings`),
not a flag kept in memory: a store that reads but cannot write (a locked SQLite file,
a read-only or unreachable PostgreSQL) makes a node that accepts nothing.

A health check must not become a way to load the store: concurrent requests share the
one probe in flight, a result is reused for `cache_seconds`, and a probe that the
store does not answer is not started again while it still waits. Each request waits
at most `timeout` seconds, so a hanging store gives a prompt 503, not a hanging check.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .ports import Store, Writer

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "health:{node}"  # settings key the probe writes (one per node)


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    reason: str  # why not ok ('' when ok)
    node: str
    store: str  # backend name
    store_ms: float | None  # how long the probe's write took (None: it did not return)
    connectors: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        """The JSON body of GET /health."""
        body: dict = {"status": "ok" if self.ok else "fail"}
        if not self.ok:
            body["reason"] = self.reason
        body.update(node=self.node, store=self.store, store_ms=self.store_ms,
                    connectors=self.connectors)
        return body


class HealthCheck:
    def __init__(self, store: Store, writer: Writer, node: str,
                 connectors: Callable[[], dict[str, str]], timeout: float = 2.0,
                 cache_seconds: float = 0.5, max_commit_seconds: float = 10.0) -> None:
        self._store = store
        self._writer = writer
        self.node = node
        self._connectors = connectors  # name -> up | down | disabled | broken
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.max_commit_seconds = max_commit_seconds  # a commit older than this: stuck
        self._probe: asyncio.Task[float] | None = None
        self._probed_at = 0.0  # when the last probe returned (or failed)
        self._last: HealthReport | None = None  # to log changes of state

    async def report(self) -> HealthReport:
        """The node's health, from a probe at most `cache_seconds` old or in flight,
        in at most `timeout` s."""
        probe = self._current_probe()
        try:
            async with asyncio.timeout(self.timeout):
                store_ms: float | None = await asyncio.shield(probe)
            reason = self._writer_problem()
        except TimeoutError:
            store_ms, reason = None, f"store did not answer within {self.timeout:g} s"
        except Exception:  # StoreError and whatever a broken driver raises
            store_ms, reason = None, "store write failed"  # the detail: in the log
        report = HealthReport(not reason, reason, self.node, self._store.backend, store_ms,
                              self._connectors())
        self._remember(report)
        return report

    def _current_probe(self) -> "asyncio.Task[float]":
        """The probe in flight, or the last one while fresh; else a new one. Freshness
        counts from the probe's end, not from an asker's answer: an asker arriving
        between the two must not start a second write."""
        probe = self._probe
        if probe is None or (probe.done()
                             and time.monotonic() - self._probed_at >= self.cache_seconds):
            probe = self._probe = asyncio.create_task(self._write_heartbeat(),
                                                      name="health-probe")
            # its error is read here even when every asker had timed out and left
            probe.add_done_callback(_consume_error)
        return probe

    async def _write_heartbeat(self) -> float:
        """Milliseconds a real write through the store took."""
        started = time.monotonic()
        try:
            await self._store.set_setting(HEARTBEAT_KEY.format(node=self.node),
                                          repr(time.time()))
        except Exception as exc:
            # logged once per probe, not per asker; only the log gets the detail, since
            # /health answers anyone who asks
            log.warning("health: store write failed: %s", exc)
            raise
        finally:
            self._probed_at = time.monotonic()
        return round((self._probed_at - started) * 1000, 1)

    def _writer_problem(self) -> str:
        stalled = self._writer.stalled_for()
        if stalled == float("inf"):
            return "group commit has stopped"
        if stalled > self.max_commit_seconds:
            return f"group commit waiting on the store for {stalled:.0f} s"
        return ""

    def _remember(self, report: HealthReport) -> None:
        """Log a change of state once, not per request."""
        previous, self._last = self._last, report
        if not report.ok and (previous is None or previous.ok):
            log.warning("health: fail: %s", report.reason)
        elif report.ok and previous is not None and not previous.ok:
            log.warning("health: ok again")


def _consume_error(probe: "asyncio.Task[float]") -> None:
    if not probe.cancelled():
        probe.exception()
