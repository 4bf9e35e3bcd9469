"""The group commit on SQLite (`write`), and the other statement groups that move money
(cancel, credit), run in the store's worker thread inside BEGIN IMMEDIATE; and `SQL`, the
shared statements (store/statements.py) in SQLite's spelling.
"""

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import cache
from itertools import chain
from typing import Any

from ..core.models import (
    BatchResult,
    Message,
    PendingReceipt,
    Refund,
    StatusUpdate,
    WriteBatch,
)
from ..core.ports import StoreError
from . import rows, statements
from .charging import (
    ChargePlan,
    cancel_refunds,
    carried_refunds,
    granted,
    refund_ledger_rows,
    refund_totals,
)
from .dialect import for_sqlite, spelled, sqlite_list
from .rows import FINAL_SQL

SQL = spelled(statements, for_sqlite)
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
# The hot path's rows go ROWS_PER_STATEMENT to a statement. sqlite3 lets go of the GIL
# around every statement's step, and the writer thread must take it back from the event
# loop after each: one statement a row made a commit wait on the loop hundreds of times
# (half its wall time at the peak, docs/performance.md).
ROWS_PER_STATEMENT = 64
# Row layouts from rows.sent_rows / rows.status_rows (one row per message: an UPDATE
# ... FROM with two rows for one message would apply an arbitrary one), as VALUES
# columns v.column1 ...
SET_SENT = ("UPDATE messages SET connector = v.column2, sent_at = v.column3, "
            "upstream_id = CASE WHEN v.column4 = '' THEN messages.upstream_id "
            "ELSE v.column4 END FROM (VALUES {}) AS v WHERE messages.id = v.column1")
SET_STATUS = ("UPDATE messages SET status = v.column2, error_code = v.column3, "
              "upstream_id = CASE WHEN v.column4 = '' THEN messages.upstream_id "
              "ELSE v.column4 END, "
              "accepted_at = COALESCE(v.column5, messages.accepted_at), "
              "done_at = COALESCE(v.column6, messages.done_at), "
              "sent_at = COALESCE(v.column7, messages.sent_at), "
              "connector = CASE WHEN v.column8 = '' THEN messages.connector "
              "ELSE v.column8 END FROM (VALUES {}) AS v "
              f"WHERE messages.id = v.column1 AND messages.status NOT IN {FINAL_SQL}")
# New messages by runs that share rows.RUN_COLUMNS (an SMPP read's, mostly): those
# bound once a statement as ?1 ... ?N, each row's ROW_COLUMNS after them. Binding holds
# the GIL (~130 ns a value): 3 values a row instead of 32 leave the event loop ~3.5 µs
# a message more of it (docs/performance.md).
INSERT_SHARING = "INSERT INTO messages ({}) SELECT {} FROM (VALUES {{}}) AS v".format(
    ", ".join(rows.MESSAGE_COLUMNS),
    ", ".join(f"v.column{rows.ROW_COLUMNS.index(c) + 1}" if c in rows.ROW_COLUMNS
              else f"?{rows.RUN_COLUMNS.index(c) + 1}" for c in rows.MESSAGE_COLUMNS))
# A run of messages of one many-number request: their PER_DESTINATION_COLUMNS as one JSON
# array of arrays, the request's columns bound once. The sqlite3 module binds a value
# in ~130 ns: a 32-column row costs ~4.3 µs by executemany; a 10,000-number request's
# insert now takes ~37 ms instead of ~66, ~20 of them its index entries either way
# (docs/performance.md).
INSERT_RUN = "INSERT INTO messages ({}) SELECT {} FROM json_each(?1)".format(
    ", ".join(rows.MESSAGE_COLUMNS),
    ", ".join(f"value ->> {rows.PER_DESTINATION_COLUMNS.index(c)}"
              if c in rows.PER_DESTINATION_COLUMNS
              else f"?{rows.REQUEST_COLUMNS.index(c) + 2}" for c in rows.MESSAGE_COLUMNS))
