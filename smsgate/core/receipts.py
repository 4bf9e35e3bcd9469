"""deliver_sm for SMPP customers -- delivery receipts and MO: stored durably, pushed to
a receiver session.

A receipt or MO (a `PendingReceipt` row of either kind) is written to the store first;
then, if the account has a receiver (Rx/TRx) session bound, it is sent there, and
deleted only after deliver_sm_resp ESME_ROK. A failed or unanswered delivery is retried
with backoff; those of accounts without a receiver wait (until they expire) and go out
when one binds. The server builds both kinds of deliver_sm in one place
(servers/smpp_messages.py `deliver_sm_pdu`).
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from .models import DELIVRD, FINAL_STATUSES, Message, PendingReceipt, StatusUpdate
from .ports import Store, Writer

log = logging.getLogger(__name__)

RECEIPT_ON_ANY = 1  # registered_delivery bits 1-0 (SMPP34.md §5.3)
RECEIPT_ON_FAILURE = 2
RECEIPT_ON_SUCCESS = 3  # v5.0 meaning; reserved in 3.4
BACKOFF = (1.0, 5.0, 15.0, 60.0, 300.0)


class ReceiverSession(Protocol):
    def send_receipt(self, receipt: PendingReceipt, done: Callable[[bool], None]) -> None:
        """Send a receipt's or an MO's deliver_sm; call done(True) on deliver_sm_resp
        ESME_ROK."""
        ...


def wants_receipt(registered_delivery: int, status: str) -> bool:
    mode = registered_delivery & 0x03
    if mode == RECEIPT_ON_ANY:
        return True
    if mode == RECEIPT_ON_FAILURE:
        return status != DELIVRD
    return mode == RECEIPT_ON_SUCCESS and status == DELIVRD


def receipt_for(message: Message, update: StatusUpdate, text: str,
                expiry_seconds: float) -> PendingReceipt:
    # Addresses are swapped: the receipt comes "from" the handset.
    return PendingReceipt(
        account_id=message.account_id, message_id=message.id,
        source_addr=message.dest_addr, dest_addr=message.source_addr,
        source_ton=message.dest_ton, source_npi=message.dest_npi,
        dest_ton=message.source_ton, dest_npi=message.source_npi,
        status=update.status, error_code=update.error_code,
        submitted_at=message.created_at, done_at=update.at, text=text[:20],
        created_at=update.at, expires_at=update.at + expiry_seconds, next_attempt_at=update.at,
    )


class ReceiptService:
    def __init__(self, store: Store, writer: Writer, expiry_seconds: float = 72 * 3600.0,
                 text_of: Callable[[Message], str] = lambda m: "",
                 poll_seconds: float = 1.0) -> None:
        self._store = store
        self._writer = writer
        self.expiry_seconds = expiry_seconds
        self._text_of = text_of
        self._poll_seconds = poll_seconds
        self._receivers: dict[int, list[ReceiverSession]] = {}
        self._in_flight: set[int] = set()  # sent, awaiting deliver_sm_resp
        self._settling: set[int] = set()  # answered; delete or retry not yet committed
        self._next: dict[int, int] = {}  # round-robin index per account
        self._wake: dict[int, asyncio.Event] = {}
        self._draining: set[int] = set()  # accounts a notice's drain is running for
        self.listening = False  # hearing other nodes' receipt notices (PostgreSQL)
        self._task: asyncio.Task | None = None
        self.delivered = 0

    async def start(self) -> None:
        self.listening = await self._listen()
        self._task = asyncio.create_task(self._poll_loop(), name="receipt-retry")

    async def _listen(self) -> bool:
        """Hear of receipts another node stored (its customer's receiver is here)."""
        try:
            return await self._store.listen_receipts(self._heard)
        except Exception as exc:
            log.warning("receipt notices: %s", exc)
            return False

    def _heard(self, account_ids: list[int] | None) -> None:
        accounts = self._receivers if account_ids is None else account_ids
        for account_id in list(accounts):
            if account_id in self._receivers and account_id not in self._draining:
                self._draining.add(account_id)
                asyncio.get_running_loop().create_task(self._drain(account_id))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    # -- receivers ---------------------------------------------------------------------

    def register(self, account_id: int, session: ReceiverSession) -> None:
        self._receivers.setdefault(account_id, []).append(session)
        asyncio.get_running_loop().create_task(self._drain(account_id))

    def unregister(self, account_id: int, session: ReceiverSession) -> None:
        sessions = self._receivers.get(account_id, [])
        if session in sessions:
            sessions.remove(session)
        if not sessions:
            self._receivers.pop(account_id, None)

    def _receiver(self, account_id: int) -> ReceiverSession | None:
        sessions = self._receivers.get(account_id)
        if not sessions:
            return None
        index = self._next.get(account_id, 0) % len(sessions)
        self._next[account_id] = index + 1
        return sessions[index]

    # -- receipts ----------------------------------------------------------------------

    def on_status(self, message: Message, update: StatusUpdate) -> None:
        """Dispatcher listener: a final status of an SMPP message that asked for one."""
        if message.channel != "smpp" or update.status not in FINAL_STATUSES:
            return
        if not wants_receipt(message.registered_delivery, update.status):
            return
        self.add(receipt_for(message, update, self._text_of(message), self.expiry_seconds))

    def add(self, receipt: PendingReceipt) -> "asyncio.Future[int]":
        """Queue a receipt or MO with the writer now (so in the commit of whatever the
        caller queues in this loop turn); it goes to a receiver once stored."""
        future = self._writer.add_receipt(receipt)
        future.add_done_callback(lambda f: self._stored(f, receipt))
        return future

    def _stored(self, future: "asyncio.Future[int]", receipt: PendingReceipt) -> None:
        if future.cancelled() or future.exception() is not None:
            log.error("%s for %s not stored: %s", receipt.kind, receipt.message_id,
                      future.cancelled() or future.exception())
            return
        receipt.id = future.result()
        self._deliver(receipt)

    def _deliver(self, receipt: PendingReceipt) -> None:
        if receipt.id in self._in_flight or receipt.id in self._settling:
            return
        session = self._receiver(receipt.account_id)
        if session is None:
            return  # stays stored until a receiver binds
        self._in_flight.add(receipt.id)
        session.send_receipt(receipt, lambda ok: self._delivered(receipt, ok))

    def _delivered(self, receipt: PendingReceipt, ok: bool) -> None:
        self._in_flight.discard(receipt.id)
        self._settling.add(receipt.id)
        if ok:
            self.delivered += 1
            future = self._writer.done_receipt(receipt.id)
        else:
            delay = BACKOFF[min(receipt.attempts, len(BACKOFF) - 1)]
            receipt.attempts += 1
            future = self._writer.retry_receipt(receipt.id, time.time() + delay)
        future.add_done_callback(lambda f: self._settling.discard(receipt.id))

    async def _drain(self, account_id: int) -> None:
        """Send what is stored and due for one account (on bind, on another node's
        notice, and periodically)."""
        try:
            receipts = await self._store.pending_receipts(account_id, time.time(), 1000)
        except Exception:
            log.exception("loading receipts for account %s failed", account_id)
            return
        finally:
            self._draining.discard(account_id)
        for receipt in receipts:
            if account_id not in self._receivers:
                return
            self._deliver(receipt)

    async def _poll_loop(self) -> None:
        purge_every = 60
        tick = 0
        while True:
            await asyncio.sleep(self._poll_seconds)
            tick += 1
            self.listening = await self._listen()  # again, if its connection was lost
            for account_id in list(self._receivers):
                await self._drain(account_id)
            if tick % purge_every == 0:
                try:
                    await self._store.purge_expired_receipts(time.time())
                except Exception:
                    log.exception("purging expired receipts failed")
