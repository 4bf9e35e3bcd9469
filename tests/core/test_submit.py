"""core/submit.py without I/O: prepare builds its messages positionally (every field
must land where the keyword construction would put it), one destination's own path
(prepare_one) checks and builds as the many-number path does, and a group whose caller
was cancelled is still dispatched once stored."""

import asyncio
import itertools
from dataclasses import fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.core.errors import GatewayError
from smsgate.core.models import ATES, RUNNING, Account, Message, Route
from smsgate.core.routing import RoutingTable
from smsgate.core.submit import SubmitPipeline, SubmitRequest


@pytest.mark.parametrize("destinations", [
    ["+447700900001"],  # one: prepare_one's own construction
    ["+447700900001", "447700900002"],  # many: the list comprehension's
])
def test_prepared_messages_have_every_field_where_the_keywords_put_it(destinations) -> None:
    ids = itertools.count(101)
    pipeline = SubmitPipeline(
        routing=lambda: RoutingTable([Route("4477", "up", price=7)]),
        connector_status=lambda name: RUNNING, next_id=lambda: next(ids), writer=None,
        dispatch=lambda m: None, node="node-a")
    # Every request field distinct from Message's defaults, so a swap shows.
    req = SubmitRequest(
        account=Account("acme", "x", id=42), source_addr="Acme", destinations=destinations,
        payload=b"hello", data_coding=8, esm_class=0x40, single_part=False, parts=3,
        source_ton=5, source_npi=9, dest_ton=2, dest_npi=6, protocol_id=0x3F, priority=2,
        registered_delivery=17, service_type="CMT", options=b"\x02\x04", channel="http",
        ref="r-1", dlr_url="https://example.com/d", max_destinations=5)
    messages = pipeline.prepare(req, now=1_000.0)
    assert len(messages) == len(destinations)
    for n, message in enumerate(messages):
        _same_fields(message, _expected(101 + n, destinations[n].lstrip("+"),
                                        pipeline.settings.default_validity))


def _same_fields(message: Message, expected: Message) -> None:
    for field in fields(Message):
        assert getattr(message, field.name) == getattr(expected, field.name), field.name


def _expected(message_id: int, dest_addr: str, validity: float) -> Message:
    return Message(
        id=message_id, account_id=42, source_addr="Acme", dest_addr=dest_addr, payload=b"hello",
        data_coding=8, esm_class=0x40, parts=3, price=21, connector="up", source_ton=5,
        source_npi=9, dest_ton=2, dest_npi=6, protocol_id=0x3F, priority=2,
        registered_delivery=17, service_type="CMT", options=b"\x02\x04", channel="http",
        ref="r-1", dlr_url="https://example.com/d", status=ATES, error_code=0,
        upstream_id="", created_at=1_000.0, schedule_at=None,
        expires_at=1_000.0 + validity, node="node-a")


NOW = 1_000_000.0


@given(sender=st.sampled_from(["Acme", "Other", "447700900000", "+4477", "", "a" * 12]),
       destination=st.sampled_from(["447700900001", "+447700900001", "00447700900001",
                                    "4477", "49170000000", "1555000000x", ""]),
       payload=st.binary(max_size=200), data_coding=st.sampled_from([0, 3, 8, 0x0B, 0xF0]),
       esm_class=st.sampled_from([0, 0x02, 0x04, 0x40, 0x10]),
       single_part=st.booleans(), paced=st.booleans(),
       schedule_at=st.sampled_from([None, NOW - 120, NOW - 30, NOW + 60, NOW + 400 * 86400]),
       expires_at=st.sampled_from([None, NOW - 1, NOW + 30, NOW + 3600, NOW + 30 * 86400]))
def test_one_destination_is_prepared_as_the_many_number_path_prepares_it(
        sender, destination, payload, data_coding, esm_class, single_part, paced,
        schedule_at, expires_at) -> None:
    """Whatever the request, prepare_one gives the message (or the first failing
    check's error) that the list path gives for the same destination."""
    pipeline = SubmitPipeline(
        routing=lambda: RoutingTable([Route("4477", "up", price=7, senders=("Acme",)),
                                      Route("44", "other", price=3)]),
        connector_status=lambda name: RUNNING, next_id=itertools.count(1).__next__,
        writer=None, dispatch=lambda m: None, node="n")
    account = Account("acme", "x", id=42, allowed_senders=("Acme", "Other", "447700900000"))
    one = SubmitRequest(
        account=account, source_addr=sender, destinations=[destination], payload=payload,
        data_coding=data_coding, esm_class=esm_class, single_part=single_part, paced=paced,
        schedule_at=schedule_at, expires_at=expires_at, max_destinations=2)
    twice = replace(one, destinations=[destination, destination])  # the list path
    try:
        message = pipeline.prepare_one(one, NOW)
    except GatewayError as exc:
        with pytest.raises(GatewayError) as raised:
            pipeline.prepare(twice, NOW)
        assert raised.value.error == exc.error
        return
    first, _ = pipeline.prepare(twice, NOW)
    assert replace(first, id=message.id) == message


class PendingCommit:
    """A writer whose one group commit completes when the test says so."""

    def __init__(self) -> None:
        self.stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def add_messages(self, messages: list[Message]) -> "asyncio.Future[bool]":
        return self.stored


async def test_a_group_stored_after_its_caller_was_cancelled_is_still_dispatched() -> None:
    """An HTTP handler cancelled (server stopping) while its group commits: the
    messages are stored and charged, so they must still go to their connector."""
    writer, dispatched = PendingCommit(), []
    ids = itertools.count(1)
    pipeline = SubmitPipeline(
        routing=lambda: RoutingTable([Route("", "up", price=1)]),
        connector_status=lambda name: RUNNING, next_id=lambda: next(ids), writer=writer,
        dispatch=dispatched.append)
    req = SubmitRequest(account=Account("acme", "x", id=1), source_addr="Acme",
                        destinations=["447700900001", "447700900002"], payload=b"hi",
                        channel="http", max_destinations=5)
    submitting = asyncio.ensure_future(pipeline.submit_all(req))
    await asyncio.sleep(0)  # now waiting for the commit
    submitting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await submitting
    writer.stored.set_result(True)  # the commit went through all the same
    await asyncio.sleep(0)
    assert [m.dest_addr for m in dispatched] == ["447700900001", "447700900002"]
    assert pipeline.accepted == {"http": 2}
