import pytest

from smsgate.text import (
    BadUdh,
    TextError,
    TooManyParts,
    Udh,
    count_parts,
    gsm7,
    join,
    parse_udh,
    split,
    split_bodies,
    strip_udh,
    ucs2,
)

GSM, UCS2, BINARY = 0x00, 0x08, 0x04


def bodies_of(parts: list[bytes]) -> list[bytes]:
    return [strip_udh(p)[1] for p in parts]


@pytest.mark.parametrize(
    ("payload", "dc", "parts"),
    [
        (b"a" * 160, GSM, 1),
        (b"a" * 161, GSM, 2),
        (b"a" * 306, GSM, 2),
        (b"a" * 307, GSM, 3),
        (ucs2.encode("ع" * 70), UCS2, 1),
        (ucs2.encode("ع" * 71), UCS2, 2),
        (ucs2.encode("ع" * 134), UCS2, 2),
        (ucs2.encode("ع" * 135), UCS2, 3),
        (bytes(140), BINARY, 1),
        (bytes(141), BINARY, 2),
        (bytes(268), BINARY, 2),
        (bytes(269), BINARY, 3),
        (b"", GSM, 1),
    ],
)
def test_part_counts(payload: bytes, dc: int, parts: int) -> None:
    assert count_parts(payload, dc) == parts
    assert len(split(payload, dc, ref=7)) == parts


def test_single_part_has_no_udh() -> None:
    assert split(b"a" * 160, GSM, ref=1) == [b"a" * 160]
    assert split_bodies(b"", GSM) == [b""]


def test_gsm_two_parts_layout() -> None:
    parts = split(b"a" * 161, GSM, ref=0xAB)
    assert parts[0] == bytes.fromhex("050003AB0201") + b"a" * 153
    assert parts[1] == bytes.fromhex("050003AB0202") + b"a" * 8
    assert len(parts[0]) == 159


def test_ref16_layout_and_sizes() -> None:
    parts = split(b"a" * 161, GSM, ref=0x1234, ref16=True)
    assert parts[0] == bytes.fromhex("06080412340201") + b"a" * 152
    assert [len(b) for b in split_bodies(ucs2.encode("x" * 71), UCS2, ref16=True)] == [132, 10]
    assert [len(b) for b in split_bodies(bytes(141), BINARY, ref16=True)] == [133, 8]


def test_extension_chars_count_twice() -> None:
    assert count_parts(gsm7.encode("€" * 80), GSM) == 1
    assert count_parts(gsm7.encode("€" * 81), GSM) == 2


def test_escape_pair_never_split() -> None:
    payload = gsm7.encode("€" * 81)  # 162 septets; octet 152 is an ESC
    bodies = split_bodies(payload, GSM)
    assert [len(b) for b in bodies] == [152, 10]
    assert [gsm7.decode(b) for b in bodies] == ["€" * 76, "€" * 5]


def test_escape_escape_pair_handled() -> None:
    # ESC ESC is a pair of its own, so an even run of ESCs may end a part.
    even = b"a" * 151 + b"\x1b\x1b" + b"b" * 10
    assert len(split_bodies(even, GSM)[0]) == 153
    odd = b"a" * 150 + b"\x1b\x1b\x1b" + b"e" + b"b" * 10
    assert len(split_bodies(odd, GSM)[0]) == 152


def test_surrogate_pair_never_split() -> None:
    payload = ucs2.encode("a" * 66 + "😀" + "b" * 10)
    bodies = split_bodies(payload, UCS2)
    assert [len(b) for b in bodies] == [132, 24]
    assert ucs2.decode(bodies[1]).startswith("😀")


def test_too_many_parts() -> None:
    assert count_parts(b"a" * (255 * 153), GSM) == 255
    with pytest.raises(TooManyParts):
        count_parts(b"a" * (255 * 153 + 1), GSM)
    with pytest.raises(TooManyParts):
        split(b"a" * (255 * 153 + 1), GSM, ref=1)


def test_invalid_inputs() -> None:
    with pytest.raises(TextError):
        split(b"a", GSM, ref=256)
    with pytest.raises(TextError):
        split(b"a", GSM, ref=-1)
    assert split(b"a", GSM, ref=0xFFFF, ref16=True) == [b"a"]
    with pytest.raises(TextError):
        count_parts(b"\x00a\x00", UCS2)


def test_parse_udh_multiple_elements() -> None:
    sm = bytes.fromhex("0B 05 04 0B84 23F0 00 03 2A 03 02") + b"body"
    udh, body = strip_udh(sm)
    assert udh == Udh(11, ((0x05, bytes.fromhex("0B8423F0")), (0x00, b"\x2a\x03\x02")))
    assert udh.size == 12
    assert udh.concat == (0x2A, 3, 2)
    assert body == b"body"


def test_parse_udh_ref16() -> None:
    assert parse_udh(bytes.fromhex("06080412340302")).concat == (0x1234, 3, 2)


@pytest.mark.parametrize(
    "header",
    [
        "0500030A0000",  # seq 0
        "0500030A0203",  # seq > total
        "0400020A02",  # wrong IEDL
        "0404020A02",  # other IEI only
        "00",  # empty UDH
    ],
)
def test_concat_absent_or_invalid(header: str) -> None:
    assert parse_udh(bytes.fromhex(header)).concat is None


def test_concat_last_occurrence_wins() -> None:
    assert parse_udh(bytes.fromhex("0A 0003010201 0003020201")).concat == (2, 2, 1)


@pytest.mark.parametrize(
    "data",
    ["", "05000301", "0300", "03000301", "0500040102"],
)
def test_parse_udh_malformed(data: str) -> None:
    with pytest.raises(BadUdh):
        parse_udh(bytes.fromhex(data))


def test_join_any_order() -> None:
    payload = gsm7.encode("x" * 400)
    parts = split(payload, GSM, ref=9)
    assert join(parts[::-1]) == payload
    assert join(split(payload, GSM, ref=9, ref16=True)) == payload


@pytest.mark.parametrize(
    "parts",
    [
        [],
        ["0500030902 01 61"],  # missing part 2
        ["0500030902 01 61", "0500030902 01 62"],  # duplicate
        ["0500030902 01 61", "0500030A02 02 62"],  # other ref
        ["0500030902 01 61", "0500030903 02 62"],  # other total
        ["0500030902 01 61", "060804000902 02 62"],  # 8-bit vs 16-bit ref
        ["61"],  # no UDH at all
        ["0400020102 61"],  # UDH without concat element
    ],
)
def test_join_rejects(parts: list[str]) -> None:
    with pytest.raises(BadUdh):
        join([bytes.fromhex(p) for p in parts])
