"""PostgreSQL backend with asyncpg: a pool, set-based statements, COPY for big batches.

A group commit costs a handful of round trips whatever its size: the batch's columns go
to the server as arrays (`UPDATE ... FROM unnest(...)`), many new rows go through COPY.

Locking order, so that nodes sharing the database cannot deadlock on balances: every
transaction that changes balances first locks all the accounts it touches, sorted by id
(`SELECT ... ORDER BY id FOR UPDATE`), and only then touches messages. write() then
decides its charges from the balances it locked, which gives exactly the outcome of the
conditional debit described in `charging`.

The transactions that move money (write, cancel_messages, adjust_balance) learn their
outcome when the answer to their COMMIT is lost (`pg_commit`).
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg

from ..core.models import (
    Account,
    BatchResult,
    CoverageEntry,
    Message,
    NodeFigures,
    PendingReceipt,
    PurgeStep,
    Refund,
    StatusUpdate,
    WriteBatch,
)
from ..core.ports import Conflict, InUse, NodeInUse, StoreError
from . import bind_leases, nodes, partitions, retention, rows, statements
from .charging import (
    ChargePlan,
    cancel_refunds,
    carried_refunds,
    granted,
    refund_ledger_rows,
    refund_totals,
)
from .dialect import for_postgres, postgres_list, spelled
from .migrations import ADVISORY_LOCK_KEY, SCHEMA_MIGRATIONS_POSTGRES, missing
from .pg_commit import in_transaction
from .rows import FINAL_SQL
from .sql_store import SqlStore

COPY_THRESHOLD = 50  # rows from which COPY beats a pipelined executemany
SQL = spelled(statements, for_postgres)

# What PostgreSQL runs its own way. A batch's row changes go to the server as arrays, one
# statement each (UPDATE ... FROM unnest), where SQLite runs executemany of one row layout
# (it has no round trips to save). Balances are locked in id order first (lock order
# between nodes, see above). The UPDATEs of messages also bound the batch's ids (its
# least and greatest): the ids come in arrays, so without it the planner would join the
# batch against every time partition (store/partitions.py); with it, it prunes to the
# one or two that hold them.
LOCK_ACCOUNTS = ("SELECT id, balance, credit_limit FROM accounts WHERE id = ANY($1::bigint[]) "
                 "ORDER BY id FOR UPDATE")
LOCK_ACCOUNT = "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE"
ADD_BALANCES = ("UPDATE accounts a SET balance = a.balance + d.amount "
                "FROM unnest($1::bigint[], $2::bigint[]) AS d(id, amount) WHERE a.id = d.id")
SET_SENT = ("UPDATE messages m SET connector = u.connector, sent_at = u.at, "
            "upstream_id = CASE WHEN u.upstream_id = '' THEN m.upstream_id "
            "ELSE u.upstream_id END "
            "FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[]) "
            "AS u(id, connector, at, upstream_id) WHERE m.id = u.id "
            "AND m.id BETWEEN $5 AND $6")
SET_STATUS = ("UPDATE messages m SET status = u.status, error_code = u.error_code, "
              "upstream_id = CASE WHEN u.upstream_id = '' THEN m.upstream_id "
              "ELSE u.upstream_id END, "
              "accepted_at = COALESCE(u.accepted_at, m.accepted_at), "
              "done_at = COALESCE(u.done_at, m.done_at), "
              "sent_at = COALESCE(u.sent_at, m.sent_at), "
              "connector = CASE WHEN u.connector = '' THEN m.connector ELSE u.connector END "
              "FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::float8[], "
              "$6::float8[], $7::float8[], $8::text[]) "
              "AS u(id, status, error_code, upstream_id, accepted_at, done_at, sent_at, connector) "
              f"WHERE m.id = u.id AND m.status NOT IN {FINAL_SQL} "
              "AND m.id BETWEEN $9 AND $10")
# The same, naming the rows it moved (a batch whose statuses carry refunds).
SET_STATUS_MOVED = f"{SET_STATUS} RETURNING m.id"
RETRY_RECEIPTS = ("UPDATE pending_receipts r SET attempts = r.attempts + 1, "
                  "next_attempt_at = u.at FROM unnest($1::bigint[], $2::float8[]) "
                  "AS u(id, at) WHERE r.id = u.id")
RETRY_CALLBACKS = ("UPDATE dlr_callbacks c SET attempts = u.attempts, next_attempt_at = u.at, "
                   "holder = '' FROM unnest($1::bigint[], $2::int[], $3::float8[]) "
                   "AS u(id, attempts, at) WHERE c.id = u.id")
# New receipt and callback ids drawn from their sequences first, so that COPY can insert
# them all (SQLite: above its AUTOINCREMENT mark, under its write lock).
RECEIPT_IDS = "SELECT nextval('pending_receipts_id_seq') FROM generate_series(1, $1)"
CALLBACK_IDS = "SELECT nextval('dlr_callbacks_id_seq') FROM generate_series(1, $1)"

# Nodes: the key space of the per-node advisory locks ("smsg"); the key within it is a
# hash of the schema and the node id, as a schema is a gateway of its own.
NODE_LOCK_SPACE = 0x736D7367
LOCK_NODE = "SELECT pg_try_advisory_lock($1, hashtext(current_schema() || '/' || $2))"
NODE_LOCK_TRIES, NODE_LOCK_RETRY = 4, 0.25
# The lock's session: the server notices a vanished peer within ~8 s by TCP keepalives.
NODE_SESSION = {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "1",
                "tcp_keepalives_count": "3"}
# Binds of one account, serialized across nodes for the policy check (store/bind_leases.py)
BIND_LOCK_SPACE = 0x62696E64
LOCK_ACCOUNT_BINDS = "SELECT pg_advisory_xact_lock($1, ($2 % 2147483647)::int)"
# Receipts stored on one node, heard by the node holding the account's receiver
RECEIPTS_CHANNEL = "smsgate_receipts"
NOTIFY_RECEIPTS = f"SELECT pg_notify('{RECEIPTS_CHANNEL}', $1)"
NOTICE_MAX = 7900  # pg_notify's payload is under 8000 bytes

log = logging.getLogger(__name__)


@contextmanager
def _errors() -> Iterator[None]:
    """asyncpg and network errors as StoreError, unique violations as Conflict."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(str(exc)) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
            OSError, TimeoutError) as exc:
        raise StoreError(f"postgresql: {exc}") from exc


