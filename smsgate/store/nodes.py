"""The nodes table's statements (SPEC §9), written once for both backends.

Times come from the database's clock, not the node's: on PostgreSQL every node then
stamps and judges heartbeats by one clock, so a node whose clock runs a few seconds
behind is not taken for dead. (On SQLite the database's clock is the machine's.)

The statements are spelled as in store/dialect.py (`$1`, `{now}`); on SQLite `{now}` is
julianday('now'), which has millisecond precision.
"""

from ..core.models import NodeFigures, NodeStatus

# A claim resets the row whoever held it: the caller holds the lock that proves no other
# live process is this node.
_RATES = "messages_per_second, delivered_per_second, failed_per_second"
_NO_RATES = "messages_per_second = 0, delivered_per_second = 0, failed_per_second = 0"
_COLUMNS = ("id, address, started_at, heartbeat_at, stopped_at, smpp_sessions, "
            f"upstream_binds, {_RATES}, {{now}} - heartbeat_at")

CLAIM = ("INSERT INTO nodes (id, run_id, address, started_at, heartbeat_at) "
         "VALUES ($1, $2, '', {now}, {now}) ON CONFLICT (id) DO UPDATE SET "
         "run_id = excluded.run_id, address = '', started_at = excluded.started_at, "
         "heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, smpp_sessions = 0, "
         f"upstream_binds = 0, {_NO_RATES}")
HEARTBEAT = ("UPDATE nodes SET heartbeat_at = {now}, address = $3, smpp_sessions = $4, "
             "upstream_binds = $5, messages_per_second = $6, delivered_per_second = $7, "
             "failed_per_second = $8 WHERE id = $1 AND run_id = $2")
STOP = ("UPDATE nodes SET stopped_at = {now}, heartbeat_at = {now}, smpp_sessions = 0, "
        f"upstream_binds = 0, {_NO_RATES} WHERE id = $1 AND run_id = $2")
LIST = f"SELECT {_COLUMNS} FROM nodes ORDER BY id"
ONE = f"SELECT {_COLUMNS} FROM nodes WHERE id = $1"


def heartbeat_args(node_id: str, run_id: str, address: str, figures: NodeFigures) -> tuple:
    return (node_id, run_id, address, figures.smpp_sessions, figures.upstream_binds,
            figures.messages_per_second, figures.delivered_per_second,
            figures.failed_per_second)


def node_from_row(row) -> NodeStatus:
    (node_id, address, started_at, heartbeat_at, stopped_at, sessions, binds, *rates,
     silent_for) = row
    return NodeStatus(node_id, address, started_at, heartbeat_at, stopped_at,
                      NodeFigures(sessions, binds, *rates), max(0.0, silent_for))


def alive_message(node: NodeStatus | None, node_id: str) -> str:
    """Why a second `serve --node-id` is refused, in one line."""
    where = f" at {node.address}" if node is not None and node.address else ""
    when = (f", last heartbeat {node.silent_for:.1f} s ago" if node is not None else "")
    return (f"node {node_id!r} is already running{where}{when}: stop it, or start this "
            "one with another --node-id")