RUN_MIN = 16  # shorter runs go row by row: the JSON statement's own cost is not saved
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


def scalar(c: sqlite3.Connection, sql: str, args: tuple) -> Any:
    row = c.execute(sql, args).fetchone()
    return row[0] if row else None


def credit(c: sqlite3.Connection, account_id: int, amount: int, reason: str,
           message_id: int | None, now: float) -> int:
    balance = scalar(c, SQL.CREDIT, (amount, account_id))
    if balance is None:
        raise StoreError(f"no account with id {account_id}")
    c.execute(SQL.INSERT_LEDGER, (account_id, amount, reason, message_id, now))
    return balance


def write(c: sqlite3.Connection, batch: WriteBatch) -> BatchResult:
    now = time.time()
    result = BatchResult()
    if batch.new_messages:
        result.refused = _charge_and_insert(c, batch.new_messages, now, batch.atomic)
    if batch.sent:
        _execute_rows(c, SET_SENT, rows.sent_rows(batch.sent))
    if batch.statuses:
        _set_statuses(c, batch.statuses, now)
    if batch.new_receipts:
        result.receipt_ids = _insert_receipts(c, batch.new_receipts)
    if batch.done_receipts:
        done = (sqlite_list(batch.done_receipts),)
        c.execute(SQL.LOG_RECEIPTS, (*done, now))
        c.execute(SQL.DELETE_RECEIPTS, done)
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
    _insert_messages(c, plan.accepted(messages), plan.atomic)
    return plan.refused


def _insert_messages(c: sqlite3.Connection, messages: list[Message],
                     atomic: dict[int, list[int]]) -> None:
    """The messages of a many-number request (an atomic group) by runs that share
    REQUEST_COLUMNS, one statement each (INSERT_RUN); the others by runs that share
    RUN_COLUMNS (INSERT_SHARING)."""
    single = [m for m in messages if m.id not in atomic] if atomic else messages
    if len(single) < len(messages):
        grouped = [m for m in messages if m.id in atomic]
        # A paced request's send times differ: its runs are short.
        for shared, run in _runs(grouped, rows.request_values):
            if len(run) < RUN_MIN:
                single.extend(run)
                continue
            values = json.dumps(list(map(rows.per_destination_values, run)))
            if "\\u0000" in values:  # SQLite's JSON text ends at a NUL: bind as is
                single.extend(run)
                continue
            c.execute(INSERT_RUN, (values, *shared))
    for shared, run in _runs(single, rows.run_values):
        _execute_sharing(c, shared, list(map(rows.row_values, run)))


def _execute_sharing(c: sqlite3.Connection, shared: tuple, values: list[tuple]) -> None:
    """INSERT_SHARING for a run, ROWS_PER_STATEMENT rows at a time."""
    for start in range(0, len(values), ROWS_PER_STATEMENT):
        chunk = values[start:start + ROWS_PER_STATEMENT]
        c.execute(_sharing_statement(len(chunk)), (*shared, *chain.from_iterable(chunk)))


@cache
def _sharing_statement(count: int) -> str:
    first, width = len(rows.RUN_COLUMNS) + 1, len(rows.ROW_COLUMNS)
    return INSERT_SHARING.format(", ".join(
        "(" + ", ".join(f"?{first + n * width + k}" for k in range(width)) + ")"
        for n in range(count)))


def _runs(messages: list[Message], key: Callable[[Message], tuple]
          ) -> list[tuple[tuple, list[Message]]]:
    """Consecutive messages with equal `key` values (the columns a statement binds once
    for them): those values, and the messages."""
    runs: list[tuple[tuple, list[Message]]] = []
    shared = None
    for message in messages:
        values = key(message)
        if values != shared:
            shared = values
            runs.append((values, [message]))
        else:
            runs[-1][1].append(message)
    return runs


