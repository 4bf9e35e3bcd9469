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
    PendingReceipt,
    PurgeStep,
    Refund,
    StatusUpdate,
    WriteBatch,
)
from ..core.ports import Conflict, InUse, NodeInUse, StoreError
from . import bind_leases, nodes, retention, rows, statements
from .charging import (
    ChargePlan,
    cancel_refunds,
    carried_refunds,
    granted,
    refund_ledger_rows,
    refund_totals,
)
from .dialect import for_sqlite, spelled, sqlite_list
from .migrations import SCHEMA_MIGRATIONS_SQLITE, missing
from .migrations import statements as migration_statements
from .rows import FINAL_SQL
from .sql_store import SqlStore
from .sqlite_checkpointer import Checkpointer

log = logging.getLogger(__name__)

SQL = spelled(statements, for_sqlite)
# Left to itself the planner walks the primary key here (id > ?, ORDER BY id) through
# every message ever stored; the due scheduled ones are few, so use their index and sort.
_BY_SCHEDULE = "FROM messages INDEXED BY messages_scheduled"
SQL.UNSENT_DUE = SQL.UNSENT_DUE.replace("FROM messages", _BY_SCHEDULE)
SQL.UNSENT_DUE_OF = SQL.UNSENT_DUE_OF.replace("FROM messages", _BY_SCHEDULE)

# What SQLite runs its own way. The batch's row changes go through executemany of one row
# layout (no round trips to save; one statement per row is SQLite's cheapest), where
# PostgreSQL sends the batch's columns as arrays (UPDATE ... FROM unnest).
# Charging: one conditional debit per account, the balance read only when it fails
# (charging.py); PostgreSQL locks and reads every balance first, for its lock order.
DEBIT_IF_COVERED = ("UPDATE accounts SET balance = balance - ?1 "
                    "WHERE id = ?2 AND balance - ?1 >= -credit_limit")
DEBIT = "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2"
BALANCE = "SELECT balance, credit_limit FROM accounts WHERE id = ?"
ADD_BALANCE = "UPDATE accounts SET balance = balance + ?2 WHERE id = ?1"
# Row layouts from rows.sent_rows / rows.status_rows, bound by number.
SET_SENT = ("UPDATE messages SET connector = ?2, sent_at = ?3, "
            "upstream_id = CASE WHEN ?4 = '' THEN upstream_id ELSE ?4 END WHERE id = ?1")
SET_STATUS = ("UPDATE messages SET status = ?2, error_code = ?3, "
              "upstream_id = CASE WHEN ?4 = '' THEN upstream_id ELSE ?4 END, "
              "accepted_at = COALESCE(?5, accepted_at), done_at = COALESCE(?6, done_at), "
              "sent_at = COALESCE(?7, sent_at), "
              "connector = CASE WHEN ?8 = '' THEN connector ELSE ?8 END "
              f"WHERE id = ?1 AND status NOT IN {FINAL_SQL}")
# Which of these messages SET_STATUS would move into a final state (charging.py says why
# SQLite reads them first, where PostgreSQL takes them from its UPDATE's RETURNING).
NOT_FINAL = for_sqlite(f"SELECT id FROM messages WHERE id = ANY($1) AND status NOT IN "
                       f"{FINAL_SQL}")
RETRY_RECEIPT = ("UPDATE pending_receipts SET attempts = attempts + 1, next_attempt_at = ?2 "
                 "WHERE id = ?1")
RETRY_CALLBACK = ("UPDATE dlr_callbacks SET attempts = ?2, next_attempt_at = ?3, holder = '' "
                  "WHERE id = ?1")
# New receipt and callback ids: above the AUTOINCREMENT mark (PostgreSQL: its sequences)
RECEIPT_SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'pending_receipts'"
CALLBACK_SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'dlr_callbacks'"

_Fn = Callable[..., Any]
BUSY_TIMEOUT_MS = 5000  # a CLI write waits this long for serve's transaction
RESTART_WAIT_MS = 200  # what a WAL restart may keep commits waiting for a reader
CACHE_KIB = 64 << 10  # the page cache: 64 MiB keeps the hot end of every index in memory


