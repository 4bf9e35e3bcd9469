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

import asyncpg

from ..core.models import (
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
    Refund,
    Route,
    SessionLease,
    StatusUpdate,
    WriteBatch,
)
from ..core.ports import Conflict, InUse, NodeInUse, StoreError
from . import admin, bind_leases, nodes, ownership, retention, rows
from .charging import (
    ChargePlan,
    cancel_refunds,
    carried_refunds,
    granted,
    refund_ledger_rows,
    refund_totals,
)
from .migrations import ADVISORY_LOCK_KEY, SCHEMA_MIGRATIONS_POSTGRES, missing
from .pg_commit import in_transaction
from .rows import LIVE, columns

COPY_THRESHOLD = 50  # rows from which COPY beats a pipelined executemany
_MSG = columns(rows.MESSAGE_COLUMNS)
_ACCOUNT = columns(rows.ACCOUNT_COLUMNS)
_RECEIPT = columns(rows.RECEIPT_COLUMNS)


def _marks(n: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + n))


INSERT_MESSAGE = f"INSERT INTO messages ({_MSG}) VALUES ({_marks(len(rows.MESSAGE_COLUMNS))})"
INSERT_LEDGER = (f"INSERT INTO ledger ({columns(rows.LEDGER_COLUMNS)}) "
                 f"VALUES ({_marks(len(rows.LEDGER_COLUMNS))})")
INSERT_RECEIPT = (f"INSERT INTO pending_receipts ({columns(rows.RECEIPT_INSERT_COLUMNS)}) "
                  f"VALUES ({_marks(len(rows.RECEIPT_INSERT_COLUMNS))})")
LOCK_ACCOUNTS = ("SELECT id, balance, credit_limit FROM accounts WHERE id = ANY($1::bigint[]) "
                 "ORDER BY id FOR UPDATE")
ADD_BALANCES = ("UPDATE accounts a SET balance = a.balance + d.amount "
                "FROM unnest($1::bigint[], $2::bigint[]) AS d(id, amount) WHERE a.id = d.id")
SET_SENT = ("UPDATE messages m SET connector = u.connector, sent_at = u.at, "
            "upstream_id = CASE WHEN u.upstream_id = '' THEN m.upstream_id "
            "ELSE u.upstream_id END "
            "FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[]) "
            "AS u(id, connector, at, upstream_id) WHERE m.id = u.id")
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
              f"WHERE m.id = u.id AND m.status NOT IN {rows.FINAL_SQL}")
INSERT_PART = ("INSERT INTO message_parts (message_id, part, connector, upstream_id) "
               "VALUES ($1, $2, $3, $4) ON CONFLICT (message_id, part) DO UPDATE SET "
               "connector = EXCLUDED.connector, upstream_id = EXCLUDED.upstream_id")
SET_PART_STATUS = "UPDATE message_parts SET status = $3 WHERE message_id = $1 AND part = $2"
DELETE_UNMATCHED = ("DELETE FROM unmatched_reports WHERE connector = $1 AND upstream_id = $2 "
                    "AND reported_at = $3")
INSERT_UNMATCHED = ("INSERT INTO unmatched_reports (connector, upstream_id, status, error_code, "
                    "reported_at, received_at) VALUES ($1, $2, $3, $4, $5, $6)")
# The same, naming the rows it moved (a batch whose statuses carry refunds).
SET_STATUS_MOVED = f"{SET_STATUS} RETURNING m.id"
RECEIPT_IDS = "SELECT nextval('pending_receipts_id_seq') FROM generate_series(1, $1)"
DELETE_RECEIPTS = "DELETE FROM pending_receipts WHERE id = ANY($1::bigint[])"
RETRY_RECEIPTS = ("UPDATE pending_receipts r SET attempts = r.attempts + 1, "
                  "next_attempt_at = u.at FROM unnest($1::bigint[], $2::float8[]) "
                  "AS u(id, at) WHERE r.id = u.id")

SELECT_MESSAGES = f"SELECT {_MSG} FROM messages"
UNSENT_NOW = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at IS NULL "
              "AND id > $1 ORDER BY id LIMIT $2")
UNSENT_DUE = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= $1 "
              "AND id > $2 ORDER BY id LIMIT $3")
SCHEDULED = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= $1 "
             "ORDER BY schedule_at, id LIMIT $2")
# The same, of one node's messages only (store/ownership.py)
UNSENT_NOW_OF = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at IS NULL "
                 "AND node = $3 AND id > $1 ORDER BY id LIMIT $2")
UNSENT_DUE_OF = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= $1 "
                 "AND node = $4 AND id > $2 ORDER BY id LIMIT $3")
SCHEDULED_OF = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= $1 "
                "AND node = $3 ORDER BY schedule_at, id LIMIT $2")
