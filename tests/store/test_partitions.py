"""PostgreSQL's messages in time partitions (issue 10 item 7, store/partitions.py), on a
real server: made ahead, crossed by inserts, dropped by retention, made from an old
schema with its rows."""

import time

import pytest
from store_helpers import funded, message

from smsgate.core import retention
from smsgate.core.ids import TAG_BITS
from smsgate.core.models import DELIVRD, SentUpdate, StatusUpdate, WriteBatch
from smsgate.store import open_store
from smsgate.store.migrations import MIGRATIONS, SCHEMA_MIGRATIONS_POSTGRES
from smsgate.store.postgres import PostgresStore

pytestmark = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
DAY = retention.DAY
SPAN = 8  # counters per partition in these tests


@pytest.fixture
async def pg(store_url):
    store = open_store(store_url)
    store.partition_min_span = SPAN
    store.partition_period = 1e-6  # so that each new partition is SPAN counters wide
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def _partitions(store, table: str) -> list[str]:
    found = await store.pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass ORDER BY c.relname", table)
    return [r[0] for r in found]


async def _where(store, ids: list[int]) -> dict[int, str]:
    found = await store.pool.fetch("SELECT id, tableoid::regclass::text FROM messages "
                                   "WHERE id = ANY($1)", ids)
    return {r[0]: r[1] for r in found}


async def _new_ids(store, count: int) -> list[int]:
    """Ids as core/ids.py makes them (tag 0): counters from the store, in the high bits."""
    first = await store.allocate_ids(count)
    return [(first + n) << TAG_BITS for n in range(count)]


async def test_a_fresh_database_has_a_partition_ahead_and_a_default(pg) -> None:
    await pg.migrate()
    bounds = [tuple(r) for r in await pg.pool.fetch(
        "SELECT lo, hi FROM message_partitions ORDER BY lo")]
    assert bounds == [(0, 1), (1, 1 + SPAN)]
    for table in ("messages", "message_parts"):
        assert await _partitions(pg, table) == sorted(
            [f"{table}_0", f"{table}_1", f"{table}_default"])


async def test_inserts_and_lookups_across_partition_boundaries(pg) -> None:
    await pg.migrate()
    account = await funded(pg, credits=1000)
    ids = [i for _ in range(5) for i in await _new_ids(pg, 5)]  # 25 counters: 4 partitions
    messages = [message(account.id, id=i, connector="up") for i in ids]
    await pg.write(WriteBatch(new_messages=messages))
    where = await _where(pg, ids)
    assert len(set(where.values())) >= 3 and "messages_default" not in where.values()
    now = time.time()
    await pg.write(WriteBatch(
        sent=[SentUpdate(m.id, "up", now, f"u{n}", part_ids=(f"u{n}", f"v{n}"))
              for n, m in enumerate(messages)],
        statuses=[StatusUpdate(messages[-1].id, DELIVRD, now)]))
    assert [m.id for m in await pg.messages_by_upstream_id("up", ["u0", "u12", "u24"])] \
        == [ids[0], ids[12], ids[24]]
    assert await pg.part_by_upstream_id("up", ["v13"]) == (ids[13], 1)
    assert (await pg.get_message(ids[-1])).status == DELIVRD
    assert (await pg.get_message(ids[0])).upstream_id == "u0"
    bounds = [r[0] for r in await pg.pool.fetch("SELECT lo FROM message_partitions")]
    assert max(bounds) > ids[-1] >> TAG_BITS  # still a whole partition ahead


async def test_retention_drops_old_partitions_whole_and_keeps_what_waits(pg) -> None:
    await pg.migrate()
    account = await funded(pg, credits=1000)
    now = time.time()
    old = [message(account.id, id=i, price=0, status=DELIVRD, created_at=now - 100 * DAY)
           for i in await _new_ids(pg, 2 * SPAN)]
    waiting = message(account.id, id=(await _new_ids(pg, 1))[0], price=0,
                      created_at=now - 100 * DAY, schedule_at=now + DAY)
    old_after = [message(account.id, id=i, price=0, status=DELIVRD,
                         created_at=now - 100 * DAY) for i in await _new_ids(pg, 3)]
    young = [message(account.id, id=i, price=0) for i in await _new_ids(pg, 3 * SPAN)]
    await pg.write(WriteBatch(new_messages=[*old, waiting, *old_after, *young]))
    await pg.write(WriteBatch(sent=[SentUpdate(old[0].id, "up", now, "a", part_ids=("a", "b"))]))
    assert set((await _where(pg, [m.id for m in old])).values()) == {"messages_1",
                                                                     "messages_9"}
    assert (await _where(pg, [waiting.id]))[waiting.id] == "messages_17"

    deleted = await retention.purge(pg, now - 90 * DAY)
    after = await _partitions(pg, "messages")
    assert not {"messages_0", "messages_1", "messages_9"} & set(after)  # dropped whole
    assert "messages_17" in after  # a message there still waits
    assert await _where(pg, [m.id for m in (*old, *old_after)]) == {}  # those in steps
    assert deleted["messages"] == len(old) + len(old_after)
    assert await pg.part_statuses(old[0].id) == {}
    assert await pg.pool.fetchval("SELECT to_regclass('message_parts_1')") is None
    for kept in (waiting, *young):
        assert await pg.get_message(kept.id) is not None
    assert (await retention.purge(pg, now - 90 * DAY))["messages"] == 0