def _set_statuses(c: sqlite3.Connection, statuses: list[StatusUpdate], now: float) -> None:
    """Set-based status write; the refunds it carries are granted only for the messages
    it moves into their final state. BEGIN IMMEDIATE holds the write lock, so the live
    ones read just before are exactly those the UPDATE moves (charging.py)."""
    refunds = carried_refunds(statuses)
    if refunds:
        moved = [r[0] for r in c.execute(NOT_FINAL, (sqlite_list(refunds),))]
    _execute_rows(c, SET_STATUS, rows.status_rows(statuses))
    if refunds:
        _refund(c, granted(refunds, moved), now)


def _execute_rows(c: sqlite3.Connection, statement: str, values: Sequence[tuple]) -> None:
    """`statement` (its VALUES list a `{}`) for every row of `values`, all of one width,
    ROWS_PER_STATEMENT at a time (fewer where SQLite was built to bind fewer
    parameters), in order."""
    count, width = len(values), len(values[0]) if values else 1
    per = min(ROWS_PER_STATEMENT, c.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
    full = count - count % per
    if full:
        c.executemany(_with_rows(statement, width, per),
                      [tuple(chain.from_iterable(values[i:i + per]))
                       for i in range(0, full, per)])
    if count > full:
        c.execute(_with_rows(statement, width, count - full),
                  tuple(chain.from_iterable(values[full:])))


@cache
def _with_rows(statement: str, width: int, count: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return statement.format(", ".join([row] * count))


def _refund(c: sqlite3.Connection, refunds: list[Refund], now: float) -> None:
    """One balance update per account, one ledger row per refunded message."""
    if refunds:
        c.executemany(ADD_BALANCE, refund_totals(refunds))
        c.executemany(SQL.INSERT_LEDGER, refund_ledger_rows(refunds, now))


def _new_ids(c: sqlite3.Connection, sequence: str, count: int) -> list[int]:
    """Ids above the AUTOINCREMENT high-water mark, assigned here so that one executemany
    inserts them all; the write lock (BEGIN IMMEDIATE) makes the read-then-insert safe,
    and SQLite raises the mark past them, so an id is never reused."""
    first = (scalar(c, sequence, ()) or 0) + 1
    return list(range(first, first + count))


def _insert_receipts(c: sqlite3.Connection, receipts: list[PendingReceipt]) -> list[int]:
    ids = _new_ids(c, RECEIPT_SEQ, len(receipts))
    c.executemany(SQL.INSERT_RECEIPT, rows.with_ids(ids, receipts, rows.receipt_values))
    return ids


def cancel(c: sqlite3.Connection, account_id: int, ids: str, at: float) -> list[Message]:
    cancelled = [Message(*r) for r in c.execute(SQL.CANCEL, (at, account_id, ids))]
    _refund(c, cancel_refunds(cancelled), at)
    return cancelled


def _write_outbox(c: sqlite3.Connection, batch: WriteBatch) -> list[int]:
    """The batch's callback rows and MO; returns the new callbacks' ids."""
    ids: list[int] = []
    new = batch.new_callbacks
    if new:
        ids = _new_ids(c, CALLBACK_SEQ, len(new))
        c.executemany(SQL.INSERT_CALLBACK, rows.with_ids(ids, new, rows.callback_values))
    for done, outcome in ((batch.done_callbacks, "delivered"),
                          (batch.given_up_callbacks, "given up")):
        if done:
            gone = sqlite_list(done)
            c.execute(SQL.LOG_CALLBACKS, (gone, time.time(), outcome))
            c.execute(SQL.DELETE_CALLBACKS, (gone,))
    if batch.retry_callbacks:
        c.executemany(RETRY_CALLBACK, batch.retry_callbacks)
    if batch.new_inbound:
        c.executemany(SQL.INSERT_INBOUND, map(rows.inbound_row, batch.new_inbound))
    if batch.joined_inbound:
        c.execute(SQL.SET_JOINED, (sqlite_list(batch.joined_inbound),))
    return ids
