"""The group commit on PostgreSQL (`write`), and the other statement groups that move
money (cancel, credit), each run on one connection inside a transaction; and `SQL`, the
shared statements (store/statements.py) in PostgreSQL's spelling.

A group commit costs a handful of round trips whatever its size: the batch's columns go
to the server as arrays (`UPDATE ... FROM unnest(...)`), many new rows go through COPY.
Locking order (store/postgres.py): the accounts first, in id order, then messages.

Round trips are what a commit waits for at the peak, not PostgreSQL's work: each answer
waits for the busy event loop to come back to the writer (docs/performance.md). So the
statements that can go together do: the commit opens with one statement that reads the
transaction's id (store/pg_commit.py), sets its plan mode and locks its accounts
(`OPEN_COMMIT`), and the balances change with their ledger rows (`SETTLE`). A peak
commit is BEGIN, OPEN_COMMIT, the statuses' UPDATE, SETTLE, the messages' COPY, COMMIT.

The plan mode: the group commit runs the same few bulk statements on arrays thousands of
times a second, and with the messages partitioned by id range a custom plan of each costs
~0.3 ms of planning (pruning at plan time) against ~0.03 ms for the generic plan, which
prunes at run time (`EXPLAIN ANALYZE EXECUTE` of the prepared status UPDATE, 8
partitions): +7 % submit_sm/s with 20 million messages stored, no change on an empty
store (docs/performance.md).
"""

import time

import asyncpg

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
from .dialect import for_postgres, spelled
from .rows import FINAL_SQL

COPY_THRESHOLD = 50  # rows from which COPY beats a pipelined executemany
SQL = spelled(statements, for_postgres)

# What PostgreSQL runs its own way. A batch's row changes go to the server as arrays, one
# statement each (UPDATE ... FROM unnest), where SQLite runs executemany of one row layout
# (it has no round trips to save). Balances are locked in id order first (the lock order
# between nodes). The UPDATEs of messages also bound the batch's ids (least, greatest):
# the ids come in arrays, so without it the planner would join the batch against every
# time partition (store/partitions.py); with it, it prunes to the one or two holding them.
# The transaction's id on every row: a row an account locked, or one row of NULLs for none.
OPEN_COMMIT = ("SELECT txid_current(), "
               "set_config('plan_cache_mode', 'force_generic_plan', true), "
               "a.id, a.balance, a.credit_limit FROM (SELECT 1) AS one LEFT JOIN LATERAL "
               "(SELECT id, balance, credit_limit FROM accounts WHERE id = ANY($1::bigint[]) "
               "ORDER BY id FOR UPDATE) AS a ON true")
LOCK_ACCOUNT = "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE"
ADD_BALANCES = ("UPDATE accounts a SET balance = a.balance + d.amount "
                "FROM unnest($1::bigint[], $2::bigint[]) AS d(id, amount) WHERE a.id = d.id")
SETTLE = (f"WITH balances AS ({ADD_BALANCES}) "
          f"INSERT INTO ledger ({', '.join(rows.LEDGER_COLUMNS)}) SELECT * FROM "
          "unnest($3::bigint[], $4::bigint[], $5::text[], $6::bigint[], $7::float8[])")
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

# Receipts stored on one node, heard by the node holding the account's receiver
RECEIPTS_CHANNEL = "smsgate_receipts"
NOTIFY_RECEIPTS = f"SELECT pg_notify('{RECEIPTS_CHANNEL}', $1)"
NOTICE_MAX = 7900  # pg_notify's payload is under 8000 bytes