TAKE_OVER = nodes.for_postgres(ownership.take_over(_MSG, " FOR UPDATE SKIP LOCKED"))
RELEASE_DEAD_CALLBACKS = nodes.for_postgres(ownership.RELEASE_CALLBACKS)
EXPIRING = f"{SELECT_MESSAGES} WHERE {LIVE} AND expires_at < $1 ORDER BY expires_at LIMIT $2"
CANCEL = ("UPDATE messages SET status = 'DELETED', done_at = $1 WHERE account_id = $2 "
          "AND sent_at IS NULL AND status = 'ATES' AND id = ANY($3::bigint[]) "
          f"RETURNING {_MSG}")
REPLACE = ("UPDATE messages SET payload = $1, schedule_at = COALESCE($2, schedule_at), "
           "expires_at = COALESCE($3, expires_at), "
           "registered_delivery = COALESCE($4, registered_delivery) "
           "WHERE id = $5 AND account_id = $6 AND sent_at IS NULL AND status = 'ATES'")
FIND_PENDING = (f"SELECT id FROM messages WHERE account_id = $1 AND source_addr = $2 "
                f"AND sent_at IS NULL AND {LIVE}")
DUE_RECEIPTS = (f"SELECT {_RECEIPT} FROM pending_receipts WHERE account_id = $1 "
                "AND next_attempt_at <= $2 AND expires_at > $2 ORDER BY id LIMIT $3")


# Nodes: the key space of the per-node advisory locks ("smsg"); the key within it is a
# hash of the schema and the node id, as a schema is a gateway of its own.
NODE_LOCK_SPACE = 0x736D7367
LOCK_NODE = "SELECT pg_try_advisory_lock($1, hashtext(current_schema() || '/' || $2))"
NODE_LOCK_TRIES, NODE_LOCK_RETRY = 4, 0.25
# The lock's session: the server notices a vanished peer within ~8 s by TCP keepalives.
NODE_SESSION = {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "1",
                "tcp_keepalives_count": "3"}
CLAIM_NODE = nodes.for_postgres(nodes.CLAIM)
HEARTBEAT_NODE = nodes.for_postgres(nodes.HEARTBEAT)
# Binds of one account, serialized across nodes for the policy check (store/bind_leases.py)
BIND_LOCK_SPACE = 0x62696E64
LOCK_ACCOUNT_BINDS = "SELECT pg_advisory_xact_lock($1, ($2 % 2147483647)::int)"
LIVE_BINDS = nodes.for_postgres(bind_leases.LIVE)
TAKE_BIND = nodes.for_postgres(bind_leases.TAKE)
STOP_NODE = nodes.for_postgres(nodes.STOP)
# Receipts stored on one node, heard by the node holding the account's receiver
RECEIPTS_CHANNEL = "smsgate_receipts"
NOTIFY_RECEIPTS = f"SELECT pg_notify('{RECEIPTS_CHANNEL}', $1)"
NOTICE_MAX = 7900  # pg_notify's payload is under 8000 bytes
LIST_NODES = nodes.for_postgres(nodes.LIST)
ONE_NODE = nodes.for_postgres(nodes.ONE)
_ADMIN_SQL = {name: nodes.for_postgres(getattr(admin, name)) for name in admin.STATEMENTS}
LOG_RECEIPTS = nodes.for_postgres(admin.LOG_RECEIPTS.format(ids=admin.PG_IDS))
LOG_CALLBACKS = nodes.for_postgres(admin.LOG_CALLBACKS.format(ids=admin.PG_IDS))

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


