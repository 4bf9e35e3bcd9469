"""PostgreSQL's messages history in time partitions (issue 10 item 7; SPEC §10 retention).

`messages` and `message_parts` are range-partitioned on the message id, with the same
bounds. Why the id and not the created time: every hot statement finds messages by id
(status and sent updates, get_message, cancel), and those prune to one partition; with
created_at as the key each of them would probe every partition, and the primary key
would have to include created_at, so that the id alone were no longer unique. Ids grow
with time (core/ids.py: the counter of a shared sequence, in the high bits), so an id
range is a time range: a partition holds about PERIOD seconds of traffic.

Bounds are counters (`id >> TAG_BITS`): partition `messages_<lo>` holds the ids of the
counters [lo, hi). `message_partitions` lists them. The first, `messages_0`, is the
table the migration found (from MINVALUE); a DEFAULT partition takes an id of no range
(an id that is not ours), so that an insert never fails for want of a partition.

Created ahead: the store keeps one whole empty partition after the one the id counter
is in. It checks when it hands out ids past the start of the last partition
(`allocate_ids`), at migrate (start) and on each retention pass, under an advisory lock
so that nodes do not create one twice. Each new partition spans what the counter
advances in PERIOD seconds, measured since the last one was made (partitions.span).

Dropped whole: a retention pass drops, oldest first, each partition (not the last two)
in which no message is newer than the cut-off nor still waiting to be sent: checked by
one scan that stops at the first such row, since a node may still hand out ids from a
block it reserved long ago. What is not dropped goes in steps as on SQLite
(store/retention.py).
"""

from ..core.ids import TAG_BITS
from .rows import LIVE

PERIOD = 86_400.0  # seconds of traffic per partition, as measured
MIN_SPAN = 1 << 17  # counters: ~131k messages
MAX_SPAN = 1 << 34
LOCK_KEY = 0x736D7370  # "smsp": one node at a time creates or drops partitions
TABLES = (("messages", "id"), ("message_parts", "message_id"))

LOCK = f"SELECT pg_advisory_xact_lock({LOCK_KEY})"
EXISTS = "SELECT to_regclass('message_partitions')"  # None before migration 0012
LAST = ("SELECT lo, hi, created_at FROM message_partitions ORDER BY lo DESC LIMIT 1")
ALL = "SELECT lo, hi FROM message_partitions ORDER BY lo"
COUNTER = "SELECT value FROM id_sequence WHERE name = 'message'"
RECORD = "INSERT INTO message_partitions (lo, hi, created_at) VALUES ($1, $2, $3)"
FORGET = "DELETE FROM message_partitions WHERE lo = $1"


def name(table: str, lo: int) -> str:
    return f"{table}_{lo}"


def create(lo: int, hi: int) -> list[str]:
    """The partitions of counters [lo, hi) of both tables."""
    return [f"CREATE TABLE {name(table, lo)} PARTITION OF {table} "
            f"FOR VALUES FROM ({lo << TAG_BITS}) TO ({hi << TAG_BITS})"
            for table, _ in TABLES]


def drop(lo: int) -> list[str]:
    return [f"DROP TABLE {name(table, lo)}" for table, _ in TABLES]


def still_needed(lo: int) -> str:
    """Whether partition `lo` holds a message newer than $1 or still waiting."""
    return (f"SELECT EXISTS (SELECT 1 FROM {name('messages', lo)} "
            f"WHERE created_at >= $1 OR {LIVE})")


def counted(lo: int) -> str:
    return f"SELECT count(*) FROM {name('messages', lo)}"


def span(lo: int, hi: int, created_at: float, counter: int, now: float,
         min_span: int = MIN_SPAN, period: float = PERIOD) -> int:
    """The next partition's width in counters: what the counter advanced per PERIOD since
    the last partition, [lo, hi), was made (at `created_at`); at most 4 times that
    partition's width, as a node reserves ids in blocks (core/ids.py), and a block taken
    soon after a partition was made would look like a burst."""
    elapsed = max(now - created_at, 1.0)
    per_period = int(max(counter - lo, 0) * period / elapsed)
    return min(max(per_period, min_span), max(4 * (hi - lo), min_span), MAX_SPAN)


# The migration: the table as it was becomes the first partition, `messages_0`, whose
# range ends past the counter reserved so far (every id handed out, or ever to be handed
# out of the blocks nodes hold now, falls in it); the store makes the next at migrate.
_UNSENT = f"sent_at IS NULL AND {LIVE}"
_MESSAGES_INDEXES = (  # as migrations 0001 and 0004 made them
    ("messages_unsent", f"(id) WHERE {_UNSENT} AND schedule_at IS NULL"),
    ("messages_scheduled", f"(schedule_at) WHERE {_UNSENT} AND schedule_at IS NOT NULL"),
    ("messages_expiry", f"(expires_at) WHERE {LIVE} AND expires_at IS NOT NULL"),
    ("messages_pending_addr", f"(account_id, source_addr, dest_addr) WHERE {_UNSENT}"),
    ("messages_upstream", "(connector, upstream_id) WHERE upstream_id <> ''"),
)


