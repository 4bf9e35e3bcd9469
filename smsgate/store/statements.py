"""The statements SQLite and PostgreSQL both run, each written once in the spelling of
store/dialect.py; a backend reads them converted (`dialect.spelled`).

What stays in a backend module is what truly differs, each with its reason: locking and
transactions, how a batch reaches the server (sqlite3's executemany of one row layout;
asyncpg's arrays through `unnest` and COPY), how new ids are drawn (SQLite's
sqlite_sequence under its write lock; PostgreSQL's sequences), a planner hint (SQLite's
`INDEXED BY`), PostgreSQL's advisory locks and NOTIFY.
"""

from . import admin, bind_leases, nodes, ownership
from .rows import (
    ACCOUNT_COLUMNS,
    ACCOUNT_WRITE_COLUMNS,
    CALLBACK_COLUMNS,
    CALLBACK_INSERT_COLUMNS,
    CONNECTOR_STATE_COLUMNS,
    COVERAGE_COLUMNS,
    INBOUND_COLUMNS,
    LEDGER_COLUMNS,
    LEDGER_SELECT,
    LIVE,
    MESSAGE_COLUMNS,
    NUMBER_COLUMNS,
    RECEIPT_COLUMNS,
    RECEIPT_INSERT_COLUMNS,
    ROUTE_COLUMNS,
    columns,
)


def _insert(table: str, names: tuple[str, ...]) -> str:
    marks = ", ".join(f"${n}" for n in range(1, len(names) + 1))
    return f"INSERT INTO {table} ({columns(names)}) VALUES ({marks})"


_MSG = columns(MESSAGE_COLUMNS)
_ACCOUNT = columns(ACCOUNT_COLUMNS)

# -- settings, ids ---------------------------------------------------------------------
GET_SETTING = "SELECT value FROM settings WHERE key = $1"
ADD_SETTING = "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
SET_SETTING = ("INSERT INTO settings (key, value) VALUES ($1, $2) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
ALLOCATE_IDS = "UPDATE id_sequence SET value = value + $1 WHERE name = 'message' RETURNING value"

# -- accounts and credits --------------------------------------------------------------
ACCOUNT_BY_SYSTEM_ID = f"SELECT {_ACCOUNT} FROM accounts WHERE system_id = $1"
ACCOUNT_BY_ID = f"SELECT {_ACCOUNT} FROM accounts WHERE id = $1"
ACCOUNTS = f"SELECT {_ACCOUNT} FROM accounts ORDER BY id"
INSERT_ACCOUNT = _insert("accounts", ACCOUNT_WRITE_COLUMNS) + " RETURNING id"
UPDATE_ACCOUNT = ("UPDATE accounts SET "
                  + ", ".join(f"{c} = ${n}" for n, c in enumerate(ACCOUNT_WRITE_COLUMNS, 1))
                  + f" WHERE id = ${len(ACCOUNT_WRITE_COLUMNS) + 1}")
CREDIT = "UPDATE accounts SET balance = balance + $1 WHERE id = $2 RETURNING balance"
INSERT_LEDGER = _insert("ledger", LEDGER_COLUMNS)
LEDGER = f"SELECT {LEDGER_SELECT} FROM ledger WHERE account_id = $1 ORDER BY id DESC LIMIT $2"

# -- connectors, routes, numbers, coverage -----------------------------------------------
CONNECTORS = "SELECT name, type, config, enabled FROM connectors ORDER BY name"
CONNECTOR = "SELECT name, type, config, enabled FROM connectors WHERE name = $1"
INSERT_CONNECTOR = "INSERT INTO connectors (name, type, config, enabled) VALUES ($1, $2, $3, $4)"
SET_CONNECTOR_ENABLED = "UPDATE connectors SET enabled = $2 WHERE name = $1"
CONNECTOR_USERS = "SELECT id FROM routes WHERE connector = $1 ORDER BY id"
DELETE_CONNECTOR_STATES = "DELETE FROM connector_states WHERE connector = $1"
DELETE_CONNECTOR = "DELETE FROM connectors WHERE name = $1"
ROUTES = f"SELECT id, {columns(ROUTE_COLUMNS)} FROM routes ORDER BY id"
INSERT_ROUTE = _insert("routes", ROUTE_COLUMNS) + " RETURNING id"
DELETE_ROUTE = "DELETE FROM routes WHERE id = $1"
NUMBERS = f"SELECT {columns(NUMBER_COLUMNS)} FROM numbers ORDER BY number"
INSERT_NUMBER = _insert("numbers", NUMBER_COLUMNS)
DELETE_NUMBER = "DELETE FROM numbers WHERE number = $1"
UPSERT_CONNECTOR_STATE = (_insert("connector_states", CONNECTOR_STATE_COLUMNS)
                          + " ON CONFLICT (connector, node) DO UPDATE SET "
                          "state = excluded.state, reported_at = excluded.reported_at")
CONNECTOR_STATES = (f"SELECT {columns(CONNECTOR_STATE_COLUMNS)} FROM connector_states "
                    "ORDER BY connector, node")
COVERAGE = f"SELECT {columns(COVERAGE_COLUMNS)} FROM coverage ORDER BY id"
INSERT_COVERAGE = _insert("coverage", COVERAGE_COLUMNS)
DELETE_COVERAGE = "DELETE FROM coverage"

# -- messages: the hot path's rows ---------------------------------------------------------
INSERT_MESSAGE = _insert("messages", MESSAGE_COLUMNS)
INSERT_RECEIPT = _insert("pending_receipts", RECEIPT_INSERT_COLUMNS)
DELETE_RECEIPTS = "DELETE FROM pending_receipts WHERE id = ANY($1)"
# A message sent again (after a restart, or by the node that took it over) starts its
# parts afresh: their new upstream ids, and no status yet (core/reports.py counts the
# parts' outcomes; one of the earlier send would end the message too soon).
INSERT_PART = (_insert("message_parts", ("message_id", "part", "connector", "upstream_id"))
               + " ON CONFLICT (message_id, part) DO UPDATE SET connector = "
               "excluded.connector, upstream_id = excluded.upstream_id, status = ''")
SET_PART_STATUS = "UPDATE message_parts SET status = $3 WHERE message_id = $1 AND part = $2"
INSERT_UNMATCHED = ("INSERT INTO unmatched_reports (connector, upstream_id, status, "
                    "error_code, reported_at, received_at) VALUES ($1, $2, $3, $4, $5, $6)")
DELETE_UNMATCHED = ("DELETE FROM unmatched_reports WHERE connector = $1 AND upstream_id = $2 "
                    "AND reported_at = $3")

# -- messages: reads and the customer's changes ------------------------------------------
SELECT_MESSAGES = f"SELECT {_MSG} FROM messages"
MESSAGE = f"{SELECT_MESSAGES} WHERE id = $1"
UNSENT_NOW = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at IS NULL "
              "AND id > $1 ORDER BY id LIMIT $2")