class PostgresStore:
    backend = "postgresql"

    def __init__(self, dsn: str, min_size: int = 2, max_size: int = 10) -> None:
        self.dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._node_conn: asyncpg.Connection | None = None  # holds this node's lock
        self._node_id = ""  # once claimed: named in the receipts notices it sends
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

    # -- schema, settings, ids ---------------------------------------------------------

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
                return done

    async def get_setting(self, key: str) -> str | None:
        with _errors():
            return await self.pool.fetchval("SELECT value FROM settings WHERE key = $1", key)

    async def set_setting_if_absent(self, key: str, value: str) -> str:
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                await c.execute("INSERT INTO settings (key, value) VALUES ($1, $2) "
                                "ON CONFLICT (key) DO NOTHING", key, value)
                return await c.fetchval("SELECT value FROM settings WHERE key = $1", key)

    async def set_setting(self, key: str, value: str) -> None:
        with _errors():
            await self.pool.execute("INSERT INTO settings (key, value) VALUES ($1, $2) "
                                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                    key, value)

    async def allocate_ids(self, count: int) -> int:
        if count < 1:
            raise ValueError("count must be at least 1")
        with _errors():
            last = await self.pool.fetchval("UPDATE id_sequence SET value = value + $1 "
                                            "WHERE name = 'message' RETURNING value", count)
        return last - count + 1

    # -- accounts and credits ----------------------------------------------------------

    async def get_account(self, system_id: str) -> Account | None:
        with _errors():
            row = await self.pool.fetchrow(
                f"SELECT {_ACCOUNT} FROM accounts WHERE system_id = $1", system_id)
        return rows.account_from_row(row) if row else None

    async def get_account_by_id(self, account_id: int) -> Account | None:
        with _errors():
            row = await self.pool.fetchrow(
                f"SELECT {_ACCOUNT} FROM accounts WHERE id = $1", account_id)
        return rows.account_from_row(row) if row else None

    async def list_accounts(self) -> list[Account]:
        with _errors():
            found = await self.pool.fetch(f"SELECT {_ACCOUNT} FROM accounts ORDER BY id")
        return [rows.account_from_row(r) for r in found]

    async def add_account(self, account: Account) -> Account:
        created = account.created_at or time.time()
        values = rows.account_values(dataclasses.replace(account, created_at=created))
        sql = (f"INSERT INTO accounts ({columns(rows.ACCOUNT_WRITE_COLUMNS)}) "
               f"VALUES ({_marks(len(values))}) RETURNING id")
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                account_id = await c.fetchval(sql, *values)
                if account.balance:  # an opening balance goes through the ledger too
                    await _credit(c, account_id, account.balance, "initial balance", None,
                                  created)
        return dataclasses.replace(account, id=account_id, created_at=created)

    async def update_account(self, account: Account) -> None:
        cols = rows.ACCOUNT_WRITE_COLUMNS
        sets = ", ".join(f"{c} = ${n}" for n, c in enumerate(cols, 1))
        sql = f"UPDATE accounts SET {sets} WHERE id = ${len(cols) + 1}"
        with _errors():
            status = await self.pool.execute(sql, *rows.account_values(account), account.id)
        if status == "UPDATE 0":
            raise StoreError(f"no account with id {account.id}")

    async def adjust_balance(self, account_id: int, amount: int, reason: str) -> int:
        with _errors():
            return await in_transaction(self.pool, self.dsn, _credit, account_id, amount,
                                        reason, None, time.time())

    async def ledger(self, account_id: int, limit: int = 100) -> list[LedgerEntry]:
        """Newest first."""
        with _errors():
            found = await self.pool.fetch(
                f"SELECT {rows.LEDGER_SELECT} FROM ledger WHERE account_id = $1 "
                "ORDER BY id DESC LIMIT $2", account_id, limit)
        return [rows.ledger_from_row(r) for r in found]

    # -- connectors, routes, coverage --------------------------------------------------

    async def list_connectors(self) -> list[Connector]:
        with _errors():
            found = await self.pool.fetch(
                "SELECT name, type, config, enabled FROM connectors ORDER BY name")
        return [rows.connector_from_row(r) for r in found]

    async def add_connector(self, connector: Connector) -> None:
        with _errors():
            await self.pool.execute("INSERT INTO connectors (name, type, config, enabled) "
                                    "VALUES ($1, $2, $3, $4)",
                                    *rows.connector_values(connector))

    async def list_routes(self) -> list[Route]:
        with _errors():
            found = await self.pool.fetch(
                f"SELECT id, {columns(rows.ROUTE_COLUMNS)} FROM routes ORDER BY id")
        return [rows.route_from_row(r) for r in found]

    async def add_route(self, route: Route) -> Route:
        with _errors():
            route_id = await self.pool.fetchval(INSERT_ROUTE, *rows.route_values(route))
        return dataclasses.replace(route, id=route_id)

    async def remove_route(self, route_id: int) -> bool:
        with _errors():
            status = await self.pool.execute("DELETE FROM routes WHERE id = $1", route_id)
        return status == "DELETE 1"

    async def get_connector(self, name: str) -> Connector | None:
        with _errors():
            row = await self.pool.fetchrow(
                "SELECT name, type, config, enabled FROM connectors WHERE name = $1", name)
        return rows.connector_from_row(row) if row else None

    async def set_connector_enabled(self, name: str, enabled: bool) -> bool:
        with _errors():
            status = await self.pool.execute(
                "UPDATE connectors SET enabled = $1 WHERE name = $2", enabled, name)
        return status == "UPDATE 1"

    async def remove_connector(self, name: str) -> bool:
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                return await _remove_connector(c, name)

    async def messages_by_upstream_id(self, connector: str,
                                      upstream_ids: Sequence[str]) -> list[Message]:
        if not upstream_ids:
            return []
        with _errors():
            found = await self.pool.fetch(BY_UPSTREAM_ID, connector, list(upstream_ids))
        return [Message(*r) for r in found]

    async def part_by_upstream_id(self, connector: str,
                                  upstream_ids: Sequence[str]) -> tuple[int, int] | None:
        if not upstream_ids:
            return None
        with _errors():
            row = await self.pool.fetchrow(
                "SELECT message_id, part FROM message_parts WHERE connector = $1 "
                "AND upstream_id = ANY($2::text[]) ORDER BY message_id LIMIT 1",
                connector, list(upstream_ids))
        return (row[0], row[1]) if row else None

    async def part_statuses(self, message_id: int) -> dict[int, str]:
        with _errors():
            found = await self.pool.fetch("SELECT part, status FROM message_parts "
                                          "WHERE message_id = $1", message_id)
        return {r[0]: r[1] for r in found}

    async def unmatched_reports(self, limit: int = 100) -> list[tuple]:
        with _errors():
            found = await self.pool.fetch(
                "SELECT id, connector, upstream_id, status, error_code, reported_at, "
                "received_at FROM unmatched_reports ORDER BY id DESC LIMIT $1", limit)
        return [tuple(r) for r in found]

    # -- numbers, connector states -----------------------------------------------------

    async def add_number(self, number: InboundNumber) -> None:
        with _errors():
            await self.pool.execute(INSERT_NUMBER, *rows.number_row(number))

    async def list_numbers(self) -> list[InboundNumber]:
        with _errors():
            found = await self.pool.fetch(
                f"SELECT {columns(rows.NUMBER_COLUMNS)} FROM numbers ORDER BY number")
        return [InboundNumber(*r) for r in found]

    async def remove_number(self, number: str) -> bool:
        with _errors():
            status = await self.pool.execute("DELETE FROM numbers WHERE number = $1", number)
        return status == "DELETE 1"

    async def report_connector_state(self, state: ConnectorState) -> None:
        with _errors():
            await self.pool.execute(UPSERT_CONNECTOR_STATE,
                                    *rows.connector_state_values(state))

    async def connector_states(self) -> list[ConnectorState]:
        with _errors():
            found = await self.pool.fetch(
                f"SELECT {columns(rows.CONNECTOR_STATE_COLUMNS)} FROM connector_states "
                "ORDER BY connector, node")
        return [rows.connector_state_from_row(r) for r in found]

    async def list_coverage(self) -> list[CoverageEntry]:
        with _errors():
            found = await self.pool.fetch(
                f"SELECT {columns(rows.COVERAGE_COLUMNS)} FROM coverage ORDER BY id")
        return [CoverageEntry(*r) for r in found]

    async def replace_coverage(self, entries: Sequence[CoverageEntry]) -> None:
        values = [rows.coverage_row(e) for e in entries]
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                await c.execute("DELETE FROM coverage")
                if values:
                    await c.copy_records_to_table("coverage", records=values,
                                                  columns=rows.COVERAGE_COLUMNS)

    # -- the hot path ------------------------------------------------------------------

    async def write(self, batch: WriteBatch) -> BatchResult:
        with _errors():
            return await in_transaction(self.pool, self.dsn, _write, batch, self._node_id)

    # -- messages ----------------------------------------------------------------------

    async def get_message(self, message_id: int) -> Message | None:
        with _errors():
            row = await self.pool.fetchrow(f"{SELECT_MESSAGES} WHERE id = $1", message_id)
        return Message(*row) if row else None

    async def undispatched(self, now: float, limit: int, after_id: int = 0,
                           node: str | None = None) -> list[Message]:
        # Two index range scans (immediate ones by id; due scheduled ones by time), merged:
        # a big scheduled campaign is then never scanned before it is due.
        with _errors():
            async with self.pool.acquire() as c:
                if node is None:
                    found = (await c.fetch(UNSENT_NOW, after_id, limit)
                             + await c.fetch(UNSENT_DUE, now, after_id, limit))
                else:
                    found = (await c.fetch(UNSENT_NOW_OF, after_id, limit, node)
                             + await c.fetch(UNSENT_DUE_OF, now, after_id, limit, node))
        found.sort(key=lambda r: r[0])
        return [Message(*r) for r in found[:limit]]

    async def scheduled_until(self, until: float, limit: int,
                              node: str | None = None) -> list[Message]:
        """Unsent, not final, schedule_at <= until, by schedule_at (those already due
        included: there is no `now` here, and the caller sends them at once)."""
        with _errors():
            if node is None:
                found = await self.pool.fetch(SCHEDULED, until, limit)
            else:
                found = await self.pool.fetch(SCHEDULED_OF, until, limit, node)
        return [Message(*r) for r in found]

    async def take_over(self, node: str, limit: int) -> list[Message]:
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                await c.execute(RELEASE_DEAD_CALLBACKS)
                found = await c.fetch(TAKE_OVER, node, limit)
        return sorted((Message(*r) for r in found), key=lambda m: m.id)

    async def expire_due(self, now: float, limit: int) -> list[Message]:
        with _errors():
            found = await self.pool.fetch(EXPIRING, now, limit)
        return [Message(*r) for r in found]

    async def cancel_messages(self, account_id: int, message_ids: Sequence[int],
                              at: float) -> list[Message]:
        if not message_ids:
            return []
        with _errors():
            cancelled = await in_transaction(self.pool, self.dsn, _cancel, account_id,
                                             list(message_ids), at)
        order = {mid: n for n, mid in enumerate(message_ids)}
        cancelled.sort(key=lambda m: order[m.id])
        return cancelled

    async def replace_message(self, account_id: int, message_id: int, payload: bytes,
                              schedule_at: float | None, expires_at: float | None,
                              registered_delivery: int | None) -> bool:
        with _errors():
            status = await self.pool.execute(REPLACE, payload, schedule_at, expires_at,
                                             registered_delivery, message_id, account_id)
        return status == "UPDATE 1"

    async def find_pending(self, account_id: int, source_addr: str, dest_addr: str,
                           service_type: str) -> list[int]:
        """Empty dest_addr or service_type match any (SMPP cancel_sm without them)."""
        sql, args = FIND_PENDING, [account_id, source_addr]
        if dest_addr:
            sql, args = sql + f" AND dest_addr = ${len(args) + 1}", [*args, dest_addr]
        if service_type:
            sql, args = sql + f" AND service_type = ${len(args) + 1}", [*args, service_type]
        with _errors():
            found = await self.pool.fetch(sql + " ORDER BY id", *args)
        return [r[0] for r in found]

    # -- receipts ----------------------------------------------------------------------

    async def pending_receipts(self, account_id: int, now: float,
                               limit: int) -> list[PendingReceipt]:
        with _errors():
            found = await self.pool.fetch(DUE_RECEIPTS, account_id, now, limit)
        return [PendingReceipt(*r) for r in found]

    async def purge_expired_receipts(self, now: float) -> int:
        with _errors():
            status = await self.pool.execute(
                "DELETE FROM pending_receipts WHERE expires_at <= $1", now)
        return int(status.split()[-1])

    # -- retention ---------------------------------------------------------------------

    async def purge_step(self, table: str, before: float, after_id: int,
                         limit: int) -> PurgeStep:
        history = retention.BY_NAME[table]
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                found = await c.fetch(retention.select_step(history, "${}"), after_id, limit)
                ids, step = retention.chosen([tuple(r) for r in found], before, limit)
                if ids:
                    for dependent in history.dependents:
                        await c.execute(f"DELETE FROM {dependent} "
                                        "WHERE message_id = ANY($1::bigint[])", ids)
                    status = await c.execute(
                        f"DELETE FROM {history.table} WHERE id = ANY($1::bigint[]) "
                        f"AND ({history.purgeable})", ids)
                    step = dataclasses.replace(step, deleted=int(status.split()[-1]))
        return step

    # -- MO ----------------------------------------------------------------------------

    async def joining_inbound(self) -> list[InboundMessage]:
        with _errors():
            found = await self.pool.fetch(JOINING_INBOUND)
        return [rows.inbound_from_row(r) for r in found]

    async def recent_inbound(self, limit: int = 100) -> list[InboundMessage]:
        with _errors():
            found = await self.pool.fetch(RECENT_INBOUND, limit)
        return [rows.inbound_from_row(r) for r in found]

    # -- HTTP callbacks (dlrurl, mo-url) -----------------------------------------------

    async def claim_callbacks(self, node: str, now: float, limit: int) -> list[PendingCallback]:
        with _errors():
            found = await self.pool.fetch(CLAIM_CALLBACKS, node, now, limit)
        claimed = [PendingCallback(*r) for r in found]
        claimed.sort(key=lambda c: (c.next_attempt_at, c.id))  # RETURNING has no order
        return claimed

    async def release_callbacks(self, node: str) -> int:
        with _errors():
            status = await self.pool.execute(
                "UPDATE dlr_callbacks SET holder = '' WHERE holder = $1", node)
        return int(status.split()[-1])

    async def count_callbacks(self) -> int:
        with _errors():
            return await self.pool.fetchval("SELECT count(*) FROM dlr_callbacks")

    # -- nodes -------------------------------------------------------------------------

    async def claim_node(self, node_id: str, run_id: str) -> None:
        with _errors():
            conn = self._node_conn  # a store is one node: a second claim keeps its lock
            if conn is None or conn.is_closed():
                conn = await self._lock_node(node_id, tries=NODE_LOCK_TRIES)
            self._node_id = node_id
            try:
                await conn.execute(CLAIM_NODE, node_id, run_id)
                await conn.execute(bind_leases.FORGET_NODE, node_id, run_id)
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
            row = await conn.fetchrow(ONE_NODE, node_id)
            raise NodeInUse(nodes.alive_message(row and nodes.node_from_row(row), node_id))
        except BaseException:
            await conn.close()
            raise

    async def node_heartbeat(self, node_id: str, run_id: str, address: str,
                             figures: NodeFigures) -> bool:
        args = nodes.heartbeat_args(node_id, run_id, address, figures)
        with _errors():
            conn = await self._node_lock_connection(node_id)
            status = await (conn or self.pool).execute(HEARTBEAT_NODE, *args)
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

    async def stop_node(self, node_id: str, run_id: str) -> None:
        with _errors():
            await self.pool.execute(STOP_NODE, node_id, run_id)

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
                kinds = [row[0] for row in await c.fetch(LIVE_BINDS, account_id)]
                refused = bind_leases.refusal(kinds, kind, max_tx)
                if refused is None:
                    await c.execute(TAKE_BIND, node_id, run_id, session, account_id, kind)
                return refused

    async def give_back_bind(self, node_id: str, session: str) -> None:
        with _errors():
            await self.pool.execute(bind_leases.GIVE_BACK, node_id, session)

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

    async def list_nodes(self) -> list[NodeStatus]:
        with _errors():
            return [nodes.node_from_row(r) for r in await self.pool.fetch(LIST_NODES)]

    # -- the admin API (store/admin.py) ------------------------------------------------

    async def _admin_fetch(self, name: str, *args) -> list:
        with _errors():
            return await self.pool.fetch(_ADMIN_SQL[name], *args)

    async def _admin_execute(self, name: str, *args) -> int:
        with _errors():
            status = await self.pool.execute(_ADMIN_SQL[name], *args)
        return int(status.rsplit(" ", 1)[-1])

    async def add_admin_token(self, name: str, token_hash: str, at: float) -> None:
        await self._admin_execute("ADD_TOKEN", name, token_hash, at)

    async def admin_tokens(self) -> list[AdminToken]:
        return [admin.token_from_row(r) for r in await self._admin_fetch("TOKENS")]

    async def admin_token(self, token_hash: str) -> tuple[AdminToken, str] | None:
        found = await self._admin_fetch("TOKEN_BY_HASH", token_hash)
        return (admin.token_from_row(found[0]), found[0][4]) if found else None

    async def revoke_admin_token(self, name: str, at: float) -> bool:
        return bool(await self._admin_execute("REVOKE_TOKEN", name, at))

    async def touch_admin_token(self, name: str, at: float) -> None:
        await self._admin_execute("TOUCH_TOKEN", name, at)

    async def list_sessions(self) -> list[SessionLease]:
        return [admin.session_from_row(r) for r in await self._admin_fetch("SESSIONS")]

    async def kick_session(self, node_id: str, session: str) -> bool:
        return bool(await self._admin_execute("KICK", node_id, session))

    async def kicked_sessions(self, node_id: str, run_id: str) -> list[str]:
        return [r[0] for r in await self._admin_fetch("KICKED", node_id, run_id)]

    async def search_messages(self, query: MessageQuery) -> list[Message]:
        sql, args = admin.search(query)
        with _errors():
            found = await self.pool.fetch(nodes.for_postgres(sql), *args)
        return [Message(*r) for r in found]

    async def message_parts(self, message_id: int) -> list[MessagePart]:
        return [admin.part_from_row(r) for r in await self._admin_fetch("PARTS", message_id)]

    async def message_outbox(self, message_id: int) -> tuple[list[tuple], list[tuple]]:
        receipts = await self._admin_fetch("RECEIPTS_OF", message_id)
        callbacks = await self._admin_fetch("CALLBACKS_OF", message_id)
        return [tuple(r) for r in receipts], [tuple(r) for r in callbacks]

    async def status_series(self, since: int, until: int,
                            step: int) -> list[tuple[int, str, int]]:
        return [tuple(r) for r in await self._admin_fetch("STATUS_SERIES", since, until,
                                                           step)]

    async def add_status_counts(self, node: str, counts: list[tuple[int, str, int]]) -> None:
        with _errors():
            await self.pool.executemany(_ADMIN_SQL["ADD_STATUS_COUNT"],
                                        [(node, *count) for count in counts])

    async def message_deliveries(self, message_id: int) -> list[tuple]:
        return [tuple(r) for r in await self._admin_fetch("DELIVERIES_OF", message_id)]


