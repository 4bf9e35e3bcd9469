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
   ids of its receipts and of its answers (the same number in the same base, however
   padded or cased; decimal in the receipt for hex in the answer; or the reverse;
   only those the connector's `id_format` allows; separately for ids read from the
   receipted_message_id TLV and from the receipt text, which an SMSC may spell
   differently), and from then on looks up only the keys that relation gives.

   It learns by votes: a report that only one relation explains (in memory and the
   store together) is a vote for it, and `learn_votes` of them, four in five of all
   votes, make it learned; one vote is not enough, as a receipt that overtook its own
   answer may be explained by another message's id alone. Until then such a report
   is parked, and the parked ones are looked at again when a relation is learned. A
   report that several relations explain alike (an id like "7" reads the same in
   every base) is matched but teaches nothing. A report matching nothing, or several
   messages, is never guessed at: it goes to the park.

   A learned relation is kept in the store's settings, and a connector's first report
   after a start waits for what an earlier run (or another node) learned: memory then
   holds only messages sent since, and an SMSC redelivering its receipts for messages
   sent before a crash would otherwise teach, from "2260" for the hex "8d4", that
   receipt ids are the same string as the hex "2260" of a message sent since (found by
   tests/e2e/test_kill_sender.py: half the messages never final after a kill -9). An
   SMSC that changes its spelling is followed after RELEARN_VOTES reports in a row
   that only another relation explains.
2. **The store**: the (connector, upstream_id) index of the messages table, and of the
   message_parts table for the later parts of a message we split ourselves.
3. **Parked**: a report matching nothing is stored as unmatched at once (the upstream
   is answered then: an SMSC's window, an HTTP provider's request, never wait on the
   park) and waits `park_seconds` in memory; an id remembered meanwhile matches it
   (some SMSCs send the receipt before the answer to the submit reaches us), and its
   unmatched row goes. Past that, a last look in the store (by the learned relation;
   none learned: the one message every relation finds, the sent marks long
   committed), and then it stays unmatched, logged: never dropped in silence.