class SqliteStore(SqlStore):
    backend = "sqlite"
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
        return await self._run(_scalar, sql, args)

    async def _change(self, sql: str, *args: Any) -> int:
        return await self._tx(_rowcount, sql, args)

    async def _returning(self, sql: str, *args: Any) -> list:
        return await self._tx(_all, sql, args)

    # -- several statements in one transaction ---------------------------------------------

    async def migrate(self) -> list[str]:
        return await self._tx(_migrate)

    async def set_setting_if_absent(self, key: str, value: str) -> str:
        def run(c: sqlite3.Connection) -> str:
            c.execute(SQL.ADD_SETTING, (key, value))
            return _scalar(c, SQL.GET_SETTING, (key,))
        return await self._tx(run)

    async def add_account(self, account: Account) -> Account:
        created = account.created_at or time.time()
        values = rows.account_values(dataclasses.replace(account, created_at=created))

        def run(c: sqlite3.Connection) -> int:
            account_id = _scalar(c, SQL.INSERT_ACCOUNT, values)
            if account.balance:  # an opening balance goes through the ledger too
                _credit(c, account_id, account.balance, "initial balance", None, created)
            return account_id
        account_id = await self._tx(run)
        return dataclasses.replace(account, id=account_id, created_at=created)

    async def adjust_balance(self, account_id: int, amount: int, reason: str) -> int:
        return await self._tx(_credit, account_id, amount, reason, None, time.time())

    async def remove_connector(self, name: str) -> bool:
        return await self._tx(_remove_connector, name)

    async def replace_coverage(self, entries: Sequence[CoverageEntry]) -> None:
        values = [rows.coverage_row(e) for e in entries]

        def run(c: sqlite3.Connection) -> None:
            c.execute(SQL.DELETE_COVERAGE)
            c.executemany(SQL.INSERT_COVERAGE, values)
        await self._tx(run)

    async def write(self, batch: WriteBatch) -> BatchResult:
        return await self._tx(_write, batch)

    async def _take_over(self, node: str, limit: int) -> list:
        def run(c: sqlite3.Connection) -> list:
            c.execute(SQL.RELEASE_DEAD_CALLBACKS)
            return c.execute(SQL.TAKE_OVER, (node, limit)).fetchall()
        return await self._tx(run)

    async def _cancel(self, account_id: int, ids: Any, at: float) -> list[Message]:
        return await self._tx(_cancel, account_id, ids, at)

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


def _scalar(c: sqlite3.Connection, sql: str, args: tuple) -> Any:
    row = c.execute(sql, args).fetchone()
    return row[0] if row else None


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


def _credit(c: sqlite3.Connection, account_id: int, amount: int, reason: str,
            message_id: int | None, now: float) -> int:
    balance = _scalar(c, SQL.CREDIT, (amount, account_id))
    if balance is None:
        raise StoreError(f"no account with id {account_id}")
    c.execute(SQL.INSERT_LEDGER, (account_id, amount, reason, message_id, now))
    return balance


def _write(c: sqlite3.Connection, batch: WriteBatch) -> BatchResult:
    now = time.time()
    result = BatchResult()
    if batch.new_messages:
        result.refused = _charge_and_insert(c, batch.new_messages, now, batch.atomic)
    if batch.sent:
        c.executemany(SET_SENT, rows.sent_rows(batch.sent))
    if batch.statuses:
        _set_statuses(c, batch.statuses, now)
    if batch.new_receipts:
        result.receipt_ids = _insert_receipts(c, batch.new_receipts)
    if batch.done_receipts:
        c.execute(SQL.DELETE_RECEIPTS, (sqlite_list(batch.done_receipts),))
    if batch.retry_receipts:
        c.executemany(RETRY_RECEIPT, batch.retry_receipts)
    if batch.part_statuses or batch.unmatched or batch.sent or batch.rematched:
        _write_correlation(c, batch, now)
    if batch.new_callbacks or batch.done_callbacks or batch.retry_callbacks \
            or batch.new_inbound or batch.joined_inbound:
        result.callback_ids = _write_outbox(c, batch)
    return result


