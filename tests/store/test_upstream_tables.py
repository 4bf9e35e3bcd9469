"""Connectors, routes, numbers, connector states and upstream-id lookups (SPEC §8), on
each backend."""

import time

import pytest
from store_helpers import funded, message

from smsgate.core.models import (
    CREDIT_SCALE,
    Connector,
    ConnectorState,
    InboundNumber,
    Route,
    SentUpdate,
    StatusUpdate,
    WriteBatch,
)
from smsgate.core.ports import Conflict, InUse
from smsgate.store import open_store
from smsgate.store.migrations import MIGRATIONS, statements


async def test_routes_keep_cost_weight_and_senders(store) -> None:
    plain = await store.add_route(Route("", "simulator", CREDIT_SCALE))
    full = await store.add_route(Route("44", "up", 2500, None, -2, cost=1200, weight=7,
                                       senders=("Acme", "12345")))
    assert await store.list_routes() == [plain, full]
    assert (plain.cost, plain.weight, plain.senders) == (0, 1, ())
    assert await store.remove_route(plain.id) is True
    assert await store.remove_route(plain.id) is False
    assert await store.list_routes() == [full]


async def test_connector_enable_disable_get(store) -> None:
    await store.add_connector(Connector("up", "smpp", {"host": "h"}))
    assert await store.get_connector("up") == Connector("up", "smpp", {"host": "h"}, True)
    assert await store.get_connector("nope") is None
    assert await store.set_connector_enabled("up", False) is True
    assert (await store.get_connector("up")).enabled is False
    assert await store.set_connector_enabled("up", True) is True
    assert (await store.get_connector("up")).enabled is True
    assert await store.set_connector_enabled("nope", False) is False


async def test_remove_connector_refuses_while_routes_use_it(store) -> None:
    await store.add_connector(Connector("up", "simulator", {}))
    await store.add_connector(Connector("other", "simulator", {}))
    first = await store.add_route(Route("44", "up", 1))
    second = await store.add_route(Route("33", "up", 1, account_id=3))
    await store.add_route(Route("49", "other", 1))
    with pytest.raises(InUse) as info:
        await store.remove_connector("up")
    assert info.value.users == [f"route {first.id}", f"route {second.id}"]
    assert f"route {first.id}, route {second.id}" in str(info.value)
    assert await store.get_connector("up") is not None  # nothing removed
    await store.remove_route(first.id)
    await store.remove_route(second.id)
    await store.report_connector_state(ConnectorState("up", "n1", {"binds": 1}, time.time()))
    assert await store.remove_connector("up") is True
    assert await store.get_connector("up") is None
    assert [s.connector for s in await store.connector_states()] == []  # its states too
    assert await store.remove_connector("up") is False


async def test_numbers(store) -> None:
    acme = await funded(store)
    await store.add_number(InboundNumber("447700900", acme.id, "https://acme.example/mo"))
    await store.add_number(InboundNumber("12345", acme.id))
    with pytest.raises(Conflict):
        await store.add_number(InboundNumber("12345", 99))
    assert await store.list_numbers() == [InboundNumber("12345", acme.id, ""),
                                          InboundNumber("447700900", acme.id,
                                                        "https://acme.example/mo")]
    assert await store.remove_number("12345") is True
    assert await store.remove_number("12345") is False
    assert [n.number for n in await store.list_numbers()] == ["447700900"]


async def test_connector_states_upsert_per_node(store) -> None:
    assert await store.connector_states() == []
    a1 = ConnectorState("up", "node-a", {"binds": "1/2", "window": 3}, 1000.0)
    b1 = ConnectorState("up", "node-b", {"binds": "1/2"}, 1001.0)
    sim = ConnectorState("simulator", "node-a", {}, 1002.5)
    for state in (a1, b1, sim):
        await store.report_connector_state(state)
    a2 = ConnectorState("up", "node-a", {"binds": "2/2", "errors": 4}, 1010.0)
    await store.report_connector_state(a2)
    assert await store.connector_states() == [sim, a2, b1]


async def test_messages_by_upstream_id(store) -> None:
    acme = await funded(store, credits=100)
    sent = [message(acme.id, connector="up") for _ in range(4)]
    other = message(acme.id, connector="other")
    unsent = message(acme.id, connector="up")
    await store.write(WriteBatch(new_messages=[*sent, other, unsent]))
    now = time.time()
    await store.write(WriteBatch(
        sent=[SentUpdate(sent[0].id, "up", now, "0A1B"),
              SentUpdate(sent[1].id, "up", now, "2587")],
        statuses=[StatusUpdate(sent[2].id, "ATES", now, upstream_id="2587", sent_at=now,
                               connector="up"),
                  StatusUpdate(other.id, "ATES", now, upstream_id="0A1B", sent_at=now,
                               connector="other")]))
    found = await store.messages_by_upstream_id("up", ["2587", "0a1b", "0A1B"])
    assert [m.id for m in found] == sorted([sent[0].id, sent[1].id, sent[2].id])
    assert [m.id for m in await store.messages_by_upstream_id("other", ["0A1B"])] == [other.id]
    assert await store.messages_by_upstream_id("up", [""]) == []  # unsent: no id yet
    assert await store.messages_by_upstream_id("up", []) == []
    assert await store.messages_by_upstream_id("nowhere", ["2587"]) == []


async def test_sqlite_finds_upstream_ids_through_the_index(tmp_path) -> None:
    from smsgate.store.sqlite import SQL
    store = open_store(f"sqlite:///{tmp_path}/plan.db")
    await store.open()
    try:
        await store.migrate()
        sql = f"EXPLAIN QUERY PLAN {SQL.BY_UPSTREAM_ID}"
        plan = await store._run(lambda c: c.execute(sql, ("up", '["1", "2"]')).fetchall())
        assert any("messages_upstream" in row[-1] for row in plan), plan
    finally:
        await store.close()


async def test_migration_keeps_the_old_priority_order(store_url: str) -> None:
    """Before 0004 a higher priority won; after it a lower one goes first: stored
    priorities are negated, so that existing routes choose as before."""
    store = open_store(store_url)
    await store.open()
    try:
        before = [m for m in MIGRATIONS if m.name < "0004"]
        await _apply(store, before)
        await _run(store, "INSERT INTO routes (prefix, connector, price, account_id, priority) "
                   "VALUES ('44', 'main', 1, NULL, 5)")
        await _run(store, "INSERT INTO routes (prefix, connector, price, account_id, priority) "
                   "VALUES ('44', 'backup', 1, NULL, 1)")
        assert "0004_upstreams" in await store.migrate()
        routes = {r.connector: r for r in await store.list_routes()}
        assert (routes["main"].priority, routes["backup"].priority) == (-5, -1)
        assert (routes["main"].cost, routes["main"].weight, routes["main"].senders) == (0, 1, ())
    finally:
        await store.close()


async def _run(store, sql: str) -> None:
    if store.backend == "sqlite":
        await store._tx(lambda c: c.execute(sql))
    else:
        await store.pool.execute(sql)


async def _apply(store, migrations) -> None:
    from smsgate.store.migrations import SCHEMA_MIGRATIONS_POSTGRES, SCHEMA_MIGRATIONS_SQLITE
    sqlite = store.backend == "sqlite"
    await _run(store, SCHEMA_MIGRATIONS_SQLITE if sqlite else SCHEMA_MIGRATIONS_POSTGRES)
    for migration in migrations:
        for statement in statements(migration.sqlite if sqlite else migration.postgres):
            await _run(store, statement)
        await _run(store, "INSERT INTO schema_migrations (name, applied_at) "
                   f"VALUES ('{migration.name}', 0)")
