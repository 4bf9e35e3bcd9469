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
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
from .migrations import SCHEMA_MIGRATIONS_SQLITE, missing, statements
from .rows import LIVE, columns

log = logging.getLogger(__name__)

_MSG = columns(rows.MESSAGE_COLUMNS)
_ACCOUNT = columns(rows.ACCOUNT_COLUMNS)
_RECEIPT = columns(rows.RECEIPT_COLUMNS)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


INSERT_MESSAGE = f"INSERT INTO messages ({_MSG}) VALUES ({_marks(len(rows.MESSAGE_COLUMNS))})"
INSERT_LEDGER = (f"INSERT INTO ledger ({columns(rows.LEDGER_COLUMNS)}) "
                 f"VALUES ({_marks(len(rows.LEDGER_COLUMNS))})")
INSERT_RECEIPT = (f"INSERT INTO pending_receipts ({columns(rows.RECEIPT_INSERT_COLUMNS)}) "
                  f"VALUES ({_marks(len(rows.RECEIPT_INSERT_COLUMNS))})")
DEBIT_IF_COVERED = ("UPDATE accounts SET balance = balance - ?1 "
                    "WHERE id = ?2 AND balance - ?1 >= -credit_limit")
DEBIT = "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2"
CREDIT = "UPDATE accounts SET balance = balance + ?2 WHERE id = ?1"
# Row layouts from rows.sent_rows / rows.status_rows, bound by number.
SET_SENT = ("UPDATE messages SET connector = ?2, sent_at = ?3, "
            "upstream_id = CASE WHEN ?4 = '' THEN upstream_id ELSE ?4 END WHERE id = ?1")
SET_STATUS = ("UPDATE messages SET status = ?2, error_code = ?3, "
              "upstream_id = CASE WHEN ?4 = '' THEN upstream_id ELSE ?4 END, "
              "accepted_at = COALESCE(?5, accepted_at), done_at = COALESCE(?6, done_at), "
              "sent_at = COALESCE(?7, sent_at), "
              "connector = CASE WHEN ?8 = '' THEN connector ELSE ?8 END "
              f"WHERE id = ?1 AND status NOT IN {rows.FINAL_SQL}")
INSERT_PART = ("INSERT OR REPLACE INTO message_parts (message_id, part, connector, upstream_id) "
               "VALUES (?, ?, ?, ?)")
SET_PART_STATUS = "UPDATE message_parts SET status = ?3 WHERE message_id = ?1 AND part = ?2"
DELETE_UNMATCHED = ("DELETE FROM unmatched_reports WHERE connector = ? AND upstream_id = ? "
                    "AND reported_at = ?")
INSERT_UNMATCHED = ("INSERT INTO unmatched_reports (connector, upstream_id, status, error_code, "
                    "reported_at, received_at) VALUES (?, ?, ?, ?, ?, ?)")
# Which of these messages SET_STATUS would move into a final state (charging.py).
NOT_FINAL = ("SELECT id FROM messages WHERE id IN (SELECT value FROM json_each(?1)) "
             f"AND status NOT IN {rows.FINAL_SQL}")
RECEIPT_SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'pending_receipts'"
DELETE_RECEIPT = "DELETE FROM pending_receipts WHERE id = ?"
RETRY_RECEIPT = ("UPDATE pending_receipts SET attempts = attempts + 1, next_attempt_at = ?2 "
                 "WHERE id = ?1")

SELECT_MESSAGES = f"SELECT {_MSG} FROM messages"
UNMATCHED_COLUMNS = "id, connector, upstream_id, status, error_code, reported_at, received_at"
UNSENT_NOW = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at IS NULL "
              "AND id > ? ORDER BY id LIMIT ?")
# Left to itself the planner walks the primary key here (id > ?, ORDER BY id) through
# every message ever stored; the due scheduled ones are few, so use their index and sort.
UNSENT_DUE = (f"SELECT {_MSG} FROM messages INDEXED BY messages_scheduled "
              f"WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= ? "
              "AND id > ? ORDER BY id LIMIT ?")
SCHEDULED = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= ? "
             "ORDER BY schedule_at, id LIMIT ?")
# The same, of one node's messages only (store/ownership.py)
UNSENT_NOW_OF = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at IS NULL "
                 "AND node = ?3 AND id > ?1 ORDER BY id LIMIT ?2")
UNSENT_DUE_OF = (f"SELECT {_MSG} FROM messages INDEXED BY messages_scheduled "
                 f"WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= ?1 "
                 "AND node = ?4 AND id > ?2 ORDER BY id LIMIT ?3")
