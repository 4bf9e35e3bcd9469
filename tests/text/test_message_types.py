import pytest

from smsgate.text import (
    BadHex,
    BadType,
    EncodedText,
    NotEncodable,
    decode_payload,
    encode_message,
    unit_for,
)

ARABIC = "اختبار رسالة عربية"


def test_type1_english() -> None:
    assert encode_message(1, "Hello") == EncodedText(0x00, b"Hello", "septet")


def test_type3_special_characters() -> None:
    enc = encode_message(3, "testing $@ Character")
    assert enc == EncodedText(0x00, b"testing \x02\x00 Character", "septet")
    assert encode_message(3, "€[").payload == b"\x1be\x1b<"


@pytest.mark.parametrize("msg_type", [1, 3])
def test_gsm_types_reject_non_gsm(msg_type: int) -> None:
    with pytest.raises(NotEncodable):
        encode_message(msg_type, ARABIC)


def test_type2_hex() -> None:
    enc = encode_message(2, "00740065")
    assert enc == EncodedText(0x08, b"\x00t\x00e", "ucs2")
    with pytest.raises(BadHex):
        encode_message(2, "0074 ")


def test_type4_arabic() -> None:
    enc = encode_message(4, ARABIC)
    assert enc.data_coding == 0x08
    assert enc.unit == "ucs2"
    assert len(enc.payload) == 2 * len(ARABIC)
    assert decode_payload(0x08, enc.payload) == ARABIC


@pytest.mark.parametrize("msg_type", [0, 5, -1, 99])
def test_bad_type(msg_type: int) -> None:
    with pytest.raises(BadType):
        encode_message(msg_type, "x")


def test_encoded_text_is_frozen() -> None:
    enc = encode_message(1, "x")
    with pytest.raises(AttributeError):
        enc.payload = b"y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("dc", "payload", "text"),
    [
        (0x00, b"\x00\x02\x1be", "@$€"),
        (0x01, b"a@\xff", "a@\ufffd"),
        (0x03, b"\xe9\xa3", "é£"),
        (0x08, b"\x06\x39\x00", "ع\ufffd"),
        (0x04, b"\x00\xff", "\x00ÿ"),
        (0xF0, b"\x00", "@"),
        (0x18, b"\x00a", "a"),
        (0x06, b"\xb0", "А"),
    ],
)
def test_decode_payload(dc: int, payload: bytes, text: str) -> None:
    assert decode_payload(dc, payload) == text


@pytest.mark.parametrize(
    ("dc", "unit"),
    [
        (0x00, "septet"),
        (0x01, "septet"),
        (0x02, "octet"),
        (0x03, "octet"),
        (0x04, "octet"),
        (0x08, "ucs2"),
        (0x10, "septet"),
        (0x14, "octet"),
        (0x18, "ucs2"),
        (0x30, "octet"),
        (0x90, "octet"),
        (0xC0, "septet"),
        (0xE0, "ucs2"),
        (0xF0, "septet"),
        (0xF1, "septet"),
        (0xF5, "octet"),
    ],
)
def test_unit_for(dc: int, unit: str) -> None:
    assert unit_for(dc) == unit
