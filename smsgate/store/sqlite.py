"""SQLite backend: the stdlib driver in one dedicated worker thread.

One thread owns the one connection, so statements never interleave and the event loop
never blocks on the disk (sqlite3 releases the GIL while SQLite works). WAL lets readers
(the CLI, another process) run beside the writer; synchronous=NORMAL in WAL mode loses
nothing on a process crash (`kill -9`), only possibly the last commits on a power cut.
busy_timeout lets a CLI write wait for `serve`'s transaction instead of failing.
Writes run in BEGIN IMMEDIATE: the write lock is taken up front, so a read-then-update
inside one transaction (charging, id allocation) cannot race another process.
"""

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
from . import bind_leases, nodes, retention, rows
from .dialect import for_sqlite, sqlite_list
from .migrations import SCHEMA_MIGRATIONS_SQLITE, missing
from .migrations import statements as migration_statements
from .sql_store import SqlStore
from .sqlite_checkpointer import Checkpointer
from .sqlite_write import SQL, cancel, credit, scalar, write

log = logging.getLogger(__name__)

_Fn = Callable[..., Any]
BUSY_TIMEOUT_MS = 5000  # a CLI write waits this long for serve's transaction
RESTART_WAIT_MS = 200  # what a WAL restart may keep commits waiting for a reader
CACHE_KIB = 64 << 10  # the page cache: 64 MiB keeps the hot end of every index in memory


