"""The interfaces ("ports") the core needs; store/ and connectors/ implement them."""

from collections.abc import Callable, Sequence
from typing import Protocol

from .models import (
    Account,
    BatchResult,
    Connector,
    CoverageEntry,
    LedgerEntry,
    Message,
    PendingCallback,
    PendingReceipt,
    Route,
    StatusUpdate,
    WriteBatch,
)


class StoreError(Exception):
    """Storage failed (connection lost, disk full, ...): the request gets HTTP03/RSYSERR."""


class CommitUnknown(StoreError):
    """The connection broke while a COMMIT was under way and its outcome could not be
    learnt: the transaction may or may not have been applied."""


class Conflict(StoreError):
    """A unique key already exists (account system_id, connector name)."""


class Store(Protocol):
    """Persistence. Every method is safe to call concurrently from the event loop."""

    backend: str  # "sqlite" | "postgresql"

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def migrate(self) -> list[str]:
        """Create or upgrade the schema; returns the migrations applied now."""
        ...

    # settings and ids
    async def get_setting(self, key: str) -> str | None: ...
    async def set_setting_if_absent(self, key: str, value: str) -> str:
        """Store value unless the key exists; return the value now stored."""
        ...
    async def allocate_ids(self, count: int) -> int:
        """Reserve `count` consecutive sequence values, unique across nodes; returns the
        first."""
        ...

    # accounts and credits
    async def get_account(self, system_id: str) -> Account | None: ...
    async def get_account_by_id(self, account_id: int) -> Account | None: ...
    async def list_accounts(self) -> list[Account]: ...
    async def add_account(self, account: Account) -> Account:
        """Insert (raises Conflict if system_id exists); returns it with its id."""
        ...
    async def update_account(self, account: Account) -> None:
        """Write every field except balance (balances change only through the ledger)."""
        ...
    async def adjust_balance(self, account_id: int, amount: int, reason: str) -> int:
        """Add `amount` (negative to debit) with a ledger entry; returns the new balance."""
        ...
    async def ledger(self, account_id: int, limit: int = 100) -> list[LedgerEntry]: ...

    # connectors, routes, coverage
    async def list_connectors(self) -> list[Connector]: ...
    async def add_connector(self, connector: Connector) -> None: ...
    async def list_routes(self) -> list[Route]: ...
    async def add_route(self, route: Route) -> Route: ...
    async def list_coverage(self) -> list[CoverageEntry]: ...
    async def replace_coverage(self, entries: Sequence[CoverageEntry]) -> None: ...

    # the hot path: one transaction per group commit
    async def write(self, batch: WriteBatch) -> BatchResult: ...

    # messages
    async def get_message(self, message_id: int) -> Message | None: ...
    async def undispatched(self, now: float, limit: int, after_id: int = 0) -> list[Message]:
        """Messages not yet sent, not final, due (schedule_at null or <= now), by id."""
        ...
    async def scheduled_until(self, until: float, limit: int) -> list[Message]:
        """Not yet sent, not final, with schedule_at not null and <= until (no lower
        bound: a time missed while the loop was busy is still found), by schedule_at."""
        ...
    async def expire_due(self, now: float, limit: int) -> list[Message]:
        """Messages not final whose expires_at < now: returns them (the caller stores
        EXPIRED through write())."""
        ...
    async def cancel_messages(self, account_id: int, message_ids: Sequence[int],
                              at: float) -> list[Message]:
        """Atomically mark DELETED, and refund, those of the given messages that belong to
        the account and are not yet sent nor final; returns the ones cancelled."""
        ...
    async def replace_message(self, account_id: int, message_id: int, payload: bytes,
                              schedule_at: float | None, expires_at: float | None,
                              registered_delivery: int | None) -> bool:
        """Replace an unsent message's payload (and times when not None)."""
        ...
    async def find_pending(self, account_id: int, source_addr: str, dest_addr: str,
                           service_type: str) -> list[int]:
        """Ids of unsent, not final messages matching (for cancel_sm without id)."""
        ...

    # receipts waiting for a receiver
    async def pending_receipts(self, account_id: int, now: float,
                               limit: int) -> list[PendingReceipt]:
        """Receipts due for (re)delivery (next_attempt_at <= now, not expired), by id."""
        ...
    async def purge_expired_receipts(self, now: float) -> int: ...

    # dlrurl callbacks waiting to be sent (the outbox of servers/http_callbacks.py)
    async def write_callbacks(self, new: Sequence[PendingCallback], done: Sequence[int],
                              retry: Sequence[tuple[int, int, float]]) -> list[int]:
        """One transaction: insert `new` (returns their ids, in order), delete the `done`
        ids, and for each (id, attempts, next_attempt_at) of `retry` store those and give
        the row back to the store (holder '')."""
        ...
    async def claim_callbacks(self, node: str, now: float, limit: int) -> list[PendingCallback]:
        """Atomically take up to `limit` rows held by nobody with next_attempt_at <= now
        (earliest first): their holder becomes `node`."""
        ...
    async def release_callbacks(self, node: str) -> int:
        """Give back every row `node` holds (its previous run's, at start)."""
        ...
    async def count_callbacks(self) -> int: ...


class ReceiptSink(Protocol):
    """Where the core hands status changes that a customer should hear about."""

    def receipt_ready(self, receipt: PendingReceipt) -> None: ...


# A connector reports outcomes through this callback: (message, update).
StatusCallback = Callable[[Message, StatusUpdate], None]


class UpstreamConnector(Protocol):
    """An upstream that takes messages: the simulator, an SMPP client, an HTTP provider."""

    name: str

    async def start(self, on_status: StatusCallback) -> None: ...
    async def stop(self) -> None: ...
    def send(self, messages: Sequence[Message]) -> None:
        """Take messages for delivery (non-blocking). Each later gets a StatusUpdate:
        ATES with upstream_id when the upstream accepted it (sent), then final ones."""
        ...
    @property
    def ready(self) -> bool:
        """Whether it can take messages now (e.g. the SMPP client is bound)."""
        ...