# -- statement groups, run on one connection inside a transaction ----------------------

async def _credit(c: asyncpg.Connection, account_id: int, amount: int, reason: str,
                  message_id: int | None, now: float) -> int:
    balance = await c.fetchval("UPDATE accounts SET balance = balance + $1 WHERE id = $2 "
                               "RETURNING balance", amount, account_id)
    if balance is None:
        raise StoreError(f"no account with id {account_id}")
    await c.execute(INSERT_LEDGER, account_id, amount, reason, message_id, now)
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
        await c.execute(SET_SENT, *zip(*rows.sent_rows(batch.sent), strict=True))
    paid = await _set_statuses(c, batch.statuses, refunds) if batch.statuses else []
    if batch.new_messages or paid:
        result.refused = await _settle_balances(c, batch, plan, locked, paid, now)
    if batch.new_receipts:
        result.receipt_ids = await _insert_receipts(c, batch.new_receipts)
        await c.execute(NOTIFY_RECEIPTS, receipts_notice(node_id, batch.new_receipts))
    if batch.done_receipts:
        await c.execute(LOG_RECEIPTS, batch.done_receipts, now)
        await c.execute(DELETE_RECEIPTS, batch.done_receipts)
    if batch.retry_receipts:
        await c.execute(RETRY_RECEIPTS, *zip(*batch.retry_receipts, strict=True))
    if batch.part_statuses or batch.unmatched or batch.sent or batch.rematched:
        await _write_correlation(c, batch, now)
    if batch.new_callbacks or batch.done_callbacks or batch.retry_callbacks \
            or batch.new_inbound or batch.joined_inbound or batch.given_up_callbacks:
        result.callback_ids = await _write_outbox(c, batch)
    return result


