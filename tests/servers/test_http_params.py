"""The HTTP API's own parameter rules, without a server: schedule and zone parsing,
callback URLs."""

from datetime import UTC, datetime

import pytest

from smsgate.core.callback_urls import dlr_url as callback_url
from smsgate.core.errors import Err, GatewayError
from smsgate.core.models import Account, Message, StatusUpdate
from smsgate.servers.http_params import INVALID_TIME, Params, SubmitFields, submit_request

ACCOUNT = Account("acme", "hash", id=3)


def fields(**values) -> SubmitFields:
    base = {"sid": "Test", "mno": "96170123456", "type": "1", "text": "hello"}
    return SubmitFields(**(base | values))


@pytest.mark.parametrize(("gmt", "schtime", "expected"), [
    (None, "203001011200", datetime(2030, 1, 1, 12, 0, tzinfo=UTC)),
    ("+0530", "203001011200", datetime(2030, 1, 1, 6, 30, tzinfo=UTC)),
    (" 0530", "203001011200", datetime(2030, 1, 1, 6, 30, tzinfo=UTC)),  # unencoded +
    ("-04:00", "203001011200", datetime(2030, 1, 1, 16, 0, tzinfo=UTC)),
    ("0100", "203001011200", datetime(2030, 1, 1, 11, 0, tzinfo=UTC)),
])
def test_schedule_in_zone(gmt, schtime, expected):
    request = submit_request(fields(gmt=gmt, schtime=schtime), ACCOUNT, 100)
    assert request.schedule_at == expected.timestamp()


@pytest.mark.parametrize(("gmt", "schtime"), [
    ("+0000", "20300101120"), ("+0000", "2030010112000"), ("+0000", "203002301200"),
    ("+1500", "203001011200"), ("+0560", "203001011200"), ("UTC", "203001011200"),
])
def test_malformed_schedule_is_left_for_the_core_to_refuse(gmt, schtime):
    request = submit_request(fields(gmt=gmt, schtime=schtime), ACCOUNT, 100)
    assert request.schedule_at == INVALID_TIME


def test_validity_counts_from_the_schedule():
    request = submit_request(fields(schtime="203001011200", validity="90"), ACCOUNT, 100)
    assert request.expires_at == request.schedule_at + 90 * 60


def test_sender_ton():
    assert submit_request(fields(sid="Acme"), ACCOUNT, 1).source_ton == 5
    request = submit_request(fields(sid=" 447700900000"), ACCOUNT, 1)
    assert (request.source_addr, request.source_ton, request.source_npi) \
        == ("+447700900000", 1, 1)


def test_params_spellings_and_repeats():
    params = Params([("userid", "a"), ("password", "b")], [("x", "1"), ("x", "2")])
    assert params.credentials() == ("a", "b")
    with pytest.raises(GatewayError) as error:
        params.one("x")
    assert error.value.error is Err.BAD_REQUEST_PARAMS
    assert Params([("respid", "5")]).one("respId", "respid") == "5"


def test_callback_url_keeps_the_customers_parameters():
    message = Message(id=123, account_id=1, source_addr="Test", dest_addr="961",
                      payload=b"", ref="a&b", dlr_url="https://example.com/dlr?shop=7#top")
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    url = callback_url(message, StatusUpdate(123, "DELIVRD", at, error_code=1))
    assert url == ("https://example.com/dlr?shop=7&status=DELIVRD&id=123&ref=a%26b"
                   "&time=2030-01-02T03%3A04%3A05Z&error=1")
