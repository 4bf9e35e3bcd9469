"""Receipt correlation (SPEC §8): which message an upstream's delivery report is about.

An upstream names a message by the id it gave in its answer to our submit (the SMPP
submit_sm_resp, an HTTP provider's answer). The connector gives every spelling of the
report's id that its `id_format` accepts (decimal, hex, leading zeros: SMPP34.md §6.3),
and the first that matches wins:

1. **Memory**: the ids of messages sent lately, kept here when the upstream accepted
   them (`remember`). Most reports come within seconds, and this also matches a report
   that arrives before the message's sent mark is committed.
2. **The store**: the (connector, upstream_id) index of the messages table, and of the
   message_parts table for the later parts of a message we split ourselves.
3. **Parked**: a report matching nothing waits `park_seconds` in memory; an id
   remembered meanwhile matches it (some SMSCs send the receipt before the answer to
   the submit reaches us). Past that it is kept in the store as unmatched and logged:
   never dropped in silence.

Another spelling than the id as given is a guess: an SMSC numbering from 1 in hex
gives "29" (41) and "41" (65), so the receipt for "29" (or "0000000041") also spells
another message's id. Such a match is taken only when the report's handset number does
not contradict the message (`_plausible`); otherwise the report waits for its own id,
like one that comes before its submit's answer.

Memory is bounded (`memory_size` ids, the oldest forgotten first; forgotten ids are
still found in the store; ids are kept after their message is final, so that a
repeated report is recognised, and ignored, at once) and so is the park (`max_parked`;
past it a report goes straight to the store as unmatched).
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .models import Message, UpstreamReport
from .ports import Done, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Match:
    """A report's message, and which of its parts the report is about (0 = the first
    or only one)."""

    message: Message
    part: int = 0


# Stores a report no message claimed (in the unmatched table); calls done when stored.
KeepUnmatched = Callable[[UpstreamReport, Done], None]
# Hands over a matched report.
Deliver = Callable[[UpstreamReport, Match, Done], None]


class ReceiptCorrelator:
    def __init__(self, store: Store, deliver: Deliver, keep_unmatched: KeepUnmatched,
                 memory_size: int = 100_000, park_seconds: float = 10.0,
                 max_parked: int = 10_000) -> None:
        self._store = store
        self._deliver = deliver
        self._keep_unmatched = keep_unmatched
        self.memory_size = memory_size
        self.park_seconds = park_seconds
        self.max_parked = max_parked
        self._recent: OrderedDict[tuple[str, str], Match] = OrderedDict()
        # (connector, spelling) -> parked reports waiting for that id
        self._parked: dict[tuple[str, str], list[tuple[UpstreamReport, Done, float]]] = {}
        self._parked_count = 0
        self._timer: asyncio.TimerHandle | None = None
        # counters for metrics
        self.matched_memory = 0
        self.matched_store = 0
        self.unmatched = 0

    # -- what was sent ------------------------------------------------------------------

    def remember(self, message: Message, connector: str, upstream_ids: Sequence[str]) -> None:
        """The upstream accepted `message` (one id per part); a parked report for one
        of the ids is delivered now."""
        for part, upstream_id in enumerate(upstream_ids):
            key = (connector, upstream_id)
            self._recent[key] = Match(message, part)
            parked = self._parked.get(key) if self._parked else None
            if parked:
                self._unpark(list(parked), Match(message, part), upstream_id)
        while len(self._recent) > self.memory_size:
            self._recent.popitem(last=False)

    # -- reports --------------------------------------------------------------------------

    def report(self, report: UpstreamReport, done: Done) -> None:
        """Match `report` and hand it over, or park it; `done` follows the outcome."""
        match = self._in_memory(report)
        if match is not None:
            self.matched_memory += 1
            self._deliver(report, match, done)
            return
        asyncio.get_running_loop().create_task(self._from_store(report, done))

    def _in_memory(self, report: UpstreamReport) -> Match | None:
        recent = self._recent
        for n, upstream_id in enumerate(report.upstream_ids):
            match = recent.get((report.connector, upstream_id))
            if match is not None and (n == 0 or _plausible(match.message, report)):
                return match
        return None

    async def _from_store(self, report: UpstreamReport, done: Done) -> None:
        try:
            match = await self._lookup(report)
        except Exception as exc:  # the store is down: let the upstream send it again
            log.error("report %s from %s not matched: %s", report.upstream_ids[:1],
                      report.connector, exc)
            done(False)
            return
        if match is None:
            match = self._in_memory(report)  # remembered while the store was asked
        if match is not None:
            self.matched_store += 1
            self._deliver(report, match, done)
        else:
            self._park(report, done)

    async def _lookup(self, report: UpstreamReport) -> Match | None:
        ids = list(dict.fromkeys(report.upstream_ids))
        found = [m for m in await self._store.messages_by_upstream_id(report.connector, ids)
                 if m.upstream_id == ids[0] or _plausible(m, report)]
        if found:
            return Match(_first_by_spelling(found, ids))
        part = await self._store.part_by_upstream_id(report.connector, ids)
        if part is None:
            return None
        message_id, number = part
        message = await self._store.get_message(message_id)
        return None if message is None else Match(message, number)

    # -- the park -------------------------------------------------------------------------

    def _park(self, report: UpstreamReport, done: Done) -> None:
        if self._parked_count >= self.max_parked:
            self._give_up(report, done)
            return
        deadline = time.monotonic() + self.park_seconds
        for upstream_id in report.upstream_ids:
            self._parked.setdefault((report.connector, upstream_id), []).append(
                (report, done, deadline))
        self._parked_count += 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.park_seconds / 4, self._expire_parked)

    def _unpark(self, parked: list[tuple[UpstreamReport, Done, float]], match: Match,
                upstream_id: str) -> None:
        for report, done, _deadline in parked:
            if upstream_id != report.upstream_ids[0] and \
                    not _plausible(match.message, report):
                continue
            if self._drop_parked(report):
                self.matched_memory += 1
                self._deliver(report, match, done)

    def _drop_parked(self, report: UpstreamReport) -> bool:
        """Remove a parked report from every spelling's list; False if it was gone."""
        removed = False
        for upstream_id in report.upstream_ids:
            key = (report.connector, upstream_id)
            waiting = self._parked.get(key)
            if waiting is None:
                continue
            kept = [entry for entry in waiting if entry[0] is not report]
            removed = removed or len(kept) != len(waiting)
            if kept:
                self._parked[key] = kept
            else:
                del self._parked[key]
        if removed:
            self._parked_count -= 1
        return removed

    def _expire_parked(self) -> None:
        self._timer = None
        now = time.monotonic()
        expired = {id(report): (report, done) for waiting in self._parked.values()
                   for report, done, deadline in waiting if deadline <= now}
        for report, done in expired.values():
            if self._drop_parked(report):
                asyncio.get_running_loop().create_task(self._last_look(report, done))
        if self._parked:
            self._timer = asyncio.get_running_loop().call_later(
                self.park_seconds / 4, self._expire_parked)

    async def _last_look(self, report: UpstreamReport, done: Done) -> None:
        """One more look in the store before giving up: on PostgreSQL the sent mark's
        commit can land after the first look although it began before the report."""
        try:
            match = await self._lookup(report)
        except Exception:
            match = None  # kept as unmatched: the operator still sees it
        if match is not None:
            self.matched_store += 1
            self._deliver(report, match, done)
        else:
            self._give_up(report, done)

    def _give_up(self, report: UpstreamReport, done: Done) -> None:
        self.unmatched += 1
        log.warning("report %s (%s) from %s matches no message: kept as unmatched",
                    report.upstream_ids[0] if report.upstream_ids else "?", report.status,
                    report.connector)
        self._keep_unmatched(report, done)

    @property
    def parked(self) -> int:
        return self._parked_count

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


PLAUSIBLE_DIGITS = 6  # a handset number's last digits, the same in any format


def _plausible(message: Message, report: UpstreamReport) -> bool:
    """Whether a match by another spelling is believable: the report's number agrees
    with the message's destination (or sender: not every SMSC swaps them) in its last
    PLAUSIBLE_DIGITS digits, or there is no such number to compare."""
    theirs = _digits(report.address)
    if len(theirs) < PLAUSIBLE_DIGITS:
        return True
    ours = [d for d in (_digits(message.dest_addr), _digits(message.source_addr))
            if len(d) >= PLAUSIBLE_DIGITS]
    return not ours or any(d[-PLAUSIBLE_DIGITS:] == theirs[-PLAUSIBLE_DIGITS:] for d in ours)


def _digits(address: str) -> str:
    return "".join(c for c in address if c.isdigit())


def _first_by_spelling(found: list[Message], ids: list[str]) -> Message:
    """Of several messages (different spellings matched different ones), the one whose
    id comes first in the report's order of likelihood."""
    rank = {upstream_id: n for n, upstream_id in enumerate(ids)}
    return min(found, key=lambda m: rank.get(m.upstream_id, len(ids)))
