"""Delivery reports from upstreams, matched to their messages (core/correlation.py), as
status changes of those messages.

One report per message makes one status change: ACCEPTD (only the first time) or the
final status; a report for a message that is final already changes nothing (upstreams
repeat themselves, and a late duplicate must not send the customer a second receipt).

A message the connector split into several submits has one upstream id, and so one
report, per part, but the customer was given one id for it: its final status is
decided when every part has a final report: DELIVRD if all were delivered, else the
final status of the first part that was not. Each part's status is stored as it comes
(message_parts), so the decision survives a restart.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ..smpp.constants import ESM_UDHI
from .correlation import Match
from .models import ACCEPTD, DELIVRD, FINAL_STATUSES, Message, StatusUpdate, UpstreamReport
from .ports import Done, Store

log = logging.getLogger(__name__)

# Applies a status change to a message (the dispatcher's on_status); done(True) once
# the status is stored.
ApplyStatus = Callable[[Message, StatusUpdate, Done], None]


class ReportBook:
    def __init__(self, store: Store, writer, apply: ApplyStatus,
                 max_split: int = 100_000) -> None:
        self._store = store
        self._writer = writer
        self._apply = apply
        self.max_split = max_split
        # message id -> each part's final status so far ("" = none yet), for messages
        # split upstream whose outcome is still open
        self._split: OrderedDict[int, list[str]] = OrderedDict()

    def split(self, message: Message, upstream_ids: Sequence[str]) -> None:
        """`message` went upstream as len(upstream_ids) > 1 submits."""
        self._split[message.id] = [""] * len(upstream_ids)
        if len(self._split) > self.max_split:  # forgotten ones are read from the store
            self._split.popitem(last=False)

    def deliver(self, report: UpstreamReport, match: Match, done: Done) -> None:
        message = match.message
        if message.status in FINAL_STATUSES or \
                (report.status == ACCEPTD and message.status == ACCEPTD):
            done(True)  # nothing new: a repeated or late report
            return
        update = StatusUpdate(message.id, report.status, report.at, report.error_code)
        if report.status == ACCEPTD:
            self._apply(message, update, done)
        elif message.id in self._split:
            self._part_final(message, match.part, update, done)
        elif match.part or _maybe_split(message):
            asyncio.get_running_loop().create_task(self._load_then(message, match, update,
                                                                   done))
        else:
            self._apply(message, update, done)

    async def _load_then(self, message: Message, match: Match, update: StatusUpdate,
                         done: Done) -> None:
        try:
            stored = await self._store.part_statuses(message.id)
        except Exception as exc:
            log.error("parts of message %s not read: %s", message.id, exc)
            done(False)
            return
        if not stored:  # sent whole after all
            self._apply(message, update, done)
            return
        if message.id not in self._split:
            self._split[message.id] = [stored.get(n, "") for n in range(max(stored) + 1)]
        self._part_final(message, match.part, update, done)

    def _part_final(self, message: Message, part: int, update: StatusUpdate,
                    done: Done) -> None:
        parts = self._split[message.id]
        if part >= len(parts) or parts[part]:
            done(True)  # a part we did not send, or a repeated report for it
            return
        parts[part] = update.status
        if not all(parts):
            future = self._writer.add_part_status(message.id, part, update.status)
            future.add_done_callback(lambda f: done(_ok(f)))
            return
        del self._split[message.id]
        failed = [status for status in parts if status != DELIVRD]
        update.status = failed[0] if failed else DELIVRD
        self._writer.add_part_status(message.id, part, parts[part])
        self._apply(message, update, done)


def _maybe_split(message: Message) -> bool:
    """A message we may have split: several parts, not a customer's UDH part."""
    return message.parts > 1 and not message.esm_class & ESM_UDHI


def _ok(future: asyncio.Future) -> bool:
    return not future.cancelled() and future.exception() is None
