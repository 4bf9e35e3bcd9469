"""The dispatcher with connectors that come and go (core/dispatcher.py): failover by the
routes' order, waiting for a full connector, temporary and permanent failures, reports
matched by upstream id, split messages. A real App (store, writer) on each backend;
the connectors are the test's own small upstreams (no network is involved here: the
SMPP and HTTP connectors have their own tests over TCP)."""

import asyncio
import contextlib
import sqlite3
import time

import asyncpg
import pytest
from smpp_harness import eventually, fast_settings, prepare_database

from smsgate.app import App
from smsgate.core.models import (
    CREDIT_SCALE,
    DELIVRD,
    REJECTD,
    UNDELIV,
    Account,
    Message,
    Route,
    UpstreamFailure,
    UpstreamReport,
)
from smsgate.core.routing import RoutingTable
from smsgate.core.submit import SubmitRequest
from smsgate.store import sqlite_path


class Upstream:
    """A connector that keeps what it is given, for the test to answer."""

    resend_safe = False

    def __init__(self, name: str, room: int = 1000) -> None:
        self.name = name
        self.available = True
        self.room = room
        self.got: list[Message] = []
        self.events = None

    async def start(self, events) -> None:
        self.events = events

    async def stop(self) -> None:
        self.available = False

    def send(self, messages) -> None:
        self.got.extend(messages)
        self.room -= len(messages)

    def state(self) -> dict:
        return {"got": len(self.got)}


@pytest.fixture
async def app(store_url: str):
    await prepare_database(store_url)
    app = App(fast_settings(store_url))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def setup(app: App, *upstreams: Upstream, routes: list[Route]) -> Account:
    for upstream in upstreams:
        await app.dispatcher.add_connector(upstream)
        app.connectors._status[upstream.name] = "running"
    app.routing = RoutingTable(routes)
    account = await app.store.add_account(Account("acme", "x", created_at=time.time()))
    await app.store.adjust_balance(account.id, 100 * CREDIT_SCALE, "test")
    return account


async def submit(app: App, account: Account, count: int = 1) -> list[Message]:
    messages = []
    for n in range(count):
        [message] = app.pipeline.prepare(SubmitRequest(
            account=account, source_addr="Shop", destinations=[f"4477009{n:05d}"],
            payload=b"hello", registered_delivery=1))
        future = app.writer.add_message(message)
        assert await future
        app.dispatcher.dispatch(message)
        messages.append(message)
    return messages


def routes_ab() -> list[Route]:
    return [Route("44", "a", CREDIT_SCALE, priority=0, cost=1),
            Route("44", "b", 2 * CREDIT_SCALE, priority=1, cost=5)]


async def test_an_unavailable_connector_is_failed_over_at_the_first_price(app):
    a, b = Upstream("a"), Upstream("b")
    account = await setup(app, a, b, routes=routes_ab())
    a.available = False
    [message] = await submit(app, account)
    await eventually(lambda: _true(b.got), what="the message on b")
    assert b.got[0].id == message.id and not a.got
    assert message.price == CREDIT_SCALE and app.dispatcher.failovers == 1
    b.events.sent(message, ["B1"])
    await app.writer.flush()
    stored = await app.store.get_message(message.id)
    assert (stored.connector, stored.upstream_id) == ("b", "B1")


async def test_a_full_connector_keeps_its_messages_until_it_has_room(app):
    a, b = Upstream("a", room=2), Upstream("b")
    account = await setup(app, a, b, routes=routes_ab())
    await submit(app, account, 5)
    await eventually(lambda: _true(len(a.got) == 2), what="two on a")
    await asyncio.sleep(0.05)
    assert not b.got and app.dispatcher.queued == 3  # least cost is kept under load
    a.room = 10
    await eventually(lambda: _true(len(a.got) == 5), what="the rest on a")