async def _write_correlation(c: asyncpg.Connection, batch: WriteBatch, now: float) -> None:
    parts = rows.part_rows(batch.sent)
    if parts:
        await c.executemany(INSERT_PART, parts)
    if batch.part_statuses:
        await c.executemany(SET_PART_STATUS, batch.part_statuses)
    if batch.unmatched:
        await c.executemany(INSERT_UNMATCHED, rows.unmatched_rows(batch.unmatched, now))
    if batch.rematched:
        await c.executemany(DELETE_UNMATCHED, rows.unmatched_keys(batch.rematched))


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
    columns = zip(*rows.status_rows(statuses), strict=True)
    if not refunds:
        await c.execute(SET_STATUS, *columns)
        return []
    return granted(refunds, [r[0] for r in await c.fetch(SET_STATUS_MOVED, *columns)])


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
    await _insert(c, "ledger", rows.LEDGER_COLUMNS, INSERT_LEDGER, ledger)
    accepted = plan.accepted(batch.new_messages)
    await _insert(c, "messages", rows.MESSAGE_COLUMNS, INSERT_MESSAGE,
                  list(map(rows.message_row, accepted)))
    return plan.refused


def receipts_notice(node_id: str, receipts: list[PendingReceipt]) -> str:
    """`node|account,account,...`; past NOTICE_MAX no accounts: any may have some."""
    accounts = ",".join(sorted({str(r.account_id) for r in receipts}))
    return f"{node_id}|{accounts if len(accounts) < NOTICE_MAX else ''}"


