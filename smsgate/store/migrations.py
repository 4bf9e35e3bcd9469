"""Schema migrations for both backends: an ordered, append-only list.

Each entry is (name, sqlite_sql, postgres_sql). A backend applies the ones missing from
its `schema_migrations` table, in order, in one transaction. Never edit an applied
migration; add a new one. Statements are separated by ';' (so none may contain one).

Types: money is BIGINT/INTEGER units of 1/10,000 credit, times are DOUBLE PRECISION/REAL
epoch seconds. Message ids are given by the caller (`core.ids`). No foreign keys: they
would cost a lookup per inserted row on the hot path, and rows are never deleted under
them. The partial indexes' `status IN ('ATES', 'ACCEPTD')` must read exactly like
`rows.LIVE`, which the queries use, so that SQLite's planner can match them.
"""

from typing import NamedTuple

from .partitions import MIGRATION_POSTGRES as _PARTITIONS_POSTGRES


class Migration(NamedTuple):
    name: str
    sqlite: str
    postgres: str


SCHEMA_MIGRATIONS_SQLITE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"""
SCHEMA_MIGRATIONS_POSTGRES = """CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"""
# Key of the advisory lock that serializes migrate() across nodes ("smsgate" in ASCII).
ADVISORY_LOCK_KEY = 0x736D736761746500


# Shared by both dialects: plain CREATE INDEX with partial WHERE clauses.
_INDEXES_0001 = """
CREATE INDEX messages_unsent ON messages (id)
    WHERE sent_at IS NULL AND status IN ('ATES', 'ACCEPTD') AND schedule_at IS NULL;
CREATE INDEX messages_scheduled ON messages (schedule_at)
    WHERE sent_at IS NULL AND status IN ('ATES', 'ACCEPTD') AND schedule_at IS NOT NULL;
CREATE INDEX messages_expiry ON messages (expires_at)
    WHERE status IN ('ATES', 'ACCEPTD') AND expires_at IS NOT NULL;
CREATE INDEX messages_pending_addr ON messages (account_id, source_addr, dest_addr)
    WHERE sent_at IS NULL AND status IN ('ATES', 'ACCEPTD');
CREATE INDEX ledger_account ON ledger (account_id, id);
CREATE INDEX pending_receipts_due ON pending_receipts (account_id, next_attempt_at)"""


_INITIAL_SQLITE = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE id_sequence (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO id_sequence (name, value) VALUES ('message', 0);
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    balance INTEGER NOT NULL DEFAULT 0,
    credit_limit INTEGER NOT NULL DEFAULT 0,
    expires_at REAL,
    enabled INTEGER NOT NULL DEFAULT 1,
    allowed_senders TEXT NOT NULL DEFAULT '[]',
    allowed_ips TEXT NOT NULL DEFAULT '[]',
    tps INTEGER NOT NULL DEFAULT 0,
    max_tx INTEGER NOT NULL DEFAULT 10,
    smpp_enabled INTEGER NOT NULL DEFAULT 1,
    http_enabled INTEGER NOT NULL DEFAULT 1,
    max_parts INTEGER NOT NULL DEFAULT 10,
    created_at REAL NOT NULL DEFAULT 0);
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    reason TEXT NOT NULL,
    message_id INTEGER,
    created_at REAL NOT NULL);
CREATE TABLE connectors (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE routes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    prefix TEXT NOT NULL,
    connector TEXT NOT NULL,
    price INTEGER NOT NULL,
    account_id INTEGER,
    priority INTEGER NOT NULL DEFAULT 0);
CREATE TABLE coverage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country TEXT NOT NULL,
    iso TEXT NOT NULL,
    operator TEXT NOT NULL,
    mcc TEXT NOT NULL,
    mnc TEXT NOT NULL,
    prefix TEXT NOT NULL,
    price INTEGER);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    source_addr TEXT NOT NULL,
    dest_addr TEXT NOT NULL,
    payload BLOB NOT NULL,
    data_coding INTEGER NOT NULL,
    esm_class INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    price INTEGER NOT NULL,
    connector TEXT NOT NULL,
    source_ton INTEGER NOT NULL,
    source_npi INTEGER NOT NULL,
    dest_ton INTEGER NOT NULL,
    dest_npi INTEGER NOT NULL,
    protocol_id INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    registered_delivery INTEGER NOT NULL,
    service_type TEXT NOT NULL,
    options BLOB NOT NULL,
    channel TEXT NOT NULL,
    ref TEXT NOT NULL,
    dlr_url TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code INTEGER NOT NULL,
    upstream_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    schedule_at REAL,
    expires_at REAL,
    sent_at REAL,
    accepted_at REAL,
    done_at REAL,
    node TEXT NOT NULL);
CREATE TABLE pending_receipts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    source_addr TEXT NOT NULL,
    dest_addr TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code INTEGER NOT NULL,
    submitted_at REAL NOT NULL,
    done_at REAL NOT NULL,
    text TEXT NOT NULL,
    source_ton INTEGER NOT NULL,
    source_npi INTEGER NOT NULL,
    dest_ton INTEGER NOT NULL,
    dest_npi INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL);
""" + _INDEXES_0001

