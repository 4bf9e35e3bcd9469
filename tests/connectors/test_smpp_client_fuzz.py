"""Bad input from the upstream (hypothesis): garbage, broken and truncated PDUs, answers
to nothing or to a submit_sm in flight, requests out of place. Whatever comes, nothing
crashes or logs an error, every message gets exactly one final outcome (temporary
failures are sent again, as the core would), and the connector sends the next message:
over the same link, or over a new one when the old one was dropped or went deaf (a
frame that never completes: the submit_sm times out, the enquire_link probe too)."""

import asyncio
import logging
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from upstream_harness import RawSmsc, eventually, message, started
from upstream_harness import settings as connector_settings

from smsgate.connectors import smpp_client
from smsgate.smpp.constants import CommandId

IN_FLIGHT = -1  # stands for the sequence of the submit_sm the SMSC holds
COMMANDS = [int(c) for c in CommandId] + [0x00000110, 0x80000110, 0x00010200, 0xFFFFFFFF]

pdus = st.builds(
    lambda command, status, sequence, body, cut: (command, status, sequence, body, cut),
    st.sampled_from(COMMANDS), st.sampled_from([0, 0x58, 0x14, 0x0B, 0x08, 0xFFFFFFFF]),
    st.sampled_from([IN_FLIGHT, 0, 1, 2, 0x7FFFFFFF, 0x80000000]),
    st.binary(max_size=80), st.sampled_from([None, 3, 10, 17]))
frames = st.one_of(st.binary(min_size=1, max_size=120), pdus)


def wire(frame, held_sequence: int) -> bytes:
    if isinstance(frame, bytes):
        return frame
    command, status, sequence, body, cut = frame
    if sequence == IN_FLIGHT:
        sequence = held_sequence
    data = struct.pack(">IIII", 16 + len(body), command, status, sequence) + body
    return data[:cut] if cut is not None else data


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def scenario(blobs: list) -> None:
    errors = Errors()
    logging.getLogger("smsgate").addHandler(errors)
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, context: errors.records.append(context))  # type: ignore[arg-type]
    smsc = await RawSmsc(hold=True).start()
    connector, recorder = await started(connector_settings(smsc.port, response_timeout=1))
    recorder.resend = connector
    cool_down, smpp_client.COOL_DOWN = smpp_client.COOL_DOWN, 0.2  # the circuit: elsewhere
    try:
        connector.send([message(1)])
        await eventually(lambda: smsc.held, what="a submit in flight")
        [connection] = smsc.live
        for blob in blobs:
            connection.transport.write(wire(blob, smsc.held[0].sequence))
        await asyncio.sleep(0.05)
        smsc.hold = False
        if not connection.transport.is_closing():
            smsc.answer(smsc.held[0])
        await eventually(lambda: recorder.outcomes.get(1) == 1, timeout=4,
                         what="an outcome for 1")
        connector.send([message(2)])
        await eventually(lambda: 2 in recorder.ids, timeout=6, what="message 2 sent")
        assert set(recorder.outcomes.values()) == {1}
    finally:
        smpp_client.COOL_DOWN = cool_down
        await connector.stop()
        await smsc.close()
        logging.getLogger("smsgate").removeHandler(errors)
    assert errors.records == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, min_size=1, max_size=4))
def test_bad_input_from_the_upstream(blobs: list) -> None:
    asyncio.run(scenario(blobs))


def test_garbage_drops_the_link_and_it_comes_back() -> None:
    """A length no SMPP PDU has: framing is lost, the link is dropped, a new one binds."""
    async def run() -> None:
        smsc = await RawSmsc().start()
        connector, recorder = await started(connector_settings(smsc.port))
        try:
            [connection] = smsc.live
            connection.transport.write(b"\x00\x00\x00\x05garbage, garbage")
            await eventually(lambda: len(smsc.binds) == 2, what="a new bind")
            assert "framing lost" in connector.state()["last_error"]
            connector.send([message(1)])
            await eventually(lambda: 1 in recorder.ids, what="sent on the new link")
        finally:
            await connector.stop()
            await smsc.close()
    asyncio.run(run())