Memory is bounded (`memory_size` ids, the oldest forgotten first; forgotten ids are
still found in the store; ids are kept after their message is final, so that a
repeated report is recognised, and ignored, at once) and so is the park (`max_parked`;
past it a report goes straight to the store as unmatched).
"""

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .models import Message, UpstreamReport
from .ports import Done, Store

log = logging.getLogger(__name__)

LEARN_VOTES = 5  # reports that only one relation explains, before it is followed
RELEARN_VOTES = 20  # reports in a row that only another one explains, to change it


@dataclass(frozen=True, slots=True)
class Match:
    """A report's message, and which of its parts the report is about (0 = the first
    or only one)."""

    message: Message
    part: int = 0


@dataclass(slots=True)
class _Parked:
    report: UpstreamReport
    deadline: float
    voted: bool  # it counted for a relation already: it will not again


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
                 max_parked: int = 10_000, learn_votes: int = LEARN_VOTES) -> None:
        self._store = store
        self._deliver = deliver
        self._keep_unmatched = keep_unmatched
        self._drop_unmatched = drop_unmatched
        self.memory_size = memory_size
        self.park_seconds = park_seconds
        self.max_parked = max_parked
        self.learn_votes = learn_votes
        # (connector, key) -> match; keys are ("s", spelling), ("d", decimal value) and
        # ("h", hex value) of each id: a report is looked up by its relation's key
        self._recent: OrderedDict[tuple[str, tuple], Match] = OrderedDict()
        # (connector, where its reports' ids are read) -> learned relation (RELATIONS)
        self._relation: dict[tuple[str, str], str] = {}
        self._recalled: set[tuple[str, str]] = set()  # schemes read from the store
        self._recalling: dict[tuple[str, str], asyncio.Future] = {}
        self._votes: dict[tuple[str, str], Counter[str]] = {}  # while none is learned
        self._contrary: dict[tuple[str, str], Counter[str]] = {}  # against the learned
        # (connector, spelling) -> parked reports waiting for that id (stored unmatched)
        self._parked: dict[tuple[str, str], list[_Parked]] = {}
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
                self._unpark(list(parked))
        while len(self._recent) > self.memory_size:
            self._recent.popitem(last=False)

    # -- reports --------------------------------------------------------------------------

    def report(self, report: UpstreamReport, done: Done) -> None:
        """Match `report` and hand it over, or park it; `done` follows the outcome."""
        match = self._by_relation(report)
        if match is not None:
            self.matched_memory += 1
            self._deliver(report, match, done)
            return
        asyncio.get_running_loop().create_task(self._from_store(report, done))

    def _by_relation(self, report: UpstreamReport) -> Match | None:
        """The remembered message the learned relation gives (none learned: the one
        that every relation finding something finds, when several do: an id like "7"
        that reads alike in every base)."""
        scheme = (report.connector, report.id_source)
        if scheme not in self._recalled:
            return None  # what an earlier run learned is not known yet: _from_store asks
        learned = self._relation.get(scheme)
        if learned is not None:
            match = self._remembered(report.connector, learned, report.upstream_ids[0])
            if match is not None and self._contrary:
                self._contrary.pop(scheme, None)
            return match
        return _whatever_the_relation(report, self._candidates(report, []))

    def _remembered(self, connector: str, relation: str, report_id: str) -> Match | None:
        for key in RELATIONS[relation](report_id):
            match = self._recent.get((connector, key))
            if match is not None:
                return match
        return None

    def _candidates(self, report: UpstreamReport, stored: list[Message]) -> dict[str, Match]:
        """relation -> the message it finds, remembered or else stored, for each allowed
        relation that finds exactly one."""
        found: dict[str, Match] = {}
        report_id = report.upstream_ids[0]
        for name in _allowed(report.upstream_ids):
            match = self._remembered(report.connector, name, report_id)
            if match is None:
                fits = [m for m in stored if _related(name, report_id, m.upstream_id)]
                match = Match(fits[0]) if len(fits) == 1 else None
            if match is not None:
                found[name] = match
        return found

    async def _from_store(self, report: UpstreamReport, done: Done) -> None:
        try:
            await self._recall((report.connector, report.id_source))
            stored = await self._stored(report)
        except Exception as exc:  # the store is down: let the upstream send it again
            log.error("report %s from %s not matched: %s", report.upstream_ids[:1],
                      report.connector, exc)
            done(False)
            return
        match, voted = self._decide(report, stored, vote=True)
        if match is not None:
            self.matched_store += 1
            self._deliver(report, match, done)
        else:
            self._park(report, done, voted)

    async def _stored(self, report: UpstreamReport) -> list[Match]:
        """The stored messages (or later parts) any spelling of the report's id finds."""
        ids = list(dict.fromkeys(report.upstream_ids))
        found = await self._store.messages_by_upstream_id(report.connector, ids)
        if found:
            return [Match(m) for m in found]
        part = await self._store.part_by_upstream_id(report.connector, ids)
        if part is None:
            return []
        message_id, number = part
        message = await self._store.get_message(message_id)
        return [] if message is None else [Match(message, number)]

    def _decide(self, report: UpstreamReport, stored: list[Match], vote: bool = False,
                last_look: bool = False) -> tuple[Match | None, bool]:
        """The match of a report, from memory and the store together.

        Learned: the learned relation's (at the last look, a report that only another
        relation explains counts against it). None learned: the message every relation
        that finds one finds; a report only one relation explains is a vote for it (no
        match before it is learned, unless at the last look: one stored candidate for
        every relation, the message's own sent mark long committed). Also whether it
        voted."""
        scheme = (report.connector, report.id_source)
        match = self._by_relation(report)
        if match is not None:
            return match, False
        messages = [m.message for m in stored if m.part == 0]
        parts = [m for m in stored if m.part]
        learned = self._relation.get(scheme)
        report_id = report.upstream_ids[0]
        if learned is not None:
            fits = [m for m in messages if _related(learned, report_id, m.upstream_id)]
            if len(fits) == 1:
                if self._contrary:  # the learned relation still matches: none in a row
                    self._contrary.pop(scheme, None)
                return Match(fits[0]), False
            if parts:
                return parts[0], False
            if last_look and messages:
                self._contradicted(scheme, report, messages)
            return None, False
        if parts:
            return parts[0], False
        found = self._candidates(report, messages)
        if len({id(m.message) for m in found.values()}) != 1:
            return None, False
        sure = _whatever_the_relation(report, found)
        if sure is not None:
            return sure, False
        name, match = next(iter(found.items()))
        if vote:
            self._vote(scheme, name)
        if self._relation.get(scheme) == name or last_look:
            return match, vote
        return None, vote

    # -- what is learned --------------------------------------------------------------

    def _vote(self, scheme: tuple[str, str], name: str) -> None:
        """One more report that only `name` explains; enough of them (and few for any
        other) and it is followed, and the parked reports are looked at again."""
        votes = self._votes.setdefault(scheme, Counter())
        votes[name] += 1
        if votes[name] >= self.learn_votes and votes[name] >= 0.8 * sum(votes.values()):
            del self._votes[scheme]
            log.info("connector %s: receipt ids (%s) matched as %r", scheme[0],
                     scheme[1] or "as given", name)
            self._learn(scheme, name)
            self._reconsider(scheme)

    def _contradicted(self, scheme: tuple[str, str], report: UpstreamReport,
                      stored: list[Message]) -> None:
        """The learned relation found nothing for a report another one explains: an
        SMSC that changed how it spells ids. RELEARN_VOTES such reports in a row (none
        the learned relation matched in between) and the other is followed."""
        report_id = report.upstream_ids[0]
        others = [name for name in _allowed(report.upstream_ids)
                  if any(_related(name, report_id, m.upstream_id) for m in stored)]
        if len(others) != 1:
            return
        contrary = self._contrary.setdefault(scheme, Counter())
        contrary[others[0]] += 1
        if contrary[others[0]] >= RELEARN_VOTES:
            del self._contrary[scheme]
            log.warning("connector %s: receipt ids (%s) no longer match as %r; now as %r",
                        scheme[0], scheme[1] or "as given", self._relation.get(scheme),
                        others[0])
            self._learn(scheme, others[0])

    def _reconsider(self, scheme: tuple[str, str]) -> None:
        """A relation was learned: the parked reports it now matches in memory go."""
        waiting = {id(entry): entry for entries in self._parked.values() for entry in entries
                   if (entry.report.connector, entry.report.id_source) == scheme}
        self._unpark(list(waiting.values()))

    async def _recall(self, scheme: tuple[str, str]) -> None:
        """Read the relation learned for `scheme` before this run, once (concurrent
        reports share the read; a failed read is tried again by the next report)."""
        if scheme in self._recalled:
            return
        reading = self._recalling.get(scheme)
        if reading is None:
            reading = asyncio.ensure_future(self._store.get_setting(_setting(scheme)))
            self._recalling[scheme] = reading
        try:
            name = await asyncio.shield(reading)
        finally:
            if self._recalling.get(scheme) is reading and reading.done():
                del self._recalling[scheme]
        if scheme not in self._recalled:
            self._recalled.add(scheme)
            if name in RELATIONS and scheme not in self._relation:
                self._relation[scheme] = name

    def _learn(self, scheme: tuple[str, str], name: str) -> None:
        """Follow `name` from now on, and keep it for the next run."""
        self._relation[scheme] = name
        asyncio.get_running_loop().create_task(self._keep(scheme, name))

    async def _keep(self, scheme: tuple[str, str], name: str) -> None:
        try:
            await self._store.set_setting(_setting(scheme), name)
        except Exception as exc:  # learned again after a restart: no harm but time
            log.warning("connector %s: receipt id relation not stored: %s", scheme[0], exc)

    # -- the park -------------------------------------------------------------------------

    def _park(self, report: UpstreamReport, done: Done, voted: bool) -> None:
        """Store it as unmatched (`done` follows that write), and wait for its id."""
        self._keep_unmatched(report, done)
        if self._parked_count >= self.max_parked:
            self._give_up(report)
            return
        entry = _Parked(report, time.monotonic() + self.park_seconds, voted)
        for upstream_id in report.upstream_ids:
            self._parked.setdefault((report.connector, upstream_id), []).append(entry)
        self._parked_count += 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.park_seconds / 4, self._expire_parked)

    def _unpark(self, parked: list[_Parked]) -> None:
        """Reports waiting for an id just remembered, in one of their spellings: each
        is matched as if it came now (a spelling alone is no match: "a" waits for its
        hex "a", not for the "10" that is its decimal 10)."""
        for entry in parked:
            match, voted = self._decide(entry.report, [], vote=not entry.voted)
            entry.voted = entry.voted or voted
            if match is not None and self._drop_parked(entry.report):
                self.matched_memory += 1
                self._claim(entry.report, match)

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
            kept = [entry for entry in waiting if entry.report is not report]
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
        expired = {id(entry.report): entry.report for waiting in self._parked.values()
                   for entry in waiting if entry.deadline <= now}
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
            match, _ = self._decide(report, await self._stored(report), last_look=True)
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