# Left to itself SQLite's planner walks the primary key here (id > ?, ORDER BY id) through
# every message ever stored; the due scheduled ones are few: their index, then a sort.
_BY_SCHEDULE = f"SELECT {_MSG} FROM messages{{indexed_by messages_scheduled}}"
UNSENT_DUE = (f"{_BY_SCHEDULE} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= $1 "
              "AND id > $2 ORDER BY id LIMIT $3")
SCHEDULED = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= $1 "
             "ORDER BY schedule_at, id LIMIT $2")
# The same, of one node's messages only (store/ownership.py)
UNSENT_NOW_OF = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at IS NULL "
                 "AND node = $3 AND id > $1 ORDER BY id LIMIT $2")
UNSENT_DUE_OF = (f"{_BY_SCHEDULE} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= $1 "
                 "AND node = $4 AND id > $2 ORDER BY id LIMIT $3")
SCHEDULED_OF = (f"{SELECT_MESSAGES} WHERE sent_at IS NULL AND {LIVE} AND schedule_at <= $1 "
                "AND node = $3 ORDER BY schedule_at, id LIMIT $2")
EXPIRING = f"{SELECT_MESSAGES} WHERE {LIVE} AND expires_at < $1 ORDER BY expires_at LIMIT $2"
CANCEL = ("UPDATE messages SET status = 'DELETED', done_at = $1 WHERE account_id = $2 "
          f"AND sent_at IS NULL AND status = 'ATES' AND id = ANY($3) RETURNING {_MSG}")
REPLACE = ("UPDATE messages SET payload = $1, schedule_at = COALESCE($2, schedule_at), "
           "expires_at = COALESCE($3, expires_at), "
           "registered_delivery = COALESCE($4, registered_delivery) "
           "WHERE id = $5 AND account_id = $6 AND sent_at IS NULL AND status = 'ATES'")
