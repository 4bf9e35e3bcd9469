"""UCS-2 as SMPP uses it in practice (data_coding 0x08): UTF-16 big-endian.

Characters outside the BMP (emoji) travel as surrogate pairs.
"""

from __future__ import annotations

import re

from .errors import BadHex, NotEncodable

# Exactly 4 ASCII hex digits per UTF-16 unit; no spaces or signs (bytes.fromhex allows spaces).
_HEX_UNITS = re.compile(r"(?:[0-9A-Fa-f]{4})*")


def encode(text: str) -> bytes:
    """Encode text as UTF-16BE; raise NotEncodable for lone surrogates (not real characters)."""
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise NotEncodable(text[exc.start], exc.start, "UCS-2") from None


def decode(data: bytes) -> str:
    """Decode UTF-16BE leniently: lone surrogates and an odd trailing octet become U+FFFD."""
    return data.decode("utf-16-be", "replace")


def hex_to_bytes(hex_text: str) -> bytes:
    """Parse seed type-2 text (4 hex digits per UTF-16 unit) into UTF-16BE octets."""
    if len(hex_text) % 4:
        raise BadHex(f"hex text length {len(hex_text)} is not a multiple of 4")
    if not _HEX_UNITS.fullmatch(hex_text):
        raise BadHex("hex text contains a character that is not a hex digit")
    return bytes.fromhex(hex_text)


def check_pairs(data: bytes) -> None:
    """Raise NotEncodable for a lone surrogate: a handset shows garbage for it, and it
    is no character at all (UTF-16 pairs a high surrogate with a low one, always)."""
    try:
        data.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        unit = int.from_bytes(data[exc.start:exc.start + 2], "big")
        raise NotEncodable(chr(unit), exc.start // 2, "UCS-2") from None


def from_hex(hex_text: str) -> str:
    """Decode seed type-2 hex UCS-2 text to a str (lenient about lone surrogates)."""
    return decode(hex_to_bytes(hex_text))
