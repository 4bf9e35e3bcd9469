import pytest

from smsgate.text import NotEncodable, TextError, gsm7


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("@", 0x00),
        ("£", 0x01),
        ("$", 0x02),
        ("é", 0x05),
        ("\n", 0x0A),
        ("_", 0x11),
        ("¤", 0x24),
        ("¡", 0x40),
        ("§", 0x5F),
        ("¿", 0x60),
        ("à", 0x7F),
        ("A", 0x41),
        ("a", 0x61),
        ("0", 0x30),
    ],
)
def test_basic_table(char: str, code: int) -> None:
    assert gsm7.encode(char) == bytes([code])
    assert gsm7.decode(bytes([code])) == char


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("€", 0x65),
        ("[", 0x3C),
        ("]", 0x3E),
        ("{", 0x28),
        ("}", 0x29),
        ("|", 0x40),
        ("\\", 0x2F),
        ("~", 0x3D),
        ("^", 0x14),
        ("\f", 0x0A),
    ],
)
def test_extension_table(char: str, code: int) -> None:
    assert gsm7.encode(char) == bytes([0x1B, code])
    assert gsm7.decode(bytes([0x1B, code])) == char
    assert gsm7.septet_count(char) == 2


def test_seed_type3_example() -> None:
    text = "testing $@ Character"
    assert gsm7.encode(text) == b"testing \x02\x00 Character"
    assert gsm7.decode(gsm7.encode(text)) == text


@pytest.mark.parametrize("text", ["`", "ab`c", "اختبار", "😀", "ç", "\t", "\x1b"])
def test_not_encodable(text: str) -> None:
    assert not gsm7.can_encode(text)
    with pytest.raises(NotEncodable):
        gsm7.encode(text)


def test_not_encodable_reports_position() -> None:
    with pytest.raises(NotEncodable) as info:
        gsm7.encode("Price: 5 € or ¥6 or ₹7")
    assert info.value.char == "₹"
    assert info.value.position == 20
    assert isinstance(info.value, TextError)


def test_ascii_fast_path_falls_back_for_escaped_and_missing() -> None:
    assert gsm7.encode("a[b]") == b"a\x1b<b\x1b>"
    with pytest.raises(NotEncodable) as info:
        gsm7.encode("abc`")
    assert info.value.position == 3


def test_can_encode_and_septet_count() -> None:
    assert gsm7.can_encode("")
    assert gsm7.can_encode("Hello {world} €5 @ home")
    assert gsm7.septet_count("Hello") == 5
    assert gsm7.septet_count("€" * 80) == 160
    assert gsm7.septet_count("a{b}c") == 7
    assert gsm7.septet_count("a{b}c") == len(gsm7.encode("a{b}c"))


def test_decode_lenient_escapes() -> None:
    # ESC + undefined code -> base char; ESC ESC -> space; lone trailing ESC dropped.
    assert gsm7.decode(b"\x1b\x41") == "A"
    assert gsm7.decode(b"\x1b\x0d") == "\r"
    assert gsm7.decode(b"a\x1b\x1bb") == "a b"
    assert gsm7.decode(b"ab\x1b") == "ab"
    assert gsm7.decode(b"\x1b\x1b\x1b\x65") == " €"


def test_decode_high_octets_replaced() -> None:
    assert gsm7.decode(b"a\x80\xffb") == "a\ufffd\ufffdb"
    assert gsm7.decode(b"\x1b\xc1") == "\ufffd"


@pytest.mark.parametrize(
    ("text", "packed"),
    [
        ("hellohello", "E8329BFD4697D9EC37"),
        ("Hello", "C8329BFD06"),
        ("", ""),
        ("1234567", "31D98C56B3DD00"),
        ("12345678", "31D98C56B3DD70"),
    ],
)
def test_pack_vectors(text: str, packed: str) -> None:
    septets = gsm7.encode(text)
    assert gsm7.pack(septets).hex().upper() == packed
    assert gsm7.unpack(bytes.fromhex(packed), len(septets)) == septets


def test_pack_masks_top_bit_and_unpack_checks_count() -> None:
    assert gsm7.pack(b"\xc8") == gsm7.pack(b"\x48")
    assert gsm7.unpack(bytes(7), 8) == bytes(8)
    with pytest.raises(TextError):
        gsm7.unpack(bytes(7), 9)
    with pytest.raises(TextError):
        gsm7.unpack(b"", -1)
