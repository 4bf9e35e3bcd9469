"""Delivery-receipt text: smpp-vectors.md V10-V12 and the variants of SMPP34.md §6.3."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.smpp.receipt import (
    STAT_TO_STATE,
    STATE_TO_STAT,
    Receipt,
    ReceiptError,
    format_receipt,
    id_variants,
    parse_receipt,
)

# short_message of V10 (110 octets).
V10 = (
    b"id:0059113978 sub:001 dlvrd:001 submit date:1002101730 done date:1002101731"
    b" stat:DELIVRD err:000 text:@$#!%&/:"
)
# message_payload TLV value of V11 (114 octets): ASCII fields, then 12 raw UCS-2 bytes.
V11 = bytes.fromhex(
    "69643a30343839373038333634207375623a30303120646c7672643a303031207375626d69742064"
    "6174653a3138313031353139303720646f6e6520646174653a3138313031353139303720737461743a"
    "44454c49565244206572723a30303020746578743a041f04400438043204350442"
)
# short_message of V12 (105 octets): 12-digit dates, id without leading zeros.
V12 = (
    b"id:795920026 sub:001 dlvrd:001 submit date:200319131913 done date:200319131913"
    b" stat:DELIVRD err:000 text:"
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_v10_decimal_text_id_matches_hex_tlv_id() -> None:
    assert len(V10) == 110
    r = parse_receipt(V10)
    assert r == Receipt(
        id="0059113978",
        sub=1,
        dlvrd=1,
        submit_date=utc(2010, 2, 10, 17, 30),
        done_date=utc(2010, 2, 10, 17, 31),
        stat="DELIVRD",
        err="000",
        text="@$#!%&/:",
    )
    assert r.state == 2
    assert "38601fa" in id_variants(r.id)  # receipted_message_id TLV of V10


def test_v11_payload_with_raw_ucs2_text() -> None:
    assert len(V11) == 114
    r = parse_receipt(V11)
    assert (r.id, r.stat, r.sub, r.dlvrd, r.err) == ("0489708364", "DELIVRD", 1, 1, "000")
    assert r.submit_date == r.done_date == utc(2018, 10, 15, 19, 7)
    # Latin-1 keeps every byte, so the caller can recover the UCS-2 text.
    assert r.text.encode("latin-1").decode("utf-16-be") == "Привет"
    assert "1d305b4c" in id_variants(r.id)


def test_v12_twelve_digit_dates() -> None:
    assert len(V12) == 105
    r = parse_receipt(V12)
    assert r.id == "795920026"
    assert r.submit_date == r.done_date == utc(2020, 3, 19, 13, 19, 13)
    assert (r.stat, r.text) == ("DELIVRD", "")


def test_jasmin_style_without_sub_dlvrd_text() -> None:
    r = parse_receipt(
        "id:5b9a6f2e-0c2b-4b8e-9d4c-7a1f3e2d1c0b submit date:2304051200"
        " done date:2304051201 stat:UNDELIV err:045"
    )
    assert r.id == "5b9a6f2e-0c2b-4b8e-9d4c-7a1f3e2d1c0b"
    assert (r.sub, r.dlvrd, r.text, r.err) == (1, 0, "", "045")
    assert (r.stat, r.state) == ("UNDELIV", 5)
    assert r.done_date == utc(2023, 4, 5, 12, 1)


def test_spec_capitalised_text_label_and_four_digit_err() -> None:
    r = parse_receipt(
        "id:1 sub:001 dlvrd:000 submit date:2401011200 done date:2401011300"
        " stat:EXPIRED err:0000 Text:Hello stat:DELIVRD"
    )
    assert r.err == "0000"
    assert r.text == "Hello stat:DELIVRD"  # labels inside the text are not fields
    assert r.stat == "EXPIRED"


def test_fields_in_any_order_labels_any_case() -> None:
    r = parse_receipt("STAT:delivrd ERR:001 DONE DATE:2401011300 SUB:002 ID:abc DLVRD:002")
    assert (r.id, r.stat, r.err, r.sub, r.dlvrd) == ("abc", "DELIVRD", "001", 2, 2)
    assert r.done_date == utc(2024, 1, 1, 13, 0)


def test_fourteen_digit_and_jasmin_four_digit_year_dates() -> None:
    r = parse_receipt("id:1 submit date:20240229235959 done date:202403011200 stat:DELIVRD")
    assert r.submit_date == utc(2024, 2, 29, 23, 59, 59)
    assert r.done_date == utc(2024, 3, 1, 12, 0)  # yyyyMMddHHmm: month 24 is impossible


@pytest.mark.parametrize(
    "date", ["", "abc", "2413011200", "2402301200", "24010112", "240101126099", "٢٤٠١٠١١٢٠٠"]
)
def test_garbage_dates_become_none(date: str) -> None:
    r = parse_receipt(f"id:1 submit date:{date} done date:{date} stat:DELIVRD")
    assert r.submit_date is None and r.done_date is None


def test_dates_in_sender_zone() -> None:
    r = parse_receipt("id:1 done date:2401011300 stat:DELIVRD", tz=timezone(timedelta(hours=2)))
    assert r.done_date == utc(2024, 1, 1, 11, 0)


def test_unknown_stat_and_bad_counts() -> None:
    r = parse_receipt("id:1 sub:xx dlvrd:-1 stat:BADSTAT")
    assert (r.stat, r.state, r.sub, r.dlvrd) == ("UNKNOWN", 7, 1, 0)
    assert parse_receipt("id:1 stat:").stat == "UNKNOWN"


def test_text_label_before_fields_still_finds_id_and_stat() -> None:
    r = parse_receipt("text:hi id:9 stat:ACCEPTD")
    assert (r.id, r.stat, r.text) == ("9", "ACCEPTD", "hi id:9 stat:ACCEPTD")


def test_labels_must_start_a_word() -> None:
    r = parse_receipt("id:x:stat:ENROUTE msgid:2 stat:REJECTD")
    assert (r.id, r.stat) == ("x:stat:ENROUTE", "REJECTD")


@pytest.mark.parametrize(
    "text",
    ["", "hello", "stat:DELIVRD", "id:1", "id: stat:DELIVRD", "text:id:1 stat:x", b"\xff\x00"],
)
def test_missing_id_or_stat_raises(text: str | bytes) -> None:
    with pytest.raises(ReceiptError):
        parse_receipt(text)


def test_format_spec_layout() -> None:
    r = Receipt(
        id="0059113978",
        submit_date=utc(2010, 2, 10, 17, 30, 5),
        done_date=datetime(2010, 2, 10, 19, 31, tzinfo=timezone(timedelta(hours=2))),
        stat="DELIVRD",
        dlvrd=1,
        err="5",
        text="abcdefghijklmnopqrstuvwxyz",
    )
    assert format_receipt(r) == (
        "id:0059113978 sub:001 dlvrd:001 submit date:1002101730 done date:1002101731"
        " stat:DELIVRD err:005 text:abcdefghijklmnopqrst"
    )
    assert "submit date:100210173005 " in format_receipt(r, date_digits=12)


_MICROSECONDS = st.integers(946_684_800_000_000, 4_102_444_799_999_999).map(lambda us: us / 1e6)


@given(_MICROSECONDS, _MICROSECONDS)
def test_epoch_seconds_format_as_their_utc_datetimes(submitted: float, done: float) -> None:
    """The gateway formats its own receipts from epoch seconds: the same text. (Seconds
    are cut to the second; a datetime is first rounded to the microsecond, so the two
    differ within half a microsecond of a second's end: whole microseconds here.)"""
    as_seconds = Receipt("7", submitted, done, "DELIVRD", dlvrd=1)
    as_dates = Receipt("7", datetime.fromtimestamp(submitted, UTC),
                       datetime.fromtimestamp(done, UTC), "DELIVRD", dlvrd=1)
    for digits in (10, 12):
        assert format_receipt(as_seconds, date_digits=digits) == \
            format_receipt(as_dates, date_digits=digits)


def test_epoch_seconds_past_2099_are_refused() -> None:
    with pytest.raises(ReceiptError):
        format_receipt(Receipt("7", 4_102_444_800.0, None, "DELIVRD"))


def test_format_parse_round_trip() -> None:
    r = Receipt("abc-1", utc(2024, 5, 6, 7, 8, 9), None, "EXPIRED", 1, 0, "0000", "héllo wörld")
    assert parse_receipt(format_receipt(r, date_digits=12)) == r
    assert parse_receipt(format_receipt(r).encode("latin-1")) == replace(
        r, submit_date=utc(2024, 5, 6, 7, 8)
    )


@pytest.mark.parametrize(
    "change",
    [
        {"id": ""},
        {"id": "a b"},
        {"err": ""},
        {"stat": "DELIVERED"},
        {"sub": -1},
        {"dlvrd": 1000},
        {"done_date": datetime(2024, 1, 1)},
        {"done_date": utc(2100, 1, 1)},
    ],
)
def test_format_rejects_unparseable_receipts(change: dict[str, object]) -> None:
    r = replace(Receipt("1", None, None, "DELIVRD"), **change)
    with pytest.raises(ReceiptError):
        format_receipt(r)


def test_format_rejects_bad_date_digits() -> None:
    with pytest.raises(ValueError):
        format_receipt(Receipt("1", None, None, "DELIVRD"), date_digits=14)


def test_stat_state_maps() -> None:
    assert STATE_TO_STAT == {
        1: "ENROUTE",
        2: "DELIVRD",
        3: "EXPIRED",
        4: "DELETED",
        5: "UNDELIV",
        6: "ACCEPTD",
        7: "UNKNOWN",
        8: "REJECTD",
    }
    assert all(STATE_TO_STAT[v] == k for k, v in STAT_TO_STATE.items())


@pytest.mark.parametrize(
    ("rid", "expected"),
    [
        # Receipt decimal, submit_sm_resp hex (V10): dec->hex comes right after the exact forms.
        ("0059113978", ["0059113978", "59113978", "38601fa", "38601FA", "1494301048"]),
        # Receipt hex, submit_sm_resp decimal (Jasmin dlr_msg_id_bases=2).
        ("38601fa", ["38601fa", "59113978", "0059113978", "38601FA"]),
        ("0", ["0", "0000000000"]),
        ("5b9a6f2e-0c2b-4b8e-9d4c-7a1f3e2d1c0b", ["5b9a6f2e-0c2b-4b8e-9d4c-7a1f3e2d1c0b"]),
    ],
)
def test_id_variants(rid: str, expected: list[str]) -> None:
    assert id_variants(rid) == expected


# --- property tests ---------------------------------------------------------------------

_tokens = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=" \t\n\r\f\v\x00"),
    min_size=1,
    max_size=40,
)
_dates = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)
).map(lambda d: d.replace(microsecond=0, tzinfo=UTC))
_receipts = st.builds(
    Receipt,
    id=_tokens,
    submit_date=_dates,
    done_date=_dates,
    stat=st.sampled_from(sorted(STAT_TO_STATE)),
    sub=st.integers(0, 999),
    dlvrd=st.integers(0, 999),
    err=st.from_regex(r"[0-9]{3,4}|[A-Za-z][A-Za-z0-9]{0,7}", fullmatch=True),
    text=st.text(max_size=30),
)


@given(_receipts)
def test_round_trip_property(r: Receipt) -> None:
    assert parse_receipt(format_receipt(r, date_digits=12)) == replace(r, text=r.text[:20])


@given(_receipts)
def test_round_trip_ten_digit_dates_drop_seconds(r: Receipt) -> None:
    def minutes(d: datetime | None) -> datetime | None:
        return d and d.replace(second=0)

    expected = replace(
        r, text=r.text[:20], submit_date=minutes(r.submit_date), done_date=minutes(r.done_date)
    )
    assert parse_receipt(format_receipt(r)) == expected


_LABELS = ["id:", "ID:", "stat:", "sub:", "dlvrd:", "err:", "text:", "submit date:", "done date:"]
_VALUES = ["DELIVRD", "0", "999999999999", "2402301200", "20240101120000", " ", "\x00", ":"]
_fragments = st.sampled_from(_LABELS + _VALUES)


@given(st.text() | st.binary() | st.lists(_fragments | st.text(max_size=5)).map("".join))
def test_parse_raises_only_receipt_error(data: str | bytes) -> None:
    try:
        r = parse_receipt(data)
    except ReceiptError:
        return
    assert r.id and r.stat in STAT_TO_STATE
