"""Records <-> table rows, shared by both backends.

Table columns carry the dataclass field names, in field order, so a row tuple comes from
one C-level `attrgetter` call and goes back through the positional constructor: no
per-field Python on the hot path.
"""

import json
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any

from ..core.models import (
    ACCEPTD,
    FINAL_STATUSES,
    Account,
    Connector,
    ConnectorState,
    CoverageEntry,
    InboundMessage,
    InboundNumber,
    LedgerEntry,
    Message,
    PendingCallback,
    PendingReceipt,
    Route,
    SentUpdate,
    StatusUpdate,
    UpstreamReport,
)

MESSAGE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Message))
message_row = attrgetter(*MESSAGE_COLUMNS)
# What tells apart the messages of one many-number request (SubmitPipeline.prepare):
# the rest of their columns are the request's, and SQLite binds them once for the run
# (sqlite_write.py). Integers and strings only: they go through JSON exactly.
PER_DESTINATION_COLUMNS: tuple[str, ...] = ("id", "dest_addr", "price", "connector")
REQUEST_COLUMNS: tuple[str, ...] = tuple(c for c in MESSAGE_COLUMNS
                                         if c not in PER_DESTINATION_COLUMNS)
per_destination_values = attrgetter(*PER_DESTINATION_COLUMNS)
request_values = attrgetter(*REQUEST_COLUMNS)
# What tells apart the messages of one SMPP read (one bind's submit_sm, prepared at one
# moment): SQLite binds the rest once for a run of them that shares it (sqlite_write.py).
ROW_COLUMNS: tuple[str, ...] = ("id", "dest_addr", "payload")
RUN_COLUMNS: tuple[str, ...] = tuple(c for c in MESSAGE_COLUMNS if c not in ROW_COLUMNS)
row_values = attrgetter(*ROW_COLUMNS)
run_values = attrgetter(*RUN_COLUMNS)

CALLBACK_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(PendingCallback))
# Inserted with ids the store assigns, like receipts.
CALLBACK_INSERT_COLUMNS: tuple[str, ...] = ("id", *(c for c in CALLBACK_COLUMNS if c != "id"))
callback_values = attrgetter(*CALLBACK_INSERT_COLUMNS[1:])

RECEIPT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(PendingReceipt))
# Inserted with ids the store assigns: the id goes first, the rest in this order.
RECEIPT_INSERT_COLUMNS: tuple[str, ...] = ("id", *(c for c in RECEIPT_COLUMNS if c != "id"))
receipt_values = attrgetter(*RECEIPT_INSERT_COLUMNS[1:])

INBOUND_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(InboundMessage))
_inbound_values = attrgetter(*INBOUND_COLUMNS[:-1])  # all but `joining`


def inbound_row(message: InboundMessage) -> tuple:
    """INBOUND_COLUMNS values; `joining` as 0/1 (an INTEGER in both backends)."""
    return (*_inbound_values(message), int(message.joining))


def inbound_from_row(row) -> InboundMessage:
    *values, joining = row
    return InboundMessage(*values, joining=bool(joining))


ACCOUNT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Account))
# Everything but id and balance: what add_account/update_account write.
ACCOUNT_WRITE_COLUMNS: tuple[str, ...] = tuple(
    c for c in ACCOUNT_COLUMNS if c not in ("id", "balance"))

LEDGER_COLUMNS = ("account_id", "amount", "reason", "message_id", "created_at")
LEDGER_SELECT = "id, account_id, amount, reason, message_id, created_at"
ROUTE_COLUMNS = ("prefix", "connector", "price", "account_id", "priority", "cost", "weight",
                 "senders")
NUMBER_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(InboundNumber))
CONNECTOR_STATE_COLUMNS = ("connector", "node", "state", "reported_at")
COVERAGE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CoverageEntry))
coverage_row = attrgetter(*COVERAGE_COLUMNS)

# "Not final", spelled exactly as in the partial indexes so SQLite's planner uses them.
LIVE = "status IN ('ATES', 'ACCEPTD')"
FINAL_SQL = "(" + ", ".join(f"'{s}'" for s in sorted(FINAL_STATUSES)) + ")"


def columns(names: tuple[str, ...]) -> str:
    return ", ".join(names)


def with_ids(ids: list[int], records: list, values: Callable[[Any], tuple]) -> list[tuple]:
    """(id, *values(record)) of records inserted with ids the store drew for them."""
    return [(i, *values(r)) for i, r in zip(ids, records, strict=True)]


def account_values(account: Account) -> tuple:
    """ACCOUNT_WRITE_COLUMNS values: tuples as JSON text, flags as bool (SQLite keeps
    them as 0/1 INTEGER, PostgreSQL as BOOLEAN)."""
    return (account.system_id, account.password_hash, account.credit_limit,
            account.expires_at, bool(account.enabled),
            json.dumps(list(account.allowed_senders)), json.dumps(list(account.allowed_ips)),
            account.tps, account.max_tx, bool(account.smpp_enabled),
            bool(account.http_enabled), account.max_parts, account.created_at,
            bool(account.status_auth))


