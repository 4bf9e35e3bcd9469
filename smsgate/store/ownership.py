"""Work ownership across nodes (SPEC §9), written once for both backends in the spelling
of store/dialect.py.

A message belongs to the node that accepted it (`messages.node`) until its upstream took
it: only that node recovers it after a restart, sends it when its schedule comes, and
holds it in its dispatcher. When a node is no longer alive (silent NODE_DEAD_AFTER
seconds, or stopped), the live nodes take its unsent messages over, each a disjoint
share (PostgreSQL: FOR UPDATE SKIP LOCKED), and release the callbacks it held.
"""

from ..core.models import NODE_DEAD_AFTER
from .rows import LIVE

LIVE_NODES = ("SELECT id FROM nodes WHERE stopped_at IS NULL "
              f"AND {{now}} - heartbeat_at < {NODE_DEAD_AFTER}")
# $1 taker, $2 at most this many; {columns}: the message columns (statements.py).
# SQLite, without statistics, reads the whole table in id order for the ORDER BY
# (2.2 s on 20 million messages, the store stalled meanwhile) instead of the partial
# index of the unsent ones, which this WHERE matches (3 ms).
TAKE_OVER = ("UPDATE messages SET node = $1 WHERE id IN (SELECT id FROM messages"
             "{indexed_by messages_pending_addr} "
             f"WHERE sent_at IS NULL AND {LIVE} AND node <> $1 "
             f"AND node NOT IN ({LIVE_NODES}) ORDER BY id LIMIT $2{{skip_locked}}) "
             "RETURNING {columns}")
RELEASE_CALLBACKS = ("UPDATE dlr_callbacks SET holder = '' WHERE holder <> '' "
                     f"AND holder NOT IN ({LIVE_NODES})")
