"""The HTTP upstream connector against a real provider on a real port (provider_harness):
templates rendered and encoded right, answers judged (success, temporary, permanent),
TPS and concurrency kept, answers read only to the cap, the circuit breaker, stop()."""

import asyncio
import contextlib
import json
import time
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from provider_harness import Provider, RecordingEvents, Seen, message

from smsgate.connectors.http_client import MAX_ANSWER, HttpConnector
from smsgate.connectors.settings import HttpSettings
from smsgate.smpp.constants import ESM_UDHI
from smsgate.text import DC_UCS2, build_concat_udh, gsm7, ucs2

TRICKY = "Hé & #1 + 50% = ok? 😀 سلام"  # non-ASCII, & # + % = ?, an emoji (surrogate pair)


@pytest.fixture
async def provider():
    server = Provider()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def running(**config):
    connector = HttpConnector("prov", HttpSettings(**config))
    events = RecordingEvents()
    await connector.start(events)
    try:
        yield connector, events
    finally:
        await connector.stop()


def ucs2_message(message_id: int, text: str, **fields):
    return message(message_id, payload=ucs2.encode(text), data_coding=DC_UCS2, **fields)


def answering(status: int = 200, text: str = "OK", delay: float = 0.0):
    async def answer(seen: Seen) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, text=text)
    return answer


# -- requests as the provider sees them ---------------------------------------------------

async def test_get_template_values_are_url_encoded(provider):
    url = (provider.base + "/send?to={to}&from={from}&text={text}&hex={text_hex_ucs2}"
           "&dc={coding}&ref={id}&n={parts}")
    async with running(url=url) as (connector, events):
        connector.send([ucs2_message(7, TRICKY, parts=2, source_addr="Shop & Co")])
        await events.wait(1)
    assert events.ids == {7: ("7",)}  # no id regex: our id is the upstream id
    [seen] = provider.requests
    assert (seen.method, seen.path) == ("GET", "/send")
    assert seen.query == {"to": "96170123456", "from": "Shop & Co", "text": TRICKY,
                          "hex": TRICKY.encode("utf-16-be").hex().upper(), "dc": "8",
                          "ref": "7", "n": "2"}
    assert "%26" in seen.raw_query and "%23" in seen.raw_query and "%F0%9F%98%80" in \
        seen.raw_query  # & # and the emoji travel escaped, as UTF-8


async def test_placeholders_in_the_path_are_escaped_too(provider):
    async with running(url=provider.base + "/to/{to}/{text}") as (connector, events):
        connector.send([message(1, "a/b?c")])
        await events.wait(1)
    assert provider.requests[0].path == "/to/96170123456/a/b?c"  # decoded by the server
    assert provider.requests[0].request.raw_path == "/to/96170123456/a%2Fb%3Fc"


async def test_post_form_body(provider):
    async with running(url=provider.base + "/send?key=k3y", method="POST",
                       body="to={to}&text={text}&dc={coding}",
                       headers={"X-Api-Key": "secret"}) as (connector, events):
        connector.send([ucs2_message(1, TRICKY)])
        await events.wait(1)
    [seen] = provider.requests
    assert seen.method == "POST" and seen.query == {"key": "k3y"}
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.headers["X-Api-Key"] == "secret"
    assert dict(parse_qsl(seen.body.decode("ascii"), strict_parsing=True)) == \
        {"to": "96170123456", "text": TRICKY, "dc": "8"}


async def test_post_json_body(provider):
    body = '{{"to": "{to}", "text": "{text}", "parts": {parts}}}'
    async with running(url=provider.base + "/json", method="POST", body=body,
                       content_type="application/json") as (connector, events):
        connector.send([ucs2_message(1, TRICKY + ' "quoted" \\ \n')])
        await events.wait(1)
    [seen] = provider.requests
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {"to": "96170123456", "text": TRICKY + ' "quoted" \\ \n',
                                     "parts": 1}


async def test_a_customers_udh_part_is_sent_as_its_text(provider):
    udh = build_concat_udh(ref=5, total=2, seq=1)
    part = message(1, esm_class=ESM_UDHI, payload=udh + gsm7.encode("first half @ €"))
    async with running(url=provider.base + "/s?text={text}") as (connector, events):
        connector.send([part])
        await events.wait(1)
    assert provider.requests[0].query["text"] == "first half @ €"


# -- answers --------------------------------------------------------------------------