_INITIAL_POSTGRES = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE id_sequence (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO id_sequence (name, value) VALUES ('message', 0);
CREATE TABLE accounts (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    system_id TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    balance BIGINT NOT NULL DEFAULT 0,
    credit_limit BIGINT NOT NULL DEFAULT 0,
    expires_at DOUBLE PRECISION,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    allowed_senders TEXT NOT NULL DEFAULT '[]',
    allowed_ips TEXT NOT NULL DEFAULT '[]',
    tps INTEGER NOT NULL DEFAULT 0,
    max_tx INTEGER NOT NULL DEFAULT 10,
    smpp_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    http_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    max_parts INTEGER NOT NULL DEFAULT 10,
    created_at DOUBLE PRECISION NOT NULL DEFAULT 0);
CREATE TABLE ledger (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    reason TEXT NOT NULL,
    message_id BIGINT,
    created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE connectors (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    enabled BOOLEAN NOT NULL DEFAULT TRUE);
CREATE TABLE routes (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    prefix TEXT NOT NULL,
    connector TEXT NOT NULL,
    price BIGINT NOT NULL,
    account_id BIGINT,
    priority INTEGER NOT NULL DEFAULT 0);
CREATE TABLE coverage (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    country TEXT NOT NULL,
    iso TEXT NOT NULL,
    operator TEXT NOT NULL,
    mcc TEXT NOT NULL,
    mnc TEXT NOT NULL,
    prefix TEXT NOT NULL,
    price BIGINT);
CREATE TABLE messages (
    id BIGINT PRIMARY KEY,
    account_id BIGINT NOT NULL,
    source_addr TEXT NOT NULL,
    dest_addr TEXT NOT NULL,
    payload BYTEA NOT NULL,
    data_coding INTEGER NOT NULL,
    esm_class INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    price BIGINT NOT NULL,
    connector TEXT NOT NULL,
    source_ton INTEGER NOT NULL,
    source_npi INTEGER NOT NULL,
    dest_ton INTEGER NOT NULL,
    dest_npi INTEGER NOT NULL,
    protocol_id INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    registered_delivery INTEGER NOT NULL,
    service_type TEXT NOT NULL,
    options BYTEA NOT NULL,
    channel TEXT NOT NULL,
    ref TEXT NOT NULL,
    dlr_url TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code INTEGER NOT NULL,
    upstream_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    schedule_at DOUBLE PRECISION,
    expires_at DOUBLE PRECISION,
    sent_at DOUBLE PRECISION,
    accepted_at DOUBLE PRECISION,
    done_at DOUBLE PRECISION,
    node TEXT NOT NULL);
CREATE TABLE pending_receipts (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    source_addr TEXT NOT NULL,
    dest_addr TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code INTEGER NOT NULL,
    submitted_at DOUBLE PRECISION NOT NULL,
    done_at DOUBLE PRECISION NOT NULL,
    text TEXT NOT NULL,
    source_ton INTEGER NOT NULL,
    source_npi INTEGER NOT NULL,
    dest_ton INTEGER NOT NULL,
    dest_npi INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL);
""" + _INDEXES_0001


# The dlrurl outbox (servers/http_callbacks.py). `holder` is the node whose memory holds
# the row ('' = waiting in the store); only the waiting ones are claimed, due first.
_CALLBACKS_INDEX = """
CREATE INDEX dlr_callbacks_due ON dlr_callbacks (next_attempt_at, id) WHERE holder = ''"""

_CALLBACKS_SQLITE = """
CREATE TABLE dlr_callbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    holder TEXT NOT NULL);
""" + _CALLBACKS_INDEX

_CALLBACKS_POSTGRES = """
CREATE TABLE dlr_callbacks (
    id BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL,
    holder TEXT NOT NULL);
""" + _CALLBACKS_INDEX


# Upstream connectors (SPEC §8). Route priority changes meaning (it was "higher wins",
# SPEC says lower first): stored priorities are negated so that existing routes choose
# exactly as before. Receipt correlation looks messages up by (connector, upstream_id);
# the index is partial so that the insert of a message (upstream_id still '') does not
# touch it; queries must repeat `upstream_id <> ''` for the planners to use it.
_UPSTREAMS_SHARED = """
UPDATE routes SET priority = -priority;
CREATE INDEX messages_upstream ON messages (connector, upstream_id) WHERE upstream_id <> ''"""

_UPSTREAMS_SQLITE = """
ALTER TABLE routes ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE routes ADD COLUMN weight INTEGER NOT NULL DEFAULT 1;
ALTER TABLE routes ADD COLUMN senders TEXT NOT NULL DEFAULT '[]';
CREATE TABLE numbers (
    number TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL,
    mo_url TEXT NOT NULL DEFAULT '');
CREATE TABLE connector_states (
    connector TEXT NOT NULL,
    node TEXT NOT NULL,
    state TEXT NOT NULL,
    reported_at REAL NOT NULL,
    PRIMARY KEY (connector, node));
""" + _UPSTREAMS_SHARED

_UPSTREAMS_POSTGRES = """
ALTER TABLE routes ADD COLUMN cost BIGINT NOT NULL DEFAULT 0;
ALTER TABLE routes ADD COLUMN weight INTEGER NOT NULL DEFAULT 1;
ALTER TABLE routes ADD COLUMN senders TEXT NOT NULL DEFAULT '[]';
CREATE TABLE numbers (
    number TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL,
    mo_url TEXT NOT NULL DEFAULT '');
CREATE TABLE connector_states (
    connector TEXT NOT NULL,
    node TEXT NOT NULL,
    state TEXT NOT NULL,
    reported_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (connector, node));
""" + _UPSTREAMS_SHARED


# Receipt correlation (core/correlation.py): the upstream ids of the later parts of a
# message we split ourselves (part 0's is messages.upstream_id), with each part's final
# status; and delivery reports that matched no message, kept for the operator.
_PARTS_SQLITE = """
CREATE TABLE message_parts (
    message_id INTEGER NOT NULL,
    part INTEGER NOT NULL,
    connector TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, part));
