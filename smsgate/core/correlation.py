"""Receipt correlation (SPEC §8): which message an upstream's delivery report is about.

An upstream names a message by the id it gave in its answer to our submit (the SMPP
submit_sm_resp, an HTTP provider's answer). The connector gives every spelling of the
report's id that its `id_format` accepts (decimal, hex, leading zeros: SMPP34.md §6.3),
and the first that matches wins:

1. **Memory**: the ids of messages sent lately, kept here when the upstream accepted
   them (`remember`). Most reports come within seconds, and this also matches a report
   that arrives before the message's sent mark is committed.

   A numeric id is ambiguous ("16" may be sixteen, or 0x16 of a hex id), and an SMSC
   with several sessions may deliver a receipt on one before the answer to its submit
   on another. So the correlator learns, per connector, the *relation* between the
   ids of its receipts and of its answers (the same string, the same decimal number,
   the same hex number, decimal in the receipt for hex in the answer, or the reverse;
   only those the connector's `id_format` allows; separately for ids read from the
   receipted_message_id TLV and from the receipt text, which an SMSC may spell
   differently) from the first unambiguous match,
   and from then on looks up only the spelling that relation gives. A match that
   several relations explain (ids 0-9, the first of an SMSC numbering from 1, are
   the same in every base) is taken, but teaches nothing. A report that
   matches nothing, or several messages, is never guessed at: it goes on to the store
   and the park, where the message's own answer will come.
2. **The store**: the (connector, upstream_id) index of the messages table, and of the
   message_parts table for the later parts of a message we split ourselves.
3. **Parked**: a report matching nothing is stored as unmatched at once (the upstream
   is answered then: an SMSC's window, an HTTP provider's request, never wait on the
   park) and waits `park_seconds` in memory; an id remembered meanwhile matches it
   (some SMSCs send the receipt before the answer to the submit reaches us), and its
   unmatched row goes. Past that it stays unmatched, logged: never dropped in silence.

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
# Deletes the unmatched row of a report a message claimed later.
DropUnmatched = Callable[[UpstreamReport], None]
# Hands over a matched report.
Deliver = Callable[[UpstreamReport, Match, Done], None]


class ReceiptCorrelator:
    def __init__(self, store: Store, deliver: Deliver, keep_unmatched: KeepUnmatched,
                 drop_unmatched: DropUnmatched,
                 memory_size: int = 100_000, park_seconds: float = 10.0,
                 max_parked: int = 10_000) -> None:
        self._store = store
        self._deliver = deliver
        self._keep_unmatched = keep_unmatched
        self._drop_unmatched = drop_unmatched
        self.memory_size = memory_size
        self.park_seconds = park_seconds
        self.max_parked = max_parked
        # (connector, key) -> match; keys are ("s", spelling), ("d", decimal value) and
        # ("h", hex value) of each id: a report is looked up by its relation's key
        self._recent: OrderedDict[tuple[str, tuple], Match] = OrderedDict()
        # (connector, where its reports' ids are read) -> learned relation (RELATIONS)
        self._relation: dict[tuple[str, str], str] = {}
        # (connector, spelling) -> parked reports waiting for that id (stored unmatched)
        self._parked: dict[tuple[str, str], list[tuple[UpstreamReport, float]]] = {}
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
            match = Match(message, part)
            for key in _keys(upstream_id):
                self._recent[(connector, key)] = match
            parked = self._parked.get((connector, upstream_id)) if self._parked else None
            if parked:
                self._unpark(list(parked), match)
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
        """By the learned relation's key; before one is learned, the same string, or
        else a match only when every allowed relation that finds something finds the
        same message."""
        connector, recent = report.connector, self._recent
        scheme = (connector, report.id_source)
        learned = self._relation.get(scheme)
        if learned is not None:
            key = RELATIONS[learned](report.upstream_ids[0])
            return None if key is None else recent.get((connector, key))
        same = recent.get((connector, ("s", report.upstream_ids[0])))
        if same is not None:
            self._relation[scheme] = "same"
            return same
        found: dict[str, Match] = {}
        for name in _allowed(report.upstream_ids):
            key = RELATIONS[name](report.upstream_ids[0])
            match = None if key is None else recent.get((connector, key))
            if match is not None:
                found[name] = match
        messages = {id(m.message) for m in found.values()}
        if len(messages) != 1:
            return None
        name, match = next(iter(found.items()))
        if len(found) == 1:  # learnt only from an id no other relation explains
            self._relation[scheme] = name
        return match

    async def _from_store(self, report: UpstreamReport, done: Done) -> None:
        try:
            match = await self._lookup(report)
        except Exception as exc:  # the store is down: let the upstream send it again
            log.error("report %s from %s not matched: %s", report.upstream_ids[:1],
                      report.connector, exc)
            done(False)
            return
        memory = self._in_memory(report)  # remembered while the store was asked?
        if memory is not None:
            self.matched_memory += 1
            self._deliver(report, memory, done)
        elif match is not None:
            self.matched_store += 1
            self._deliver(report, match, done)
        else:
            self._park(report, done)

    async def _lookup(self, report: UpstreamReport, guess: bool = False) -> Match | None:
        """The store's match: by the learned relation, or the only candidate; with
        `guess` (the park is over), the likeliest spelling's."""
        ids = list(dict.fromkeys(report.upstream_ids))
        found = await self._store.messages_by_upstream_id(report.connector, ids)
        if found:
            chosen = self._choose(report, found)
            if chosen is None and guess:
                chosen = _first_by_spelling(found, ids)
                self._relearn((report.connector, report.id_source), ids[0],
                              chosen.upstream_id)
            return None if chosen is None else Match(chosen)
        part = await self._store.part_by_upstream_id(report.connector, ids)
        if part is None:
            return None
        message_id, number = part
        message = await self._store.get_message(message_id)
        return None if message is None else Match(message, number)

    # -- the park -------------------------------------------------------------------------

    def _park(self, report: UpstreamReport, done: Done) -> None:
        """Store it as unmatched (`done` follows that write), and wait for its id."""
        self._keep_unmatched(report, done)
        if self._parked_count >= self.max_parked:
            self._give_up(report)
            return
        deadline = time.monotonic() + self.park_seconds
        for upstream_id in report.upstream_ids:
            self._parked.setdefault((report.connector, upstream_id), []).append(
                (report, deadline))
        self._parked_count += 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.park_seconds / 4, self._expire_parked)

    def _unpark(self, parked: list[tuple[UpstreamReport, float]], match: Match) -> None:
        for report, _deadline in parked:
            if self._drop_parked(report):
                self.matched_memory += 1
                self._claim(report, match)

    def _claim(self, report: UpstreamReport, match: Match) -> None:
        """A parked report found its message: apply it, then drop its unmatched row."""
        def applied(ok: bool) -> None:
            if ok:
                self._drop_unmatched(report)
        self._deliver(report, match, applied)

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
        expired = {id(report): report for waiting in self._parked.values()
                   for report, deadline in waiting if deadline <= now}
        for report in expired.values():
            if self._drop_parked(report):
                asyncio.get_running_loop().create_task(self._last_look(report))
        if self._parked:
            self._timer = asyncio.get_running_loop().call_later(
                self.park_seconds / 4, self._expire_parked)

    async def _last_look(self, report: UpstreamReport) -> None:
        """One more look in the store before giving up: on PostgreSQL the sent mark's
        commit can land after the first look although it began before the report."""
        try:
            match = await self._lookup(report, guess=True)
        except Exception:
            match = None  # it stays unmatched: the operator still sees it
        if match is not None:
            self.matched_store += 1
            self._claim(report, match)
        else:
            self._give_up(report)

    def _give_up(self, report: UpstreamReport) -> None:
        self.unmatched += 1
        log.warning("report %s (%s) from %s matches no message: kept as unmatched",
                    report.upstream_ids[0] if report.upstream_ids else "?", report.status,
                    report.connector)

    @property
    def parked(self) -> int:
        return self._parked_count

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


    def _choose(self, report: UpstreamReport, found: list[Message]) -> Message | None:
        """Of the stored messages some spelling found, the one the learned relation
        gives, or (none learned) the only one: then its relation is learned."""
        report_id = report.upstream_ids[0]
        scheme = (report.connector, report.id_source)
        learned = self._relation.get(scheme)
        names = [learned] if learned else _allowed(report.upstream_ids)
        fits = {name: [m for m in found if _related(name, report_id, m.upstream_id)]
                for name in names}
        chosen = {m.id: m for ms in fits.values() for m in ms}
        if len(chosen) != 1:
            return None
        fitting = [name for name, ms in fits.items() if ms]
        if learned is None and len(fitting) == 1:  # as in _in_memory
            self._relation[scheme] = fitting[0]
        return next(iter(chosen.values()))


    def _relearn(self, scheme: tuple[str, str], report_id: str, upstream_id: str) -> None:
        """A match the learned relation missed (found only when the park was over):
        the connector's ids are related otherwise; learn how."""
        for name in RELATIONS:
            if _related(name, report_id, upstream_id):
                if self._relation.get(scheme) != name:
                    log.info("connector %s: receipt ids (%s) now matched as %r", scheme[0],
                             scheme[1] or "as given", name)
                    self._relation[scheme] = name
                return