async def test_success_takes_the_upstream_id_from_the_answer(provider):
    provider.answer = answering(text="OK: queued, id=ab-123\n")
    async with running(url=provider.base + "/s", ok="^OK", id=r"id=([\w-]+)") \
            as (connector, events):
        connector.send([message(1), message(2)])
        await events.wait(2)
    assert events.ids == {1: ("ab-123",), 2: ("ab-123",)}
    assert connector.state()["sent"] == 2 and connector.state()["errors"] == 0


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_5xx_408_429_are_temporary(provider, status):
    provider.answer = answering(status, "busy")
    async with running(url=provider.base + "/s") as (connector, events):
        connector.send([message(1)])
        await events.wait(1)
    failure = events.failures[1]
    assert (failure.status, failure.temporary) == (status, True)
    assert f"HTTP {status}: busy" == failure.detail == connector.state()["last_error"]


async def test_no_answer_in_time_is_temporary(provider):
    provider.answer = answering(delay=1.0)
    async with running(url=provider.base + "/s", timeout=0.3) as (connector, events):
        started = time.monotonic()
        connector.send([message(1)])
        await events.wait(1)
        assert time.monotonic() - started < 1.5
    failure = events.failures[1]
    assert (failure.status, failure.temporary) == (0, True)
    assert "no answer within 0.3 s" in failure.detail


async def test_connection_refused_is_temporary(provider):
    base = provider.base
    await provider.stop()  # nobody listens on the port now
    async with running(url=base + "/s") as (connector, events):
        connector.send([message(1)])
        await events.wait(1)
    failure = events.failures[1]
    assert (failure.status, failure.temporary) == (0, True)
    assert "connect" in failure.detail.lower()


@pytest.mark.parametrize(("status", "text", "detail"), [
    (400, "bad number", "HTTP 400: bad number"),
    (401, "", "HTTP 401"),
    (404, "no such page", "HTTP 404"),
    (200, "ERR 17 invalid sender", "does not match ok"),
    (200, "OK but no id", "no upstream id"),
])
async def test_refusals_are_permanent(provider, status, text, detail):
    provider.answer = answering(status, text)
    async with running(url=provider.base + "/s", ok="^OK", id=r"id=(\d+)") \
            as (connector, events):
        connector.send([message(1)])
        await events.wait(1)
    failure = events.failures[1]
    assert (failure.status, failure.temporary) == (status, False)
    assert detail in failure.detail


async def test_redirects_are_not_followed(provider):
    async def redirect(seen: Seen) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": provider.base + "/elsewhere"})
    provider.answer = redirect
    async with running(url=provider.base + "/s") as (connector, events):
        connector.send([message(1)])
        await events.wait(1)
    assert (events.failures[1].status, events.failures[1].temporary) == (302, False)
    assert [seen.path for seen in provider.requests] == ["/s"]


async def test_credentials_in_an_answer_are_masked_in_the_detail(provider):
    provider.answer = answering(400, "bad request: user=acme&password=hunter2&to=1")
    async with running(url=provider.base + "/s") as (connector, events):
        connector.send([message(1)])
        await events.wait(1)
    assert "hunter2" not in events.failures[1].detail
    assert "hunter2" not in json.dumps(connector.state())


async def test_a_100_mb_answer_is_read_only_to_the_cap(provider):
    written = 0

    async def endless(seen: Seen) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = 100 * 2**20
        await response.prepare(seen.request)
        chunk = b"OK id=big1 " + b"x" * (65536 - 11)
        with contextlib.suppress(ConnectionError):
            while written < 100 * 2**20:
                await response.write(chunk)
                written += len(chunk)
                chunk = b"x" * 65536
        return response
    provider.answer = endless
    async with running(url=provider.base + "/s", ok="^OK", id=r"id=(\w+)") \
            as (connector, events):
        connector.send([message(1)])
        await events.wait(1)
    assert events.ids == {1: ("big1",)}
    await asyncio.sleep(0.2)
    assert written < 16 * 2**20  # the connection was dropped, not drained


async def test_what_lies_past_the_cap_is_not_looked_at(provider):
    provider.answer = answering(text="x" * MAX_ANSWER + "OK id=late")
    async with running(url=provider.base + "/s", id=r"id=(\w+)") as (connector, events):
        connector.send([message(1)])
        await events.wait(1)
    assert "no upstream id" in events.failures[1].detail


async def test_an_overlong_upstream_id_is_refused(provider):
    provider.answer = answering(text="id=" + "7" * 129)
    async with running(url=provider.base + "/s", id=r"id=(\d+)") as (connector, events):
        connector.send([message(1)])
        await events.wait(1)
    assert not events.failures[1].temporary and "longer than 128" in events.failures[1].detail


# -- limits ---------------------------------------------------------------------------