async def _insert_receipts(c: asyncpg.Connection, receipts: list[PendingReceipt]) -> list[int]:
    # Ids drawn from the table's sequence first, so that COPY can insert them all.
    ids = [r[0] for r in await c.fetch(RECEIPT_IDS, len(receipts))]
    records = [(i, *rows.receipt_values(r)) for i, r in zip(ids, receipts, strict=True)]
    await _insert(c, "pending_receipts", rows.RECEIPT_INSERT_COLUMNS, INSERT_RECEIPT, records)
    return ids


async def _cancel(c: asyncpg.Connection, account_id: int, ids: list[int],
                  at: float) -> list[Message]:
    # The account first, then its messages: the same order as write() (no deadlock).
    await c.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
    cancelled = [Message(*r) for r in await c.fetch(CANCEL, at, account_id, ids)]
    refunds = cancel_refunds(cancelled)
    if refunds:  # one balance update per account, one ledger row per message
        await c.execute(ADD_BALANCES, *zip(*refund_totals(refunds), strict=True))
        await _insert(c, "ledger", rows.LEDGER_COLUMNS, INSERT_LEDGER,
                      refund_ledger_rows(refunds, at))
    return cancelled


# -- connectors, routes, numbers ----------------------------------------------------------

INSERT_ROUTE = (f"INSERT INTO routes ({columns(rows.ROUTE_COLUMNS)}) "
                f"VALUES ({_marks(len(rows.ROUTE_COLUMNS))}) RETURNING id")
