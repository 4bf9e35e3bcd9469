import pytest

from smsgate.core.errors import Err, GatewayError
from smsgate.core.models import Account
from smsgate.core.validation import (
    check_data_coding,
    check_esm_class,
    check_sender,
    normalize_destination,
    user_data_parts,
)

ACCOUNT = Account("acme", "x")


def error_of(call, *args):
    with pytest.raises(GatewayError) as info:
        call(*args)
    return info.value.error


@pytest.mark.parametrize("number, expected", [
    ("9613123456", "9613123456"), ("+9613123456", "9613123456"),
    ("009613123456", "9613123456"), ("1234567", "1234567"),
])
def test_destinations_normalized(number, expected):
    assert normalize_destination(number) == expected


@pytest.mark.parametrize(
    "number", ["123456", "1234567890123456", "96131a3456", "", "+", "٣٣٣٣٣٣٣٣"])
def test_bad_destinations(number):
    assert error_of(normalize_destination, number) is Err.BAD_DESTINATION


def test_senders():
    assert check_sender(ACCOUNT, "Test") == "Test"
    assert check_sender(ACCOUNT, "123456789012345") == "123456789012345"
    assert error_of(check_sender, ACCOUNT, "TwelveLetter") is Err.BAD_SENDER
    assert error_of(check_sender, ACCOUNT, "") is Err.BAD_SENDER
    limited = Account("x", "x", allowed_senders=("Acme",))
    assert error_of(check_sender, limited, "Other") is Err.BAD_SENDER


def test_esm_class_and_data_coding():
    check_esm_class(0x40)
    check_esm_class(0x03)
    assert error_of(check_esm_class, 0x04) is Err.BAD_ESM
    assert error_of(check_esm_class, 0x02) is Err.BAD_ESM
    check_data_coding(0x08)
    check_data_coding(0xF0)
    assert error_of(check_data_coding, 0x0B) is Err.BAD_DATA_CODING


def test_lengths_and_parts():
    assert user_data_parts(b"a" * 160, 0, 0, 10, True) == 1
    assert error_of(user_data_parts, b"a" * 161, 0, 0, 10, True) is Err.BAD_LENGTH
    assert user_data_parts(b"a" * 161, 0, 0, 10, False) == 2
    assert error_of(user_data_parts, b"a" * 153 * 11, 0, 0, 10, False) is Err.BAD_LENGTH
    assert error_of(user_data_parts, b"", 0, 0, 10, True) is Err.BAD_LENGTH
    assert error_of(user_data_parts, b"\x00a\x00", 8, 0, 10, True) is Err.BAD_DATA_CODING
    udh = bytes.fromhex("050003010201")
    assert user_data_parts(udh + b"a" * 153, 0, 0x40, 10, True) == 1
    assert error_of(user_data_parts, udh + b"a" * 154, 0, 0x40, 10, True) is Err.BAD_LENGTH
    assert error_of(user_data_parts, b"\x09\x00", 0, 0x40, 10, True) is Err.BAD_UDH