CREATE INDEX message_parts_upstream ON message_parts (connector, upstream_id);
CREATE TABLE unmatched_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connector TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code INTEGER NOT NULL DEFAULT 0,
    reported_at REAL NOT NULL,
    received_at REAL NOT NULL)"""

_PARTS_POSTGRES = """
CREATE TABLE message_parts (
    message_id BIGINT NOT NULL,
    part INTEGER NOT NULL,
    connector TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, part));
CREATE INDEX message_parts_upstream ON message_parts (connector, upstream_id);
CREATE TABLE unmatched_reports (
    id BIGSERIAL PRIMARY KEY,
    connector TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code INTEGER NOT NULL DEFAULT 0,
    reported_at DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL)"""


# MO (SPEC §8, core/inbound.py): every inbound SMS as received, routed (account_id) or
# not (NULL: to no known number, kept for the operator). `joining` = 1 marks a part of
# a concatenated MO whose message is not settled yet (reloaded at start; the partial
# index keeps that look cheap however many MO are stored). A deliver_sm waiting for a
# customer's receiver is one concept whether it is a receipt or an MO: pending_receipts
# takes the MO's user data (kind 'mo'); receipts keep the defaults.
_MO_SHARED = """
CREATE INDEX inbound_joining ON inbound_messages (id) WHERE joining = 1"""

_MO_SQLITE = """
CREATE TABLE inbound_messages (
    id INTEGER PRIMARY KEY,
    connector TEXT NOT NULL,
    source_addr TEXT NOT NULL,
    dest_addr TEXT NOT NULL,
    payload BLOB NOT NULL,
    data_coding INTEGER NOT NULL,
    esm_class INTEGER NOT NULL,
    source_ton INTEGER NOT NULL,
    source_npi INTEGER NOT NULL,
    dest_ton INTEGER NOT NULL,
    dest_npi INTEGER NOT NULL,
    options BLOB NOT NULL,
    received_at REAL NOT NULL,
    account_id INTEGER,
    joining INTEGER NOT NULL DEFAULT 0);
