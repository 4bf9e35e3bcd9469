"""MO (inbound SMS, SPEC §8): from an upstream to the account that has the number.

The dispatcher hands every MO here (`InboundService.handle`, its inbound handler). Its
destination is matched to a number (`number add`, the longest prefix: core/numbers.py;
the table is reloaded from the store every `numbers_reload` seconds, so CLI changes
reach a running gateway within that). Then, in ONE commit of the writer (everything
below is queued in the same call, core/ports.py Writer):

- the MO itself (`inbound_messages`), routed (account_id) or not (NULL: to no known
  number; logged, kept for the operator, and still acknowledged);
- for a matched number, its deliver_sm for the account's Rx/TRx session: a
  `PendingReceipt` of kind MO, held, sent and retried exactly like receipts
  (core/receipts.py), esm_class 0x00 (0x40 with the MO's UDH), its data_coding and
  payload as received. Each part of a concatenated MO goes as it came;
- for a number with an mo-url, the HTTP request (the callback outbox of dlrurl, same
  SSRF guard and retries; core/callback_urls.py for its parameters). A concatenated
  MO makes one request, once joined: its parts are stored as they come, marked
  `joining`; the request is created in the commit of the last part, which also clears
  the mark on the others. A message still incomplete `join_timeout` seconds after its
  first part is given up: one request with the parts that arrived, in order
  (`parts` < `total` tells). At start the parts still `joining` are loaded again.

The upstream is answered (`done(True)`, deliver_sm_resp ESME_ROK) only once that commit
returned; a failed commit is answered `done(False)`, and the upstream sends it again.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..smpp.constants import ESM_UDHI
from .callback_urls import mo_url
from .mo_parts import Assembly, Joiner, joined_text, part_of, sar_options
from .models import MO, InboundMessage, InboundNumber, PendingReceipt
from .numbers import NumberTable
from .ports import CallbackOutbox, Done, Store, Writer
from .receipts import ReceiptService
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass
class InboundSettings:
    join_timeout: float = 600.0  # seconds a concatenated MO may wait for its parts
    numbers_reload: float = 2.0  # seconds between reloads of the numbers table


def mo_delivery(mo: InboundMessage, expiry_seconds: float) -> PendingReceipt:
    """The deliver_sm row of an MO for its account's receiver (what receipts wait in)."""
    at = mo.received_at
    return PendingReceipt(
        account_id=mo.account_id or 0, message_id=mo.id, source_addr=mo.source_addr,
        dest_addr=mo.dest_addr, status="", error_code=0, submitted_at=at, done_at=at,
        source_ton=mo.source_ton, source_npi=mo.source_npi, dest_ton=mo.dest_ton,
        dest_npi=mo.dest_npi, created_at=at, expires_at=at + expiry_seconds,
        next_attempt_at=at, kind=MO, payload=mo.payload, data_coding=mo.data_coding,
        esm_class=mo.esm_class & ESM_UDHI, options=sar_options(mo))