def account_from_row(row) -> Account:
    (system_id, password_hash, id_, balance, credit_limit, expires_at, enabled, senders,
     ips, tps, max_tx, smpp_enabled, http_enabled, max_parts, created_at, status_auth) = row
    return Account(system_id, password_hash, id_, balance, credit_limit, expires_at,
                   bool(enabled), tuple(json.loads(senders)), tuple(json.loads(ips)), tps,
                   max_tx, bool(smpp_enabled), bool(http_enabled), max_parts, created_at,
                   bool(status_auth))


def ledger_from_row(row) -> LedgerEntry:
    id_, account_id, amount, reason, message_id, created_at = row
    return LedgerEntry(account_id, amount, reason, message_id, id_, created_at)


def connector_from_row(row) -> Connector:
    name, type_, config, enabled = row
    return Connector(name, type_, json.loads(config), bool(enabled))


def connector_values(connector: Connector) -> tuple:
    return (connector.name, connector.type, json.dumps(connector.config),
            bool(connector.enabled))


def route_from_row(row) -> Route:
    """From `id, ROUTE_COLUMNS`."""
    id_, prefix, connector, price, account_id, priority, cost, weight, senders = row
    return Route(prefix, connector, price, account_id, priority, id_, cost, weight,
                 tuple(json.loads(senders)))


def route_values(route: Route) -> tuple:
    """ROUTE_COLUMNS values: senders as JSON text, like an account's."""
    return (route.prefix, route.connector, route.price, route.account_id, route.priority,
            route.cost, route.weight, json.dumps(list(route.senders)))


number_row = attrgetter(*NUMBER_COLUMNS)


def connector_state_values(state: ConnectorState) -> tuple:
    return (state.connector, state.node, json.dumps(state.state), state.reported_at)


def connector_state_from_row(row) -> ConnectorState:
    connector, node, state, reported_at = row
    return ConnectorState(connector, node, json.loads(state), reported_at)


def sent_rows(sent: list[SentUpdate]) -> list[tuple]:
    """(message_id, connector, at, upstream_id); the last report per message wins."""
    if len(sent) == 1:
        u = sent[0]
        return [(u.message_id, u.connector, u.at, u.upstream_id)]
    last = {u.message_id: u for u in sent}
    return [(u.message_id, u.connector, u.at, u.upstream_id) for u in last.values()]


def part_rows(sent: list[SentUpdate]) -> list[tuple]:
    """(message_id, part, connector, upstream_id) of every part of the split messages."""
    return [(u.message_id, n, u.connector, part_id)
            for u in sent if u.part_ids for n, part_id in enumerate(u.part_ids)]


def unmatched_rows(reports: list[UpstreamReport], now: float) -> list[tuple]:
    """(connector, upstream_id, status, error_code, reported_at, received_at): the id
    as the report gave it (its first spelling)."""
    return [(r.connector, r.upstream_ids[0] if r.upstream_ids else "", r.status,
             r.error_code, r.at, now) for r in reports]


def unmatched_keys(reports: list[UpstreamReport]) -> list[tuple]:
    """(connector, upstream_id, reported_at): what finds an unmatched report's row."""
    return [(r.connector, r.upstream_ids[0] if r.upstream_ids else "", r.at) for r in reports]


def status_rows(statuses: list[StatusUpdate]) -> list[tuple]:
    """Fold the batch's updates into one row per message, as if applied in order:
    (message_id, status, error_code, upstream_id, accepted_at, done_at, sent_at,
    connector); the last two carry a held "sent" mark, or None and "".

    One row per message lets a backend apply them all in one set-based UPDATE (an
    UPDATE ... FROM with two rows for one message would apply an arbitrary one). A final
    status is never followed by another here, and the store's WHERE guard keeps one
    already stored."""
    folded: dict[int, list] = {}
    for u in statuses:
        row = folded.get(u.message_id)
        if row is None:
            folded[u.message_id] = [
                u.message_id, u.status, u.error_code, u.upstream_id,
                u.at if u.status == ACCEPTD else None,
                u.at if u.status in FINAL_STATUSES else None, u.sent_at, u.connector]
            continue
        if u.sent_at is not None and row[6] is None:
            row[6], row[7] = u.sent_at, u.connector
        if row[1] not in FINAL_STATUSES:
            row[1] = u.status
            row[2] = u.error_code
            if u.upstream_id:
                row[3] = u.upstream_id
            if u.status == ACCEPTD:
                row[4] = u.at
            elif u.status in FINAL_STATUSES:
                row[5] = u.at
    return [tuple(r) for r in folded.values()]
