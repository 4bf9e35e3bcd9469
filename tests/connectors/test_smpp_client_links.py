"""The SMPP connector's links when the upstream misbehaves, against the steerable raw SMSC
of upstream_harness.py over real TCP: links lost with submits in flight, refused binds
and backoff, a silent upstream, the circuit that makes the connector unavailable, and
stop()."""

import asyncio
import json
import logging
import time

from upstream_harness import (
    Recorder,
    deliver_body,
    eventually,
    message,
    settings,
    started,
)

from smsgate.connectors import smpp_client


async def test_link_lost_with_submits_in_flight(raw_smsc):
    raw_smsc.hold = True
    connector, recorder = await started(settings(raw_smsc.port, window=5))
    recorder.resend = connector  # the core would dispatch them again
    try:
        assert connector.room == 5  # the window
        connector.send([message(n) for n in range(1, 9)])
        await eventually(lambda: len(raw_smsc.held) == 5, what="a full window")
        assert connector.room == 0 and connector.state()["window_in_use"] == 5
        await asyncio.sleep(0.05)
        assert len(raw_smsc.held) == 5  # the window: 3 more wait in the connector
        raw_smsc.hold = False
        lost_at = time.monotonic()
        raw_smsc.drop_all()
        await eventually(lambda: len(recorder.ids) == 8, what="all 8 sent after reconnecting")
        # One lost link is one failure for the circuit, not one per submit_sm it held:
        # no cool-down, the messages go out as soon as the new session is bound.
        assert connector.available and time.monotonic() - lost_at < 1.0
        # The 5 in flight and the 3 queued went back (temporary), then out again, once.
        assert sorted(recorder.temporary()) == list(range(1, 9))
        assert all(f.status == 0 for fs in recorder.failures.values() for f in fs)
        assert recorder.permanent() == {} and set(recorder.outcomes.values()) == {1}
        [_first, (second, _)] = raw_smsc.binds
        assert second - lost_at >= 0.09  # reconnect_min
        assert connector.state()["reconnects"] == 1
    finally:
        await connector.stop()


async def test_submits_crossing_the_smscs_unbind_are_answered_not_sent_again(raw_smsc):
    """The SMSC unbinds while submit_sm are in flight, and answers them after: they
    crossed its unbind on the wire (our own server takes such requests and answers
    them once stored). The link answers the unbind only then: each message is sent
    once. Answered at once, the link closed, lost the answers, and the messages went
    out again on the next link: sent twice (tests/e2e/test_upstream_down.py)."""
    raw_smsc.hold = True
    connector, recorder = await started(settings(raw_smsc.port, window=5))
    recorder.resend = connector  # the core would dispatch them again
    try:
        connector.send([message(n) for n in range(1, 4)])
        await eventually(lambda: len(raw_smsc.held) == 3, what="3 submit_sm in flight")
        [first] = raw_smsc.live
        first.unbind()
        await asyncio.sleep(0.2)  # the unbind has reached the link before the answers
        assert not first.unbind_answered and connector.room == 0  # nothing more goes out
        connector.send([message(4)])
        raw_smsc.hold = False
        for submit in raw_smsc.held:
            raw_smsc.answer(submit)
        await eventually(lambda: first.unbind_answered, what="the unbind answered")
        await eventually(lambda: len(recorder.ids) == 4, what="all 4 sent")
        assert [s.connection for s in raw_smsc.submits[:3]] == [first] * 3
        assert len(raw_smsc.submits) == 4 and raw_smsc.submits[3].connection is not first
        assert not {1, 2, 3} & set(recorder.temporary())
        assert set(recorder.outcomes.values()) == {1}
    finally:
        await connector.stop()


async def test_refused_binds_back_off_doubling(raw_smsc, caplog):
    raw_smsc.bind_status = 0x0D  # ESME_RBINDFAIL
    with caplog.at_level(logging.WARNING, "smsgate.connectors"):
        connector, _ = await started(settings(raw_smsc.port), bound=False)
        try:
            await eventually(lambda: len(raw_smsc.binds) >= 5, what="5 binds")
            gaps = [b[0] - a[0] for a, b in zip(raw_smsc.binds, raw_smsc.binds[1:], strict=False)]
            for gap, delay in zip(gaps, [0.1, 0.2, 0.4, 0.4], strict=False):  # max 0.4
                assert delay * 0.95 <= gap < delay + 0.15
            assert not connector.available and connector.room == 0
            raw_smsc.bind_status = 0
            await eventually(lambda: connector.available, what="bound at last")
        finally:
            await connector.stop()
    assert "bind refused: ESME_RBINDFAIL (0x0000000d); reconnecting in 0.1 s" in caplog.text


async def test_a_silent_upstream_times_out_and_opens_the_circuit(raw_smsc, monkeypatch):
    monkeypatch.setattr(smpp_client, "COOL_DOWN", 0.5)
    raw_smsc.hold = True
    connector, recorder = await started(settings(raw_smsc.port, response_timeout=1))
    try:
        started_at = time.monotonic()
        connector.send([message(n) for n in range(1, 6)])
        await eventually(lambda: len(recorder.failures) == 5, timeout=5, what="5 timeouts")
        assert time.monotonic() - started_at >= 0.95
        assert sorted(recorder.temporary()) == [1, 2, 3, 4, 5]
        state = connector.state()
        assert state["timeouts"] == 5 and "no response within 1 s" in state["last_error"]
        # Five temporary failures in a row: unavailable for the cool-down, so the
        # dispatcher fails over; then available again.
        assert not connector.available and connector.room == 0
        await eventually(lambda: connector.available, timeout=2, what="the cool-down end")
        raw_smsc.hold = False
        connector.send([message(6)])
        await eventually(lambda: 6 in recorder.ids, what="sent after the cool-down")
    finally:
        await connector.stop()


