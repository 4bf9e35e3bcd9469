"""The SMPP connector against an independent SMPP implementation (PyPI smpp34, a Rust
SMSC with an asyncio face), over real TCP: hex ids in submit_sm_resp and decimal ones in
receipts, throttling, permanent refusals, the window and TPS seen from the SMSC's side,
long messages, MO, and deliver_sm answered only once the core stored it."""

import asyncio
import time
from collections.abc import Callable

import pytest
from upstream_harness import eventually, message, settings, started

smpp34 = pytest.importorskip("smpp34")

ESME_RINVDSTADR = 0x0B
ESME_RX_T_APPN = 0x64


class Upstream:
    """Reads the smpp34 server's events: binds go to `sessions`, submits to `decide`
    (which calls accept or reject, now or later)."""

    def __init__(self, server, decide: Callable) -> None:
        self.server = server
        self.decide = decide
        self.sessions: list = []
        self.submits: list = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.sessions.append(event)
            elif isinstance(event, smpp34.SubmitSmEvent):
                self.submits.append((time.monotonic(), event))
                self.decide(self, event)

    def close(self) -> None:
        self.task.cancel()


def hex_ids(upstream: Upstream, event) -> None:
    event.accept(message_id=f"{0x38601F0 + len(upstream.submits):x}")


async def receipt(session, number: int, stat: bytes = b"DELIVRD"):
    """A receipt whose only id is decimal, 10 digits, in the text (SMPP34.md §6.3)."""
    text = b"id:%010d sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 " \
           b"stat:%s err:000 text:Hello" % (number, stat)
    return await session.deliver_sm(destination_addr="Acme", source_addr="447700900001",
                                    esm_class=0x04, short_message=text)


async def test_hex_resp_ids_and_decimal_receipt_ids(smpp34_server):
    upstream = Upstream(smpp34_server.server, hex_ids)
    connector, recorder = await started(settings(smpp34_server.port))
    try:
        connector.send([message(n) for n in range(1, 6)])
        await eventually(lambda: len(recorder.ids) == 5, what="5 sent")
        assert sorted(ids[0] for ids in recorder.ids.values()) == \
            [f"{0x38601F0 + n:x}" for n in range(1, 6)]  # "38601f1" ... "38601f5"
        hex_id = recorder.ids[3][0]
        [session] = upstream.sessions
        answer = await receipt(session, int(hex_id, 16))
        assert answer.command_status == 0
        [report] = recorder.reports
        assert report.upstream_ids[0] == f"{int(hex_id, 16):010d}"  # "00589...": decimal
        assert hex_id in report.upstream_ids
        assert report.status == "DELIVRD" and report.connector == "up"
    finally:
        await connector.stop()
        upstream.close()


async def test_throttling_slows_down_and_resends_the_same_message(smpp34_server):
    def every_fourth_throttled(upstream: Upstream, event) -> None:
        if len(upstream.submits) % 4 == 0:
            event.reject(smpp34.ESME_RTHROTTLED)
        elif len(upstream.submits) % 7 == 0:
            event.reject(smpp34.ESME_RMSGQFUL)
        else:
            hex_ids(upstream, event)

    upstream = Upstream(smpp34_server.server, every_fourth_throttled)
    connector, recorder = await started(settings(smpp34_server.port, window=5))
    try:
        connector.send([message(n, text=b"m%d" % n) for n in range(1, 31)])
        await eventually(lambda: len(recorder.ids) == 30, timeout=15, what="30 sent")
        assert recorder.failures == {} and set(recorder.outcomes.values()) == {1}
        texts = [event.short_message for _, event in upstream.submits]
        refused = len(texts) - 30
        assert refused > 0 and connector.state()["throttled"] == refused
        assert sorted(set(texts)) == sorted(b"m%d" % n for n in range(1, 31))
    finally:
        await connector.stop()
        upstream.close()


async def test_a_permanent_refusal_keeps_the_upstream_status(smpp34_server):
    upstream = Upstream(smpp34_server.server,
                        lambda _u, event: event.reject(ESME_RINVDSTADR))
    connector, recorder = await started(settings(smpp34_server.port))
    try:
        connector.send([message(1)])
        await eventually(lambda: recorder.failures, what="a refusal")
        assert recorder.permanent() == {1: ESME_RINVDSTADR} and recorder.ids == {}
        assert connector.state()["refused"] == 1 and connector.available
    finally:
        await connector.stop()
        upstream.close()


