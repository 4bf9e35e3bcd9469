"""The bind_leases table's statements (SPEC §9: the bind policy holds cluster-wide),
written once for both backends in the spelling of store/dialect.py.

A lease is one bound customer session on one node's run. Only leases of live runs
count: a node that stopped, or is silent for NODE_DEAD_AFTER seconds, or was restarted
(a new run_id) holds none, so a receiver's slot is free again within seconds of its
node's death, whatever became of the row.
"""

from ..core.models import NODE_DEAD_AFTER

LIVE = ("SELECT l.kind FROM bind_leases l JOIN nodes n "
        "ON n.id = l.node_id AND n.run_id = l.run_id "
        f"WHERE l.account_id = $1 AND n.stopped_at IS NULL "
        f"AND {{now}} - n.heartbeat_at < {NODE_DEAD_AFTER}")
TAKE = ("INSERT INTO bind_leases (node_id, run_id, session, account_id, kind, acquired_at) "
        "VALUES ($1, $2, $3, $4, $5, {now})")
GIVE_BACK = "DELETE FROM bind_leases WHERE node_id = $1 AND session = $2"
# A claim of the node drops what its earlier runs left
FORGET_NODE = "DELETE FROM bind_leases WHERE node_id = $1 AND run_id <> $2"


def refusal(kinds: list[str], kind: str, max_tx: int) -> str | None:
    """Why the bind policy refuses a `kind` bind beside the live leases' kinds."""
    if kind in ("rx", "trx"):
        if any(k in ("rx", "trx") for k in kinds):
            return "a receiver session is already bound (on another node)"
        return None
    if sum(1 for k in kinds if k == "tx") >= max_tx:
        return f"max_tx {max_tx} reached across the nodes"
    return None
