"""SMPP delivery-receipt text (SMPP34.md §6): formatting, lenient parsing, id matching.

Pure functions, no I/O. Dates are returned timezone-aware in UTC; the receipt text carries
no zone, so parsing assumes the sender wrote ``tz`` (UTC by default, which is what
``format_receipt`` writes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from types import MappingProxyType
from typing import Final

__all__ = [
    "STATE_TO_STAT",
    "STAT_TO_STATE",
    "Receipt",
    "ReceiptError",
    "format_receipt",
    "id_variants",
    "parse_receipt",
]


class ReceiptError(ValueError):
    """The text is not a usable delivery receipt (or cannot be formatted as one)."""


# Receipt "stat:" words <-> SMPP message_state values (SMPP34.md §4.3).
STAT_TO_STATE: Final = MappingProxyType(
    {
        "ENROUTE": 1,
        "DELIVRD": 2,
        "EXPIRED": 3,
        "DELETED": 4,
        "UNDELIV": 5,
        "ACCEPTD": 6,
        "UNKNOWN": 7,
        "REJECTD": 8,
    }
)
STATE_TO_STAT: Final = MappingProxyType({v: k for k, v in STAT_TO_STATE.items()})

_UNKNOWN: Final = "UNKNOWN"
_TEXT_LIMIT: Final = 20

# Labels must start the string or follow whitespace/NUL, and values stop at whitespace/NUL.
# That keeps an id such as "a:stat:x" from being read as a stat label. re.ASCII: the input
# is decoded Latin-1, whose 0x85/0xA0 must not count as separators.
_SEP: Final = r"\s\x00"
_FLAGS: Final = re.IGNORECASE | re.ASCII
_FIELDS: Final = {
    name: re.compile(rf"(?<![^{_SEP}]){label}:([^{_SEP}]*)", _FLAGS)
    for name, label in {
        "id": "id",
        "sub": "sub",
        "dlvrd": "dlvrd",
        "submit_date": r"submit[ _]?date",
        "done_date": r"done[ _]?date",
        "stat": "stat",
        "err": "err",
    }.items()
}
_TEXT_LABEL: Final = re.compile(rf"(?<![^{_SEP}])text:", _FLAGS)
_TOKEN: Final = re.compile(rf"[^{_SEP}]+", re.ASCII)
_COUNT: Final = re.compile(r"[0-9]{1,9}")  # bounded: int() of huge strings raises
_DIGITS: Final = re.compile(r"[0-9]+")
_DEC_ID: Final = re.compile(r"[0-9]{1,20}")
_HEX_ID: Final = re.compile(r"[0-9A-Fa-f]{1,16}")


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt. Required fields first, in wire order."""

    id: str
    # Timezone-aware; or, to format, epoch seconds (a gateway's own receipts: two
    # datetimes a receipt only to be turned back into seconds were a tenth of the
    # receipt path). parse_receipt gives datetimes.
    submit_date: datetime | float | None
    done_date: datetime | float | None
    stat: str
    sub: int = 1
    dlvrd: int = 0
    err: str = "000"
    text: str = ""

    @property
    def state(self) -> int:
        """message_state value for ``stat`` (UNKNOWN=7 for words outside the table)."""
        return STAT_TO_STATE.get(self.stat, STAT_TO_STATE[_UNKNOWN])


# --- formatting -------------------------------------------------------------------------


def format_receipt(r: Receipt, *, date_digits: int = 10) -> str:
    """Render ``r`` in the de-facto format; ``date_digits`` is 10 (YYMMDDhhmm) or 12 (+ss).

    A missing date is written as zeros, which ``parse_receipt`` reads back as None.
    """
    if date_digits not in (10, 12):
        raise ReceiptError(f"date_digits must be 10 or 12, not {date_digits}")
    _check_token("id", r.id)
    _check_token("err", r.err)
    if r.stat not in STAT_TO_STATE:
        raise ReceiptError(f"unknown stat {r.stat!r}")
    err = r.err.zfill(3) if _DIGITS.fullmatch(r.err) else r.err
    return (
        f"id:{r.id} sub:{_count('sub', r.sub)} dlvrd:{_count('dlvrd', r.dlvrd)}"
        f" submit date:{_format_date(r.submit_date, date_digits)}"
        f" done date:{_format_date(r.done_date, date_digits)}"
        f" stat:{r.stat} err:{err} text:{r.text[:_TEXT_LIMIT]}"
    )


def _check_token(name: str, value: str) -> None:
    # A separator inside a value would make the output unparseable.
    if not _TOKEN.fullmatch(value):
        raise ReceiptError(f"{name} must be non-empty without whitespace/NUL: {value!r}")


def _count(name: str, value: int) -> str:
    if not 0 <= value <= 999:
        raise ReceiptError(f"{name} must be 0..999, not {value}")
    return f"{value:03d}"


