"""The interfaces ("ports") the core needs; store/ and connectors/ implement them."""

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from .models import (
    Account,
    AdminToken,
    BatchResult,
    Connector,
    ConnectorState,
    CoverageEntry,
    InboundMessage,
    InboundNumber,
    LedgerEntry,
    Message,
    MessagePart,
    MessageQuery,
    NodeFigures,
    NodeStatus,
    PendingCallback,
    PendingReceipt,
    PurgeStep,
    Route,
    SentUpdate,
    SessionLease,
    StatusUpdate,
    UpstreamFailure,
    UpstreamReport,
    WriteBatch,
)


class StoreError(Exception):
    """Storage failed (connection lost, disk full, ...): the request gets HTTP03/RSYSERR."""


class CommitUnknown(StoreError):
    """The connection broke while a COMMIT was under way and its outcome could not be
    learnt: the transaction may or may not have been applied."""


class Conflict(StoreError):
    """A unique key already exists (account system_id, connector name)."""


class InUse(Exception):
    """A row that others still refer to was not removed (a connector that routes use):
    `users` names them, so that the operator knows what to remove first."""

    def __init__(self, what: str, users: Sequence[int | str]) -> None:
        self.users = list(users)
        super().__init__(f"{what} is in use by {', '.join(map(str, self.users))}")


class NodeInUse(Exception):
    """`serve` may not run as this node: another live process holds its identity (or,
    on SQLite, the database file). The message is one line for the operator."""