class PostgresStore(SqlStore):
    backend = "postgresql"
    sql = SQL
    convert = staticmethod(for_postgres)
    list_arg = staticmethod(postgres_list)

    def __init__(self, dsn: str, min_size: int = 2, max_size: int = 10) -> None:
        self.dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._node_conn: asyncpg.Connection | None = None  # holds this node's lock
        self._node_id = ""  # once claimed: named in the receipts notices it sends
        # Time partitions of the messages (partitions.py): their sizing, and the counter
        # from which allocate_ids makes sure the next one exists (None: look now)
        self.partition_min_span = partitions.MIN_SPAN
        self.partition_period = partitions.PERIOD
        self._partitions_from: int | None = None
        self._listener: asyncpg.Connection | None = None  # LISTENs for receipts notices
        self._listen_failed = False

    # -- plumbing ----------------------------------------------------------------------

    async def open(self) -> None:
        with _errors():
            # jit off: planning small OLTP statements must never pay for JIT compilation.
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=self._min_size, max_size=self._max_size,
                server_settings={"jit": "off", "application_name": "smsgate"})

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()
        await self._let_node_go()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), 10)
        except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("the PostgreSQL store is not open")
        return self._pool

    # -- one statement (sql_store.py) ------------------------------------------------------

    async def _rows(self, sql: str, *args: Any) -> list:
        with _errors():
            return await self.pool.fetch(sql, *args)

    async def _row(self, sql: str, *args: Any) -> Any:
        with _errors():
            return await self.pool.fetchrow(sql, *args)

    async def _value(self, sql: str, *args: Any) -> Any:
        with _errors():
            return await self.pool.fetchval(sql, *args)

    async def _change(self, sql: str, *args: Any) -> int:
        with _errors():
            status = await self.pool.execute(sql, *args)
        return int(status.rsplit(" ", 1)[-1])

    async def _returning(self, sql: str, *args: Any) -> list:
        with _errors():
            return await self.pool.fetch(sql, *args)

    # -- several statements in one transaction ---------------------------------------------

    async def migrate(self) -> list[str]:
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                # Serializes nodes migrating at once; released at commit.
                await c.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
                await c.execute(SCHEMA_MIGRATIONS_POSTGRES)
                applied = {r[0] for r in await c.fetch("SELECT name FROM schema_migrations")}
                done = []
                for migration in missing(applied):
                    await c.execute(migration.postgres)
                    await c.execute("INSERT INTO schema_migrations (name, applied_at) "
                                    "VALUES ($1, $2)", migration.name, time.time())
                    done.append(migration.name)
        await self.ensure_partitions()
        return done

    async def allocate_ids(self, count: int) -> int:
        first = await super().allocate_ids(count)
        if self._partitions_from is None or first + count > self._partitions_from:
            await self.ensure_partitions()
        return first

    async def ensure_partitions(self) -> None:
        """Time partitions ahead of the id counter (partitions.py)."""
        with _errors():
            self._partitions_from = await partitions.ensure(
                self.pool, self.partition_min_span, self.partition_period)

    async def drop_partitions(self, before: float) -> int:
        await self.ensure_partitions()
        with _errors():
            return await partitions.drop_old(self.pool, before)

    async def set_setting_if_absent(self, key: str, value: str) -> str:
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                await c.execute(SQL.ADD_SETTING, key, value)
                return await c.fetchval(SQL.GET_SETTING, key)

    async def add_account(self, account: Account) -> Account:
        created = account.created_at or time.time()
        values = rows.account_values(dataclasses.replace(account, created_at=created))
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                account_id = await c.fetchval(SQL.INSERT_ACCOUNT, *values)
                if account.balance:  # an opening balance goes through the ledger too
                    await _credit(c, account_id, account.balance, "initial balance", None,
                                  created)
        return dataclasses.replace(account, id=account_id, created_at=created)

    async def adjust_balance(self, account_id: int, amount: int, reason: str) -> int:
        with _errors():
            return await in_transaction(self.pool, self.dsn, _credit, account_id, amount,
                                        reason, None, time.time())

    async def remove_connector(self, name: str) -> bool:
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                return await _remove_connector(c, name)

    async def replace_coverage(self, entries: Sequence[CoverageEntry]) -> None:
        values = [rows.coverage_row(e) for e in entries]
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                await c.execute(SQL.DELETE_COVERAGE)
                if values:
                    await c.copy_records_to_table("coverage", records=values,
                                                  columns=rows.COVERAGE_COLUMNS)

    async def write(self, batch: WriteBatch) -> BatchResult:
        with _errors():
            return await in_transaction(self.pool, self.dsn, _write, batch, self._node_id)

    async def _take_over(self, node: str, limit: int) -> list:
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                await c.execute(SQL.RELEASE_DEAD_CALLBACKS)
                return await c.fetch(SQL.TAKE_OVER, node, limit)

    async def _cancel(self, account_id: int, ids: Any, at: float) -> list[Message]:
        with _errors():
            return await in_transaction(self.pool, self.dsn, _cancel, account_id, ids, at)

    async def purge_step(self, table: str, before: float, after_id: int,
                         limit: int) -> PurgeStep:
        history = retention.BY_NAME[table]
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                found = await c.fetch(retention.select_step(history), after_id, limit)
                ids, step = retention.chosen([tuple(r) for r in found], before, limit)
                if ids:
                    *dependents, own = retention.delete_step(history)
                    for sql in dependents:
                        await c.execute(sql, ids)
                    status = await c.execute(own, ids)
                    step = dataclasses.replace(step, deleted=int(status.split()[-1]))
        return step

    # -- nodes -------------------------------------------------------------------------

    async def claim_node(self, node_id: str, run_id: str) -> None:
        with _errors():
            conn = self._node_conn  # a store is one node: a second claim keeps its lock
            if conn is None or conn.is_closed():
                conn = await self._lock_node(node_id, tries=NODE_LOCK_TRIES)
            self._node_id = node_id
            try:
                await conn.execute(SQL.CLAIM_NODE, node_id, run_id)
                await conn.execute(SQL.FORGET_NODE_BINDS, node_id, run_id)
            except BaseException:
                await conn.close()
                raise
        self._node_conn = conn

    async def _lock_node(self, node_id: str, tries: int) -> asyncpg.Connection:
        """A connection of its own holding the session advisory lock of `node_id`: when
        the process dies PostgreSQL closes the session and lets the lock go (keepalives
        bound how long a vanished machine keeps it). Raises NodeInUse while another
        session holds it; tries a few times, as a process killed a moment ago may not
        have been noticed yet."""
        conn = await asyncpg.connect(self.dsn, server_settings={
            **NODE_SESSION, "application_name": f"smsgate node {node_id}"[:63]})
        try:
            for attempt in range(tries):
                if await conn.fetchval(LOCK_NODE, NODE_LOCK_SPACE, node_id):
                    return conn
                if attempt + 1 < tries:
                    await asyncio.sleep(NODE_LOCK_RETRY)
            row = await conn.fetchrow(SQL.ONE_NODE, node_id)
            raise NodeInUse(nodes.alive_message(row and nodes.node_from_row(row), node_id))
        except BaseException:
            await conn.close()
            raise

    async def node_heartbeat(self, node_id: str, run_id: str, address: str,
                             figures: NodeFigures) -> bool:
        args = nodes.heartbeat_args(node_id, run_id, address, figures)
        with _errors():
            conn = await self._node_lock_connection(node_id)
            status = await (conn or self.pool).execute(SQL.HEARTBEAT_NODE, *args)
        return status == "UPDATE 1"

    async def _node_lock_connection(self, node_id: str) -> asyncpg.Connection | None:
        """The connection holding this node's lock; once it was lost, a new one that
        takes the lock again. None while the lock is held elsewhere: by our lost session
        that the server has not dropped yet (the heartbeat goes through the pool
        meanwhile), or by another process -- which then claimed the row with its run_id,
        and the heartbeat's run_id check says so."""
        conn = self._node_conn
        if conn is None or conn.is_closed():
            try:
                conn = self._node_conn = await self._lock_node(node_id, tries=1)
            except NodeInUse:
                return None
        return conn

    async def _let_node_go(self) -> None:
        conn, self._node_conn = self._node_conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                conn.terminate()

    async def take_bind(self, node_id: str, run_id: str, session: str, account_id: int,
                        kind: str, max_tx: int) -> str | None:
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                await c.execute(LOCK_ACCOUNT_BINDS, BIND_LOCK_SPACE, account_id)
                kinds = [row[0] for row in await c.fetch(SQL.LIVE_BINDS, account_id)]
                refused = bind_leases.refusal(kinds, kind, max_tx)
                if refused is None:
                    await c.execute(SQL.TAKE_BIND, node_id, run_id, session, account_id, kind)
                return refused

    async def listen_receipts(self, notified: Callable[[list[int] | None], None]) -> bool:
        if self._listener is not None and not self._listener.is_closed():
            return True
        own = self._node_id

        def heard(_conn, _pid, _channel, payload: str) -> None:
            node, _, accounts = payload.partition("|")
            if node == own:  # this node delivers its own receipts as it stores them
                return
            try:
                ids = [int(a) for a in accounts.split(",")] if accounts else None
            except ValueError:  # not one of ours (anyone may NOTIFY): look at all
                ids = None
            notified(ids)
        try:
            conn = await asyncpg.connect(self.dsn, server_settings={
                "application_name": "smsgate receipts listener"})
            await conn.add_listener(RECEIPTS_CHANNEL, heard)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            if not self._listen_failed:  # once per outage: the caller asks every second
                log.warning("receipts notices not heard (polling meanwhile): %s", exc)
            self._listen_failed = True
            return False
        if self._listen_failed:
            log.info("receipts notices heard again")
        self._listener, self._listen_failed = conn, False
        return True



