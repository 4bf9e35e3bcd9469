"""servers/smpp_messages.py's `submit_request` builds SubmitRequest positionally (a third
of the keyword call's cost): every field must land where the keywords put it."""

from dataclasses import fields
from datetime import UTC, datetime

import pytest

from smsgate.core.errors import Err, GatewayError
from smsgate.core.models import Account
from smsgate.core.submit import SubmitRequest
from smsgate.servers.smpp_messages import submit_request
from smsgate.smpp.codec import encode_tlvs
from smsgate.smpp.constants import CommandId, Tag
from smsgate.smpp.pdu import Pdu

ACCOUNT = Account("acme", "x", id=42)
SCHEDULE, VALIDITY = "301231235959000+", "311231235959000+"  # absolute, UTC


def submit(command_id: int = CommandId.submit_sm, **changes) -> Pdu:
    """A PDU whose every field differs from SubmitRequest's defaults, so a swap shows."""
    values = {"service_type": "CMT", "source_addr_ton": 5, "source_addr_npi": 9,
              "source_addr": "Acme", "esm_class": 0x40, "protocol_id": 0x3F,
              "priority_flag": 2, "schedule_delivery_time": SCHEDULE,
              "validity_period": VALIDITY, "registered_delivery": 17, "data_coding": 8,
              "short_message": b"hello"} | changes
    return Pdu(command_id, 7, 0, values, [(Tag.user_message_reference, b"\x00\x01")])


def same(request: SubmitRequest, expected: SubmitRequest) -> None:
    for field in fields(SubmitRequest):
        assert getattr(request, field.name) == getattr(expected, field.name), field.name


@pytest.mark.parametrize("command_id", [CommandId.submit_sm, CommandId.data_sm])
def test_every_field_lands_where_the_keywords_put_it(command_id) -> None:
    request = submit_request(submit(command_id), ACCOUNT, "447700900001", 2, 6)
    same(request, SubmitRequest(
        account=ACCOUNT, source_addr="Acme", destinations=["447700900001"],
        payload=b"hello", data_coding=8, esm_class=0x40, single_part=True, parts=None,
        source_ton=5, source_npi=9, dest_ton=2, dest_npi=6, protocol_id=0x3F, priority=2,
        registered_delivery=17,
        schedule_at=datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp(),
        expires_at=datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp(),
        service_type="CMT", options=encode_tlvs([(Tag.user_message_reference, b"\x00\x01")]),
        channel="smpp", ref="", dlr_url="", max_destinations=254, paced=False,
        allow_transaction_mode=command_id == CommandId.data_sm))


def test_a_message_payload_is_the_text_and_not_one_sms() -> None:
    pdu = submit(short_message=b"", schedule_delivery_time="", validity_period="")
    pdu.tlvs = [(Tag.message_payload, b"x" * 300)]
    request = submit_request(pdu, ACCOUNT, "447700900001", 1, 1)
    assert (request.payload, request.single_part, request.options) == (b"x" * 300, False, b"")
    assert request.schedule_at is request.expires_at is None


@pytest.mark.parametrize("changes, error", [
    ({"priority_flag": 4}, Err.BAD_PRIORITY),
    ({"schedule_delivery_time": "not a time"}, Err.BAD_SCHEDULE),
    ({"validity_period": "991399999999999+"}, Err.BAD_VALIDITY),
])
def test_bad_fields_are_refused_with_their_error(changes, error) -> None:
    with pytest.raises(GatewayError) as raised:
        submit_request(submit(**changes), ACCOUNT, "447700900001", 1, 1)
    assert raised.value.error == error


def test_short_message_and_message_payload_together_are_refused() -> None:
    pdu = submit()
    pdu.tlvs.append((Tag.message_payload, b"more"))
    with pytest.raises(GatewayError) as raised:
        submit_request(pdu, ACCOUNT, "447700900001", 1, 1)
    assert raised.value.error == Err.BAD_LENGTH