# How a receipt's id relates to the submit answer's id, as the lookup keys of the
# answer's id computed from the receipt's, tried in turn (none: this relation cannot
# hold for that id). "same" is the same number in the same base, however padded or
# cased ("0000000010" for "10", "0A" for "a"); the others change the base.
RELATIONS: dict[str, Callable[[str], list[tuple]]] = {
    "same": lambda r: _keys(r),
    "decimal for hex": lambda r: [("h", int(r))] if _is_dec(r) else [],
    "hex for decimal": lambda r: [("d", int(r, 16))] if _is_hex(r) else [],
}
# The answer's id the connector must have allowed for a relation to be possible
_IMPLIED: dict[str, Callable[[str], str]] = {
    "same": lambda r: r,
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
        if RELATIONS[name](report_id) and implied(report_id).lower() in allowed:
            names.append(name)
    return names


def _related(name: str, report_id: str, upstream_id: str) -> bool:
    answer_keys = _keys(upstream_id)
    return any(key in answer_keys for key in RELATIONS[name](report_id))


def _whatever_the_relation(report: UpstreamReport, found: dict[str, Match]) -> Match | None:
    """The one message found by several relations ("7" reads alike in every base), or
    by the only one the id allows ("r-17" is no number): no relation need be known."""
    if not found or len({id(m.message) for m in found.values()}) != 1:
        return None
    if len(found) > 1 or len(_allowed(report.upstream_ids)) == 1:
        return next(iter(found.values()))
    return None


def _setting(scheme: tuple[str, str]) -> str:
    """The settings key a learned relation is kept under."""
    connector, source = scheme
    return f"receipt-ids/{connector}/{source or 'given'}"
