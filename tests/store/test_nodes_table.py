"""The nodes table on both backends: a claim, heartbeats with figures, a clean stop, and
the lock that keeps a node id (on SQLite: the database file) to one live process."""

import contextlib

import pytest

from smsgate.core.models import ALIVE, DEAD, STOPPED, NodeFigures, NodeStatus
from smsgate.core.ports import NodeInUse, StoreError
from smsgate.store import open_store


async def _opened(url: str):
    store = open_store(url)
    await store.open()
    await store.migrate()
    return store


async def test_no_nodes_at_first(store) -> None:
    assert await store.list_nodes() == []


async def test_claim_heartbeat_and_stop(store) -> None:
    await store.claim_node("n1", "run-a")
    [node] = await store.list_nodes()
    assert (node.id, node.state, node.address, node.stopped_at) == ("n1", ALIVE, "", None)
    assert 0 <= node.silent_for < 2

    figures = NodeFigures(smpp_sessions=3, upstream_binds=2, messages_per_second=12.5,
                          delivered_per_second=10.5, failed_per_second=2.0)
    assert await store.node_heartbeat("n1", "run-a", "h smpp:1 http:2", figures)
    [node] = await store.list_nodes()
    assert (node.address, node.figures) == ("h smpp:1 http:2", figures)
    assert node.heartbeat_at >= node.started_at

    await store.stop_node("n1", "run-a")
    [node] = await store.list_nodes()
    assert node.state == STOPPED and node.stopped_at is not None
    assert node.figures == NodeFigures()


async def test_a_heartbeat_of_another_run_is_refused(store) -> None:
    """The row names the run that holds it: after a restart (a new run) a late beat of
    the old one is told that the identity is no longer its own."""
    await store.claim_node("n1", "run-a")
    await store.stop_node("n1", "run-a")
    await store.claim_node("n1", "run-b")
    assert not await store.node_heartbeat("n1", "run-a", "", NodeFigures())
    assert await store.node_heartbeat("n1", "run-b", "", NodeFigures())
    [node] = await store.list_nodes()
    assert node.state == ALIVE and node.stopped_at is None


async def test_a_live_claim_keeps_the_id_until_its_store_closes(store_url) -> None:
    first, second = await _opened(store_url), await _opened(store_url)
    try:
        await first.claim_node("n1", "run-a")
        with pytest.raises(NodeInUse) as refused:
            await second.claim_node("n1", "run-b")
        if store_url.startswith("sqlite"):
            assert "SQLite is one node only" in str(refused.value)
        else:
            assert "'n1' is already running" in str(refused.value)
        await first.close()  # as the process's end does: the lock goes with it
        await second.claim_node("n1", "run-b")
        [node] = await second.list_nodes()
        assert node.state == ALIVE
    finally:
        await first.close()
        await second.close()


async def test_one_node_per_sqlite_file_several_on_postgres(store_url) -> None:
    first, second = await _opened(store_url), await _opened(store_url)
    try:
        await first.claim_node("n1", "run-a")
        if store_url.startswith("sqlite"):
            with pytest.raises(NodeInUse, match="another smsgate serve is running on"):
                await second.claim_node("n2", "run-b")
        else:
            await second.claim_node("n2", "run-b")
            assert [n.id for n in await first.list_nodes()] == ["n1", "n2"]
    finally:
        await first.close()
        await second.close()


def test_states() -> None:
    def node(silent_for: float, stopped_at: float | None = None) -> NodeStatus:
        return NodeStatus("n", "", 0.0, 0.0, stopped_at, NodeFigures(), silent_for)

    assert node(4.9).state == ALIVE
    assert node(5.0).state == DEAD
    assert node(60.0, stopped_at=1.0).state == STOPPED


async def _terminate_node_session(store) -> None:
    """Cut the connection that holds the node's lock, as a network failure would."""
    pid = store._node_conn.get_server_pid()
    await store.pool.execute("SELECT pg_terminate_backend($1)", pid)


async def test_postgres_heartbeat_takes_its_lock_again_after_a_lost_connection(
        store_url) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("the lock's connection is PostgreSQL's")
    store = await _opened(store_url)
    try:
        await store.claim_node("n1", "run-a")
        await _terminate_node_session(store)
        # the first beat may meet the broken connection; the next takes the lock again
        for _ in range(3):
            try:
                if await store.node_heartbeat("n1", "run-a", "", NodeFigures()):
                    break
            except StoreError:
                pass
        else:
            raise AssertionError("no heartbeat after the lost connection")
        other = await _opened(store_url)
        try:
            with pytest.raises(NodeInUse):
                await other.claim_node("n1", "run-b")  # the lock is held again
        finally:
            await other.close()
    finally:
        await store.close()


async def test_postgres_heartbeat_learns_the_id_was_taken_over(store_url) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("the lock's connection is PostgreSQL's")
    store, other = await _opened(store_url), await _opened(store_url)
    try:
        await store.claim_node("n1", "run-a")
        await _terminate_node_session(store)
        await other.claim_node("n1", "run-b")  # while the first was cut off
        beats = []
        for _ in range(2):
            with contextlib.suppress(StoreError):
                beats.append(await store.node_heartbeat("n1", "run-a", "", NodeFigures()))
        assert beats and not beats[-1]
        assert await other.node_heartbeat("n1", "run-b", "", NodeFigures())
    finally:
        await store.close()
        await other.close()


async def test_sqlite_takes_over_through_the_unsent_index(tmp_path) -> None:
    """Without statistics SQLite read the whole table in id order for the takeover's
    ORDER BY: 2.2 s on 20 million delivered messages, at every start, the store
    stalled. The unsent messages' partial index answers it."""
    from smsgate.store.sqlite import SQL
    store = open_store(f"sqlite:///{tmp_path}/plan.db")
    await store.open()
    try:
        await store.migrate()
        sql = f"EXPLAIN QUERY PLAN {SQL.TAKE_OVER}"
        plan = await store._run(lambda c: c.execute(sql, ("a", 10)).fetchall())
        scans = [row[-1] for row in plan if row[-1].startswith("SCAN messages")]
        assert scans == ["SCAN messages USING INDEX messages_pending_addr"], plan
    finally:
        await store.close()