async def credit(c: asyncpg.Connection, account_id: int, amount: int, reason: str,
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


async def write(c: asyncpg.Connection, batch: WriteBatch,
                node_id: str = "") -> tuple[int, BatchResult]:
    """The group commit's statements, in a transaction just begun (pg_commit.transact):
    the transaction's id and what it wrote."""
    now = time.time()
    result = BatchResult()
    plan = ChargePlan(batch.new_messages, batch.atomic)
    refunds = carried_refunds(batch.statuses) if batch.statuses else {}
    xid, locked = await _open(c, plan, refunds)
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
        await c.execute(SQL.LOG_RECEIPTS, batch.done_receipts, now)
        await c.execute(SQL.DELETE_RECEIPTS, batch.done_receipts)
    if batch.retry_receipts:
        await c.execute(RETRY_RECEIPTS, *zip(*batch.retry_receipts, strict=True))
    if batch.part_statuses or batch.unmatched or batch.sent or batch.rematched:
        await _write_correlation(c, batch, now)
    if batch.new_callbacks or batch.done_callbacks or batch.retry_callbacks \
            or batch.new_inbound or batch.joined_inbound or batch.given_up_callbacks:
        result.callback_ids = await _write_outbox(c, batch)
    return xid, result


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


async def _open(c: asyncpg.Connection, plan: ChargePlan,
                refunds: dict[int, Refund]) -> tuple[int, dict[int, tuple[int, int]]]:
    """The transaction's id; and, locked and read in id order before any message row,
    every account it may change: those charged, and those a status may refund."""
    touched = {aid for aid, _ in plan.debits()}
    touched.update(r.account_id for r in refunds.values())
    opened = await c.fetch(OPEN_COMMIT, sorted(touched))
    return opened[0][0], {r[2]: (r[3], r[4]) for r in opened if r[2] is not None}


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
    ledger = plan.ledger_rows(now) + refund_ledger_rows(refunds, now)
    if changes or ledger:
        await c.execute(SETTLE, *_columns(changes, 2), *_columns(ledger, 5))
    accepted = plan.accepted(batch.new_messages)
    await _insert(c, "messages", rows.MESSAGE_COLUMNS, SQL.INSERT_MESSAGE,
                  list(map(rows.message_row, accepted)))
    return plan.refused


def _columns(records: list[tuple], width: int) -> list[tuple]:
    """Records as `width` columns (arrays for unnest), empty ones if there are none."""
    return list(zip(*records, strict=True)) if records else [()] * width


def receipts_notice(node_id: str, receipts: list[PendingReceipt]) -> str:
    """`node|account,account,...`; past NOTICE_MAX no accounts: any may have some."""
    accounts = ",".join(sorted({str(r.account_id) for r in receipts}))
    return f"{node_id}|{accounts if len(accounts) < NOTICE_MAX else ''}"


async def _insert_receipts(c: asyncpg.Connection, receipts: list[PendingReceipt]) -> list[int]:
    ids = [r[0] for r in await c.fetch(RECEIPT_IDS, len(receipts))]
    await _insert(c, "pending_receipts", rows.RECEIPT_INSERT_COLUMNS, SQL.INSERT_RECEIPT,
                  rows.with_ids(ids, receipts, rows.receipt_values))
    return ids


async def cancel(c: asyncpg.Connection, account_id: int, ids: list[int],
                 at: float) -> list[Message]:
    # The account first, then its messages: the same order as write() (no deadlock).
    await c.execute(LOCK_ACCOUNT, account_id)
    cancelled = [Message(*r) for r in await c.fetch(SQL.CANCEL, at, account_id, ids)]
    refunds = cancel_refunds(cancelled)
    if refunds:  # one balance update per account, one ledger row per message
        await c.execute(SETTLE, *_columns(refund_totals(refunds), 2),
                        *_columns(refund_ledger_rows(refunds, at), 5))
    return cancelled


async def _write_outbox(c: asyncpg.Connection, batch: WriteBatch) -> list[int]:
    """The batch's callback rows and MO; returns the new callbacks' ids."""
    ids: list[int] = []
    new = batch.new_callbacks
    if new:
        ids = [r[0] for r in await c.fetch(CALLBACK_IDS, len(new))]
        await _insert(c, "dlr_callbacks", rows.CALLBACK_INSERT_COLUMNS, SQL.INSERT_CALLBACK,
                      rows.with_ids(ids, new, rows.callback_values))
    for done, outcome in ((batch.done_callbacks, "delivered"),
                          (batch.given_up_callbacks, "given up")):
        if done:
            await c.execute(SQL.LOG_CALLBACKS, done, time.time(), outcome)
            await c.execute(SQL.DELETE_CALLBACKS, done)
    if batch.retry_callbacks:
        await c.execute(RETRY_CALLBACKS, *zip(*batch.retry_callbacks, strict=True))
    if batch.new_inbound:
        await _insert(c, "inbound_messages", rows.INBOUND_COLUMNS, SQL.INSERT_INBOUND,
                      list(map(rows.inbound_row, batch.new_inbound)))
    if batch.joined_inbound:
        await c.execute(SQL.SET_JOINED, batch.joined_inbound)
    return ids
