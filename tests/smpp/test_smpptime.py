"""SMPP time fields (SMPP34.md §5.6; vectors V16 and V21 of smpp-vectors.md)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.smpp.smpptime import (
    MAX_RELATIVE_SECONDS,
    SmppTimeError,
    format_relative,
    format_smpp_time,
    parse_smpp_time,
)

NOW = datetime(2024, 1, 31, 10, 0, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # V16 schedule_delivery_time: 04:05:06.7 at UTC+2.
        ("150203040506708+", utc(2015, 2, 3, 2, 5, 6, 700_000)),
        # V21 validity_period: 12:00 at UTC+1.
        ("180105120000004+", utc(2018, 1, 5, 11, 0)),
        ("150203040506708-", utc(2015, 2, 3, 6, 5, 6, 700_000)),
        ("991231233000048-", utc(2100, 1, 1, 11, 30)),  # 12 h behind crosses the century
        ("000101000000000+", utc(2000, 1, 1)),
        ("240229235959900+", utc(2024, 2, 29, 23, 59, 59, 900_000)),
    ],
)
def test_absolute(value: str, expected: datetime) -> None:
    result = parse_smpp_time(value, NOW)
    assert result == expected
    assert result is not None and result.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("000001000000000R", NOW + timedelta(days=1)),
        # V16 validity_period: 1 y 2 mo 3 d 04:05:06 from 2024-01-31 (Mar 31 + 3 d).
        ("010203040506000R", utc(2025, 4, 3, 14, 5, 6)),
        # The spec's 2 y 6 mo 10 d 23:34:29: 2026-07-31 + 10 d.
        ("020610233429000R", utc(2026, 8, 11, 9, 34, 29)),
        ("000100000000000R", utc(2024, 2, 29, 10)),  # month end is clamped (leap year)
        ("010100000000000R", utc(2025, 2, 28, 10)),
        ("000000480000000R", NOW + timedelta(hours=48)),  # durations may exceed 23 h
        ("000000000000000R", NOW),
    ],
)
def test_relative(value: str, expected: datetime) -> None:
    assert parse_smpp_time(value, NOW) == expected


def test_relative_uses_now_in_utc() -> None:
    now = datetime(2024, 1, 31, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert parse_smpp_time("000001000000000R", now) == utc(2024, 2, 1, 10)


def test_empty_is_not_set() -> None:
    assert parse_smpp_time("", NOW) is None


@pytest.mark.parametrize(
    "value",
    [
        "15020304050670+",  # 15 characters
        "150203040506708+0",
        "150203040506708+\x00",
        "150203040506708",
        "15020304050670A+",
        "1502030405067O8+",
        "150203040506708X",
        "١٥٠٢٠٣٠٤٠٥٠٦٧٠٨+",  # non-ASCII digits
        " 50203040506708+",
        "151303040506708+",  # month 13
        "150003040506708+",  # month 0
        "150230040506708+",  # 30 February
        "150203240506708+",  # hour 24
        "150203046006708+",  # minute 60
        "150203040560708+",  # second 60
        "150203040506749+",  # 49 quarter hours
        "000001000000100R",  # relative with tenths
        "000001000000004R",  # relative with an offset
    ],
)
def test_malformed(value: str) -> None:
    with pytest.raises(SmppTimeError):
        parse_smpp_time(value, NOW)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        parse_smpp_time("000001000000000R", datetime(2024, 1, 1))


def test_relative_overflow_is_smpp_time_error() -> None:
    with pytest.raises(SmppTimeError):
        parse_smpp_time("990000000000000R", datetime(9950, 1, 1, tzinfo=UTC))


def test_format_absolute() -> None:
    dt = datetime(2015, 2, 3, 4, 5, 6, 789_000, tzinfo=timezone(timedelta(hours=2)))
    assert format_smpp_time(dt) == "150203020506700+"
    with pytest.raises(ValueError):
        format_smpp_time(datetime(2015, 2, 3))
    with pytest.raises(ValueError):
        format_smpp_time(utc(2100, 1, 1))


def test_format_relative() -> None:
    assert format_relative(86_400) == "000001000000000R"
    assert format_relative(90_061) == "000001010101000R"
    assert format_relative(MAX_RELATIVE_SECONDS) == "000099235959000R"
    for bad in (-1, MAX_RELATIVE_SECONDS + 1):
        with pytest.raises(ValueError):
            format_relative(bad)


# --- property tests ---------------------------------------------------------------------

_aware = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
)


@given(_aware)
def test_absolute_round_trip(dt: datetime) -> None:
    tenths = dt.replace(microsecond=dt.microsecond // 100_000 * 100_000)
    assert parse_smpp_time(format_smpp_time(dt), NOW) == tenths


@given(st.integers(0, MAX_RELATIVE_SECONDS), _aware)
def test_relative_round_trip(seconds: int, now: datetime) -> None:
    assert parse_smpp_time(format_relative(seconds), now) == now + timedelta(seconds=seconds)


_near_valid = st.text(alphabet="0123456789+-R", min_size=16, max_size=16)


@given(st.text() | _near_valid, _aware)
def test_parse_raises_only_smpp_time_error(value: str, now: datetime) -> None:
    try:
        result = parse_smpp_time(value, now)
    except SmppTimeError:
        return
    assert result is None or result.tzinfo is UTC