class Store(Protocol):
    """Persistence. Every method is safe to call concurrently from the event loop."""

    backend: str  # "sqlite" | "postgresql"
    # Whether `write` may be called twice at once, for a batch's new messages and for the
    # rest of it (store/writer.py): where that shortens the group commit (PostgreSQL,
    # two connections), not where writes are serialized anyway (SQLite).
    split_commits: bool

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
    async def set_setting(self, key: str, value: str) -> None: ...
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
    async def get_connector(self, name: str) -> Connector | None: ...
    async def set_connector_enabled(self, name: str, enabled: bool) -> bool:
        """Enable or disable; False when there is no such connector. A running gateway
        picks the change up from the store (it does not learn of it otherwise)."""
        ...
    async def remove_connector(self, name: str) -> bool:
        """Delete the connector and its reported states in one transaction; raises
        InUse (with the route ids) while routes point to it, so that no route is left
        pointing nowhere by this call. False when there is no such connector."""
        ...
    async def remove_route(self, route_id: int) -> bool:
        """False when there is no such route."""
        ...
    async def messages_by_upstream_id(self, connector: str,
                                      upstream_ids: Sequence[str]) -> list[Message]:
        """Messages sent through `connector` whose upstream id is one of `upstream_ids`
        (receipt correlation: the caller gives every spelling it accepts, e.g. decimal
        and hex); uses the (connector, upstream_id) index."""
        ...

    async def part_by_upstream_id(self, connector: str,
                                  upstream_ids: Sequence[str]) -> tuple[int, int] | None:
        """(message id, part number) of a later part of a message we split ourselves
        whose upstream id is one of `upstream_ids`; None when none is."""
        ...
    async def part_statuses(self, message_id: int) -> dict[int, str]:
        """Part number -> the final status reported for it ('' = none yet), for the
        parts stored in message_parts (the later parts)."""
        ...
    async def unmatched_reports(self, limit: int = 100) -> list[tuple]:
        """The latest delivery reports that matched no message: (id, connector,
        upstream_id, status, error_code, reported_at, received_at), newest first."""
        ...

    # numbers and short codes that MO is addressed to
    async def add_number(self, number: InboundNumber) -> None:
        """Insert; raises Conflict if the number exists."""
        ...
    async def list_numbers(self) -> list[InboundNumber]: ...
    async def remove_number(self, number: str) -> bool:
        """False when there is no such number."""
        ...

    # live connector state, reported by running gateways, read by `connector list`
    async def report_connector_state(self, state: ConnectorState) -> None:
        """Insert or replace the (connector, node) row: one per node, the latest wins."""
        ...
    async def connector_states(self) -> list[ConnectorState]:
        """Every reported state, by connector then node."""
        ...

    async def list_coverage(self) -> list[CoverageEntry]: ...
    async def replace_coverage(self, entries: Sequence[CoverageEntry]) -> None: ...

    # the hot path: one transaction per group commit
    async def write(self, batch: WriteBatch) -> BatchResult: ...

    # messages
    async def get_message(self, message_id: int) -> Message | None: ...
    async def undispatched(self, now: float, limit: int, after_id: int = 0,
                           node: str | None = None) -> list[Message]:
        """Messages not yet sent, not final, due (schedule_at null or <= now), by id;
        of one node only if given (store/ownership.py)."""
        ...
    async def scheduled_until(self, until: float, limit: int,
                              node: str | None = None) -> list[Message]:
        """Not yet sent, not final, with schedule_at not null and <= until (no lower
        bound: a time missed while the loop was busy is still found), by schedule_at;
        of one node only if given."""
        ...
    async def take_over(self, node: str, limit: int) -> list[Message]:
        """Make `node` the owner of up to `limit` unsent messages of nodes no longer
        alive (and free the callbacks those held); returns them, by id."""
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

    # retention (core/retention.py)
    async def drop_partitions(self, before: float) -> int:
        """Drop whole time partitions of messages holding nothing newer than `before`
        and nothing still waiting (PostgreSQL; 0 elsewhere); the messages dropped."""
        ...

    async def purge_step(self, table: str, before: float, after_id: int,
                         limit: int) -> PurgeStep:
        """Delete up to `limit` rows of `table` after `after_id` older than `before`, in
        one short transaction."""
        ...

    # MO (core/inbound.py); written through write()
    async def joining_inbound(self) -> list[InboundMessage]:
        """The MO parts still `joining` (their concatenated message not settled), by id."""
        ...
    async def recent_inbound(self, limit: int = 100) -> list[InboundMessage]:
        """The latest MO, routed or not, newest first (for the operator)."""
        ...

    # HTTP callbacks waiting to be sent (the outbox of servers/http_callbacks.py: dlrurl
    # and mo-url); new rows, deletes and reschedules are written through write()
    async def claim_callbacks(self, node: str, now: float, limit: int) -> list[PendingCallback]:
        """Atomically take up to `limit` rows held by nobody with next_attempt_at <= now
        (earliest first): their holder becomes `node`."""
        ...
    async def release_callbacks(self, node: str) -> int:
        """Give back every row `node` holds (its previous run's, at start)."""
        ...
    async def count_callbacks(self) -> int: ...

    # nodes (SPEC §9): each `serve` registers, heartbeats, and marks itself stopped
    async def claim_node(self, node_id: str, run_id: str) -> None:
        """Register this process (`run_id`, random per run) as node `node_id`, holding a
        lock that dies with the process (SQLite: on the database file, one node only;
        PostgreSQL: on the node id); raises NodeInUse while another live process holds
        it. The row is then this run's, whatever its heartbeat said: a process killed a
        moment ago is not alive, its lock is gone with it."""
        ...
    async def node_heartbeat(self, node_id: str, run_id: str, address: str,
                             figures: NodeFigures) -> bool:
        """Stamp the heartbeat with the figures; False when the row is no longer this
        run's (another process took the identity over)."""
        ...
    async def stop_node(self, node_id: str, run_id: str) -> None:
        """Mark the node stopped (its row stays, for `smsgate nodes`); its lock is held
        until close(), so that no other process is this node while this one flushes."""
        ...
    async def listen_receipts(self, notified: Callable[[list[int] | None], None]) -> bool:
        """Call notified(account ids, or None for any) when another node stored receipts
        or MO; False when it cannot (one node, or not now: the caller polls and asks
        again)."""
        ...
    async def take_bind(self, node_id: str, run_id: str, session: str, account_id: int,
                        kind: str, max_tx: int) -> str | None:
        """A lease for a bound session if the cluster-wide bind policy allows it (only
        live runs' leases count); else why not."""
        ...
    async def give_back_bind(self, node_id: str, session: str) -> None: ...
    async def list_nodes(self) -> list[NodeStatus]:
        """Every node ever registered, by id, with how long each has been silent."""
        ...

    # the admin API (SPEC §10; core/admin.py, core/admin_tokens.py, core/sessions.py)
    async def add_admin_token(self, name: str, token_hash: str, at: float) -> None:
        """Insert; raises Conflict if the name (or, never in practice, the hash) exists."""
        ...
    async def admin_tokens(self) -> list[AdminToken]: ...
    async def admin_token(self, token_hash: str) -> tuple[AdminToken, str] | None:
        """The token with this hash, and the stored hash (to compare in constant time)."""
        ...
    async def revoke_admin_token(self, name: str, at: float) -> bool:
        """Mark it revoked (kept, for the list); False when there is no such token."""
        ...
    async def touch_admin_token(self, name: str, at: float) -> None: ...
    async def list_sessions(self) -> list[SessionLease]:
        """The bound customer sessions of every live node (their bind leases)."""
        ...
    async def kick_session(self, node_id: str, session: str) -> bool:
        """Ask the node holding this live session to close it; False when none is."""
        ...
    async def kicked_sessions(self, node_id: str, run_id: str) -> list[str]:
        """This run's sessions that a kick was asked for (their lease keys)."""
        ...
    async def search_messages(self, query: MessageQuery) -> list[Message]:
        """Messages matching every filter given, newest (highest id) first."""
        ...
    async def message_parts(self, message_id: int) -> list[MessagePart]: ...
    async def message_outbox(self, message_id: int) -> tuple[list[tuple], list[tuple]]:
        """(receipts, callbacks) of the message still waiting to be delivered:
        (id, status, created_at, attempts, next_attempt_at, expires_at) and
        (id, status, created_at, attempts, next_attempt_at, holder)."""
        ...
    async def message_deliveries(self, message_id: int) -> list[tuple]:
        """(kind, status, outcome, attempts, at) of the receipts, MO deliver_sm and
        callbacks of a message (or MO) that left the outbox: delivered or given up."""
        ...
    async def status_series(self, since: int, until: int,
                            step: int) -> list[tuple[int, str, int]]:
        """(bucket // step, status, count) of the status changes of every node in the
        stored buckets of [since, until) (core/status_history.py)."""
        ...
    async def add_status_counts(self, node: str, counts: list[tuple[int, str, int]]) -> None:
        """Add to this node's (bucket, status) rows what they grew by."""
        ...