class SqliteStore(SqlStore):
    backend = "sqlite"
    split_commits = False  # one connection, one writer thread: nothing to overlap
    sql = SQL
    convert = staticmethod(for_sqlite)
    list_arg = staticmethod(sqlite_list)

    def __init__(self, path: str, checkpoint_interval: float = 0.5,
                 restart_pages: int = 50_000) -> None:
        self.path = path
        self.checkpoint_interval = checkpoint_interval
        self.restart_pages = restart_pages  # WAL frames (4 KiB pages) before a RESTART
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._checkpointer: Checkpointer | None = None
        self._file_lock: int | None = None  # fd of <db>.lock while this process serves

    # -- plumbing ----------------------------------------------------------------------

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        try:
            await self._run(self._connect)
        except BaseException:
            await self.close()
            raise
        self._checkpointer = Checkpointer(self.path, self.checkpoint_interval,
                                          self.restart_pages)
        self._checkpointer.start()

    async def close(self) -> None:
        self._unlock_file()
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._executor is None:
            return
        try:
            if self._conn is not None:
                await self._run(lambda c: c.close())
        finally:
            self._executor.shutdown(wait=False)
            self._executor = None
            self._conn = None

    def _connect(self, _conn: None) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               cached_statements=256)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = OFF")
            # Checkpoints (and their fsync) run in the Checkpointer's thread, not inside
            # a group commit, where they stalled every client waiting on it.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def _run(self, fn: _Fn, *args: Any) -> Any:
        """fn(connection, *args) in the worker thread, sqlite3 errors as StoreError."""
        if self._executor is None:
            raise StoreError("the SQLite store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args, False)

    async def _tx(self, fn: _Fn, *args: Any) -> Any:
        """Like _run, inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error)."""
        if self._executor is None:
            raise StoreError("the SQLite store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args, True)

    def _call(self, fn: _Fn, args: tuple, transaction: bool) -> Any:
        conn = self._conn
        try:
            if not transaction:
                return fn(conn, *args)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, *args)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            checkpointer = self._checkpointer
            if checkpointer is not None and checkpointer.restart_wanted.is_set():
                checkpointer.restart_wanted.clear()
                _restart_wal(conn)
            return result
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname in ("SQLITE_CONSTRAINT_UNIQUE",
                                        "SQLITE_CONSTRAINT_PRIMARYKEY"):
                raise Conflict(str(exc)) from exc
            raise StoreError(f"sqlite: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    # -- one statement (sql_store.py) ------------------------------------------------------

    async def _rows(self, sql: str, *args: Any) -> list:
        return await self._run(_all, sql, args)

    async def _row(self, sql: str, *args: Any) -> Any:
        return await self._run(_one, sql, args)

    async def _value(self, sql: str, *args: Any) -> Any:
        return await self._run(scalar, sql, args)

    async def _change(self, sql: str, *args: Any) -> int:
        return await self._tx(_rowcount, sql, args)

    async def _returning(self, sql: str, *args: Any) -> list:
        return await self._tx(_all, sql, args)

    async def _change_many(self, sql: str, args: list[tuple]) -> None:
        await self._tx(lambda c: c.executemany(sql, args))

    # -- several statements in one transaction ---------------------------------------------

    async def migrate(self) -> list[str]:
        return await self._tx(_migrate)

    async def set_setting_if_absent(self, key: str, value: str) -> str:
        def run(c: sqlite3.Connection) -> str:
            c.execute(SQL.ADD_SETTING, (key, value))
            return scalar(c, SQL.GET_SETTING, (key,))
        return await self._tx(run)

    async def add_account(self, account: Account) -> Account:
        created = account.created_at or time.time()
        values = rows.account_values(dataclasses.replace(account, created_at=created))

        def run(c: sqlite3.Connection) -> int:
            account_id = scalar(c, SQL.INSERT_ACCOUNT, values)
            if account.balance:  # an opening balance goes through the ledger too
                credit(c, account_id, account.balance, "initial balance", None, created)
            return account_id
        account_id = await self._tx(run)
        return dataclasses.replace(account, id=account_id, created_at=created)

    async def adjust_balance(self, account_id: int, amount: int, reason: str) -> int:
        return await self._tx(credit, account_id, amount, reason, None, time.time())

    async def remove_connector(self, name: str) -> bool:
        return await self._tx(_remove_connector, name)

    async def replace_coverage(self, entries: Sequence[CoverageEntry]) -> None:
        values = [rows.coverage_row(e) for e in entries]

        def run(c: sqlite3.Connection) -> None:
            c.execute(SQL.DELETE_COVERAGE)
            c.executemany(SQL.INSERT_COVERAGE, values)
        await self._tx(run)

    async def write(self, batch: WriteBatch) -> BatchResult:
        return await self._tx(write, batch)

    async def _take_over(self, node: str, limit: int) -> list:
        def run(c: sqlite3.Connection) -> list:
            c.execute(SQL.RELEASE_DEAD_CALLBACKS)
            return c.execute(SQL.TAKE_OVER, (node, limit)).fetchall()
        return await self._tx(run)

    async def _cancel(self, account_id: int, ids: Any, at: float) -> list[Message]:
        return await self._tx(cancel, account_id, ids, at)

    async def drop_partitions(self, before: float) -> int:
        return 0  # no partitions: retention deletes in steps (purge_step)

    async def purge_step(self, table: str, before: float, after_id: int,
                         limit: int) -> PurgeStep:
        return await self._tx(_purge_step, retention.BY_NAME[table], before, after_id, limit)

    # -- nodes -------------------------------------------------------------------------

    async def claim_node(self, node_id: str, run_id: str) -> None:
        self._lock_file()
        try:
            await self._tx(_claim_node, node_id, run_id)
        except BaseException:
            self._unlock_file()
            raise

    async def listen_receipts(self, notified: Callable[[list[int] | None], None]) -> bool:
        return False  # one node: its receipts are delivered as it stores them

    async def take_bind(self, node_id: str, run_id: str, session: str, account_id: int,
                        kind: str, max_tx: int) -> str | None:
        return await self._tx(_take_bind, node_id, run_id, session, account_id, kind, max_tx)

    def _lock_file(self) -> None:
        """SQLite is one node only (SPEC §9): `serve` holds an exclusive flock on
        `<db>.lock` while it runs. The OS lets it go when the process ends however it
        ends (kill -9 too); the CLI commands never take it, so they run beside serve."""
        if self._file_lock is not None:
            return
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise NodeInUse(f"another smsgate serve is running on {self.path} (SQLite is "
                            "one node only; use PostgreSQL for several)") from None
        self._file_lock = fd

    def _unlock_file(self) -> None:
        fd, self._file_lock = self._file_lock, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock

    async def node_heartbeat(self, node_id: str, run_id: str, address: str,
                             figures: NodeFigures) -> bool:
        return bool(await self._change(SQL.HEARTBEAT_NODE,
                                       *nodes.heartbeat_args(node_id, run_id, address, figures)))


# -- functions run in the worker thread ---------------------------------------------------

def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # The original error matters; a failing ROLLBACK means SQLite rolled back already.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _restart_wal(conn: sqlite3.Connection) -> None:
    """Checkpoint all of the WAL so that the next transaction writes it from the start.
    The Checkpointer has copied most of it already; this waits only for the rest, and
    for readers (another process) at most RESTART_WAIT_MS: commits wait meanwhile, and
    the checkpointer asks again soon."""
    try:
        conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        _busy, frames, done = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        if frames != done:
            log.info("WAL restart deferred: a reader is still on the WAL")
    except sqlite3.Error as exc:
        log.warning("WAL restart checkpoint failed: %s", exc)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _one(c: sqlite3.Connection, sql: str, args: tuple) -> tuple | None:
    return c.execute(sql, args).fetchone()


def _all(c: sqlite3.Connection, sql: str, args: tuple) -> list[tuple]:
    return c.execute(sql, args).fetchall()


def _rowcount(c: sqlite3.Connection, sql: str, args: tuple) -> int:
    return c.execute(sql, args).rowcount


def _claim_node(c: sqlite3.Connection, node_id: str, run_id: str) -> None:
    c.execute(SQL.CLAIM_NODE, (node_id, run_id))
    c.execute(SQL.FORGET_NODE_BINDS, (node_id, run_id))


def _take_bind(c: sqlite3.Connection, node_id: str, run_id: str, session: str,
               account_id: int, kind: str, max_tx: int) -> str | None:
    """Under BEGIN IMMEDIATE: the one writer serializes binds as PostgreSQL's lock does."""
    kinds = [row[0] for row in c.execute(SQL.LIVE_BINDS, (account_id,))]
    refused = bind_leases.refusal(kinds, kind, max_tx)
    if refused is None:
        c.execute(SQL.TAKE_BIND, (node_id, run_id, session, account_id, kind))
    return refused


def _purge_step(c: sqlite3.Connection, history: retention.History, before: float,
                after_id: int, limit: int) -> PurgeStep:
    found = c.execute(for_sqlite(retention.select_step(history)), (after_id, limit)).fetchall()
    ids, step = retention.chosen(found, before, limit)
    if ids:
        *dependents, own = (for_sqlite(sql) for sql in retention.delete_step(history))
        arg = (sqlite_list(ids),)
        for sql in dependents:
            c.execute(sql, arg)
        step = dataclasses.replace(step, deleted=c.execute(own, arg).rowcount)
    return step


def _migrate(c: sqlite3.Connection) -> list[str]:
    c.execute(SCHEMA_MIGRATIONS_SQLITE)
    applied = {r[0] for r in c.execute("SELECT name FROM schema_migrations")}
    done = []
    for migration in missing(applied):
        for statement in migration_statements(migration.sqlite):
            c.execute(statement)
        c.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                  (migration.name, time.time()))
        done.append(migration.name)
    return done


def _remove_connector(c: sqlite3.Connection, name: str) -> bool:
    # Under BEGIN IMMEDIATE: no route can be added between the check and the delete. (A
    # route to an absent connector is still possible through add_route, which does not
    # check; it answers HTTP23 like any route whose connector is missing.)
    if c.execute(SQL.CONNECTOR, (name,)).fetchone() is None:
        return False
    users = [r[0] for r in c.execute(SQL.CONNECTOR_USERS, (name,))]
    if users:
        raise InUse(f"connector {name!r}", [f"route {i}" for i in users])
    c.execute(SQL.DELETE_CONNECTOR_STATES, (name,))
    c.execute(SQL.DELETE_CONNECTOR, (name,))
    return True