# How a receipt's id relates to the submit answer's id, as a lookup key of the answer's
# id computed from the receipt's (None: this relation cannot hold for that id).
RELATIONS: dict[str, Callable[[str], tuple | None]] = {
    "same": lambda r: ("s", r),
    "number": lambda r: ("d", int(r)) if _is_dec(r) else None,
    "hex number": lambda r: ("h", int(r, 16)) if _is_hex(r) else None,
    "decimal for hex": lambda r: ("h", int(r)) if _is_dec(r) else None,
    "hex for decimal": lambda r: ("d", int(r, 16)) if _is_hex(r) else None,
}
# The answer's id the connector must have allowed for a relation to be possible
_IMPLIED: dict[str, Callable[[str], str]] = {
    "same": lambda r: r,
    "number": lambda r: str(int(r)),
    "hex number": lambda r: r,
    "decimal for hex": lambda r: f"{int(r):x}",
    "hex for decimal": lambda r: str(int(r, 16)),
}


def _is_dec(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 20


def _is_hex(text: str) -> bool:
    return 0 < len(text) <= 16 and all(c in "0123456789abcdefABCDEF" for c in text)


def _keys(upstream_id: str) -> list[tuple]:
    """Every key an answer's id is found under in memory."""
    keys: list[tuple] = [("s", upstream_id)]
    if _is_dec(upstream_id):
        keys.append(("d", int(upstream_id)))
    if _is_hex(upstream_id):
        keys.append(("h", int(upstream_id, 16)))
    return keys


def _allowed(spellings: Sequence[str]) -> list[str]:
    """The relations the connector's spellings of a report id allow (its id_format)."""
    report_id, allowed = spellings[0], {s.lower() for s in spellings}
    names = []
    for name, implied in _IMPLIED.items():
        if RELATIONS[name](report_id) is not None and implied(report_id).lower() in allowed:
            names.append(name)
    return names


def _related(name: str, report_id: str, upstream_id: str) -> bool:
    key = RELATIONS[name](report_id)
    return key is not None and key in _keys(upstream_id)


def _first_by_spelling(found: list[Message], ids: list[str]) -> Message:
    """Of several messages (different spellings matched different ones), the one whose
    id comes first in the report's order of likelihood."""
    rank = {upstream_id: n for n, upstream_id in enumerate(ids)}
    return min(found, key=lambda m: rank.get(m.upstream_id, len(ids)))