class Writer(Protocol):
    """The one group commit (store/writer.py), as the core and the callback outbox use
    it. Each call queues a write and returns at once; the future is resolved when the
    commit that holds it returns (the new row's id where there is one), or fails with
    StoreError. Everything queued in one loop turn, with no await in between, goes into
    ONE transaction: what must be stored together (a status and its callback row; an MO,
    its deliver_sm and its mo-url request) is queued together."""

    def add_message_then(self, message: Message, then: Callable[[bool | StoreError], None]
                         ) -> None: ...
    # messages charged each on its own, told together: (messages, refused ids | error)
    def add_each_then(self, messages: list[Message], then: Callable[
            [list[Message], set[int] | StoreError], None]) -> None: ...
    def add_messages(self, messages: list[Message]) -> "asyncio.Future[bool]": ...
    def add_sent(self, update: SentUpdate) -> "asyncio.Future[None]": ...
    def add_status(self, update: StatusUpdate) -> "asyncio.Future[None]": ...
    def queue_status(self, update: StatusUpdate) -> None: ...  # nobody waits: no future
    def add_part_status(self, message_id: int, part: int,
                        status: str) -> "asyncio.Future[None]": ...
    def add_unmatched(self, report: UpstreamReport) -> "asyncio.Future[None]": ...
    def drop_unmatched(self, report: UpstreamReport) -> "asyncio.Future[None]": ...
    # deliver_sm waiting for a receiver (receipts, MO)
    def add_receipt(self, receipt: PendingReceipt) -> "asyncio.Future[int]": ...
    def done_receipt(self, receipt_id: int) -> "asyncio.Future[None]": ...
    def retry_receipt(self, receipt_id: int, at: float) -> "asyncio.Future[None]": ...
    # the HTTP callback outbox
    def add_callback(self, callback: PendingCallback) -> "asyncio.Future[int]": ...
    def done_callback(self, callback_id: int,
                      delivered: bool = True) -> "asyncio.Future[None]": ...
    def retry_callback(self, callback_id: int, attempts: int,
                       at: float) -> "asyncio.Future[None]": ...
    # MO
    def add_inbound(self, message: InboundMessage) -> "asyncio.Future[None]": ...
    def joined_inbound(self, inbound_id: int) -> "asyncio.Future[None]": ...

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (or failed)."""
        ...

    def stalled_for(self) -> float:
        """Seconds the commit in flight has waited for the store (0 when none is;
        infinity once the writer has stopped), for GET /health."""
        ...


class CallbackOutbox(Protocol):
    """HTTP requests to customers' URLs, stored and retried (servers/http_callbacks.py)."""

    def add(self, owner_id: int, url: str, kind: str) -> None:
        """Queue a GET of `url` with the writer, in this call: it is stored in the same
        commit as what the caller queued in this loop turn, and sent once stored.
        `owner_id`: the message's or MO's id; `kind`: the status reported, or MO."""
        ...