async def test_the_window_is_never_exceeded(smpp34_server):
    outstanding, most = [], [0]

    def hold(upstream: Upstream, event) -> None:
        outstanding.append(event)
        most[0] = max(most[0], len(outstanding))

    async def answer_slowly() -> None:
        while True:
            await asyncio.sleep(0.01)
            if outstanding:
                outstanding.pop(0).accept(message_id="x")

    upstream = Upstream(smpp34_server.server, hold)
    answering = asyncio.ensure_future(answer_slowly())
    connector, recorder = await started(settings(smpp34_server.port, window=4))
    try:
        connector.send([message(n) for n in range(1, 41)])
        await eventually(lambda: len(recorder.ids) == 40, timeout=10, what="40 sent")
        assert most[0] == 4
    finally:
        answering.cancel()
        await connector.stop()
        upstream.close()


async def test_tps_is_respected_over_all_binds(smpp34_server):
    upstream = Upstream(smpp34_server.server, hex_ids)
    connector, recorder = await started(settings(smpp34_server.port, tps=40, binds=2))
    await eventually(lambda: connector.state()["transmitters_up"] == 2, what="2 binds")
    try:
        connector.send([message(n) for n in range(1, 101)])
        await eventually(lambda: len(recorder.ids) == 100, timeout=10, what="100 sent")
        times = [at for at, _ in upstream.submits]
        assert times[-1] - times[0] >= 2.2  # 100 at 40/s: 2.5 s less a burst
        most_in_a_second = max(sum(1 for t in times if start <= t < start + 1)
                               for start in times)
        # rate + burst, and slack: smpp34 hands events over in batches, so their times
        # bunch a little (without pacing all 100 would come within a few ms)
        assert most_in_a_second <= 40 + 2 + 10
    finally:
        await connector.stop()
        upstream.close()


async def test_a_long_text_is_split_with_udh(smpp34_server):
    upstream = Upstream(smpp34_server.server, hex_ids)
    connector, recorder = await started(settings(smpp34_server.port))
    text = b"abcdefghij" * 40  # 400 septets: 3 parts
    try:
        connector.send([message(1, text=text, parts=3)])
        await eventually(lambda: 1 in recorder.ids, what="sent")
        # smpp34 hands events over from several threads: not always in wire order.
        events = sorted((event for _, event in upstream.submits),
                        key=lambda event: event.short_message[5])
        assert len(events) == 3 and len(recorder.ids[1]) == 3
        udhs = [event.short_message[:6] for event in events]
        ref = udhs[0][3]
        assert udhs == [bytes((5, 0, 3, ref, 3, n)) for n in (1, 2, 3)]
        assert all(event.esm_class & 0x40 and event.registered_delivery == 1
                   for event in events)
        assert b"".join(event.short_message[6:] for event in events) == text
    finally:
        await connector.stop()
        upstream.close()


async def test_mo_goes_to_the_core_and_is_answered_once_stored(smpp34_server):
    upstream = Upstream(smpp34_server.server, hex_ids)
    connector, recorder = await started(settings(smpp34_server.port))
    recorder.hold = True
    try:
        [session] = upstream.sessions
        answer = asyncio.ensure_future(session.deliver_sm(
            destination_addr="12345", source_addr="447700900123", data_coding=8,
            short_message="héllo".encode("utf-16-be"), tlvs=[smpp34.Tlv(0x1402, b"x")]))
        await eventually(lambda: recorder.held, what="an MO")
        await asyncio.sleep(0.1)
        assert not answer.done()  # not answered before the core stored it
        recorder.held.pop()(True)
        assert (await asyncio.wait_for(answer, 5)).command_status == 0
        [mo] = recorder.inbound_messages
        assert (mo.source_addr, mo.dest_addr, mo.data_coding) == ("447700900123", "12345", 8)
        assert mo.payload.decode("utf-16-be") == "héllo" and mo.options.endswith(b"x")
        # A receipt the core could not store is answered ESME_RX_T_APPN.
        answer = asyncio.ensure_future(receipt(session, 1))
        await eventually(lambda: recorder.held, what="a receipt")
        recorder.held.pop()(False)
        assert (await asyncio.wait_for(answer, 5)).command_status == ESME_RX_T_APPN
    finally:
        await connector.stop()
        upstream.close()