# -- statement groups, run on one connection inside a transaction ----------------------

async def _credit(c: asyncpg.Connection, account_id: int, amount: int, reason: str,
                  message_id: int | None, now: float) -> int:
    balance = await c.fetchval(SQL.CREDIT, amount, account_id)
    if balance is None:
        raise StoreError(f"no account with id {account_id}")
    await c.execute(SQL.INSERT_LEDGER, account_id, amount, reason, message_id, now)
    return balance


async def _insert(c: asyncpg.Connection, table: str, names: tuple[str, ...], sql: str,
                  records: list[tuple]) -> None:
    if len(records) >= COPY_THRESHOLD:
        await c.copy_records_to_table(table, records=records, columns=names)
    elif records:
        await c.executemany(sql, records)


async def _write(c: asyncpg.Connection, batch: WriteBatch, node_id: str = "") -> BatchResult:
    now = time.time()
    result = BatchResult()
    plan = ChargePlan(batch.new_messages, batch.atomic)
    refunds = carried_refunds(batch.statuses) if batch.statuses else {}
    locked = await _lock_accounts(c, plan, refunds)
    if batch.sent:
        columns = list(zip(*rows.sent_rows(batch.sent), strict=True))
        await c.execute(SET_SENT, *columns, min(columns[0]), max(columns[0]))
    paid = await _set_statuses(c, batch.statuses, refunds) if batch.statuses else []
    if batch.new_messages or paid:
        result.refused = await _settle_balances(c, batch, plan, locked, paid, now)
    if batch.new_receipts:
        result.receipt_ids = await _insert_receipts(c, batch.new_receipts)
        await c.execute(NOTIFY_RECEIPTS, receipts_notice(node_id, batch.new_receipts))
    if batch.done_receipts:
        await c.execute(SQL.DELETE_RECEIPTS, batch.done_receipts)
    if batch.retry_receipts:
        await c.execute(RETRY_RECEIPTS, *zip(*batch.retry_receipts, strict=True))
    if batch.part_statuses or batch.unmatched or batch.sent or batch.rematched:
        await _write_correlation(c, batch, now)
    if batch.new_callbacks or batch.done_callbacks or batch.retry_callbacks \
            or batch.new_inbound or batch.joined_inbound:
        result.callback_ids = await _write_outbox(c, batch)
    return result