class ReceiptSink(Protocol):
    """Where the core hands status changes that a customer should hear about."""

    def receipt_ready(self, receipt: PendingReceipt) -> None: ...


# Called once with the outcome of storing something an upstream sent us: True when it is
# stored (then acknowledge it upstream), False when it could not be (let it come again).
Done = Callable[[bool], None]


class ConnectorEvents(Protocol):
    """What a connector tells the core (core/dispatcher.py implements it). Every message
    handed to `UpstreamConnector.send` later gets exactly one `sent` or `failed`."""

    def sent(self, message: Message, upstream_ids: Sequence[str]) -> "asyncio.Future | None":
        """The upstream accepted every part (`upstream_ids`: one per part, in order). The
        ids are stored with the next group commit; the message is never sent again.
        Returns that commit's future (None when the mark is held: a resend_safe
        connector): until it is done a crash sends the message again, so an SMPP
        connector counts it in its window until then."""
        ...

    def sent_all(self, messages: Sequence[Message], upstream_ids: Sequence[str]) -> None:
        """`sent` for messages of one connector that took each as one part, its id in
        `upstream_ids` (the simulator: one call for a batch costs less than one each)."""
        ...

    def failed(self, message: Message, failure: UpstreamFailure) -> None:
        """The upstream did not take it. Temporary: dispatched again (by the next route
        while this connector is unavailable); permanent: REJECTD, the upstream's status
        kept as the error code (refunded as the refund policy says)."""
        ...

    def status(self, message: Message, update: StatusUpdate) -> None:
        """ACCEPTD or a final status for a message the connector still holds (the
        simulator); reports matched by upstream id come through `report` instead."""
        ...

    def status_all(self, outcomes: Sequence[tuple[Message, StatusUpdate]]) -> None:
        """`status` for several messages at once, in order."""
        ...

    def report(self, report: UpstreamReport, done: Done) -> None:
        """A delivery report to match to its message by upstream id (also one that comes
        before the submit's answer is stored, or for an id nobody knows: kept)."""
        ...

    def inbound(self, message: InboundMessage, done: Done) -> None:
        """An MO for one of our numbers (or none: kept as unrouted)."""
        ...


class UpstreamConnector(Protocol):
    """An upstream that takes messages: the simulator, an SMPP client, an HTTP provider."""

    name: str
    # Whether sending a message twice is harmless (the simulator): then the dispatcher
    # may hold its sent mark back and fold it into the first status (one write, not two).
    resend_safe: bool

    async def start(self, events: ConnectorEvents) -> None:
        """Begin connecting (non-blocking: `available` tells when it can send)."""
        ...

    async def stop(self) -> None:
        """Stop taking messages, hand back what was not sent (`failed`, temporary), wait
        briefly for what is in flight, and disconnect (SMPP: unbind)."""
        ...

    def send(self, messages: Sequence[Message]) -> None:
        """Take messages (non-blocking); at most `room` of them are sent at once, the
        connector may queue a few more but should not hold many."""
        ...

    @property
    def available(self) -> bool:
        """Bound / reachable and not backing off: failover skips it while False."""
        ...

    @property
    def room(self) -> int:
        """How many more messages it can send now (free window, TPS). The dispatcher
        keeps the rest, free to send them by another route."""
        ...

    def state(self) -> dict:
        """Live state for `connector list` and the admin API: binds up and wanted,
        window in use, messages sent per second, errors, the last error."""
        ...