class InboundService:
    def __init__(self, store: Store, writer: Writer, deliveries: ReceiptService,
                 callbacks: CallbackOutbox, next_id: Callable[[], int],
                 expiry_seconds: float, settings: InboundSettings | None = None) -> None:
        self._store = store
        self._writer = writer
        self._deliveries = deliveries
        self._callbacks = callbacks
        self._next_id = next_id
        self.expiry_seconds = expiry_seconds
        self.settings = settings or InboundSettings()
        self.numbers = NumberTable([])
        self.joiner = Joiner(self.settings.join_timeout)
        self._tasks: list[asyncio.Task] = []
        self.received = 0
        self.unrouted = 0
        self.joined = 0  # concatenated MO joined whole
        self.given_up = 0  # concatenated MO given up incomplete

    async def start(self) -> None:
        """Numbers, then the parts still waiting to be joined; then the timers."""
        await self.reload_numbers()
        for mo in await self._store.joining_inbound():
            part = part_of(mo)
            assembly = self.joiner.add(mo, part) if part is not None else None
            if assembly is not None and assembly.settled:  # (complete: settle it now)
                self._settle(assembly, None)
        self._tasks = [asyncio.create_task(self._reload_loop(), name="numbers-reload"),
                       asyncio.create_task(self._give_up_loop(), name="mo-join-timeout")]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []

    async def reload_numbers(self) -> None:
        self.numbers = NumberTable(await self._store.list_numbers())

    # -- an MO ---------------------------------------------------------------------------

    def handle(self, mo: InboundMessage, done: Done) -> None:
        """The dispatcher's inbound handler: store, deliver, answer once stored."""
        self.received += 1
        mo.id = self._next_id()
        mo.received_at = mo.received_at or time.time()
        number = self.numbers.match(mo.dest_addr)
        assembly = None
        if number is None:
            self.unrouted += 1
            log.warning("MO %s from connector %s to %s matches no number: kept unrouted",
                        mo.id, mo.connector, mo.dest_addr)
        else:
            mo.account_id = number.account_id
            self._deliveries.add(mo_delivery(mo, self.expiry_seconds))
            if number.mo_url:
                try:
                    assembly = self._request(mo, number)
                except (ValueError, TypeError) as exc:  # never keep the MO from the store
                    log.error("MO %s: number %s has an unusable mo-url: %s", mo.id,
                              number.number, exc)
        settling = assembly is not None and assembly.settled
        self._writer.add_inbound(mo).add_done_callback(
            partial(self._stored, mo, done, assembly, settling))

    def _request(self, mo: InboundMessage, number: InboundNumber) -> Assembly | None:
        """The mo-url request of a whole SMS; a part joins its message (the request
        comes with its last part). Returns the part's message."""
        part = part_of(mo)
        if part is None:
            self._callbacks.add(mo.id, mo_url(
                number.mo_url, source=mo.source_addr, dest=mo.dest_addr,
                text=joined_text([mo]), coding=mo.data_coding, mo_id=mo.id,
                at=mo.received_at), MO)
            return None
        assembly = self.joiner.add(mo, part)
        if assembly is None:
            log.info("MO %s: part %d sent again, stored but not joined twice", mo.id,
                     part.seq)
        elif assembly.settled:
            self._settle(assembly, mo)
        else:
            mo.joining = True
        return assembly

    def _stored(self, mo: InboundMessage, done: Done, assembly: Assembly | None,
                settling: bool, future: "asyncio.Future[None]") -> None:
        stored = not future.cancelled() and future.exception() is None
        if not stored:
            log.error("MO %s from connector %s not stored: %s", mo.id, mo.connector,
                      future.cancelled() or future.exception())
            if assembly is not None:
                self.joiner.unstored(assembly, mo, settling)
        done(stored)

    # -- concatenated MO -----------------------------------------------------------------

    def _settle(self, assembly: Assembly, last: InboundMessage | None) -> None:
        """Queue the joined message's request and clear the other parts' `joining`
        (with `last`, the part that completes it, in that part's commit)."""
        parts = assembly.ordered()
        complete = len(parts) == assembly.total
        if complete:
            self.joined += 1
        else:
            self.given_up += 1
            log.warning("MO %s: %d of %d parts came within %.0f s; sent as they are",
                        parts[0].id, len(parts), assembly.total, self.joiner.timeout)
        cleared = [self._writer.joined_inbound(p.id) for p in parts if p is not last]
        number = self.numbers.match(parts[0].dest_addr)
        if number is not None and number.mo_url:
            self._callbacks.add(parts[0].id, mo_url(
                number.mo_url, source=parts[0].source_addr, dest=parts[0].dest_addr,
                text=joined_text(parts), coding=parts[0].data_coding, mo_id=parts[0].id,
                at=max(p.received_at for p in parts), parts=len(parts),
                total=assembly.total), MO)
        if last is None and cleared:  # given up: no part's commit to watch
            cleared[-1].add_done_callback(partial(self._given_up_stored, assembly))

    def _given_up_stored(self, assembly: Assembly, future: "asyncio.Future[None]") -> None:
        if future.cancelled() or future.exception() is not None:
            self.joiner.unstored(assembly, None, settling=True)  # tried again later

    async def _give_up_loop(self) -> None:
        every = min(1.0, self.joiner.timeout / 4)
        while True:
            await asyncio.sleep(every)
            for assembly in self.joiner.due(time.time()):
                self._settle(assembly, None)

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.numbers_reload)
            try:
                await self.reload_numbers()
            except Exception:  # the store may be back at the next look
                log.exception("numbers reload failed")