async def _write_correlation(c: asyncpg.Connection, batch: WriteBatch, now: float) -> None:
    parts = rows.part_rows(batch.sent)
    if parts:
        await c.executemany(SQL.INSERT_PART, parts)
    if batch.part_statuses:
        await c.executemany(SQL.SET_PART_STATUS, batch.part_statuses)
    if batch.unmatched:
        await c.executemany(SQL.INSERT_UNMATCHED, rows.unmatched_rows(batch.unmatched, now))
    if batch.rematched:
        await c.executemany(SQL.DELETE_UNMATCHED, rows.unmatched_keys(batch.rematched))


async def _lock_accounts(c: asyncpg.Connection, plan: ChargePlan,
                         refunds: dict[int, Refund]) -> dict[int, tuple[int, int]]:
    """Lock and read, in id order and before any message row, every account this
    transaction may change: those charged, and those a status may refund."""
    touched = {aid for aid, _ in plan.debits()}
    touched.update(r.account_id for r in refunds.values())
    if not touched:
        return {}
    return {r[0]: (r[1], r[2]) for r in await c.fetch(LOCK_ACCOUNTS, sorted(touched))}


async def _set_statuses(c: asyncpg.Connection, statuses: list[StatusUpdate],
                        refunds: dict[int, Refund]) -> list[Refund]:
    """Set-based status write; returns the carried refunds it grants: those of the
    messages its RETURNING says it moved into their final state (charging.py)."""
    columns = list(zip(*rows.status_rows(statuses), strict=True))
    ids = columns[0]
    if not refunds:
        await c.execute(SET_STATUS, *columns, min(ids), max(ids))
        return []
    moved = await c.fetch(SET_STATUS_MOVED, *columns, min(ids), max(ids))
    return granted(refunds, [r[0] for r in moved])


