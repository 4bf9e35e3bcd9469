"""The gateway's operations, as the customer-facing adapters (SMPP, HTTP) call them."""

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .accounts import AccountDirectory, Authenticator, is_expired
from .binds import BindRegistry
from .dispatcher import Dispatcher
from .errors import LOGIN_FAILURES, Err, GatewayError
from .login_guard import LoginGuard
from .models import DELETED, Account, CoverageEntry, Message, StatusUpdate, UpstreamReport
from .ports import CommitUnknown, Store, StoreError
from .receipts import ReceiptService
from .submit import SubmitPipeline

MAX_MESSAGE_ID = 2**63 - 1  # ids are signed 64-bit integers in both stores


def _any_id(message_id: int) -> bool:
    return True


@dataclass
class Gateway:
    store: Store
    accounts: AccountDirectory
    authenticator: Authenticator
    binds: BindRegistry
    pipeline: SubmitPipeline
    dispatcher: Dispatcher
    receipts: ReceiptService
    node: str = ""
    login_guard: LoginGuard = field(default_factory=LoginGuard)
    # (channel, Err) -> submissions refused, counted by the adapters where they answer
    # (they also see refusals raised before the pipeline); read by metrics
    refused: Counter[tuple[str, Err]] = field(default_factory=Counter)
    # Whether an id could be one of ours (core/ids.py's keyed tag): a guessed id is
    # answered "unknown" without a store read. The App wires MessageIdGenerator's.
    genuine_id: Callable[[int], bool] = _any_id

    async def authenticate(self, system_id: str, password: str, *, channel: str,
                           peer_ip: str | None = None) -> Account:
        """Check credentials, with the failed-login back-off of SPEC §11 around them."""
        account = await self.accounts.get(system_id)
        if self.login_guard.blocked(peer_ip, system_id):
            raise GatewayError(Err.LOGIN_BACKOFF if account else Err.LOGIN_BACKOFF_UNKNOWN,
                               f"{channel} login back-off for {peer_ip} / {system_id!r}")
        try:
            return await self.authenticator.authenticate(account, password, channel=channel,
                                                         peer_ip=peer_ip)
        except GatewayError as exc:
            if exc.error in LOGIN_FAILURES:
                self.login_guard.failed(peer_ip, system_id)
            raise

    async def upstream_report(self, report: UpstreamReport) -> bool:
        """A delivery report from an upstream (an HTTP provider's DLR endpoint): True
        once it is stored (matched to its message, or kept as unmatched), False when it
        could not be (the provider should send it again)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.dispatcher.report(report, lambda ok: future.done() or future.set_result(ok))
        return await future

    async def fresh_account(self, account_id: int) -> Account | None:
        """The stored account, not the directory's copy (which may lag a change made a
        moment ago: a top-up, status_auth)."""
        return await self.store.get_account_by_id(account_id)

    async def coverage_entries(self) -> list[CoverageEntry]:
        return await self.store.list_coverage()

    def current(self, account: Account) -> Account:
        """The freshest copy of a bound account; refuses one that expired or was disabled
        after bind (SPEC error table: 0x402 / HTTP26)."""
        fresh = self.accounts.by_id(account.id) or account
        if is_expired(fresh):
            raise GatewayError(Err.EXPIRED_AFTER_BIND)
        if not fresh.enabled:
            raise GatewayError(Err.NOT_AUTHORIZED, "account disabled")
        return fresh

    async def find_message(self, account: Account | None, message_id: str) -> Message:
        """A message by its id string; `account` (when given) must own it. Malformed:
        not 1-19 ASCII digits ('²' is a digit to str.isdigit) or past 64 bits."""
        if not (message_id.isascii() and message_id.isdigit() and len(message_id) <= 19) \
                or int(message_id) > MAX_MESSAGE_ID:
            raise GatewayError(Err.BAD_MESSAGE_ID)
        if not self.genuine_id(int(message_id)):
            raise GatewayError(Err.UNKNOWN_MESSAGE_ID, "not an id of ours")
        message = await self.store.get_message(int(message_id))
        if message is None or (account is not None and message.account_id != account.id):
            raise GatewayError(Err.UNKNOWN_MESSAGE_ID)
        return self.dispatcher.book.read_through(message)  # a status held, not yet written

    async def cancel(self, account: Account, message_id: str, source_addr: str,
                     dest_addr: str, service_type: str) -> int:
        """cancel_sm: one message by id, or all pending ones between source and dest."""
        if message_id:
            message = await self.find_message(account, message_id)
            ids = [message.id]
        else:
            ids = await self.store.find_pending(account.id, source_addr, dest_addr,
                                                service_type)
        cancelled = await self._cancel_claimed(account, self.dispatcher.hold(ids))
        if not cancelled:
            raise GatewayError(Err.UNKNOWN_MESSAGE_ID, "nothing to cancel")
        for message in cancelled:
            self.dispatcher.notify(message, StatusUpdate(message.id, DELETED, time.time()))
        return len(cancelled)

    async def _cancel_claimed(self, account: Account, claimed: list[int]) -> list[Message]:
        """Cancel (and refund) in the store what the dispatcher holds back for us, then
        tell it which of those must never go out: the cancelled ones, or every one when
        the outcome is unknown (a lost commit, or we were cancelled while the store
        worked): a message may then wait for the next start's recovery, but is never
        both sent and refunded. A StoreError otherwise means the store rolled back."""
        gone: list[int] = claimed
        try:
            cancelled = await self.store.cancel_messages(account.id, claimed, time.time())
            gone = [m.id for m in cancelled]
            return cancelled
        except StoreError as exc:
            if not isinstance(exc, CommitUnknown):
                gone = []
            raise
        finally:
            self.dispatcher.release(claimed, gone)

    async def replace(self, account: Account, message_id: str, payload: bytes,
                      schedule_at: float | None, expires_at: float | None,
                      registered_delivery: int) -> None:
        message = await self.find_message(account, message_id)
        claimed = self.dispatcher.hold([message.id])
        if not claimed:
            raise GatewayError(Err.UNKNOWN_MESSAGE_ID, "message already sent")
        gone: list[int] = []
        replaced = False
        try:
            replaced = await self.store.replace_message(account.id, message.id, payload,
                                                        schedule_at, expires_at,
                                                        registered_delivery)
        except CommitUnknown:
            gone = claimed  # which text the store holds is unknown: recovery sends it
            raise
        finally:
            self.dispatcher.release(claimed, gone, _replacer(
                payload, schedule_at, expires_at, registered_delivery) if replaced else None)
        if not replaced:
            raise GatewayError(Err.UNKNOWN_MESSAGE_ID, "message already sent or final")


def _replacer(payload: bytes, schedule_at: float | None, expires_at: float | None,
              registered_delivery: int | None) -> Callable[[Message], None]:
    """Applies a replace_sm to the copy of a message waiting in the dispatcher, as the
    store's REPLACE did to the row (None: that field unchanged)."""
    def replace(message: Message) -> None:
        message.payload = payload
        if expires_at is not None:
            message.expires_at = expires_at
        if registered_delivery is not None:
            message.registered_delivery = registered_delivery
        if schedule_at is not None:
            message.schedule_at = schedule_at
    return replace