SCHEDULED_OF = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= ?1 "
                "AND node = ?3 ORDER BY schedule_at, id LIMIT ?2")
TAKE_OVER = nodes.for_sqlite(ownership.take_over(_MSG, ""))
RELEASE_DEAD_CALLBACKS = nodes.for_sqlite(ownership.RELEASE_CALLBACKS)
EXPIRING = f"{SELECT_MESSAGES} WHERE {LIVE} AND expires_at < ? ORDER BY expires_at LIMIT ?"
CANCEL = ("UPDATE messages SET status = 'DELETED', done_at = ?1 WHERE account_id = ?2 "
          "AND sent_at IS NULL AND status = 'ATES' "
          f"AND id IN (SELECT value FROM json_each(?3)) RETURNING {_MSG}")
REPLACE = ("UPDATE messages SET payload = ?1, schedule_at = COALESCE(?2, schedule_at), "
           "expires_at = COALESCE(?3, expires_at), "
           "registered_delivery = COALESCE(?4, registered_delivery) "
           "WHERE id = ?5 AND account_id = ?6 AND sent_at IS NULL AND status = 'ATES'")
FIND_PENDING = (f"SELECT id FROM messages WHERE account_id = ?1 AND source_addr = ?2 "
                f"AND sent_at IS NULL AND {LIVE}")
DUE_RECEIPTS = (f"SELECT {_RECEIPT} FROM pending_receipts WHERE account_id = ? "
                "AND next_attempt_at <= ? AND expires_at > ? ORDER BY id LIMIT ?")

_ADMIN_SQL = {name: nodes.for_sqlite(getattr(admin, name)) for name in admin.STATEMENTS}
LOG_RECEIPTS = nodes.for_sqlite(admin.LOG_RECEIPTS.format(ids=admin.SQLITE_IDS))
LOG_CALLBACKS = nodes.for_sqlite(admin.LOG_CALLBACKS.format(ids=admin.SQLITE_IDS))

_Fn = Callable[..., Any]
BUSY_TIMEOUT_MS = 5000  # a CLI write waits this long for serve's transaction
RESTART_WAIT_MS = 200  # what a WAL restart may keep commits waiting for a reader
CACHE_KIB = 64 << 10  # the page cache: 64 MiB keeps the hot end of every index in memory


class Checkpointer(threading.Thread):
    """Copies the WAL back into the database every `interval` seconds, on a connection
    of its own. PASSIVE checkpoints never block the writer; when the WAL has grown
    large it asks the store's writer thread for a RESTART checkpoint between two
    transactions (`restart_wanted`): from here it would wait for a gap between commits
    that a busy writer never leaves, and the WAL would grow without end. After it the
    next write begins the WAL file anew, which bounds it under sustained load. The file
    keeps its size (SQLite overwrites it from the start) until the database is idle: a
    TRUNCATE then gives the disk space back. Truncating under load instead
    (journal_size_limit) stalled every commit for ~100 ms each time."""

    def __init__(self, path: str, interval: float = 0.5, restart_pages: int = 50_000,
                 truncate_bytes: int = 16 << 20) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.path = path
        self.interval = interval
        self.restart_pages = restart_pages
        self.truncate_bytes = truncate_bytes
        self._last_frames = -1
        self.restart_wanted = threading.Event()
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 100")
        except sqlite3.Error:
            log.exception("checkpointer cannot open %s", self.path)
            return
        try:
            while not self._stopping.wait(self.interval):
                self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            _busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            idle = frames == done == self._last_frames  # nothing written since last time
            self._last_frames = frames
            if frames > self.restart_pages:
                self.restart_wanted.set()
            elif idle and self._wal_bytes() > self.truncate_bytes:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # busy now; the next round tries again
            log.debug("checkpoint skipped: %s", exc)

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)