async def test_an_upgrade_keeps_the_messages_and_partitions_what_follows(pg) -> None:
    await pg.pool.execute(SCHEMA_MIGRATIONS_POSTGRES)
    for migration in MIGRATIONS:
        if migration.name < "0012":
            await pg.pool.execute(migration.postgres)
            await pg.pool.execute("INSERT INTO schema_migrations (name, applied_at) "
                                  "VALUES ($1, 0)", migration.name)
    account = await funded(pg, credits=1000)
    first = await pg.allocate_ids(100)  # blocks handed out before the upgrade
    stored = [message(account.id, id=(first + n) << TAG_BITS, connector="up")
              for n in range(100)]
    await pg.write(WriteBatch(new_messages=stored))
    await pg.write(WriteBatch(sent=[SentUpdate(stored[7].id, "up", time.time(), "x7",
                                               part_ids=("x7", "y7"))]))

    assert await pg.migrate() == ["0012_partitions"]
    assert set((await _where(pg, [m.id for m in stored])).values()) == {"messages_0"}
    assert (await pg.get_message(stored[99].id)).id == stored[99].id
    assert [m.id for m in await pg.messages_by_upstream_id("up", ["x7"])] == [stored[7].id]
    assert await pg.part_by_upstream_id("up", ["y7"]) == (stored[7].id, 1)
    newer = [message(account.id, id=i) for i in await _new_ids(pg, 3)]
    await pg.write(WriteBatch(new_messages=newer))
    assert set((await _where(pg, [m.id for m in newer])).values()) == {"messages_101"}
    indexes = {r[0] for r in await pg.pool.fetch(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'messages'")}
    assert {"messages_pkey", "messages_upstream", "messages_unsent",
            "messages_account_time"} <= indexes


async def test_a_message_that_came_during_the_drop_is_moved_back(pg) -> None:
    """Between retention's look and its DETACH a node may still store a message with an
    id of an old block: the drop's last step moves it back (to the DEFAULT partition)."""
    from smsgate.store import partitions
    await pg.migrate()
    account = await funded(pg, credits=1000)
    now = time.time()
    old = [message(account.id, id=i, price=0, status=DELIVRD, created_at=now - 100 * DAY)
           for i in await _new_ids(pg, SPAN)]
    late = message(account.id, id=old[-1].id + 1, price=0)  # same counter, another tag
    await pg.write(WriteBatch(new_messages=[*old, late]))
    await pg.write(WriteBatch(sent=[SentUpdate(late.id, "up", now, "l", part_ids=("l", "m"))]))
    async with pg.pool.acquire() as c:
        for table, _ in partitions.TABLES:
            await c.execute(f"ALTER TABLE {table} DETACH PARTITION {table}_1")
        await c.execute(partitions.FORGET, 1)
        assert await partitions._keep_and_drop(c, 1, now - 90 * DAY) == len(old)
    assert await pg.pool.fetchval("SELECT to_regclass('messages_1')") is None
    assert await _where(pg, [late.id]) == {late.id: "messages_default"}
    assert await pg.part_by_upstream_id("up", ["m"]) == (late.id, 1)
    assert await _where(pg, [m.id for m in old]) == {}


async def test_the_group_commit_plans_its_statements_once_for_all_partitions(
        store_url) -> None:
    """A custom plan prunes the partitions at each execution (~0.3 ms of planning with
    8 of them); the group commit's statements use the generic plan, which prunes at run
    time. Only its own transactions: the setting is local to them."""
    store = PostgresStore(store_url)
    await store.open()
    try:
        await store.migrate()
        account = await funded(store, credits=100)
        for _ in range(6):  # past the 5 custom plans PostgreSQL tries before a generic one
            m = message(account.id)
            await store.write(WriteBatch(new_messages=[m]))
            await store.write(WriteBatch(statuses=[StatusUpdate(m.id, DELIVRD, time.time())]))
        committing = store._commit_pool  # the group commit's own connection, inspected
        plans = await committing.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE 'UPDATE messages m SET status%'")
        assert plans["custom_plans"] == 0 and plans["generic_plans"] == 6
        assert await committing.fetchval("SHOW plan_cache_mode") == "auto"
    finally:
        await store.close()
