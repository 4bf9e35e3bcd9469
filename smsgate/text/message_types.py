"""The seed's HTTP message types (SPEC §3.1) and data_coding <-> text conversion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import gsm7, ucs2
from .errors import BadType

Unit = Literal["septet", "ucs2", "octet"]
SEPTET: Unit = "septet"
UCS2: Unit = "ucs2"
OCTET: Unit = "octet"

# SMPP data_coding values we produce or special-case (SMPP34.md §5.1).
DC_DEFAULT = 0x00  # SMSC default alphabet; we treat it as GSM 03.38 unpacked
DC_IA5 = 0x01
DC_BINARY_2 = 0x02
DC_LATIN1 = 0x03
DC_BINARY = 0x04
DC_CYRILLIC = 0x06
DC_HEBREW = 0x07
DC_UCS2 = 0x08

TYPE_ENGLISH = 1
TYPE_UNICODE_HEX = 2
TYPE_SPECIAL = 3
TYPE_ARABIC = 4


@dataclass(frozen=True, slots=True)
class EncodedText:
    """A message body ready for short_message/message_payload."""

    data_coding: int
    payload: bytes
    unit: Unit


def encode_message(msg_type: int, text: str) -> EncodedText:
    """Encode HTTP `text` for message `type` 1-4; raise NotEncodable (also for a lone
    surrogate in type 2), BadHex or BadType."""
    if msg_type in (TYPE_ENGLISH, TYPE_SPECIAL):
        # Both are GSM 03.38; type 3 merely advertises @ $ £ é and the extension table.
        return EncodedText(DC_DEFAULT, gsm7.encode(text), SEPTET)
    if msg_type == TYPE_UNICODE_HEX:
        # Keep the client's octets as given, once they are known to be real UTF-16.
        payload = ucs2.hex_to_bytes(text)
        ucs2.check_pairs(payload)
        return EncodedText(DC_UCS2, payload, UCS2)
    if msg_type == TYPE_ARABIC:
        return EncodedText(DC_UCS2, ucs2.encode(text), UCS2)
    raise BadType(msg_type)


def unit_for(data_coding: int) -> Unit:
    """Which length unit a data_coding uses, for capacity and split rules.

    0x00-0x0F follow SMPP §5.2.19. Higher values are read as GSM TP-DCS (3GPP TS 23.038 §4)
    because some SMSCs pass them through that way (e.g. 0x10/0xF0 flash GSM, 0x18 flash
    UCS2). Compressed or reserved groups count as octets, the safe choice.
    """
    dc = data_coding & 0xFF
    if dc < 0x10:
        if dc in (DC_DEFAULT, DC_IA5):
            return SEPTET
        return UCS2 if dc == DC_UCS2 else OCTET
    group = dc >> 4
    if group <= 0x7:  # general data coding / auto-deletion groups: bits 3-2 = alphabet
        if dc & 0x20:  # compressed
            return OCTET
        return (SEPTET, OCTET, UCS2, OCTET)[(dc >> 2) & 0x3]
    if group in (0xC, 0xD):  # message waiting indication, GSM 7-bit
        return SEPTET
    if group == 0xE:  # message waiting indication, UCS2
        return UCS2
    if group == 0xF:  # message class: bit 2 selects 8-bit data
        return OCTET if dc & 0x04 else SEPTET
    return OCTET  # 0x80-0xBF reserved


_CHARSETS = {
    DC_IA5: "ascii",
    DC_LATIN1: "latin-1",
    DC_CYRILLIC: "iso8859-5",
    DC_HEBREW: "iso8859-8",
}


def decode_payload(data_coding: int, payload: bytes) -> str:
    """Best-effort text of a payload for display/receipts; never raises."""
    charset = _CHARSETS.get(data_coding)
    if charset is not None:
        return payload.decode(charset, "replace")
    unit = unit_for(data_coding)
    if unit == SEPTET:
        return gsm7.decode(payload)
    if unit == UCS2:
        return ucs2.decode(payload)
    return payload.decode("latin-1")  # binary or unknown: every octet maps to something