INSERT_NUMBER = (f"INSERT INTO numbers ({columns(rows.NUMBER_COLUMNS)}) "
                 f"VALUES ({_marks(len(rows.NUMBER_COLUMNS))})")
UPSERT_CONNECTOR_STATE = (
    f"INSERT INTO connector_states ({columns(rows.CONNECTOR_STATE_COLUMNS)}) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (connector, node) DO UPDATE SET "
    "state = excluded.state, reported_at = excluded.reported_at")
BY_UPSTREAM_ID = (f"{SELECT_MESSAGES} WHERE connector = $1 AND upstream_id <> '' "
                  "AND upstream_id = ANY($2::text[]) ORDER BY id")


async def _remove_connector(c: asyncpg.Connection, name: str) -> bool:
    # The connector row locked first, so that two removes do not interleave. A route
    # added at this very moment can still slip past the check (add_route does not lock
    # the connector: tests and old data hold routes to absent connectors); such a route
    # answers HTTP23 like any route whose connector is missing.
    if await c.fetchval("SELECT 1 FROM connectors WHERE name = $1 FOR UPDATE", name) is None:
        return False
    users = [r[0] for r in await c.fetch(
        "SELECT id FROM routes WHERE connector = $1 ORDER BY id", name)]
    if users:
        raise InUse(f"connector {name!r}", [f"route {i}" for i in users])
    await c.execute("DELETE FROM connector_states WHERE connector = $1", name)
    await c.execute("DELETE FROM connectors WHERE name = $1", name)
    return True


