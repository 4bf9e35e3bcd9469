"""PostgreSQL backend with asyncpg: a pool, set-based statements, COPY for big batches.

A group commit costs a handful of round trips whatever its size (store/pg_write.py).

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
    PurgeStep,
    WriteBatch,
)
from ..core.ports import Conflict, InUse, NodeInUse, StoreError
from . import bind_leases, nodes, partitions, retention, rows
from .dialect import for_postgres, postgres_list
from .migrations import ADVISORY_LOCK_KEY, SCHEMA_MIGRATIONS_POSTGRES, missing
from .pg_commit import in_transaction, transact
from .pg_write import RECEIPTS_CHANNEL, SQL, cancel, credit, write
from .sql_store import SqlStore

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
    split_commits = True  # a batch's new messages and its statuses on two connections
    sql = SQL
    convert = staticmethod(for_postgres)
    list_arg = staticmethod(postgres_list)

    def __init__(self, dsn: str, min_size: int = 2, max_size: int = 10) -> None:
        self.dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._commit_pool: asyncpg.Pool | None = None  # the group commit's connections
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
            self._pool = await _open_pool(self.dsn, self._min_size, self._max_size)
            # The group commit (its new messages and the rest side by side: writer.py) on
            # connections of its own that are never reset: it only ever changes settings
            # for its transaction, and a pool's reset is one more round trip before each
            # commit's callers hear of it.
            self._commit_pool = await _open_pool(self.dsn, 2, 2, reset=_nothing_to_reset)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()
        await self._let_node_go()
        for pool in (self._commit_pool, self._pool):
            if pool is not None:
                await _close_pool(pool)
        self._commit_pool = self._pool = None

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

    async def _change_many(self, sql: str, args: list[tuple]) -> None:
        with _errors():
            await self.pool.executemany(sql, args)

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
                    await credit(c, account_id, account.balance, "initial balance", None,
                                  created)
        return dataclasses.replace(account, id=account_id, created_at=created)

    async def adjust_balance(self, account_id: int, amount: int, reason: str) -> int:
        with _errors():
            return await in_transaction(self.pool, self.dsn, credit, account_id, amount,
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
            if self._commit_pool is None:
                raise StoreError("the PostgreSQL store is not open")
            return await transact(self._commit_pool, self.dsn, write, batch, self._node_id)

    async def _take_over(self, node: str, limit: int) -> list:
        with _errors():
            async with self.pool.acquire() as c, c.transaction():
                await c.execute(SQL.RELEASE_DEAD_CALLBACKS)
                return await c.fetch(SQL.TAKE_OVER, node, limit)

    async def _cancel(self, account_id: int, ids: Any, at: float) -> list[Message]:
        with _errors():
            return await in_transaction(self.pool, self.dsn, cancel, account_id, ids, at)

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



async def _open_pool(dsn: str, min_size: int, max_size: int, **options: Any) -> asyncpg.Pool:
    # jit off: planning small OLTP statements must never pay for JIT compilation.
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size,
        server_settings={"jit": "off", "application_name": "smsgate"}, **options)


async def _nothing_to_reset(_connection: asyncpg.Connection) -> None:
    pass


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), 10)
    except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        pool.terminate()


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


