"""The admin API's statements (SPEC §10), written once for both backends in the spelling
of store/dialect.py (store/statements.py names them; store/sql_store.py runs them).

Tokens are looked up by their hash (the UNIQUE index); the caller compares it again in
constant time. Sessions are the bind leases of live runs (store/bind_leases.py), so a
list shows every node's sessions; a kick sets the lease's `kick_at`, which the node
holding the session reads and acts on (core/sessions.py): one mechanism for one node
and for many, with no call from node to node.

Message searches read newest first by id (ids grow with time on every node), so a
page is one backward walk of the primary key that stops after `limit` matches; the
cursor is the last id of the previous page.
"""

from ..core.models import (
    NODE_DEAD_AFTER,
    AdminToken,
    MessagePart,
    MessageQuery,
    SessionLease,
)
from . import rows

_TOKEN = "name, created_at, last_used_at, revoked_at"
ADD_TOKEN = "INSERT INTO admin_tokens (name, token_hash, created_at) VALUES ($1, $2, $3)"
TOKENS = f"SELECT {_TOKEN} FROM admin_tokens ORDER BY name"
TOKEN_BY_HASH = f"SELECT {_TOKEN}, token_hash FROM admin_tokens WHERE token_hash = $1"
REVOKE_TOKEN = ("UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) "
                "WHERE name = $1")
TOUCH_TOKEN = "UPDATE admin_tokens SET last_used_at = $2 WHERE name = $1"

_LIVE_RUN = (f"JOIN nodes n ON n.id = l.node_id AND n.run_id = l.run_id "
             f"AND n.stopped_at IS NULL AND {{now}} - n.heartbeat_at < {NODE_DEAD_AFTER}")
SESSIONS = ("SELECT l.node_id, l.session, l.account_id, COALESCE(a.system_id, ''), l.kind, "
            "l.acquired_at, l.kick_at FROM bind_leases l " + _LIVE_RUN +
            " LEFT JOIN accounts a ON a.id = l.account_id ORDER BY l.node_id, l.acquired_at")
KICK = ("UPDATE bind_leases SET kick_at = {now} WHERE node_id = $1 AND session = $2 "
        "AND EXISTS (SELECT 1 FROM nodes n WHERE n.id = bind_leases.node_id "
        "AND n.run_id = bind_leases.run_id AND n.stopped_at IS NULL "
        f"AND {{now}} - n.heartbeat_at < {NODE_DEAD_AFTER})")
KICKED = ("SELECT session FROM bind_leases WHERE node_id = $1 AND run_id = $2 "
          "AND kick_at IS NOT NULL")

PARTS = ("SELECT part, connector, upstream_id, status FROM message_parts "
         "WHERE message_id = $1 ORDER BY part")
RECEIPTS_OF = ("SELECT id, status, created_at, attempts, next_attempt_at, expires_at "
               "FROM pending_receipts WHERE message_id = $1 AND kind = 'receipt' ORDER BY id")
CALLBACKS_OF = ("SELECT id, status, created_at, attempts, next_attempt_at, holder "
                "FROM dlr_callbacks WHERE message_id = $1 AND status <> 'MO' ORDER BY id")
# The outbox rows leaving in a group commit, logged before they are deleted (same
# transaction); $1 the list of the batch's ids. Attempts count the one that ended the
# row's life.
LOG_RECEIPTS = ("INSERT INTO deliveries (message_id, kind, status, outcome, attempts, at) "
                "SELECT message_id, kind, status, 'delivered', attempts + 1, $2 "
                "FROM pending_receipts WHERE id = ANY($1)")
LOG_CALLBACKS = ("INSERT INTO deliveries (message_id, kind, status, outcome, attempts, at) "
                 "SELECT message_id, CASE WHEN status = 'MO' THEN 'mo-url' ELSE 'callback' "
                 "END, status, $3, attempts + 1, $2 FROM dlr_callbacks WHERE id = ANY($1)")
DELIVERIES_OF = ("SELECT kind, status, outcome, attempts, at FROM deliveries "
                 "WHERE message_id = $1 ORDER BY at")
# Status changes per bucket of `step` seconds (a multiple of the stored buckets'), over
# the nodes, in [since, until): integer division on both backends
STATUS_SERIES = ("SELECT bucket / $3, status, sum(count) FROM status_counts "
                 "WHERE bucket >= $1 AND bucket < $2 GROUP BY 1, 2 ORDER BY 1, 2")
# What a node's count of a status in a bucket grew by (core/status_history.py)
ADD_STATUS_COUNT = ("INSERT INTO status_counts (node, bucket, status, count) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (bucket, node, status) "
                    "DO UPDATE SET count = status_counts.count + excluded.count")



def search(query: MessageQuery) -> tuple[str, list]:
    """The SELECT of a message search and its arguments."""
    where, args = [], []

    def arg(value) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.account_id is not None:
        where.append(f"account_id = {arg(query.account_id)}")
    if query.dest_addr:
        # a prefix of digits (checked by the caller): nothing in it means anything to LIKE
        where.append(f"dest_addr LIKE {arg(query.dest_addr + '%')}")
    if query.status is not None:
        where.append(f"status = {arg(query.status)}")
    if query.since is not None:
        where.append(f"created_at >= {arg(query.since)}")
    if query.until is not None:
        where.append(f"created_at < {arg(query.until)}")
    if query.before_id is not None:
        where.append(f"id < {arg(query.before_id)}")
    sql = f"SELECT {rows.columns(rows.MESSAGE_COLUMNS)} FROM messages"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY id DESC LIMIT {arg(query.limit)}", args


def token_from_row(row) -> AdminToken:
    return AdminToken(*row[:4])


def session_from_row(row) -> SessionLease:
    node_id, session, account_id, system_id, kind, acquired_at, kick_at = row
    return SessionLease(node_id, session, account_id, system_id, kind, acquired_at,
                        kick_at is not None)


def part_from_row(row) -> MessagePart:
    return MessagePart(*row)
