"""MO (SPEC §8) the whole way over real TCP: an upstream SMSC (PyPI smpp34, independent
of our SMPP code) sends deliver_sm to our SMPP connector; the MO reaches the number's
account as deliver_sm on its Rx session (our SMPP server, a raw client) and/or as an
HTTP request to its mo-url (an aiohttp server of the test). A real App on each backend.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest
from http_harness import HttpHarness, http_settings
from smpp_harness import eventually, free_port, prepare_database
from test_http_callbacks import Receiver

from smsgate.app import App, Settings
from smsgate.core.models import MO, Connector, InboundNumber
from smsgate.smpp.constants import CommandId, Status, Tag
from smsgate.smpp.pdu import Pdu
from smsgate.store import open_store
from smsgate.text import gsm7

smpp34 = pytest.importorskip("smpp34")

HANDSET = "447700900123"
NUMBER = "4477009001"  # ours: MO to any number starting with it is the account's
UDH = bytes((5, 0, 3, 0x7A, 2))  # concatenation, reference 0x7A, 2 parts (+ part number)


class Upstream:
    """The SMSC our connector binds to; the test sends MO on its newest session."""

    def __init__(self, server, port: int) -> None:
        self.server, self.port = server, port
        self.sessions: list = []
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.sessions.append(event)
            elif isinstance(event, smpp34.SubmitSmEvent):
                event.accept(message_id=str(len(self.sessions)))

    async def session(self):
        def live():
            return [s for s in self.sessions if s.can_receive]
        return (await eventually(_async(live), what="our connector bound upstream"))[-1]

    async def mo(self, text: bytes, to: str = NUMBER + "77", **fields) -> int:
        """Send one MO; its deliver_sm_resp's command_status."""
        session = await self.session()
        fields.setdefault("source_addr", HANDSET)
        answer = await asyncio.wait_for(
            session.deliver_sm(destination_addr=to, short_message=text, **fields), 10)
        return answer.command_status

    def close(self) -> None:
        self._task.cancel()


def _async(check: Callable):
    async def run():
        return check()
    return run


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    port = free_port()
    server = smpp34.Server(host="127.0.0.1", port=port, system_id="smsc")
    await server.start()
    up = Upstream(server, port)
    try:
        yield up
    finally:
        up.close()
        await server.stop()


@contextlib.asynccontextmanager
async def mo_gateway(store_url: str, upstream: Upstream, allow_private: bool = True,
                     join_timeout: float = 600.0) -> AsyncIterator[HttpHarness]:
    """A gateway whose connector `up` binds to `upstream`; account acme (password of
    smpp_harness) with no number yet."""
    await prepare_database(store_url)
    store = open_store(store_url)
    await store.open()
    try:
        await store.add_connector(Connector("up", "smpp", {
            "host": "127.0.0.1", "port": upstream.port, "system_id": "gw",
            "password": "secret12", "response_timeout": 2, "reconnect_min": 0.1,
            "reconnect_max": 0.4}))
    finally:
        await store.close()

    def configure(settings: Settings) -> None:
        settings.http.callbacks.allow_private = allow_private
        settings.inbound.join_timeout = join_timeout

    settings = http_settings(store_url)
    configure(settings)
    app = App(settings)
    await app.start()
    harness = HttpHarness(app, store_url, configure)
    try:
        await harness.account("acme")
        yield harness
    finally:
        await harness.close()
        await harness.app.stop()


async def add_number(gw: HttpHarness, mo_url: str = "") -> None:
    account = await gw.store.get_account("acme")
    await gw.store.add_number(InboundNumber(NUMBER, account.id, mo_url))
    await gw.app.inbound.reload_numbers()  # (the running gateway's own reload: 2 s)


async def next_deliver_sm(client, answer: bool = True) -> Pdu:
    pdu = await client.next_request()
    assert pdu.command_id == CommandId.deliver_sm
    if answer:
        client.respond(pdu)
    return pdu


async def no_pending(gw: HttpHarness) -> bool:
    account = await gw.store.get_account("acme")
    return not await gw.receipts(account.id)


# -- (a) to a bound receiver, answered upstream only once stored -------------------------

async def test_mo_to_a_bound_receiver_answered_after_the_store(store_url, upstream):
    async with mo_gateway(store_url, upstream) as gw:
        await add_number(gw)
        client = await gw.bound("rx", "acme")
        real_write, gate = gw.store.write, asyncio.Event()

        async def held_write(batch):
            if batch.new_inbound:
                await gate.wait()
            return await real_write(batch)
        gw.store.write = held_write
        text = "héllo".encode("utf-16-be")
        answer = asyncio.ensure_future(upstream.mo(text, data_coding=8))
        await asyncio.sleep(0.3)
        assert not answer.done()  # the MO's commit is held: the upstream waits
        assert client.requests.empty()  # and nothing went to the customer yet
        gate.set()
        assert await answer == Status.ESME_ROK
        pdu = await next_deliver_sm(client)
        assert (pdu["esm_class"], pdu["data_coding"], pdu["short_message"]) == (0, 8, text)
        assert (pdu["source_addr"], pdu["destination_addr"]) == (HANDSET, NUMBER + "77")
        [mo] = await gw.store.recent_inbound()
        account = await gw.store.get_account("acme")
        assert (mo.account_id, mo.payload, mo.connector) == (account.id, text, "up")
        await eventually(lambda: no_pending(gw), what="the delivered MO's row deleted")


