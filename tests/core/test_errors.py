from smsgate.core.errors import HTTP_DESCRIPTIONS, Err, GatewayError
from smsgate.smpp.constants import Status


def test_every_seed_http_code_has_a_core_error():
    assert {e.http_code for e in Err} == set(HTTP_DESCRIPTIONS)
    assert len(HTTP_DESCRIPTIONS) == 26


def test_http_lines_are_the_seed_text():
    assert Err.BAD_DESTINATION.http_line == "ERROR - HTTP09 --> Invalid Destination Address"
    assert Err.NO_CREDIT.http_line == "ERROR - HTTP18 --> INSUFFICIENT CREDITS/BALANCE"
    assert GatewayError(Err.ACCOUNT_EXPIRED).http_line == "ERROR - HTTP26 --> Account Expired"


def test_smpp_statuses_follow_the_spec_table():
    assert Err.BAD_PASSWORD.smpp_status == Status.ESME_RINVPASWD
    assert Err.UNKNOWN_ACCOUNT.smpp_status == Status.ESME_RINVSYSID
    assert Err.NO_CREDIT.smpp_status == 0x400
    assert Err.NO_ROUTE.smpp_status == 0x401
    assert Err.EXPIRED_AFTER_BIND.smpp_status == 0x402
    assert Err.BAD_DATA_CODING.smpp_status == 0x104
    assert Err.THROTTLED.smpp_status == 0x58
    assert Err.QUEUE_FULL.smpp_status == 0x14
    assert Err.BAD_SCHEDULE.smpp_status == 0x61
    assert Err.BAD_VALIDITY.smpp_status == 0x62
    assert Err.INTERNAL.smpp_status == 0x08