# find_pending adds "AND dest_addr = $3" and "AND service_type = $n" when given
FIND_PENDING = ("SELECT id FROM messages WHERE account_id = $1 AND source_addr = $2 "
                f"AND sent_at IS NULL AND {LIVE}")
BY_UPSTREAM_ID = (f"{SELECT_MESSAGES} WHERE connector = $1 AND upstream_id <> '' "
                  "AND upstream_id = ANY($2) ORDER BY id")
PART_BY_UPSTREAM_ID = ("SELECT message_id, part FROM message_parts WHERE connector = $1 "
                       "AND upstream_id = ANY($2) ORDER BY message_id LIMIT 1")
PART_STATUSES = "SELECT part, status FROM message_parts WHERE message_id = $1"
UNMATCHED = ("SELECT id, connector, upstream_id, status, error_code, reported_at, "
             "received_at FROM unmatched_reports ORDER BY id DESC LIMIT $1")

# -- receipts ---------------------------------------------------------------------------
DUE_RECEIPTS = (f"SELECT {columns(RECEIPT_COLUMNS)} FROM pending_receipts "
                "WHERE account_id = $1 AND next_attempt_at <= $2 AND expires_at > $2 "
                "ORDER BY id LIMIT $3")
PURGE_EXPIRED_RECEIPTS = "DELETE FROM pending_receipts WHERE expires_at <= $1"

# -- HTTP callbacks (dlrurl, mo-url) and MO ----------------------------------------------
_CALLBACK = columns(CALLBACK_COLUMNS)
INSERT_CALLBACK = _insert("dlr_callbacks", CALLBACK_INSERT_COLUMNS)
DELETE_CALLBACKS = "DELETE FROM dlr_callbacks WHERE id = ANY($1)"
CLAIM_CALLBACKS = ("UPDATE dlr_callbacks SET holder = $1 WHERE id IN (SELECT id FROM "
                   "dlr_callbacks WHERE holder = '' AND next_attempt_at <= $2 "
                   "ORDER BY next_attempt_at, id LIMIT $3{skip_locked}) "
                   f"RETURNING {_CALLBACK}")
RELEASE_CALLBACKS = "UPDATE dlr_callbacks SET holder = '' WHERE holder = $1"
COUNT_CALLBACKS = "SELECT count(*) FROM dlr_callbacks"
_INBOUND = columns(INBOUND_COLUMNS)
INSERT_INBOUND = _insert("inbound_messages", INBOUND_COLUMNS)
SET_JOINED = "UPDATE inbound_messages SET joining = 0 WHERE id = ANY($1)"
JOINING_INBOUND = f"SELECT {_INBOUND} FROM inbound_messages WHERE joining = 1 ORDER BY id"
RECENT_INBOUND = f"SELECT {_INBOUND} FROM inbound_messages ORDER BY id DESC LIMIT $1"

# -- nodes, bind leases, work ownership (their modules say why) ----------------------------
CLAIM_NODE = nodes.CLAIM
HEARTBEAT_NODE = nodes.HEARTBEAT
STOP_NODE = nodes.STOP
LIST_NODES = nodes.LIST
ONE_NODE = nodes.ONE
LIVE_BINDS = bind_leases.LIVE
TAKE_BIND = bind_leases.TAKE
GIVE_BACK_BIND = bind_leases.GIVE_BACK
FORGET_NODE_BINDS = bind_leases.FORGET_NODE
TAKE_OVER = ownership.TAKE_OVER.replace("{columns}", _MSG)
RELEASE_DEAD_CALLBACKS = ownership.RELEASE_CALLBACKS

# -- the admin API (store/admin.py says why) -----------------------------------------------
ADD_TOKEN = admin.ADD_TOKEN
TOKENS = admin.TOKENS
TOKEN_BY_HASH = admin.TOKEN_BY_HASH
REVOKE_TOKEN = admin.REVOKE_TOKEN
TOUCH_TOKEN = admin.TOUCH_TOKEN
SESSIONS = admin.SESSIONS
KICK = admin.KICK
KICKED = admin.KICKED
PARTS = admin.PARTS
RECEIPTS_OF = admin.RECEIPTS_OF
CALLBACKS_OF = admin.CALLBACKS_OF
STATUS_SERIES = admin.STATUS_SERIES
DELIVERIES_OF = admin.DELIVERIES_OF
LOG_RECEIPTS = admin.LOG_RECEIPTS
LOG_CALLBACKS = admin.LOG_CALLBACKS
ADD_STATUS_COUNT = admin.ADD_STATUS_COUNT