ALTER TABLE pending_receipts ADD COLUMN kind TEXT NOT NULL DEFAULT 'receipt';
ALTER TABLE pending_receipts ADD COLUMN payload BLOB NOT NULL DEFAULT X'';
ALTER TABLE pending_receipts ADD COLUMN data_coding INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pending_receipts ADD COLUMN esm_class INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pending_receipts ADD COLUMN options BLOB NOT NULL DEFAULT X'';
""" + _MO_SHARED

_MO_POSTGRES = """
CREATE TABLE inbound_messages (
    id BIGINT PRIMARY KEY,
    connector TEXT NOT NULL,
    source_addr TEXT NOT NULL,
    dest_addr TEXT NOT NULL,
    payload BYTEA NOT NULL,
    data_coding INTEGER NOT NULL,
    esm_class INTEGER NOT NULL,
    source_ton INTEGER NOT NULL,
    source_npi INTEGER NOT NULL,
    dest_ton INTEGER NOT NULL,
    dest_npi INTEGER NOT NULL,
    options BYTEA NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    account_id BIGINT,
    joining INTEGER NOT NULL DEFAULT 0);
ALTER TABLE pending_receipts ADD COLUMN kind TEXT NOT NULL DEFAULT 'receipt';
ALTER TABLE pending_receipts ADD COLUMN payload BYTEA NOT NULL DEFAULT ''::bytea;
ALTER TABLE pending_receipts ADD COLUMN data_coding INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pending_receipts ADD COLUMN esm_class INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pending_receipts ADD COLUMN options BYTEA NOT NULL DEFAULT ''::bytea;
""" + _MO_SHARED


# Nodes (SPEC §9): one row per `serve` identity (--node-id). `run_id` names the process
# that holds it now (a restart is a new run); `stopped_at` is set by a clean stop. The
# figures are the latest heartbeat's, for `smsgate nodes`.
_NODES = """
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    address TEXT NOT NULL,
    started_at {time} NOT NULL,
    heartbeat_at {time} NOT NULL,
    stopped_at {time},
    smpp_sessions INTEGER NOT NULL DEFAULT 0,
    upstream_binds INTEGER NOT NULL DEFAULT 0,
    messages_per_second {time} NOT NULL DEFAULT 0)"""

# Bind leases (SPEC §9): one row per bound customer session on a node's run, so that the
# bind policy holds across nodes (store/bind_leases.py).
_BIND_LEASES = """
CREATE TABLE bind_leases (
    node_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    session TEXT NOT NULL,
    account_id {id} NOT NULL,
    kind TEXT NOT NULL,
    acquired_at {time} NOT NULL,
    PRIMARY KEY (node_id, session));
