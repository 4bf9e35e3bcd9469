"""`serve` with the connectors and routes of SPEC §8 in its database: a connector that
whose stored settings are bad is logged and left out instead of
stopping the gateway; an SMPP connector runs (binding in the background, here to a port
where nothing listens); routes priced and chosen by the new rules, sender limits
included. A real App on ephemeral ports, on each backend."""

import logging

import pytest

from smsgate.app import App, Settings
from smsgate.core.errors import GatewayError
from smsgate.core.models import CREDIT_SCALE, Account, Connector, Route
from smsgate.core.routing import RoutingTable
from smsgate.core.submit import SubmitRequest
from smsgate.store import open_store

SMPP = {"host": "127.0.0.1", "port": 9, "system_id": "acme", "password": "pw"}
HTTP = {"url": "https://api.example.com/send?to={to}"}


async def _prepare(url: str) -> None:
    store = open_store(url)
    await store.open()
    try:
        await store.migrate()
        await store.add_connector(Connector("simulator", "simulator", {"min_latency_ms": 1}))
        await store.add_connector(Connector("cheap", "simulator", {"max_latency_ms": 5}))
        await store.add_connector(Connector("upstream", "smpp", SMPP))
        await store.add_connector(Connector("webprov", "http", HTTP))
        await store.add_connector(Connector("broken", "simulator", {"outcomes": {"LOST": 1}}))
        await store.add_connector(Connector("off", "simulator", {}, enabled=False))
        await store.add_route(Route("", "simulator", CREDIT_SCALE))
        await store.add_route(Route("44", "simulator", 3 * CREDIT_SCALE, cost=900))
        await store.add_route(Route("44", "cheap", 2 * CREDIT_SCALE, cost=100))
        await store.add_route(Route("44", "simulator", 5 * CREDIT_SCALE, priority=-1,
                                    senders=("Bank",)))
        await store.add_route(Route("33", "broken", CREDIT_SCALE))
        await store.add_route(Route("34", "upstream", 2 * CREDIT_SCALE))
        await store.add_account(Account("acme", "x", id=0))
    finally:
        await store.close()


@pytest.fixture
async def app(store_url: str):
    await _prepare(store_url)
    app = App(Settings(database_url=store_url, smpp_port=0, http_port=0, admin_port=0,
                   node_id="test"))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def _request(account, sender: str, destination: str) -> SubmitRequest:
    return SubmitRequest(account=account, source_addr=sender, destinations=[destination],
                         payload=b"hello")


async def test_connectors_that_cannot_run_are_left_out(app):
    assert set(app.dispatcher.connectors) == {"simulator", "cheap", "upstream", "webprov"}
    assert not app.dispatcher.connectors["upstream"].available  # nothing to bind to
    assert app.connectors.status("broken") == "broken"


async def test_unstartable_connectors_are_logged(store_url, caplog):
    await _prepare(store_url)
    app = App(Settings(database_url=store_url, smpp_port=0, http_port=0, admin_port=0,
                   node_id="test"))
    with caplog.at_level(logging.ERROR, logger="smsgate"):
        await app.start()
        await app.stop()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "connector webprov not started" not in logged
    assert "connector upstream not started" not in logged
    assert "connector broken not started" in logged and "LOST" in logged


async def test_submit_follows_the_routing_rules(app):
    account = await app.store.get_account("acme")
    [cheapest] = app.pipeline.prepare(_request(account, "Shop", "447700900001"))
    assert (cheapest.connector, cheapest.price) == ("cheap", 2 * CREDIT_SCALE)
    [bank] = app.pipeline.prepare(_request(account, "Bank", "447700900001"))
    assert (bank.connector, bank.price) == ("simulator", 5 * CREDIT_SCALE)
    [other] = app.pipeline.prepare(_request(account, "Shop", "4917000000"))
    assert other.connector == "simulator"
    [smpp] = app.pipeline.prepare(_request(account, "Shop", "34612345678"))
    assert (smpp.connector, smpp.price) == ("upstream", 2 * CREDIT_SCALE)
    with pytest.raises(GatewayError) as info:  # its connector does not run: HTTP23
        app.pipeline.prepare(_request(account, "Shop", "33612345678"))
    assert info.value.error.http_code == "HTTP23"


async def _eventually(check, timeout: float = 5.0) -> None:
    import asyncio
    import time
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within 5 s"
        await asyncio.sleep(0.05)


async def test_connector_changes_reach_the_running_gateway_within_5_s(app):
    app.connectors.poll = 0.2  # the default is 2 s; SPEC §8 allows 5
    app.connectors._task.cancel()
    await app.connectors.start()
    await app.store.add_connector(Connector("late", "simulator", {"max_latency_ms": 5}))
    await _eventually(lambda: "late" in app.dispatcher.connectors)
    await app.store.set_connector_enabled("late", False)
    await _eventually(lambda: "late" not in app.dispatcher.connectors)
    assert app.connectors.status("late") == "disabled"
    await app.store.set_connector_enabled("off", True)
    await _eventually(lambda: "off" in app.dispatcher.connectors)
    await app.store.remove_connector("late")
    await _eventually(lambda: app.connectors.status("late") is None)


async def test_http14_when_every_connector_of_the_routes_is_disabled(app):
    account = await app.store.get_account("acme")
    app.routing = RoutingTable([Route("34", "off", CREDIT_SCALE)])
    with pytest.raises(GatewayError) as info:
        app.pipeline.prepare(_request(account, "Shop", "34612345678"))
    assert info.value.error.http_code == "HTTP14"
    # a running connector later in the order is failed over to: accepted
    app.routing = RoutingTable([Route("34", "off", CREDIT_SCALE),
                                Route("34", "cheap", 2 * CREDIT_SCALE, priority=5)])
    [message] = app.pipeline.prepare(_request(account, "Shop", "34612345678"))
    assert message.price == CREDIT_SCALE  # the first route's price, failover or not


async def test_http12_when_routes_exist_but_none_takes_the_sender(app):
    account = await app.store.get_account("acme")
    app.routing = RoutingTable([Route("35", "simulator", CREDIT_SCALE, senders=("Bank",))])
    with pytest.raises(GatewayError) as info:
        app.pipeline.prepare(_request(account, "Shop", "35612345678"))
    assert info.value.error.http_code == "HTTP12"
    with pytest.raises(GatewayError) as info:
        app.pipeline.prepare(_request(account, "Shop", "49612345678"))
    assert info.value.error.http_code == "HTTP23"


async def test_running_connectors_report_their_state(app):
    await app.connectors.report()
    states = {s.connector: s for s in await app.store.connector_states()}
    assert set(states) == {"simulator", "cheap", "upstream", "webprov"}
    assert states["simulator"].node == "test" and "sent" in states["simulator"].state