def _format_date(value: datetime | float | None, digits: int) -> str:
    if value is None:
        return "0" * digits
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ReceiptError("receipt dates must be timezone-aware")
        value = value.timestamp()
    return _utc_second(int(value // 1))[:digits]


@lru_cache(maxsize=4096)
def _utc_second(epoch_second: int) -> str:
    """YYMMDDhhmmss of one UTC second. Receipts under load share their seconds, and
    strftime was a tenth of the receipt path's time (docs/performance.md)."""
    utc = datetime.fromtimestamp(epoch_second, UTC)
    if not 2000 <= utc.year <= 2099:  # two-digit years are read back as 20YY
        raise ReceiptError(f"year {utc.year} cannot be written as YY")
    return f"{utc:%y%m%d%H%M%S}"


# --- parsing ----------------------------------------------------------------------------


def parse_receipt(text: str | bytes, *, tz: tzinfo = UTC) -> Receipt:
    """Parse receipt text leniently (SMPP34.md §6.3).

    Each label is found on its own, case-insensitively and in any order; everything after
    the first ``text:`` label is the text, kept verbatim (bytes are decoded as Latin-1, so
    raw UCS-2 can be recovered with ``.encode("latin-1")``). Missing sub/dlvrd/err/text get
    the dataclass defaults, bad dates become None, unknown stat words become UNKNOWN.
    Raises ReceiptError (only) when the id or the stat label is missing.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("latin-1")
    # Fields are read before the first text: label; the text is everything after it.
    cut = _TEXT_LABEL.search(text)
    end = cut.start() if cut else len(text)
    body = text[cut.end() :] if cut else ""
    rid = _required("id", text, end, cut)
    if not rid:
        raise ReceiptError("receipt has an empty id")
    stat = _required("stat", text, end, cut).upper()
    err = _field("err", text, end)
    return Receipt(
        id=rid,
        submit_date=_parse_date(_field("submit_date", text, end), tz),
        done_date=_parse_date(_field("done_date", text, end), tz),
        stat=stat if stat in STAT_TO_STATE else _UNKNOWN,
        sub=_parse_count(_field("sub", text, end), 1),
        dlvrd=_parse_count(_field("dlvrd", text, end), 0),
        err="000" if err is None else err,
        text=body,
    )


def _field(name: str, text: str, end: int, start: int = 0) -> str | None:
    # search(pos, endpos) rather than slicing so the label boundary look-behind still works.
    m = _FIELDS[name].search(text, start, end)
    return None if m is None else m.group(1)


def _required(name: str, text: str, end: int, cut: re.Match[str] | None) -> str:
    value = _field(name, text, end)
    if value is None and cut is not None:
        # Fall back to the text part only for id/stat: otherwise the receipt is lost.
        value = _field(name, text, len(text), cut.end())
    if value is None:
        raise ReceiptError(f"receipt has no {name}: field")
    return value


def _parse_count(value: str | None, default: int) -> int:
    return int(value) if value is not None and _COUNT.fullmatch(value) else default


def _parse_date(value: str | None, tz: tzinfo) -> datetime | None:
    """YYMMDDhhmm, YYMMDDhhmmss or yyyyMMddHHmmss; None when absent or invalid."""
    if value is None or len(value) not in (10, 12, 14) or not _DIGITS.fullmatch(value):
        return None
    p = [int(value[i : i + 2]) for i in range(0, len(value), 2)]
    candidates = {
        10: [(2000 + p[0], *p[1:])],
        # Jasmin #753 wrote yyyyMMddHHmm in 12 digits; try it when YYMMDDhhmmss is invalid.
        12: [(2000 + p[0], *p[1:]), (p[0] * 100 + p[1], *p[2:])],
        14: [(p[0] * 100 + p[1], *p[2:])],
    }[len(value)]
    for fields in candidates:
        try:
            return datetime(*fields, tzinfo=tz).astimezone(UTC)
        except (ValueError, OverflowError):
            continue
    return None


# --- id matching ------------------------------------------------------------------------


def id_variants(receipt_id: str) -> list[str]:
    """Candidate submission ids for a receipt id, most likely first (SMPP34.md §6.3).

    Order: exact, leading zeros stripped, decimal->hex (lower, upper: the common
    "hex in submit_sm_resp, decimal in receipt" case), hex->decimal (plain and padded to 10),
    then hex case variants. Callers should take the first variant that matches.
    """
    rid = receipt_id.strip()
    out = [rid]
    if rid:
        out.append(rid.lstrip("0") or "0")
    if _DEC_ID.fullmatch(rid):
        n = int(rid)
        out += [f"{n:x}", f"{n:X}"]
    if _HEX_ID.fullmatch(rid):
        n = int(rid, 16)
        out += [str(n), f"{n:010d}", f"{n:x}", f"{n:X}"]
    return list(dict.fromkeys(out))