CREATE INDEX bind_leases_account ON bind_leases (account_id)"""

# The admin API (SPEC §10, store/admin.py): bearer tokens, stored as their SHA-256 (a
# token is 256 random bits: no salt or slow hash is needed against guessing); a kick
# flag on a bind lease, which the node holding the session acts on; and the log of
# receipts, MO deliver_sm and callbacks that left the outbox (delivered or given up),
# for a message's timeline: purged with its message or MO (store/retention.py).
_ADMIN = """
CREATE TABLE admin_tokens (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at {time} NOT NULL,
    last_used_at {time},
    revoked_at {time});
ALTER TABLE bind_leases ADD COLUMN kick_at {time};
CREATE TABLE deliveries (
    message_id {id} NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    at {time} NOT NULL);
CREATE INDEX deliveries_message ON deliveries (message_id)"""

# The dashboard's throughput chart (servers/dashboard/): each heartbeat also reports the
# DELIVRD and failed statuses per second of its node, beside the accepted ones.
_NODE_RATES = """
ALTER TABLE nodes ADD COLUMN delivered_per_second {time} NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN failed_per_second {time} NOT NULL DEFAULT 0"""

# Status changes per node and 10-second bucket (core/status_history.py), for the admin
# API's /stats: counted in memory, written every few seconds, so that statistics never
# scan the messages table. The id is for retention's steps (store/retention.py).
_STATUS_COUNTS = """
CREATE TABLE status_counts (
    id {serial},
    node TEXT NOT NULL,
    bucket {int} NOT NULL,
    status TEXT NOT NULL,
    count {int} NOT NULL);
CREATE UNIQUE INDEX status_counts_bucket ON status_counts (bucket, node, status)"""


MIGRATIONS: list[Migration] = [
    Migration("0001_initial", _INITIAL_SQLITE, _INITIAL_POSTGRES),
    Migration("0002_dlr_callbacks", _CALLBACKS_SQLITE, _CALLBACKS_POSTGRES),
    Migration("0003_account_status_auth",
              "ALTER TABLE accounts ADD COLUMN status_auth INTEGER NOT NULL DEFAULT 0",
              "ALTER TABLE accounts ADD COLUMN status_auth BOOLEAN NOT NULL DEFAULT FALSE"),
    Migration("0004_upstreams", _UPSTREAMS_SQLITE, _UPSTREAMS_POSTGRES),
    Migration("0005_correlation", _PARTS_SQLITE, _PARTS_POSTGRES),
    Migration("0006_mo", _MO_SQLITE, _MO_POSTGRES),
    Migration("0007_nodes", _NODES.format(time="REAL"),
              _NODES.format(time="DOUBLE PRECISION")),
    Migration("0008_bind_leases", _BIND_LEASES.format(id="INTEGER", time="REAL"),
              _BIND_LEASES.format(id="BIGINT", time="DOUBLE PRECISION")),
    Migration("0009_admin", _ADMIN.format(id="INTEGER", time="REAL"),
              _ADMIN.format(id="BIGINT", time="DOUBLE PRECISION")),
    Migration("0010_node_rates", _NODE_RATES.format(time="REAL"),
              _NODE_RATES.format(time="DOUBLE PRECISION")),
    Migration("0011_status_counts",
              _STATUS_COUNTS.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", int="INTEGER"),
              _STATUS_COUNTS.format(serial="BIGSERIAL PRIMARY KEY", int="BIGINT")),
    # PostgreSQL's message history in time partitions (store/partitions.py); SQLite as is
    Migration("0012_partitions", "", _PARTITIONS_POSTGRES),
]


def statements(sql: str) -> list[str]:
    """Split a migration into statements (sqlite3 runs one per execute; executescript
    would commit the surrounding transaction)."""
    return [s.strip() for s in sql.split(";") if s.strip()]


def missing(applied: set[str]) -> list[Migration]:
    return [m for m in MIGRATIONS if m.name not in applied]