def _write_correlation(c: sqlite3.Connection, batch: WriteBatch, now: float) -> None:
    parts = rows.part_rows(batch.sent)
    if parts:
        c.executemany(SQL.INSERT_PART, parts)
    if batch.part_statuses:
        c.executemany(SQL.SET_PART_STATUS, batch.part_statuses)
    if batch.unmatched:
        c.executemany(SQL.INSERT_UNMATCHED, rows.unmatched_rows(batch.unmatched, now))
    if batch.rematched:
        c.executemany(SQL.DELETE_UNMATCHED, rows.unmatched_keys(batch.rematched))


def _charge_and_insert(c: sqlite3.Connection, messages: list[Message], now: float,
                       atomic: list[list[int]]) -> set[int]:
    plan = ChargePlan(messages, atomic)
    for account_id, total in plan.debits():
        if c.execute(DEBIT_IF_COVERED, (total, account_id)).rowcount == 1:
            continue
        row = c.execute(BALANCE, (account_id,)).fetchone()
        total = plan.settle(account_id, *(row or (None, 0)))
        if total:
            c.execute(DEBIT, (total, account_id))
    ledger = plan.ledger_rows(now)
    if ledger:
        c.executemany(SQL.INSERT_LEDGER, ledger)
    c.executemany(SQL.INSERT_MESSAGE, map(rows.message_row, plan.accepted(messages)))
    return plan.refused


def _set_statuses(c: sqlite3.Connection, statuses: list[StatusUpdate], now: float) -> None:
    """Set-based status write; the refunds it carries are granted only for the messages
    it moves into their final state. BEGIN IMMEDIATE holds the write lock, so the live
    ones read just before are exactly those the UPDATE moves (charging.py)."""
    refunds = carried_refunds(statuses)
    if refunds:
        moved = [r[0] for r in c.execute(NOT_FINAL, (sqlite_list(refunds),))]
    c.executemany(SET_STATUS, rows.status_rows(statuses))
    if refunds:
        _refund(c, granted(refunds, moved), now)


def _refund(c: sqlite3.Connection, refunds: list[Refund], now: float) -> None:
    """One balance update per account, one ledger row per refunded message."""
    if refunds:
        c.executemany(ADD_BALANCE, refund_totals(refunds))
        c.executemany(SQL.INSERT_LEDGER, refund_ledger_rows(refunds, now))


def _new_ids(c: sqlite3.Connection, sequence: str, count: int) -> list[int]:
    """Ids above the AUTOINCREMENT high-water mark, assigned here so that one executemany
    inserts them all; the write lock (BEGIN IMMEDIATE) makes the read-then-insert safe,
    and SQLite raises the mark past them, so an id is never reused."""
    first = (_scalar(c, sequence, ()) or 0) + 1
    return list(range(first, first + count))


def _insert_receipts(c: sqlite3.Connection, receipts: list[PendingReceipt]) -> list[int]:
    ids = _new_ids(c, RECEIPT_SEQ, len(receipts))
    c.executemany(SQL.INSERT_RECEIPT, rows.with_ids(ids, receipts, rows.receipt_values))
    return ids


def _cancel(c: sqlite3.Connection, account_id: int, ids: str, at: float) -> list[Message]:
    cancelled = [Message(*r) for r in c.execute(SQL.CANCEL, (at, account_id, ids))]
    _refund(c, cancel_refunds(cancelled), at)
    return cancelled


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


def _write_outbox(c: sqlite3.Connection, batch: WriteBatch) -> list[int]:
    """The batch's callback rows and MO; returns the new callbacks' ids."""
    ids: list[int] = []
    new = batch.new_callbacks
    if new:
        ids = _new_ids(c, CALLBACK_SEQ, len(new))
        c.executemany(SQL.INSERT_CALLBACK, rows.with_ids(ids, new, rows.callback_values))
    if batch.done_callbacks:
        c.execute(SQL.DELETE_CALLBACKS, (sqlite_list(batch.done_callbacks),))
    if batch.retry_callbacks:
        c.executemany(RETRY_CALLBACK, batch.retry_callbacks)
    if batch.new_inbound:
        c.executemany(SQL.INSERT_INBOUND, map(rows.inbound_row, batch.new_inbound))
    if batch.joined_inbound:
        c.execute(SQL.SET_JOINED, (sqlite_list(batch.joined_inbound),))
    return ids