async def _settle_balances(c: asyncpg.Connection, batch: WriteBatch, plan: ChargePlan,
                           locked: dict[int, tuple[int, int]], refunds: list[Refund],
                           now: float) -> set[int]:
    """Charge new messages (inserting the accepted ones) and grant refunds, on the
    accounts locked before: one balance update per account, then the ledger rows."""
    delta: dict[int, int] = {}
    for aid, _ in plan.debits():
        delta[aid] = -plan.decide(aid, *locked.get(aid, (None, 0)))
    for aid, amount in refund_totals(refunds):
        delta[aid] = delta.get(aid, 0) + amount
    changes = [(aid, amount) for aid, amount in delta.items() if amount]
    if changes:
        await c.execute(ADD_BALANCES, *zip(*changes, strict=True))
    ledger = plan.ledger_rows(now) + refund_ledger_rows(refunds, now)
    await _insert(c, "ledger", rows.LEDGER_COLUMNS, SQL.INSERT_LEDGER, ledger)
    accepted = plan.accepted(batch.new_messages)
    await _insert(c, "messages", rows.MESSAGE_COLUMNS, SQL.INSERT_MESSAGE,
                  list(map(rows.message_row, accepted)))
    return plan.refused


def receipts_notice(node_id: str, receipts: list[PendingReceipt]) -> str:
    """`node|account,account,...`; past NOTICE_MAX no accounts: any may have some."""
    accounts = ",".join(sorted({str(r.account_id) for r in receipts}))
    return f"{node_id}|{accounts if len(accounts) < NOTICE_MAX else ''}"