def _convert(table: str, key: str, indexes: tuple[tuple[str, str], ...]) -> str:
    renames = "".join(f"ALTER INDEX {index} RENAME TO {index}_0;\n" for index, _ in indexes)
    creates = "".join(f"CREATE INDEX {index} ON {table} {spec};\n" for index, spec in indexes)
    return f"""
ALTER TABLE {table} RENAME TO {table}_0;
ALTER TABLE {table}_0 RENAME CONSTRAINT {table}_pkey TO {table}_0_pkey;
{renames}CREATE TABLE {table} (LIKE {table}_0 INCLUDING DEFAULTS) PARTITION BY RANGE ({key});
{creates}CREATE TABLE {table}_default PARTITION OF {table} DEFAULT;
"""


MIGRATION_POSTGRES = (
    _convert("messages", "id", _MESSAGES_INDEXES)
    + "ALTER TABLE messages ADD PRIMARY KEY (id);\n"
    # The API's search by account and time (SPEC §10)
    + "CREATE INDEX messages_account_time ON messages (account_id, created_at);\n"
    + _convert("message_parts", "message_id",
               (("message_parts_upstream", "(connector, upstream_id)"),))
    + "ALTER TABLE message_parts ADD PRIMARY KEY (message_id, part);\n"
    + """CREATE TABLE message_partitions (
    lo BIGINT PRIMARY KEY, hi BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
DO $$
DECLARE hi BIGINT := (SELECT value + 1 FROM id_sequence WHERE name = 'message');
BEGIN
    EXECUTE format('ALTER TABLE messages ATTACH PARTITION messages_0 '
                   'FOR VALUES FROM (MINVALUE) TO (%s)', hi << """ + str(TAG_BITS) + """);
    EXECUTE format('ALTER TABLE message_parts ATTACH PARTITION message_parts_0 '
                   'FOR VALUES FROM (MINVALUE) TO (%s)', hi << """ + str(TAG_BITS) + """);
    INSERT INTO message_partitions (lo, hi, created_at)
        VALUES (0, hi, extract(epoch from clock_timestamp()));
END $$""")


async def ensure(pool, min_span: int = MIN_SPAN, period: float = PERIOD) -> int | None:
    """Create partitions until a whole empty one follows the id counter's; the first
    counter of the last partition (past which ids call for this again), or None before
    the migration made the table."""
    async with pool.acquire() as c, c.transaction():
        if await c.fetchval(EXISTS) is None:
            return None
        await c.execute(LOCK)
        counter = await c.fetchval(COUNTER)
        lo, hi, created_at = await c.fetchrow(LAST)
        while counter >= lo:
            now = await c.fetchval("SELECT extract(epoch from clock_timestamp())::float8")
            width = span(lo, hi, created_at, counter, now, min_span, period)
            for sql in create(hi, hi + width):
                await c.execute(sql)
            await c.execute(RECORD, hi, hi + width, now)
            lo, hi, created_at = hi, hi + width, now
        return lo


async def drop_old(pool, before: float) -> int:
    """Drop, oldest first, the partitions that hold nothing retention keeps; the number
    of messages they held. Each goes in three short steps, so that traffic never waits
    on a scan: (1) a look without locks for a reason to keep it; (2) DETACH, a moment's
    exclusive lock on the parents, after which an id of its range would go to the
    DEFAULT partition; (3) rows that became worth keeping meanwhile (a node may still
    hand out ids of an old block) are moved back into the table, the rest dropped."""
    dropped = 0
    async with pool.acquire() as c:
        if await c.fetchval(EXISTS) is None:
            return 0
        found = await c.fetch(ALL)
        for lo, _hi in [tuple(r) for r in found][:-2]:  # never the current or the next
            if await c.fetchval(still_needed(lo), before):
                break
            async with c.transaction():
                await c.execute(LOCK)
                for table, _ in TABLES:
                    await c.execute(f"ALTER TABLE {table} DETACH PARTITION {name(table, lo)}")
                await c.execute(FORGET, lo)
            async with c.transaction():
                dropped += await _keep_and_drop(c, lo, before)
    return dropped


async def _keep_and_drop(c, lo: int, before: float) -> int:
    messages, parts = name("messages", lo), name("message_parts", lo)
    kept = f"SELECT id FROM {messages} WHERE created_at >= $1 OR {LIVE}"
    await c.execute(f"INSERT INTO message_parts SELECT * FROM {parts} "
                    f"WHERE message_id IN ({kept})", before)
    status = await c.execute(f"INSERT INTO messages SELECT * FROM {messages} "
                             f"WHERE id IN ({kept})", before)
    total = await c.fetchval(counted(lo))
    # the outbox log of the messages that go (store/admin.py; retention's dependents)
    await c.execute(f"DELETE FROM deliveries WHERE message_id IN (SELECT id FROM {messages} "
                    f"WHERE id NOT IN ({kept}))", before)
    for sql in drop(lo):
        await c.execute(sql)
    return total - int(status.split()[-1])