class SqliteStore:
    backend = "sqlite"

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

    # -- schema, settings, ids ---------------------------------------------------------

    async def migrate(self) -> list[str]:
        return await self._tx(_migrate)

    async def get_setting(self, key: str) -> str | None:
        return await self._run(_scalar, "SELECT value FROM settings WHERE key = ?", (key,))

    async def set_setting_if_absent(self, key: str, value: str) -> str:
        def run(c: sqlite3.Connection) -> str:
            c.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (key, value))
            return _scalar(c, "SELECT value FROM settings WHERE key = ?", (key,))
        return await self._tx(run)

    async def set_setting(self, key: str, value: str) -> None:
        await self._tx(_rowcount, "INSERT INTO settings (key, value) VALUES (?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    async def allocate_ids(self, count: int) -> int:
        if count < 1:
            raise ValueError("count must be at least 1")
        last = await self._tx(_scalar, "UPDATE id_sequence SET value = value + ? "
                              "WHERE name = 'message' RETURNING value", (count,))
        return last - count + 1

    # -- accounts and credits ----------------------------------------------------------

    async def get_account(self, system_id: str) -> Account | None:
        row = await self._run(_one, f"SELECT {_ACCOUNT} FROM accounts WHERE system_id = ?",
                              (system_id,))
        return rows.account_from_row(row) if row else None

    async def get_account_by_id(self, account_id: int) -> Account | None:
        row = await self._run(_one, f"SELECT {_ACCOUNT} FROM accounts WHERE id = ?",
                              (account_id,))
        return rows.account_from_row(row) if row else None

    async def list_accounts(self) -> list[Account]:
        found = await self._run(_all, f"SELECT {_ACCOUNT} FROM accounts ORDER BY id", ())
        return [rows.account_from_row(r) for r in found]

    async def add_account(self, account: Account) -> Account:
        created = account.created_at or time.time()
        values = rows.account_values(dataclasses.replace(account, created_at=created))
        sql = (f"INSERT INTO accounts ({columns(rows.ACCOUNT_WRITE_COLUMNS)}) "
               f"VALUES ({_marks(len(values))})")

        def run(c: sqlite3.Connection) -> int:
            account_id = c.execute(sql, values).lastrowid
            if account.balance:  # an opening balance goes through the ledger too
                _credit(c, account_id, account.balance, "initial balance", None, created)
            return account_id
        account_id = await self._tx(run)
        return dataclasses.replace(account, id=account_id, created_at=created)

    async def update_account(self, account: Account) -> None:
        sets = ", ".join(f"{c} = ?" for c in rows.ACCOUNT_WRITE_COLUMNS)
        sql = f"UPDATE accounts SET {sets} WHERE id = ?"
        count = await self._tx(_rowcount, sql, (*rows.account_values(account), account.id))
        if not count:
            raise StoreError(f"no account with id {account.id}")

    async def adjust_balance(self, account_id: int, amount: int, reason: str) -> int:
        def run(c: sqlite3.Connection) -> int:
            return _credit(c, account_id, amount, reason, None, time.time())
        return await self._tx(run)

    async def ledger(self, account_id: int, limit: int = 100) -> list[LedgerEntry]:
        """Newest first."""
        found = await self._run(_all, f"SELECT {rows.LEDGER_SELECT} FROM ledger "
                                "WHERE account_id = ? ORDER BY id DESC LIMIT ?",
                                (account_id, limit))
        return [rows.ledger_from_row(r) for r in found]

    # -- connectors, routes, coverage --------------------------------------------------

    async def list_connectors(self) -> list[Connector]:
        found = await self._run(_all, "SELECT name, type, config, enabled FROM connectors "
                                "ORDER BY name", ())
        return [rows.connector_from_row(r) for r in found]

    async def add_connector(self, connector: Connector) -> None:
        await self._tx(_rowcount, "INSERT INTO connectors (name, type, config, enabled) "
                       "VALUES (?, ?, ?, ?)", rows.connector_values(connector))

    async def list_routes(self) -> list[Route]:
        found = await self._run(_all, f"SELECT id, {columns(rows.ROUTE_COLUMNS)} FROM routes "
                                "ORDER BY id", ())
        return [rows.route_from_row(r) for r in found]

    async def add_route(self, route: Route) -> Route:
        values = rows.route_values(route)
        route_id = await self._tx(lambda c: c.execute(INSERT_ROUTE, values).lastrowid)
        return dataclasses.replace(route, id=route_id)

    async def remove_route(self, route_id: int) -> bool:
        return bool(await self._tx(_rowcount, "DELETE FROM routes WHERE id = ?", (route_id,)))

    async def get_connector(self, name: str) -> Connector | None:
        row = await self._run(_one, "SELECT name, type, config, enabled FROM connectors "
                              "WHERE name = ?", (name,))
        return rows.connector_from_row(row) if row else None

    async def set_connector_enabled(self, name: str, enabled: bool) -> bool:
        return bool(await self._tx(_rowcount, "UPDATE connectors SET enabled = ? "
                                   "WHERE name = ?", (enabled, name)))

    async def remove_connector(self, name: str) -> bool:
        return await self._tx(_remove_connector, name)

    async def messages_by_upstream_id(self, connector: str,
                                      upstream_ids: Sequence[str]) -> list[Message]:
        if not upstream_ids:
            return []
        sql = (f"{SELECT_MESSAGES} WHERE connector = ? AND upstream_id <> '' "
               f"AND upstream_id IN ({_marks(len(upstream_ids))}) ORDER BY id")
        found = await self._run(_all, sql, (connector, *upstream_ids))
        return [Message(*r) for r in found]

    async def part_by_upstream_id(self, connector: str,
                                  upstream_ids: Sequence[str]) -> tuple[int, int] | None:
        if not upstream_ids:
            return None
        sql = (f"SELECT message_id, part FROM message_parts WHERE connector = ? "
               f"AND upstream_id IN ({_marks(len(upstream_ids))}) ORDER BY message_id LIMIT 1")
        row = await self._run(_one, sql, (connector, *upstream_ids))
        return (row[0], row[1]) if row else None

    async def part_statuses(self, message_id: int) -> dict[int, str]:
        found = await self._run(_all, "SELECT part, status FROM message_parts "
                                "WHERE message_id = ?", (message_id,))
        return dict(found)

    async def unmatched_reports(self, limit: int = 100) -> list[tuple]:
        return await self._run(_all, f"SELECT {UNMATCHED_COLUMNS} FROM unmatched_reports "
                               "ORDER BY id DESC LIMIT ?", (limit,))

    # -- numbers, connector states -----------------------------------------------------

    async def add_number(self, number: InboundNumber) -> None:
        await self._tx(_rowcount, INSERT_NUMBER, rows.number_row(number))

    async def list_numbers(self) -> list[InboundNumber]:
        found = await self._run(_all, f"SELECT {columns(rows.NUMBER_COLUMNS)} FROM numbers "
                                "ORDER BY number", ())
        return [InboundNumber(*r) for r in found]

    async def remove_number(self, number: str) -> bool:
        return bool(await self._tx(_rowcount, "DELETE FROM numbers WHERE number = ?",
                                   (number,)))

    async def report_connector_state(self, state: ConnectorState) -> None:
        await self._tx(_rowcount, UPSERT_CONNECTOR_STATE, rows.connector_state_values(state))

    async def connector_states(self) -> list[ConnectorState]:
        found = await self._run(_all, f"SELECT {columns(rows.CONNECTOR_STATE_COLUMNS)} "
                                "FROM connector_states ORDER BY connector, node", ())
        return [rows.connector_state_from_row(r) for r in found]

    async def list_coverage(self) -> list[CoverageEntry]:
        found = await self._run(_all, f"SELECT {columns(rows.COVERAGE_COLUMNS)} "
                                "FROM coverage ORDER BY id", ())
        return [CoverageEntry(*r) for r in found]

    async def replace_coverage(self, entries: Sequence[CoverageEntry]) -> None:
        sql = (f"INSERT INTO coverage ({columns(rows.COVERAGE_COLUMNS)}) "
               f"VALUES ({_marks(len(rows.COVERAGE_COLUMNS))})")
        values = [rows.coverage_row(e) for e in entries]

        def run(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM coverage")
            c.executemany(sql, values)
        await self._tx(run)

    # -- the hot path ------------------------------------------------------------------

    async def write(self, batch: WriteBatch) -> BatchResult:
        return await self._tx(_write, batch)

    # -- messages ----------------------------------------------------------------------

    async def get_message(self, message_id: int) -> Message | None:
        row = await self._run(_one, f"{SELECT_MESSAGES} WHERE id = ?", (message_id,))
        return Message(*row) if row else None

    async def undispatched(self, now: float, limit: int, after_id: int = 0,
                           node: str | None = None) -> list[Message]:
        # Two index range scans (immediate ones by id; due scheduled ones by time), merged:
        # a big scheduled campaign is then never scanned before it is due.
        def run(c: sqlite3.Connection) -> list:
            if node is not None:
                return (c.execute(UNSENT_NOW_OF, (after_id, limit, node)).fetchall()
                        + c.execute(UNSENT_DUE_OF, (now, after_id, limit, node)).fetchall())
            return (c.execute(UNSENT_NOW, (after_id, limit)).fetchall()
                    + c.execute(UNSENT_DUE, (now, after_id, limit)).fetchall())
        found = await self._run(run)
        found.sort(key=lambda r: r[0])
        return [Message(*r) for r in found[:limit]]

    async def scheduled_until(self, until: float, limit: int,
                              node: str | None = None) -> list[Message]:
        """Unsent, not final, schedule_at <= until, by schedule_at (those already due
        included: there is no `now` here, and the caller sends them at once)."""
        if node is None:
            found = await self._run(_all, SCHEDULED, (until, limit))
        else:
            found = await self._run(_all, SCHEDULED_OF, (until, limit, node))
        return [Message(*r) for r in found]

    async def take_over(self, node: str, limit: int) -> list[Message]:
        def run(c: sqlite3.Connection) -> list:
            c.execute(RELEASE_DEAD_CALLBACKS)
            return c.execute(TAKE_OVER, (node, limit)).fetchall()
        return [Message(*r) for r in await self._tx(run)]

    async def expire_due(self, now: float, limit: int) -> list[Message]:
        found = await self._run(_all, EXPIRING, (now, limit))
        return [Message(*r) for r in found]

    async def cancel_messages(self, account_id: int, message_ids: Sequence[int],
                              at: float) -> list[Message]:
        if not message_ids:
            return []
        ids = "[" + ",".join(str(int(i)) for i in message_ids) + "]"
        cancelled = await self._tx(_cancel, account_id, ids, at)
        order = {mid: n for n, mid in enumerate(message_ids)}
        cancelled.sort(key=lambda m: order[m.id])
        return cancelled

    async def replace_message(self, account_id: int, message_id: int, payload: bytes,
                              schedule_at: float | None, expires_at: float | None,
                              registered_delivery: int | None) -> bool:
        values = (payload, schedule_at, expires_at, registered_delivery, message_id,
                  account_id)
        return bool(await self._tx(_rowcount, REPLACE, values))

    async def find_pending(self, account_id: int, source_addr: str, dest_addr: str,
                           service_type: str) -> list[int]:
        """Empty dest_addr or service_type match any (SMPP cancel_sm without them)."""
        sql, args = FIND_PENDING, [account_id, source_addr]
        if dest_addr:
            sql, args = sql + f" AND dest_addr = ?{len(args) + 1}", [*args, dest_addr]
        if service_type:
            sql, args = sql + f" AND service_type = ?{len(args) + 1}", [*args, service_type]
        found = await self._run(_all, sql + " ORDER BY id", tuple(args))
        return [r[0] for r in found]

    # -- receipts ----------------------------------------------------------------------

    async def pending_receipts(self, account_id: int, now: float,
                               limit: int) -> list[PendingReceipt]:
        found = await self._run(_all, DUE_RECEIPTS, (account_id, now, now, limit))
        return [PendingReceipt(*r) for r in found]

    async def purge_expired_receipts(self, now: float) -> int:
        return await self._tx(_rowcount, "DELETE FROM pending_receipts WHERE expires_at <= ?",
                              (now,))

    # -- retention ---------------------------------------------------------------------

    async def purge_step(self, table: str, before: float, after_id: int,
                         limit: int) -> PurgeStep:
        return await self._tx(_purge_step, retention.BY_NAME[table], before, after_id, limit)

    # -- MO ----------------------------------------------------------------------------

    async def joining_inbound(self) -> list[InboundMessage]:
        found = await self._run(_all, JOINING_INBOUND, ())
        return [rows.inbound_from_row(r) for r in found]

    async def recent_inbound(self, limit: int = 100) -> list[InboundMessage]:
        found = await self._run(_all, RECENT_INBOUND, (limit,))
        return [rows.inbound_from_row(r) for r in found]

    # -- HTTP callbacks (dlrurl, mo-url) -----------------------------------------------

    async def claim_callbacks(self, node: str, now: float, limit: int) -> list[PendingCallback]:
        found = await self._tx(_all, CLAIM_CALLBACKS, (node, now, limit))
        claimed = [PendingCallback(*r) for r in found]
        claimed.sort(key=lambda c: (c.next_attempt_at, c.id))  # RETURNING has no order
        return claimed

    async def release_callbacks(self, node: str) -> int:
        return await self._tx(_rowcount, "UPDATE dlr_callbacks SET holder = '' "
                              "WHERE holder = ?", (node,))

    async def count_callbacks(self) -> int:
        return await self._run(_scalar, "SELECT count(*) FROM dlr_callbacks", ())

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

    async def give_back_bind(self, node_id: str, session: str) -> None:
        await self._tx(_rowcount, nodes.for_sqlite(bind_leases.GIVE_BACK), (node_id, session))

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
        return bool(await self._tx(_rowcount, nodes.for_sqlite(nodes.HEARTBEAT),
                                   nodes.heartbeat_args(node_id, run_id, address, figures)))

    async def stop_node(self, node_id: str, run_id: str) -> None:
        await self._tx(_rowcount, nodes.for_sqlite(nodes.STOP), (node_id, run_id))

    async def list_nodes(self) -> list[NodeStatus]:
        return [nodes.node_from_row(r)
                for r in await self._run(_all, nodes.for_sqlite(nodes.LIST), ())]

    # -- the admin API (store/admin.py) ------------------------------------------------

    async def add_admin_token(self, name: str, token_hash: str, at: float) -> None:
        await self._tx(_rowcount, _ADMIN_SQL["ADD_TOKEN"], (name, token_hash, at))

    async def admin_tokens(self) -> list[AdminToken]:
        return [admin.token_from_row(r)
                for r in await self._run(_all, _ADMIN_SQL["TOKENS"], ())]

    async def admin_token(self, token_hash: str) -> tuple[AdminToken, str] | None:
        row = await self._run(_one, _ADMIN_SQL["TOKEN_BY_HASH"], (token_hash,))
        return (admin.token_from_row(row), row[4]) if row else None

    async def revoke_admin_token(self, name: str, at: float) -> bool:
        return bool(await self._tx(_rowcount, _ADMIN_SQL["REVOKE_TOKEN"], (name, at)))

    async def touch_admin_token(self, name: str, at: float) -> None:
        await self._tx(_rowcount, _ADMIN_SQL["TOUCH_TOKEN"], (name, at))

    async def list_sessions(self) -> list[SessionLease]:
        return [admin.session_from_row(r)
                for r in await self._run(_all, _ADMIN_SQL["SESSIONS"], ())]

    async def kick_session(self, node_id: str, session: str) -> bool:
        return bool(await self._tx(_rowcount, _ADMIN_SQL["KICK"], (node_id, session)))

    async def kicked_sessions(self, node_id: str, run_id: str) -> list[str]:
        return [r[0] for r in await self._run(_all, _ADMIN_SQL["KICKED"], (node_id, run_id))]

    async def search_messages(self, query: MessageQuery) -> list[Message]:
        sql, args = admin.search(query)
        return [Message(*r) for r in await self._run(_all, nodes.for_sqlite(sql), tuple(args))]

    async def message_parts(self, message_id: int) -> list[MessagePart]:
        return [admin.part_from_row(r)
                for r in await self._run(_all, _ADMIN_SQL["PARTS"], (message_id,))]

    async def message_outbox(self, message_id: int) -> tuple[list[tuple], list[tuple]]:
        receipts = await self._run(_all, _ADMIN_SQL["RECEIPTS_OF"], (message_id,))
        callbacks = await self._run(_all, _ADMIN_SQL["CALLBACKS_OF"], (message_id,))
        return receipts, callbacks

    async def status_series(self, since: int, until: int,
                            step: int) -> list[tuple[int, str, int]]:
        return await self._run(_all, _ADMIN_SQL["STATUS_SERIES"], (since, until, step))

    async def add_status_counts(self, node: str, counts: list[tuple[int, str, int]]) -> None:
        await self._tx(_many, _ADMIN_SQL["ADD_STATUS_COUNT"],
                       [(node, *count) for count in counts])

    async def message_deliveries(self, message_id: int) -> list[tuple]:
        return await self._run(_all, _ADMIN_SQL["DELIVERIES_OF"], (message_id,))


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


def _many(c: sqlite3.Connection, sql: str, args: list[tuple]) -> None:
    c.executemany(sql, args)


def _rowcount(c: sqlite3.Connection, sql: str, args: tuple) -> int:
    return c.execute(sql, args).rowcount


def _claim_node(c: sqlite3.Connection, node_id: str, run_id: str) -> None:
    c.execute(nodes.for_sqlite(nodes.CLAIM), (node_id, run_id))
    c.execute(nodes.for_sqlite(bind_leases.FORGET_NODE), (node_id, run_id))


def _take_bind(c: sqlite3.Connection, node_id: str, run_id: str, session: str,
               account_id: int, kind: str, max_tx: int) -> str | None:
    """Under BEGIN IMMEDIATE: the one writer serializes binds as PostgreSQL's lock does."""
    kinds = [row[0] for row in c.execute(nodes.for_sqlite(bind_leases.LIVE), (account_id,))]
    refused = bind_leases.refusal(kinds, kind, max_tx)
    if refused is None:
        c.execute(nodes.for_sqlite(bind_leases.TAKE),
                  (node_id, run_id, session, account_id, kind))
    return refused


def _purge_step(c: sqlite3.Connection, history: retention.History, before: float,
                after_id: int, limit: int) -> PurgeStep:
    found = c.execute(retention.select_step(history, "?{}"), (after_id, limit)).fetchall()
    ids, step = retention.chosen(found, before, limit)
    if ids:
        where = f"IN ({_marks(len(ids))})"
        for dependent in history.dependents:
            c.execute(f"DELETE FROM {dependent} WHERE message_id {where}", ids)
        gone = c.execute(f"DELETE FROM {history.table} WHERE id {where} "
                         f"AND ({history.purgeable})", ids).rowcount
        step = dataclasses.replace(step, deleted=gone)
    return step


def _migrate(c: sqlite3.Connection) -> list[str]:
    c.execute(SCHEMA_MIGRATIONS_SQLITE)
    applied = {r[0] for r in c.execute("SELECT name FROM schema_migrations")}
    done = []
    for migration in missing(applied):
        for statement in statements(migration.sqlite):
            c.execute(statement)
        c.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                  (migration.name, time.time()))
        done.append(migration.name)
    return done


def _credit(c: sqlite3.Connection, account_id: int, amount: int, reason: str,
            message_id: int | None, now: float) -> int:
    row = c.execute("UPDATE accounts SET balance = balance + ? WHERE id = ? RETURNING balance",
                    (amount, account_id)).fetchone()
    if row is None:
        raise StoreError(f"no account with id {account_id}")
    c.execute(INSERT_LEDGER, (account_id, amount, reason, message_id, now))
    return row[0]


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
        c.execute(LOG_RECEIPTS, (json.dumps(batch.done_receipts), now))
        c.executemany(DELETE_RECEIPT, [(i,) for i in batch.done_receipts])
    if batch.retry_receipts:
        c.executemany(RETRY_RECEIPT, batch.retry_receipts)
    if batch.part_statuses or batch.unmatched or batch.sent or batch.rematched:
        _write_correlation(c, batch, now)
    if batch.new_callbacks or batch.done_callbacks or batch.retry_callbacks \
            or batch.new_inbound or batch.joined_inbound or batch.given_up_callbacks:
        result.callback_ids = _write_outbox(c, batch)
    return result


def _write_correlation(c: sqlite3.Connection, batch: WriteBatch, now: float) -> None:
    parts = rows.part_rows(batch.sent)
    if parts:
        c.executemany(INSERT_PART, parts)
    if batch.part_statuses:
        c.executemany(SET_PART_STATUS, batch.part_statuses)
    if batch.unmatched:
        c.executemany(INSERT_UNMATCHED, rows.unmatched_rows(batch.unmatched, now))
    if batch.rematched:
        c.executemany(DELETE_UNMATCHED, rows.unmatched_keys(batch.rematched))


def _charge_and_insert(c: sqlite3.Connection, messages: list[Message], now: float,
                       atomic: list[list[int]]) -> set[int]:
    plan = ChargePlan(messages, atomic)
    for account_id, total in plan.debits():
        if c.execute(DEBIT_IF_COVERED, (total, account_id)).rowcount == 1:
            continue
        row = c.execute("SELECT balance, credit_limit FROM accounts WHERE id = ?",
                        (account_id,)).fetchone()
        total = plan.settle(account_id, *(row or (None, 0)))
        if total:
            c.execute(DEBIT, (total, account_id))
    ledger = plan.ledger_rows(now)
    if ledger:
        c.executemany(INSERT_LEDGER, ledger)
    c.executemany(INSERT_MESSAGE, map(rows.message_row, plan.accepted(messages)))
    return plan.refused


def _set_statuses(c: sqlite3.Connection, statuses: list[StatusUpdate], now: float) -> None:
    """Set-based status write; the refunds it carries are granted only for the messages
    it moves into their final state. BEGIN IMMEDIATE holds the write lock, so the live
    ones read just before are exactly those the UPDATE moves (charging.py)."""
    refunds = carried_refunds(statuses)
    if refunds:
        ids = "[" + ",".join(map(str, refunds)) + "]"
        moved = [r[0] for r in c.execute(NOT_FINAL, (ids,))]
    c.executemany(SET_STATUS, rows.status_rows(statuses))
    if refunds:
        _refund(c, granted(refunds, moved), now)


def _refund(c: sqlite3.Connection, refunds: list[Refund], now: float) -> None:
    """One balance update per account, one ledger row per refunded message."""
    if refunds:
        c.executemany(CREDIT, refund_totals(refunds))
        c.executemany(INSERT_LEDGER, refund_ledger_rows(refunds, now))


def _insert_receipts(c: sqlite3.Connection, receipts: list[PendingReceipt]) -> list[int]:
    # Ids above the AUTOINCREMENT high-water mark, assigned here so that one executemany
    # inserts them all; the write lock (BEGIN IMMEDIATE) makes the read-then-insert safe,
    # and SQLite raises the mark past them, so an id is never reused.
    first = (_scalar(c, RECEIPT_SEQ, ()) or 0) + 1
    ids = list(range(first, first + len(receipts)))
    c.executemany(INSERT_RECEIPT, [(i, *rows.receipt_values(r))
                                   for i, r in zip(ids, receipts, strict=True)])
    return ids


def _cancel(c: sqlite3.Connection, account_id: int, ids_json: str,
            at: float) -> list[Message]:
    cancelled = [Message(*r) for r in c.execute(CANCEL, (at, account_id, ids_json))]
    _refund(c, cancel_refunds(cancelled), at)
    return cancelled


# -- connectors, routes, numbers ----------------------------------------------------------

INSERT_ROUTE = (f"INSERT INTO routes ({columns(rows.ROUTE_COLUMNS)}) "
                f"VALUES ({_marks(len(rows.ROUTE_COLUMNS))})")
INSERT_NUMBER = (f"INSERT INTO numbers ({columns(rows.NUMBER_COLUMNS)}) "
                 f"VALUES ({_marks(len(rows.NUMBER_COLUMNS))})")
UPSERT_CONNECTOR_STATE = (
    f"INSERT INTO connector_states ({columns(rows.CONNECTOR_STATE_COLUMNS)}) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (connector, node) DO UPDATE SET "
    "state = excluded.state, reported_at = excluded.reported_at")


def _remove_connector(c: sqlite3.Connection, name: str) -> bool:
    # Under BEGIN IMMEDIATE: no route can be added between the check and the delete. (A
    # route to an absent connector is still possible through add_route, which does not
    # check; it answers HTTP23 like any route whose connector is missing.)
    users = [r[0] for r in c.execute("SELECT id FROM routes WHERE connector = ? ORDER BY id",
                                     (name,))]
    if users:
        raise InUse(f"connector {name!r}", [f"route {i}" for i in users])
    c.execute("DELETE FROM connector_states WHERE connector = ?", (name,))
    return c.execute("DELETE FROM connectors WHERE name = ?", (name,)).rowcount > 0


# -- HTTP callbacks (dlrurl, mo-url) and MO ----------------------------------------------

_CALLBACK = columns(rows.CALLBACK_COLUMNS)
INSERT_CALLBACK = (f"INSERT INTO dlr_callbacks ({columns(rows.CALLBACK_INSERT_COLUMNS)}) "
                   f"VALUES ({_marks(len(rows.CALLBACK_INSERT_COLUMNS))})")
CALLBACK_SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'dlr_callbacks'"
DELETE_CALLBACK = "DELETE FROM dlr_callbacks WHERE id = ?"
RETRY_CALLBACK = ("UPDATE dlr_callbacks SET attempts = ?2, next_attempt_at = ?3, holder = '' "
                  "WHERE id = ?1")
CLAIM_CALLBACKS = ("UPDATE dlr_callbacks SET holder = ?1 WHERE id IN (SELECT id FROM "
                   "dlr_callbacks WHERE holder = '' AND next_attempt_at <= ?2 "
                   f"ORDER BY next_attempt_at, id LIMIT ?3) RETURNING {_CALLBACK}")


_INBOUND = columns(rows.INBOUND_COLUMNS)
INSERT_INBOUND = (f"INSERT INTO inbound_messages ({_INBOUND}) "
                  f"VALUES ({_marks(len(rows.INBOUND_COLUMNS))})")
SET_JOINED = "UPDATE inbound_messages SET joining = 0 WHERE id = ?"
JOINING_INBOUND = f"SELECT {_INBOUND} FROM inbound_messages WHERE joining = 1 ORDER BY id"
RECENT_INBOUND = f"SELECT {_INBOUND} FROM inbound_messages ORDER BY id DESC LIMIT ?"


def _write_outbox(c: sqlite3.Connection, batch: WriteBatch) -> list[int]:
    """The batch's callback rows and MO; returns the new callbacks' ids."""
    ids: list[int] = []
    new = batch.new_callbacks
    if new:
        # As for receipts: ids above the AUTOINCREMENT mark, safe under BEGIN IMMEDIATE.
        first = (_scalar(c, CALLBACK_SEQ, ()) or 0) + 1
        ids = list(range(first, first + len(new)))
        c.executemany(INSERT_CALLBACK, [(i, *rows.callback_values(cb))
                                        for i, cb in zip(ids, new, strict=True)])
    for done, outcome in ((batch.done_callbacks, "delivered"),
                          (batch.given_up_callbacks, "given up")):
        if done:
            c.execute(LOG_CALLBACKS, (json.dumps(done), time.time(), outcome))
            c.executemany(DELETE_CALLBACK, [(i,) for i in done])
    if batch.retry_callbacks:
        c.executemany(RETRY_CALLBACK, batch.retry_callbacks)
    if batch.new_inbound:
        c.executemany(INSERT_INBOUND, map(rows.inbound_row, batch.new_inbound))
    if batch.joined_inbound:
        c.executemany(SET_JOINED, [(i,) for i in batch.joined_inbound])
    return ids