# -- (b) to an HTTP callback -------------------------------------------------------------

async def test_mo_to_the_numbers_mo_url(store_url, upstream):
    receiver = await Receiver().start()
    try:
        async with mo_gateway(store_url, upstream) as gw:
            await add_number(gw, receiver.url("/mo?key=k1"))
            before = time.time()
            text = gsm7.encode("Hi @ £5 {ok}")  # GSM 03.38, extension table included
            assert await upstream.mo(text, data_coding=0) == Status.ESME_ROK
            [call] = await eventually(_async(lambda: receiver.calls), what="the MO request")
            [mo] = await gw.store.recent_inbound()
            assert call == {"path": "/mo", "key": "k1", "from": HANDSET, "to": NUMBER + "77",
                            "text": "Hi @ £5 {ok}", "coding": "0", "id": str(mo.id),
                            "time": call["time"], "parts": "1", "total": "1"}
            assert call["time"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before))
            # no receiver bound: the deliver_sm waits for one
            [held] = await gw.receipts(mo.account_id)
            assert (held.kind, held.message_id) == (MO, mo.id)
            await eventually(_async(lambda: gw.app.http.callbacks.delivered == 1),
                             what="the request counted delivered")
    finally:
        await receiver.stop()


# -- (c) a two-part MO: joined for HTTP, as it came over SMPP ----------------------------

async def test_two_part_mo_joined_for_http_and_two_parts_over_smpp(store_url, upstream):
    receiver = await Receiver().start()
    try:
        async with mo_gateway(store_url, upstream) as gw:
            await add_number(gw, receiver.url("/mo"))
            client = await gw.bound("trx", "acme")
            first, second = UDH + b"\x01Hello ", UDH + b"\x02world"
            assert await upstream.mo(first, esm_class=0x40) == Status.ESME_ROK
            await asyncio.sleep(0.3)
            assert receiver.calls == []  # one part is no message yet
            assert await upstream.mo(second, esm_class=0x40) == Status.ESME_ROK
            [call] = await eventually(_async(lambda: receiver.calls), what="one request")
            parts = await gw.store.recent_inbound()
            assert (call["text"], call["parts"], call["total"]) == ("Hello world", "2", "2")
            assert call["id"] == str(min(p.id for p in parts))  # the first part's id
            assert not any(p.joining for p in parts)
            got = [await next_deliver_sm(client) for _ in range(2)]
            assert [(p["esm_class"], p["short_message"]) for p in got] \
                == [(0x40, first), (0x40, second)]
            await asyncio.sleep(0.3)
            assert len(receiver.calls) == 1
    finally:
        await receiver.stop()


async def test_sar_parts_in_any_order_joined_in_order(store_url, upstream):
    """sar_* TLVs instead of a UDH, the last part first, UCS-2 with a surrogate pair
    split between the parts: the text is joined before it is decoded."""
    receiver = await Receiver().start()
    try:
        async with mo_gateway(store_url, upstream) as gw:
            await add_number(gw, receiver.url("/mo"))
            client = await gw.bound("rx", "acme")
            text = "ok 😀 done".encode("utf-16-be")
            cut = text.index("😀".encode("utf-16-be")) + 2  # between the surrogates
            for seq, body in ((2, text[cut:]), (1, text[:cut])):
                sar = [smpp34.Tlv(Tag.sar_msg_ref_num, (513).to_bytes(2, "big")),
                       smpp34.Tlv(Tag.sar_total_segments, b"\x02"),
                       smpp34.Tlv(Tag.sar_segment_seqnum, bytes([seq]))]
                assert await upstream.mo(body, data_coding=8, tlvs=sar) == Status.ESME_ROK
            [call] = await eventually(_async(lambda: receiver.calls), what="one request")
            assert (call["text"], call["coding"], call["parts"]) == ("ok 😀 done", "8", "2")
            got = [await next_deliver_sm(client) for _ in range(2)]
            assert [p["esm_class"] for p in got] == [0, 0]
            assert [p.tlv(Tag.sar_segment_seqnum) for p in got] == [2, 1]
            assert {p.tlv(Tag.sar_msg_ref_num) for p in got} == {513}
    finally:
        await receiver.stop()


