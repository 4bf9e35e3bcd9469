import pytest

from smsgate.text import BadHex, NotEncodable, ucs2

SEED_HEX = (
    "00740065007300740069006E006700200075006E00690063006F006400650020006D006500730073006100670065"
)


def test_seed_type2_hex() -> None:
    assert ucs2.from_hex(SEED_HEX) == "testing unicode message"
    assert ucs2.from_hex(SEED_HEX.lower()) == "testing unicode message"
    assert ucs2.hex_to_bytes(SEED_HEX) == ucs2.encode("testing unicode message")


def test_encode_bmp_and_surrogates() -> None:
    assert ucs2.encode("t") == b"\x00t"
    assert ucs2.encode("ع") == b"\x06\x39"
    assert ucs2.encode("😀") == bytes.fromhex("D83DDE00")
    assert ucs2.decode(bytes.fromhex("D83DDE00")) == "😀"


def test_encode_rejects_lone_surrogate() -> None:
    with pytest.raises(NotEncodable) as info:
        ucs2.encode("ab\ud83d")
    assert info.value.position == 2


def test_decode_lenient() -> None:
    assert ucs2.decode(b"\x00a\x00") == "a\ufffd"
    assert ucs2.decode(bytes.fromhex("D83D0061")) == "\ufffda"
    assert ucs2.decode(b"") == ""


def test_from_hex_lone_surrogate_is_replaced() -> None:
    assert ucs2.from_hex("D83D") == "\ufffd"


@pytest.mark.parametrize("bad", ["007", "00740", "00 74", "0x74", "00g4", "٠٠٧٤", "0074\n"])
def test_bad_hex(bad: str) -> None:
    with pytest.raises(BadHex):
        ucs2.from_hex(bad)


def test_empty_hex_is_empty_text() -> None:
    assert ucs2.from_hex("") == ""
