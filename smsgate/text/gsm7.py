"""GSM 03.38 default alphabet, as SMPP carries it: unpacked, one septet per octet.

Extension-table characters are sent as ESC (0x1B) + code and therefore cost two septets.
All lookup tables are built once at import; encode() is on the hot path.
"""

from __future__ import annotations

from .errors import NotEncodable, TextError

ESC = 0x1B

# Index = septet value. 0x1B is the escape code, not a character; "\x1b" is a placeholder
# that is never used for encoding and is handled separately when decoding.
BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC_TABLE) == 128

# Code after ESC -> character. 0x0A is a form feed (page break).
EXTENSION_TABLE: dict[int, str] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_REPLACEMENT = "\ufffd"
_ESC_CHAR = chr(ESC)

BASIC_CHARS = frozenset(ch for code, ch in enumerate(BASIC_TABLE) if code != ESC)
EXTENSION_CHARS = frozenset(EXTENSION_TABLE.values())
ALPHABET = BASIC_CHARS | EXTENSION_CHARS


class _EncodeMap(dict[int, str]):
    """str.translate table that raises on unmapped characters instead of passing them."""

    def __missing__(self, key: int) -> str:
        # Position is filled in by encode(); translate() cannot tell us where we are.
        raise NotEncodable(chr(key), -1, "GSM 03.38")


def _build_encode_map() -> _EncodeMap:
    table = _EncodeMap({ord(ch): chr(code) for code, ch in enumerate(BASIC_TABLE) if code != ESC})
    table.update({ord(ch): _ESC_CHAR + chr(code) for code, ch in EXTENSION_TABLE.items()})
    return table


_ENCODE = _build_encode_map()

# Fast path for pure-ASCII text: byte-to-byte table where 0xFF marks "needs the slow path"
# (ASCII chars that need an escape, or have no GSM equivalent such as '`').
_NEEDS_SLOW_PATH = 0xFF
_ASCII_ENCODE = bytes(
    ord(_ENCODE[i]) if i < 0x80 and i in _ENCODE and len(_ENCODE[i]) == 1 else _NEEDS_SLOW_PATH
    for i in range(256)
)

# Decode without escapes: byte -> str; bytes above 0x7F are not septets.
_DECODE = {code: ch for code, ch in enumerate(BASIC_TABLE)} | {
    code: _REPLACEMENT for code in range(0x80, 0x100)
}


def encode(text: str) -> bytes:
    """Encode text to unpacked GSM 03.38 septets; raise NotEncodable for foreign chars."""
    if text.isascii():
        fast = text.encode("ascii").translate(_ASCII_ENCODE)
        if _NEEDS_SLOW_PATH not in fast:
            return fast
    try:
        return text.translate(_ENCODE).encode("ascii")
    except NotEncodable as exc:
        raise NotEncodable(exc.char, text.index(exc.char), exc.alphabet) from None


def can_encode(text: str) -> bool:
    """True if every character is in the default or extension table."""
    return ALPHABET.issuperset(text)


def septet_count(text: str) -> int:
    """Septets needed for text (extension chars count 2). Does not validate the text."""
    return len(text) + sum(text.count(ch) for ch in EXTENSION_CHARS)


def decode(data: bytes) -> str:
    """Decode unpacked septets leniently; never raises.

    ESC + undefined code -> the base-table character (03.38 display rule), ESC ESC -> space
    (reserved for a further extension table), a trailing lone ESC is dropped, and octets
    above 0x7F become U+FFFD.
    """
    if ESC not in data:
        return data.decode("latin-1").translate(_DECODE)
    return _decode_with_escapes(data)


def _decode_with_escapes(data: bytes) -> str:
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code != ESC:
            out.append(_DECODE[code])
            i += 1
            continue
        if i + 1 == n:
            break  # lone ESC at the very end carries no character
        nxt = data[i + 1]
        if nxt == ESC:
            out.append(" ")
        else:
            out.append(EXTENSION_TABLE.get(nxt) or _DECODE[nxt])
        i += 2
    return "".join(out)


def pack(septets: bytes) -> bytes:
    """Pack septets 8-into-7 octets, least significant bit first (3GPP TS 23.038 §6.1.2.1)."""
    out = bytearray()
    acc = 0
    bits = 0
    for septet in septets:
        acc |= (septet & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc)
    return bytes(out)


def unpack(packed: bytes, count: int) -> bytes:
    """Unpack `count` septets from packed octets.

    The count is needed because 7 spare bits at the end look exactly like a trailing '@'.
    """
    available = len(packed) * 8 // 7
    if not 0 <= count <= available:
        raise TextError(f"cannot unpack {count} septets from {len(packed)} octets")
    out = bytearray()
    acc = 0
    bits = 0
    octets = iter(packed)
    for _ in range(count):
        if bits < 7:
            acc |= next(octets) << bits
            bits += 8
        out.append(acc & 0x7F)
        acc >>= 7
        bits -= 7
    return bytes(out)