async def test_half_a_message_survives_a_restart(store_url, upstream):
    receiver = await Receiver().start()
    try:
        async with mo_gateway(store_url, upstream) as gw:
            await add_number(gw, receiver.url("/mo"))
            assert await upstream.mo(UDH + b"\x01Hello ", esm_class=0x40) == Status.ESME_ROK
            await gw.restart()
            await upstream.session()  # bound again
            assert await upstream.mo(UDH + b"\x02again", esm_class=0x40) == Status.ESME_ROK
            [call] = await eventually(_async(lambda: receiver.calls), what="one request")
            assert (call["text"], call["parts"]) == ("Hello again", "2")
    finally:
        await receiver.stop()


async def test_an_incomplete_message_is_given_up_with_what_came(store_url, upstream):
    receiver = await Receiver().start()
    try:
        async with mo_gateway(store_url, upstream, join_timeout=0.5) as gw:
            await add_number(gw, receiver.url("/mo"))
            three = bytes((5, 0, 3, 9, 3))
            for seq, body in ((1, b"one "), (3, b"three")):
                assert await upstream.mo(three + bytes([seq]) + body, esm_class=0x40) == 0
            [call] = await eventually(_async(lambda: receiver.calls), what="a request")
            assert (call["text"], call["parts"], call["total"]) == ("one three", "2", "3")
            await eventually(_async(lambda: not gw.app.inbound.joiner), what="settled")

            async def unmarked():
                return not any(p.joining for p in await gw.store.recent_inbound())
            await eventually(unmarked, what="the parts no longer joining")
    finally:
        await receiver.stop()


# -- (d) held while no receiver is bound, also across a restart --------------------------

async def test_mo_held_until_a_receiver_binds_also_across_a_restart(store_url, upstream):
    async with mo_gateway(store_url, upstream) as gw:
        await add_number(gw)
        account = await gw.store.get_account("acme")
        assert await upstream.mo(b"first") == Status.ESME_ROK
        [held] = await gw.receipts(account.id)
        assert (held.kind, held.payload) == (MO, b"first")
        client = await gw.bound("rx", "acme")
        pdu = await next_deliver_sm(client)
        assert (pdu["short_message"], pdu["esm_class"]) == (b"first", 0)
        await eventually(lambda: no_pending(gw), what="the first MO delivered")
        await client.close()

        assert await upstream.mo(b"second") == Status.ESME_ROK  # nobody bound now
        await gw.restart()
        assert len(await gw.receipts(account.id)) == 1
        client = await gw.bound("rx", "acme")
        pdu = await next_deliver_sm(client, answer=False)
        assert pdu["short_message"] == b"second"
        await asyncio.sleep(0.2)
        assert len(await gw.receipts(account.id)) == 1  # kept until deliver_sm_resp
        client.respond(pdu)
        await eventually(lambda: no_pending(gw), what="the second MO delivered")


# -- (e) to no number: stored, answered OK -----------------------------------------------

async def test_unrouted_mo_is_stored_and_answered_ok(store_url, upstream):
    async with mo_gateway(store_url, upstream) as gw:
        await add_number(gw, "http://127.0.0.1:9/mo")
        assert await upstream.mo(b"lost?", to="999") == Status.ESME_ROK
        [mo] = await gw.store.recent_inbound()
        assert (mo.account_id, mo.dest_addr, mo.payload) == (None, "999", b"lost?")
        assert gw.app.inbound.unrouted == 1
        assert not await gw.store.count_callbacks()
        assert await no_pending(gw)


async def test_a_number_added_while_running_applies_within_5_s(store_url, upstream):
    async with mo_gateway(store_url, upstream) as gw:
        account = await gw.store.get_account("acme")
        await gw.store.add_number(InboundNumber(NUMBER, account.id))  # as the CLI does
        started = time.monotonic()

        async def routed():
            await upstream.mo(b"ping")
            return (await gw.store.recent_inbound(1))[0].account_id == account.id
        await eventually(routed, timeout=6, interval=0.5, what="the number in force")
        assert time.monotonic() - started < 5


# -- (f) a private mo-url: refused unless allowed ----------------------------------------

async def test_a_private_mo_url_is_refused_unless_allowed(store_url, upstream):
    receiver = await Receiver().start()
    try:
        async with mo_gateway(store_url, upstream, allow_private=False) as gw:
            await add_number(gw, receiver.url("/mo"))
            assert await upstream.mo(b"to loopback") == Status.ESME_ROK
            callbacks = gw.app.http.callbacks
            await eventually(_async(lambda: callbacks.refused == 1), what="refused")

            async def deleted():
                return await gw.store.count_callbacks() == 0
            await eventually(deleted, what="the refused request's row deleted")
            assert receiver.calls == [] and callbacks.delivered == 0
    finally:
        await receiver.stop()

