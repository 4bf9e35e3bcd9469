"""Where SQLite and PostgreSQL had drifted apart (issue 10 item 0), each run on both: the
behaviour now shared, and the statement dialect that makes one statement serve both."""

import dataclasses
import sqlite3
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import funded, message

from smsgate.core.models import Connector, Message, Route, SentUpdate, WriteBatch
from smsgate.store import dialect, rows, sqlite_write, statements
from smsgate.store.migrations import MIGRATIONS
from smsgate.store.migrations import statements as migration_statements


async def test_a_message_sent_again_starts_its_parts_afresh(store) -> None:
    """The parts' outcomes of an earlier send must not end the new one: PostgreSQL kept
    them (ON CONFLICT updated only the ids), SQLite dropped them (INSERT OR REPLACE)."""
    acme = await funded(store)
    m = message(acme.id, connector="up", parts=2)
    await store.write(WriteBatch(new_messages=[m]))
    first = SentUpdate(m.id, "up", time.time(), "a0", part_ids=("a0", "a1"))
    await store.write(WriteBatch(sent=[first], part_statuses=[(m.id, 0, "DELIVRD")]))
    assert await store.part_statuses(m.id) == {0: "DELIVRD", 1: ""}
    again = SentUpdate(m.id, "other", time.time(), "b0", part_ids=("b0", "b1"))
    await store.write(WriteBatch(sent=[again]))
    assert await store.part_statuses(m.id) == {0: "", 1: ""}
    assert await store.part_by_upstream_id("other", ["b1"]) == (m.id, 1)
    assert await store.part_by_upstream_id("up", ["a0", "a1"]) is None


async def test_removing_an_absent_connector_is_false_even_if_routes_name_it(store) -> None:
    """SQLite answered InUse here, PostgreSQL False: there is nothing to remove."""
    route = await store.add_route(Route("44", "ghost", 1))
    assert await store.remove_connector("ghost") is False
    assert await store.list_routes() == [route]
    await store.add_connector(Connector("ghost", "simulator", {}))
    with pytest.raises(Exception, match="route"):
        await store.remove_connector("ghost")


async def test_take_over_moves_a_dead_nodes_unsent_messages_in_id_order(store) -> None:
    acme = await funded(store, credits=100)
    mine = [message(acme.id, node="gone") for _ in range(5)]
    sent = message(acme.id, node="gone")
    await store.write(WriteBatch(new_messages=[*reversed(mine), sent]))
    await store.write(WriteBatch(sent=[SentUpdate(sent.id, "sim", time.time())]))
    taken = await store.take_over("alive", 3)
    assert [m.id for m in taken] == [m.id for m in mine[:3]]
    assert {m.node for m in taken} == {"alive"}
    rest = await store.take_over("alive", 10)
    assert [m.id for m in rest] == [m.id for m in mine[3:]]  # not the sent one
    assert await store.take_over("alive", 10) == []


async def test_find_pending_with_and_without_the_optional_matches(store) -> None:
    acme = await funded(store, credits=100)
    a = message(acme.id, dest_addr="1", service_type="x")
    b = message(acme.id, dest_addr="2", service_type="x")
    c = message(acme.id, dest_addr="2", service_type="y")
    await store.write(WriteBatch(new_messages=[a, b, c]))
    assert await store.find_pending(acme.id, "Acme", "", "") == [a.id, b.id, c.id]
    assert await store.find_pending(acme.id, "Acme", "2", "") == [b.id, c.id]
    assert await store.find_pending(acme.id, "Acme", "", "x") == [a.id, b.id]
    assert await store.find_pending(acme.id, "Acme", "2", "y") == [c.id]


def test_every_statement_converts_to_both_dialects() -> None:
    """No token is left over in either spelling, and SQLite gets no `$` placeholder."""
    for name, sql in vars(dialect.spelled(statements, dialect.for_sqlite)).items():
        assert "{" not in sql and "$" not in sql and "ANY(" not in sql, name
    for name, sql in vars(dialect.spelled(statements, dialect.for_postgres)).items():
        assert "{" not in sql, name
        assert "?" not in sql, name


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                max_size=12)


@settings(max_examples=200, deadline=None)
@given(stored=st.lists(_TEXT, max_size=8), wanted=st.lists(_TEXT, max_size=8))
def test_sqlite_reads_a_list_parameter_as_postgresql_does(stored, wanted) -> None:
    """`col = ANY($1)` with a list: SQLite's json_each spelling finds exactly the rows
    whose value is in the list, whatever the text (quotes, backslashes, any script)."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(v,) for v in stored])
    sql = dialect.for_sqlite("SELECT v FROM t WHERE v = ANY($1) ORDER BY id")
    found = [r[0] for r in conn.execute(sql, (dialect.sqlite_list(wanted),))]
    assert found == [v for v in stored if v in wanted]
    ids = dialect.for_sqlite("SELECT id FROM t WHERE id = ANY($1) ORDER BY id")
    some = list(range(1, len(stored) + 1, 2))
    assert [r[0] for r in conn.execute(ids, (dialect.sqlite_list(some),))] == some


_ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=100, deadline=None)
@given(columns=st.lists(st.tuples(_ANY_TEXT, st.integers(-2**63, 2**63 - 1), _ANY_TEXT),
                        min_size=sqlite_write.RUN_MIN, max_size=40))
def test_sqlite_stores_a_request_run_as_row_by_row(columns) -> None:
    """A many-number request's run (sqlite_write.INSERT_RUN: its per-destination
    columns through JSON) stores exactly the rows executemany would, whatever the text
    (quotes, escapes, NUL, any script) and integers."""
    conn = sqlite3.connect(":memory:")
    for migration in MIGRATIONS:
        for sql in migration_statements(migration.sqlite):
            conn.execute(sql)
    base = message(1, created_at=1.5)
    run = [dataclasses.replace(base, id=n + 1, dest_addr=dest, price=price, connector=name)
           for n, (dest, price, name) in enumerate(columns)]
    sqlite_write._insert_messages(conn, list(run), {m.id: [] for m in run})
    stored = conn.execute(f"SELECT {rows.columns(rows.MESSAGE_COLUMNS)} FROM messages "
                          "ORDER BY id").fetchall()
    assert [Message(*row) for row in stored] == run
