"""SubmitPipeline.prepare builds its messages positionally (core/submit.py): every field
must land where the keyword construction would put it."""

import itertools
from dataclasses import fields

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