async def _insert_receipts(c: asyncpg.Connection, receipts: list[PendingReceipt]) -> list[int]:
    ids = [r[0] for r in await c.fetch(RECEIPT_IDS, len(receipts))]
    await _insert(c, "pending_receipts", rows.RECEIPT_INSERT_COLUMNS, SQL.INSERT_RECEIPT,
                  rows.with_ids(ids, receipts, rows.receipt_values))
    return ids


async def _cancel(c: asyncpg.Connection, account_id: int, ids: list[int],
                  at: float) -> list[Message]:
    # The account first, then its messages: the same order as write() (no deadlock).
    await c.execute(LOCK_ACCOUNT, account_id)
    cancelled = [Message(*r) for r in await c.fetch(SQL.CANCEL, at, account_id, ids)]
    refunds = cancel_refunds(cancelled)
    if refunds:  # one balance update per account, one ledger row per message
        await c.execute(ADD_BALANCES, *zip(*refund_totals(refunds), strict=True))
        await _insert(c, "ledger", rows.LEDGER_COLUMNS, SQL.INSERT_LEDGER,
                      refund_ledger_rows(refunds, at))
    return cancelled


async def _remove_connector(c: asyncpg.Connection, name: str) -> bool:
    # The connector row locked first, so that two removes do not interleave. A route
    # added at this very moment can still slip past the check (add_route does not lock
    # the connector: tests and old data hold routes to absent connectors); such a route
    # answers HTTP23 like any route whose connector is missing.
    if await c.fetchrow(SQL.CONNECTOR + " FOR UPDATE", name) is None:
        return False
    users = [r[0] for r in await c.fetch(SQL.CONNECTOR_USERS, name)]
    if users:
        raise InUse(f"connector {name!r}", [f"route {i}" for i in users])
    await c.execute(SQL.DELETE_CONNECTOR_STATES, name)
    await c.execute(SQL.DELETE_CONNECTOR, name)
    return True


async def _write_outbox(c: asyncpg.Connection, batch: WriteBatch) -> list[int]:
    """The batch's callback rows and MO; returns the new callbacks' ids."""
    ids: list[int] = []
    new = batch.new_callbacks
    if new:
        ids = [r[0] for r in await c.fetch(CALLBACK_IDS, len(new))]
        await _insert(c, "dlr_callbacks", rows.CALLBACK_INSERT_COLUMNS, SQL.INSERT_CALLBACK,
                      rows.with_ids(ids, new, rows.callback_values))
    if batch.done_callbacks:
        await c.execute(SQL.DELETE_CALLBACKS, batch.done_callbacks)
    if batch.retry_callbacks:
        await c.execute(RETRY_CALLBACKS, *zip(*batch.retry_callbacks, strict=True))
    if batch.new_inbound:
        await _insert(c, "inbound_messages", rows.INBOUND_COLUMNS, SQL.INSERT_INBOUND,
                      list(map(rows.inbound_row, batch.new_inbound)))
    if batch.joined_inbound:
        await c.execute(SQL.SET_JOINED, batch.joined_inbound)
    return ids
