"""core/submit.py without I/O: prepare builds its messages positionally (every field
must land where the keyword construction would put it), and a group whose caller was
cancelled is still dispatched once stored."""

import asyncio
import itertools
from dataclasses import fields

import pytest

from smsgate.core.models import ATES, RUNNING, Account, Message, Route
from smsgate.core.routing import RoutingTable
from smsgate.core.submit import SubmitPipeline, SubmitRequest


def test_prepared_messages_have_every_field_where_the_keywords_put_it() -> None:
    ids = itertools.count(101)
    pipeline = SubmitPipeline(
        routing=lambda: RoutingTable([Route("4477", "up", price=7)]),
        connector_status=lambda name: RUNNING, next_id=lambda: next(ids), writer=None,
        dispatch=lambda m: None, node="node-a")
    # Every request field distinct from Message's defaults, so a swap shows.
    req = SubmitRequest(
        account=Account("acme", "x", id=42), source_addr="Acme", destinations=["+447700900001"],
        payload=b"hello", data_coding=8, esm_class=0x40, single_part=False, parts=3,
        source_ton=5, source_npi=9, dest_ton=2, dest_npi=6, protocol_id=0x3F, priority=2,
        registered_delivery=17, service_type="CMT", options=b"\x02\x04", channel="http",
        ref="r-1", dlr_url="https://example.com/d", max_destinations=5)
    [message] = pipeline.prepare(req, now=1_000.0)
    expected = Message(
        id=101, account_id=42, source_addr="Acme", dest_addr="447700900001", payload=b"hello",
        data_coding=8, esm_class=0x40, parts=3, price=21, connector="up", source_ton=5,
        source_npi=9, dest_ton=2, dest_npi=6, protocol_id=0x3F, priority=2,
        registered_delivery=17, service_type="CMT", options=b"\x02\x04", channel="http",
        ref="r-1", dlr_url="https://example.com/d", status=ATES, error_code=0,
        upstream_id="", created_at=1_000.0, schedule_at=None,
        expires_at=1_000.0 + pipeline.settings.default_validity, node="node-a")
    for field in fields(Message):
        assert getattr(message, field.name) == getattr(expected, field.name), field.name


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