async def test_an_unanswered_enquire_link_drops_the_link(raw_smsc):
    raw_smsc.answer_enquire_link = False
    connector, _ = await started(settings(raw_smsc.port, enquire_link=1, response_timeout=1))
    try:
        await eventually(lambda: len(raw_smsc.binds) == 2, timeout=5, what="a new bind")
        assert "enquire_link unanswered" in connector.state()["last_error"]
    finally:
        await connector.stop()


async def test_stop_hands_back_the_queue_and_waits_for_answers(raw_smsc):
    raw_smsc.hold = True
    connector, recorder = await started(settings(raw_smsc.port, window=2, response_timeout=1))
    connector.send([message(n) for n in range(1, 4)])
    await eventually(lambda: len(raw_smsc.held) == 2, what="2 in flight")
    stopping = asyncio.ensure_future(connector.stop())
    await eventually(lambda: recorder.failures, what="the queued one handed back")
    assert list(recorder.failures) == [3] and recorder.failures[3][0].temporary
    assert not connector.available
    raw_smsc.answer(raw_smsc.held[0])  # answered during the grace: sent
    began = time.monotonic()
    await asyncio.wait_for(stopping, 5)
    assert time.monotonic() - began < 2.5  # grace (response_timeout) + unbind
    assert list(recorder.ids) == [1] and recorder.temporary() == [3, 2]
    assert raw_smsc.live == []
    connector.send([message(4)])  # after stop: handed back at once
    assert recorder.failures[4][0].temporary


async def test_receipt_with_no_id_is_acknowledged_and_counted(raw_smsc, caplog):
    connector, recorder = await started(settings(raw_smsc.port))
    try:
        [connection] = raw_smsc.live
        connection.deliver(7, deliver_body(0x04, b"stat:DELIVRD err:000"))
        connection.deliver(8, deliver_body(0x04, b"id:abc stat:UNDELIV err:012"))
        await eventually(lambda: len(connection.deliver_answers) == 2, what="answers")
        assert connection.deliver_answers == {7: 0, 8: 0}
        assert connector.state()["bad_reports"] == 1
        [report] = recorder.reports
        assert (report.upstream_ids[0], report.status, report.error_code) == \
            ("abc", "UNDELIV", 12)
    finally:
        await connector.stop()
    assert "a receipt without an id" in caplog.text


async def test_a_failed_part_of_a_message_taken_in_part_is_sent_alone(raw_smsc):
    raw_smsc.hold = True
    connector, recorder = await started(settings(raw_smsc.port))
    try:
        connector.send([message(1, text=b"p" * 400, parts=3)])
        await eventually(lambda: len(raw_smsc.held) == 3, what="3 parts")
        first, second, third = raw_smsc.held
        raw_smsc.answer(first)
        raw_smsc.answer(second, 0x08)  # ESME_RSYSERR: temporary
        raw_smsc.answer(third)
        await eventually(lambda: len(raw_smsc.held) == 4, what="part 2 again")
        again = raw_smsc.held[3]
        assert again.body == second.body  # the same part, UDH and all
        raw_smsc.answer(again)
        await eventually(lambda: 1 in recorder.ids, what="sent")
        assert recorder.ids[1] == ["1", "3", "2"]  # one id per part, in part order
        assert recorder.failures == {}
    finally:
        await connector.stop()


async def test_a_part_refused_for_good_fails_the_message_once(raw_smsc):
    raw_smsc.hold = True
    connector, recorder = await started(settings(raw_smsc.port))
    try:
        connector.send([message(1, text=b"p" * 400, parts=3)])
        await eventually(lambda: len(raw_smsc.held) == 3, what="3 parts")
        first, second, third = raw_smsc.held
        raw_smsc.answer(second, 0x0B)
        raw_smsc.answer(first)
        raw_smsc.answer(third, 0x0B)
        await eventually(lambda: recorder.failures, what="a refusal")
        await asyncio.sleep(0.05)
        assert recorder.permanent() == {1: 0x0B} and recorder.outcomes == {1: 1}
        assert json.loads(json.dumps(connector.state()))["refused"] == 2
    finally:
        await connector.stop()


async def test_a_message_stays_in_the_window_until_its_sent_mark_is_stored(raw_smsc):
    """Answered is not enough: until the core has stored the upstream id a crash sends
    the message again, so its window slot is freed only then (what kill -9 can send
    twice stays within binds x window; found by tests/e2e/test_kill_sender.py)."""
    commits: list[asyncio.Future] = []

    class Storing(Recorder):
        def sent(self, message, upstream_ids):
            super().sent(message, upstream_ids)
            commits.append(asyncio.get_running_loop().create_future())
            return commits[-1]

    connector, recorder = await started(settings(raw_smsc.port, window=2), Storing())
    try:
        connector.send([message(n) for n in range(1, 6)])
        await eventually(lambda: len(recorder.ids) == 2, what="2 answered")
        await asyncio.sleep(0.05)
        assert len(raw_smsc.submits) == 2 and connector.room == 0  # not stored yet
        commits[0].set_result(None)
        await eventually(lambda: len(raw_smsc.submits) == 3, what="a slot freed")
        await asyncio.sleep(0.05)
        assert len(raw_smsc.submits) == 3
        for commit in commits[1:]:  # a failed commit frees the slot as well
            commit.set_exception(OSError("store down"))
            commit.exception()  # retrieved: no "never retrieved" warning
        await eventually(lambda: len(recorder.ids) == 5, what="all 5 sent")
        assert len(raw_smsc.submits) == 5 and connector.room == 0
        for commit in commits[3:]:
            commit.set_result(None)
        await eventually(lambda: connector.room == 2, what="the window free again")
    finally:
        await connector.stop()