async def test_temporary_failures_are_sent_again_by_the_next_route_while_down(app):
    a, b = Upstream("a"), Upstream("b")
    account = await setup(app, a, b, routes=routes_ab())
    [message] = await submit(app, account)
    await eventually(lambda: _true(a.got), what="sent to a")
    a.available = False
    a.events.failed(message, UpstreamFailure(0, True, "link lost"))
    await eventually(lambda: _true(b.got), timeout=3, what="sent again by b")
    assert app.dispatcher.retried == 1


async def test_a_permanent_refusal_is_rejectd_with_the_upstream_status(app):
    a = Upstream("a")
    account = await setup(app, a, routes=routes_ab())
    balance = (await app.store.get_account_by_id(account.id)).balance
    [message] = await submit(app, account)
    await eventually(lambda: _true(a.got), what="sent to a")
    a.events.failed(message, UpstreamFailure(0x0B, False, "bad destination"))
    await app.writer.flush()
    stored = await app.store.get_message(message.id)
    assert (stored.status, stored.error_code) == (REJECTD, 0x0B)
    refunded = (await app.store.get_account_by_id(account.id)).balance
    assert refunded == balance  # the refund policy's default: upstream refusals refunded


async def test_reports_are_matched_by_upstream_id_once(app):
    a = Upstream("a")
    account = await setup(app, a, routes=routes_ab())
    heard = []
    app.dispatcher.add_listener(lambda m, u: heard.append((m.id, u.status)))
    [message] = await submit(app, account)
    await eventually(lambda: _true(a.got), what="sent to a")
    a.events.sent(message, ["1d305b4c"])
    # as learned by an earlier run (one report alone teaches nothing: it would wait for
    # the park's last look, core/correlation.py)
    await app.store.set_setting("receipt-ids/a/given", "decimal for hex")
    outcomes = []
    report = UpstreamReport("a", ("0489708364", "1d305b4c"), DELIVRD, time.time())
    a.events.report(report, outcomes.append)
    a.events.report(report, outcomes.append)  # the upstream repeats itself
    await eventually(lambda: _true(len(outcomes) == 2), what="both answered")
    assert outcomes == [True, True]
    assert heard == [(message.id, DELIVRD)]
    assert (await app.store.get_message(message.id)).status == DELIVRD


async def test_a_split_message_is_final_when_every_part_is(app):
    a = Upstream("a")
    account = await setup(app, a, routes=routes_ab())
    [one, two] = await submit(app, account, 2)
    await eventually(lambda: _true(len(a.got) == 2), what="sent to a")
    a.events.sent(one, ["p1", "p2", "p3"])
    a.events.sent(two, ["q1", "q2"])
    await app.writer.flush()
    done = []
    for part, status in (("p2", DELIVRD), ("p1", DELIVRD), ("q1", UNDELIV), ("p3", DELIVRD),
                         ("q2", DELIVRD)):
        a.events.report(UpstreamReport("a", (part,), status, time.time()), done.append)
    await eventually(lambda: _true(len(done) == 5), what="all answered")
    await app.writer.flush()
    assert (await app.store.get_message(one.id)).status == DELIVRD
    assert (await app.store.get_message(two.id)).status == UNDELIV
    assert await app.store.part_statuses(one.id) == {0: DELIVRD, 1: DELIVRD, 2: DELIVRD}


async def test_a_split_messages_later_part_is_found_in_the_store_after_a_restart(app):
    a = Upstream("a")
    account = await setup(app, a, routes=routes_ab())
    [message] = await submit(app, account)
    await eventually(lambda: _true(a.got), what="sent to a")
    a.events.sent(message, ["r1", "r2"])
    first = []  # a connector's first report waits for the relation learned before
    a.events.report(UpstreamReport("a", ("r1",), DELIVRD, time.time()), first.append)
    await eventually(lambda: _true(first), what="the first part's report answered")
    await app.writer.flush()
    # a fresh memory, as after a restart
    app.dispatcher.correlator._recent.clear()
    app.dispatcher.reports._split.clear()
    done = []
    a.events.report(UpstreamReport("a", ("r2",), DELIVRD, time.time()), done.append)
    await eventually(lambda: _true(done), what="answered")
    await app.writer.flush()
    assert (await app.store.get_message(message.id)).status == DELIVRD


