"""SMPP time fields ``YYMMDDhhmmsstnnp`` (SMPP34.md §5.6).

Absolute values become timezone-aware UTC datetimes; relative values (``p == "R"``) are
resolved against the caller's ``now``. Two-digit years are read as 20YY.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

__all__ = [
    "MAX_RELATIVE_SECONDS",
    "SmppTimeError",
    "format_relative",
    "format_smpp_time",
    "parse_smpp_time",
]


class SmppTimeError(ValueError):
    """Malformed SMPP time value (maps to ESME_RINVSCHED / ESME_RINVEXPIRY)."""


# 12 digits YYMMDDhhmmss, tenths, quarter hours, and the +/-/R indicator.
_TIME_RE: Final = re.compile(r"([0-9]{12})([0-9])([0-9]{2})([-+R])")
_MAX_QUARTERS: Final = 48
# Largest relative period format_relative writes without using calendar months.
MAX_RELATIVE_SECONDS: Final = 99 * 86_400 + 86_399


def parse_smpp_time(value: str, now: datetime) -> datetime | None:
    """Parse an SMPP time; "" (the lone NUL) means "not set" and returns None.

    ``now`` must be timezone-aware (it is converted to UTC). Relative periods are strict:
    tenths and quarter hours must be 0, but each duration field may be 00-99 (e.g. 48 hours).
    """
    now_utc = _aware_utc(now, "now")
    if value == "":
        return None
    m = _TIME_RE.fullmatch(value)
    if m is None:
        raise SmppTimeError(f"malformed SMPP time {value!r}")
    digits = m.group(1)
    fields = [int(digits[i : i + 2]) for i in range(0, 12, 2)]
    tenths, quarters, sign = int(m.group(2)), int(m.group(3)), m.group(4)
    if sign == "R":
        return _relative(value, fields, tenths, quarters, now_utc)
    return _absolute(value, fields, tenths, quarters, sign)


def _aware_utc(dt: datetime, name: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return dt.astimezone(UTC)


def _absolute(value: str, f: list[int], tenths: int, quarters: int, sign: str) -> datetime:
    if quarters > _MAX_QUARTERS:
        raise SmppTimeError(f"UTC offset over 48 quarter hours in {value!r}")
    offset = timedelta(minutes=15 * quarters) * (1 if sign == "+" else -1)
    try:
        local = datetime(
            2000 + f[0], f[1], f[2], f[3], f[4], f[5], tenths * 100_000, timezone(offset)
        )
    except ValueError as e:  # month/day/hour/minute/second out of range
        raise SmppTimeError(f"invalid SMPP time {value!r}: {e}") from None
    return local.astimezone(UTC)


def _relative(value: str, f: list[int], tenths: int, quarters: int, now: datetime) -> datetime:
    if tenths or quarters:
        raise SmppTimeError(f"relative SMPP time needs t=0 and nn=00: {value!r}")
    years, months, days, hours, minutes, seconds = f
    try:
        base = _add_months(now, years * 12 + months)
        return base + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except (ValueError, OverflowError):  # only near datetime.max
        raise SmppTimeError(f"relative SMPP time {value!r} overflows") from None


def _add_months(dt: datetime, months: int) -> datetime:
    """Calendar month addition, clamping the day (Jan 31 + 1 month = Feb 28/29)."""
    total = dt.month - 1 + months
    year, month = dt.year + total // 12, total % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return dt.replace(year=year, month=month, day=day)


def format_smpp_time(dt: datetime) -> str:
    """Absolute 16-character form in UTC (``...t00+``); ``dt`` must be aware, year 2000-2099."""
    utc = _aware_utc(dt, "dt")
    if not 2000 <= utc.year <= 2099:  # YY is read back as 20YY
        raise ValueError(f"year {utc.year} cannot be written as an SMPP time")
    return f"{utc:%y%m%d%H%M%S}{utc.microsecond // 100_000}00+"


def format_relative(delta_seconds: int) -> str:
    """Relative form for 0..MAX_RELATIVE_SECONDS seconds, in days/hours/minutes/seconds.

    Months and years are never used because their length depends on the calendar.
    """
    if not 0 <= delta_seconds <= MAX_RELATIVE_SECONDS:
        raise ValueError(f"relative period must be 0..{MAX_RELATIVE_SECONDS} s")
    days, rest = divmod(delta_seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"