# -- HTTP callbacks (dlrurl, mo-url) and MO ----------------------------------------------

_CALLBACK = columns(rows.CALLBACK_COLUMNS)
INSERT_CALLBACK = (f"INSERT INTO dlr_callbacks ({columns(rows.CALLBACK_INSERT_COLUMNS)}) "
                   f"VALUES ({_marks(len(rows.CALLBACK_INSERT_COLUMNS))})")
CALLBACK_IDS = "SELECT nextval('dlr_callbacks_id_seq') FROM generate_series(1, $1)"
DELETE_CALLBACKS = "DELETE FROM dlr_callbacks WHERE id = ANY($1::bigint[])"
RETRY_CALLBACKS = ("UPDATE dlr_callbacks c SET attempts = u.attempts, next_attempt_at = u.at, "
                   "holder = '' FROM unnest($1::bigint[], $2::int[], $3::float8[]) "
                   "AS u(id, attempts, at) WHERE c.id = u.id")
# SKIP LOCKED: nodes claiming at once take disjoint rows instead of waiting on each other.
CLAIM_CALLBACKS = ("UPDATE dlr_callbacks SET holder = $1 WHERE id IN (SELECT id FROM "
                   "dlr_callbacks WHERE holder = '' AND next_attempt_at <= $2 "
                   "ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
                   f"RETURNING {_CALLBACK}")


_INBOUND = columns(rows.INBOUND_COLUMNS)
INSERT_INBOUND = (f"INSERT INTO inbound_messages ({_INBOUND}) "
                  f"VALUES ({_marks(len(rows.INBOUND_COLUMNS))})")
SET_JOINED = "UPDATE inbound_messages SET joining = 0 WHERE id = ANY($1::bigint[])"
JOINING_INBOUND = f"SELECT {_INBOUND} FROM inbound_messages WHERE joining = 1 ORDER BY id"
RECENT_INBOUND = f"SELECT {_INBOUND} FROM inbound_messages ORDER BY id DESC LIMIT $1"


async def _write_outbox(c: asyncpg.Connection, batch: WriteBatch) -> list[int]:
    """The batch's callback rows and MO; returns the new callbacks' ids."""
    ids: list[int] = []
    new = batch.new_callbacks
    if new:
        ids = [r[0] for r in await c.fetch(CALLBACK_IDS, len(new))]
        records = [(i, *rows.callback_values(cb)) for i, cb in zip(ids, new, strict=True)]
        await _insert(c, "dlr_callbacks", rows.CALLBACK_INSERT_COLUMNS, INSERT_CALLBACK,
                      records)
    for done, outcome in ((batch.done_callbacks, "delivered"),
                          (batch.given_up_callbacks, "given up")):
        if done:
            await c.execute(LOG_CALLBACKS, done, time.time(), outcome)
            await c.execute(DELETE_CALLBACKS, done)
    if batch.retry_callbacks:
        await c.execute(RETRY_CALLBACKS, *zip(*batch.retry_callbacks, strict=True))
    if batch.new_inbound:
        await _insert(c, "inbound_messages", rows.INBOUND_COLUMNS, INSERT_INBOUND,
                      list(map(rows.inbound_row, batch.new_inbound)))
    if batch.joined_inbound:
        await c.execute(SET_JOINED, batch.joined_inbound)
    return ids