async def test_an_expired_message_is_not_sent(app):
    a = Upstream("a")
    account = await setup(app, a, routes=routes_ab())
    a.available = False
    [message] = await submit(app, account)
    message.expires_at = time.time() - 1
    a.available = True
    await asyncio.sleep(0.7)
    assert not a.got


async def _true(value) -> bool:
    return bool(value)


async def test_a_report_before_the_answer_is_stored_unmatched_then_claimed(app):
    a = Upstream("a")
    account = await setup(app, a, routes=routes_ab())
    [message] = await submit(app, account)
    await eventually(lambda: _true(a.got), what="sent to a")
    answered = []
    a.events.report(UpstreamReport("a", ("early-1",), DELIVRD, time.time()), answered.append)
    await eventually(lambda: _true(answered), what="the upstream answered")
    assert answered == [True]  # at once: stored as unmatched, not held for the park
    assert len(await app.store.unmatched_reports()) == 1
    a.events.sent(message, ["early-1"])  # the submit's answer comes after its receipt

    async def claimed():
        stored = await app.store.get_message(message.id)
        return stored.status == DELIVRD and not await app.store.unmatched_reports()
    await eventually(claimed, what="DELIVRD and the unmatched row gone")


async def test_without_the_lease_nothing_is_sent_and_a_reclaim_keeps_only_ours(app):
    """cluster/nodes.py: a node whose lease lapsed may have been taken for dead; its
    dispatcher sends nothing, and once the lease is back it keeps only the messages the
    store still gives to this node (one taken over meanwhile is another node's)."""
    a = Upstream("a")
    account = await setup(app, a, routes=[Route("44", "a", CREDIT_SCALE)])
    lease = [False]
    app.dispatcher.set_lease(lambda: lease[0])
    ours, theirs, in_flight = await submit(app, account, 3)
    await asyncio.sleep(0.1)
    assert not a.got and app.dispatcher.queued == 3
    await give_to_another_node(app.settings.database_url, theirs.id)  # taken over
    app.dispatcher._sending.add(in_flight.id)  # handed to a connector before the lapse
    lease[0] = True
    await app._lease_regained()
    await eventually(lambda: _true(a.got), what="the reclaimed message sent")
    await asyncio.sleep(0.1)
    assert [m.id for m in a.got] == [ours.id]


async def give_to_another_node(url: str, message_id: int) -> None:
    """What another node's takeover does to one message (store/ownership.py)."""
    sql = f"UPDATE messages SET node = 'other-node' WHERE id = {message_id}"
    path = sqlite_path(url)
    if path is not None:
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as db, db:
            db.execute(sql)
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_a_long_outage_keeps_at_most_max_queued_in_memory(store_url):
    """core/dispatcher.py: past max_queued per connector, messages wait in the store
    only; as the connector drains its queue, refills from the store send every one,
    once, in batches small enough to keep the cap."""
    await prepare_database(store_url)
    settings = fast_settings(store_url)
    settings.dispatch_max_queued = 10
    app = App(settings)
    await app.start()
    try:
        a = Upstream("a", room=0)
        account = await setup(app, a, routes=[Route("44", "a", CREDIT_SCALE)])
        a.available = False  # the outage
        messages = await submit(app, account, 60)
        assert app.dispatcher.queued <= 10 and app.dispatcher.spilled == 50
        a.available = True
        answered = 0
        while len(a.got) < 60:  # the upstream takes 7 at a time, answers them later
            assert app.dispatcher.queued <= 10
            a.room = 7
            await eventually(lambda: _true(a.room == 0 or len(a.got) == 60), timeout=5,
                             what="a batch sent")
            for message in a.got[answered:-3]:  # some stay in flight across a refill
                a.events.sent(message, [f"U{message.id}"])
            answered = max(answered, len(a.got) - 3)
        sent = [m.id for m in a.got]
        assert sorted(sent) == sorted(m.id for m in messages)  # each once
    finally:
        await app.stop()