async def test_tps_is_kept(provider):
    async with running(url=provider.base + "/s", tps=40, concurrency=100) \
            as (connector, events):
        started = time.monotonic()
        connector.send([message(i) for i in range(1, 81)])
        await events.wait(80)
        took = time.monotonic() - started
    assert len(events.ids) == 80
    assert took > 1.6  # 80 at 40/s: about 2 s (one token of burst)
    arrivals = sorted(seen.at for seen in provider.requests)
    for i, first in enumerate(arrivals):  # any second: at most 40, with some slack
        assert sum(1 for at in arrivals[i:] if at < first + 1.0) <= 40 + 3


async def test_concurrency_is_kept_and_room_follows_it(provider):
    provider.answer = answering(delay=0.2)
    async with running(url=provider.base + "/s", concurrency=3) as (connector, events):
        assert connector.room == 6  # three slots and a queue of three
        connector.send([message(i) for i in range(1, 13)])
        assert connector.room == 0
        await asyncio.sleep(0.1)
        assert connector.state()["in_flight"] == 3 and connector.state()["queued"] == 9
        await events.wait(12)
        assert connector.room == 6
    assert provider.max_in_flight == 3 and len(events.ids) == 12


async def test_room_is_about_a_seconds_worth_at_a_low_tps(provider):
    async with running(url=provider.base + "/s", concurrency=10, tps=2) as (connector, _):
        assert connector.room == 3  # one token now, two more within the second
        connector.send([message(1), message(2), message(3)])
        assert connector.room == 0


# -- the circuit ----------------------------------------------------------------------

async def test_circuit_opens_after_temporary_failures_and_closes_on_an_answer(provider):
    provider.answer = answering(503)
    async with running(url=provider.base + "/s", concurrency=1, circuit_failures=3,
                       circuit_cooldown=0.4) as (connector, events):
        connector.send([message(i) for i in range(1, 6)])
        await events.wait(5)
        assert len(provider.requests) == 3  # the last two were handed back unsent
        assert [events.failures[i].detail for i in (4, 5)] == ["circuit open"] * 2
        assert not connector.available and connector.room == 0
        assert connector.state()["circuit"] == "open"
        assert connector.state()["temporary_failures"] == 3
        connector.send([message(6)])  # whoever sends anyway hears "circuit open"
        await events.wait(6)
        assert events.failures[6].detail == "circuit open"
        await asyncio.sleep(0.45)
        assert connector.available and connector.room == 1  # half-open: one probe
        assert connector.state()["circuit"] == "half-open"
        provider.answer = answering(200)
        connector.send([message(7)])
        await events.wait(7)
        assert events.ids[7] == ("7",) and connector.state()["circuit"] == "closed"
        assert connector.room == 2  # one slot and a queue of one


async def test_a_failed_probe_opens_the_circuit_again(provider):
    provider.answer = answering(500)
    async with running(url=provider.base + "/s", circuit_failures=2,
                       circuit_cooldown=0.3) as (connector, events):
        connector.send([message(1), message(2)])
        await events.wait(2)
        assert not connector.available
        await asyncio.sleep(0.35)
        connector.send([message(3)])
        await events.wait(3)
        assert events.failures[3].status == 500 and not connector.available


async def test_permanent_refusals_do_not_open_the_circuit(provider):
    provider.answer = answering(400)
    async with running(url=provider.base + "/s", circuit_failures=2) as (connector, events):
        connector.send([message(i) for i in range(1, 6)])
        await events.wait(5)
        assert connector.available and connector.state()["permanent_failures"] == 5


# -- state and stop -------------------------------------------------------------------

async def test_state_reports_rate_and_errors(provider):
    async with running(url=provider.base + "/s") as (connector, events):
        connector.send([message(i) for i in range(1, 6)])
        await events.wait(5)
        provider.answer = answering(503, "maintenance")
        connector.send([message(6)])
        await events.wait(6)
        state = connector.state()
    assert (state["sent"], state["errors"], state["in_flight"]) == (5, 1, 0)
    assert state["last_error"] == "HTTP 503: maintenance" and state["last_error_at"]
    assert 0 <= state["sent_per_second"] <= 1.0


async def test_stop_hands_back_the_queue_and_waits_for_what_is_in_flight(provider):
    provider.answer = answering(delay=0.3)
    connector = HttpConnector("prov", HttpSettings(url=provider.base + "/s", concurrency=1))
    events = RecordingEvents()
    await connector.start(events)
    connector.send([message(1), message(2), message(3)])
    await asyncio.sleep(0.05)
    await connector.stop()
    assert events.ids == {1: ("1",)}
    assert {i: (f.temporary, f.detail) for i, f in events.failures.items()} == \
        {2: (True, "connector stopped"), 3: (True, "connector stopped")}
    assert not connector.available and connector.room == 0
    connector.send([message(4)])  # too late: handed back on the next loop turn
    await events.wait(4)
    assert events.failures[4].detail == "connector not running"
