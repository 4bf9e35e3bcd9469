"""Concatenated SMS: splitting payloads into parts and parsing/joining UDH parts.

Payloads are what SMPP carries: unpacked GSM (one octet per septet, ESC pairs included),
UTF-16BE for UCS2, raw octets otherwise. Capacities are from SMPP34.md §8.1.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadUdh, TextError, TooManyParts
from .message_types import OCTET, SEPTET, UCS2, Unit, unit_for

SINGLE_SEPTETS = 160
SINGLE_OCTETS = 140
SINGLE_UCS2 = 70
PART_SEPTETS = 153  # with the 6-octet UDH (8-bit reference)
PART_OCTETS = 134
PART_UCS2 = 67
PART16_SEPTETS = 152  # with the 7-octet UDH (16-bit reference)
PART16_OCTETS = 133
PART16_UCS2 = 66
MAX_PARTS = 255  # the UDH numbers parts in one octet

IEI_CONCAT8 = 0x00
IEI_CONCAT16 = 0x08

_ESC = 0x1B

# Unit -> (single, per part with 8-bit ref, per part with 16-bit ref), in payload octets.
_CAPACITY: dict[Unit, tuple[int, int, int]] = {
    SEPTET: (SINGLE_SEPTETS, PART_SEPTETS, PART16_SEPTETS),
    OCTET: (SINGLE_OCTETS, PART_OCTETS, PART16_OCTETS),
    UCS2: (2 * SINGLE_UCS2, 2 * PART_UCS2, 2 * PART16_UCS2),
}


def count_parts(payload: bytes, data_coding: int, ref16: bool = False) -> int:
    """Number of short_messages split() would produce (TooManyParts above 255)."""
    return len(_part_ends(payload, data_coding, ref16))


def split_bodies(payload: bytes, data_coding: int, ref16: bool = False) -> list[bytes]:
    """Part bodies without UDH (also what SAR TLV segmentation sends)."""
    start = 0
    bodies = []
    for end in _part_ends(payload, data_coding, ref16):
        bodies.append(payload[start:end])
        start = end
    return bodies


def split(payload: bytes, data_coding: int, ref: int, ref16: bool = False) -> list[bytes]:
    """short_message values: the payload alone if it fits, else UDH + body per part."""
    _check_ref(ref, ref16)
    bodies = split_bodies(payload, data_coding, ref16)
    if len(bodies) == 1:
        return bodies
    total = len(bodies)
    return [build_concat_udh(ref, total, seq, ref16) + body for seq, body in enumerate(bodies, 1)]


def build_concat_udh(ref: int, total: int, seq: int, ref16: bool = False) -> bytes:
    """`05 00 03 RR TT SS` or, with ref16, `06 08 04 RH RL TT SS`."""
    _check_ref(ref, ref16)
    if not 1 <= seq <= total <= MAX_PARTS:
        raise TextError(f"invalid part {seq} of {total}")
    if ref16:
        return bytes((6, IEI_CONCAT16, 4, ref >> 8, ref & 0xFF, total, seq))
    return bytes((5, IEI_CONCAT8, 3, ref, total, seq))


def _check_ref(ref: int, ref16: bool) -> None:
    limit = 0xFFFF if ref16 else 0xFF
    if not 0 <= ref <= limit:
        raise TextError(f"concatenation reference {ref} out of range 0..{limit}")


def _part_ends(payload: bytes, data_coding: int, ref16: bool) -> list[int]:
    """End offsets of each part's body within payload."""
    unit = unit_for(data_coding)
    if unit == UCS2 and len(payload) % 2:
        raise TextError(f"UCS2 payload has an odd number of octets ({len(payload)})")
    single, part8, part16 = _CAPACITY[unit]
    size = len(payload)
    if size <= single:
        return [size]
    per_part = part16 if ref16 else part8
    ends = []
    start = 0
    while start < size:
        end = start + per_part
        if end >= size:
            end = size
        elif unit == SEPTET:
            end = _avoid_split_escape(payload, start, end)
        elif unit == UCS2:
            end = _avoid_split_surrogate(payload, end)
        ends.append(end)
        start = end
    if len(ends) > MAX_PARTS:
        raise TooManyParts(len(ends), MAX_PARTS)
    return ends


def _avoid_split_escape(payload: bytes, start: int, end: int) -> int:
    """Move `end` back one if the part would end with the ESC of an ESC+char pair.

    `start` is a pair boundary, so a run of ESCs ending at `end` pairs up from its
    beginning (ESC ESC is itself a pair); an odd run means the last ESC opens a pair.
    """
    run = 0
    i = end - 1
    while i >= start and payload[i] == _ESC:
        run += 1
        i -= 1
    return end - 1 if run % 2 else end


def _avoid_split_surrogate(payload: bytes, end: int) -> int:
    """Move `end` back one unit if it would separate a high surrogate from its low one."""
    high = 0xD8 <= payload[end - 2] <= 0xDB
    low_next = 0xDC <= payload[end] <= 0xDF
    return end - 2 if high and low_next else end


@dataclass(frozen=True, slots=True)
class Udh:
    """A parsed user data header. `length` is UDHL (octets after the length octet)."""

    length: int
    elements: tuple[tuple[int, bytes], ...]

    @property
    def size(self) -> int:
        """Octets the header occupies in short_message, including the UDHL octet."""
        return self.length + 1

    @property
    def concat(self) -> tuple[int, int, int] | None:
        """(ref, total, seq) from IEI 0x00 or 0x08, or None if absent or invalid."""
        found = _concat_element(self)
        return None if found is None else found[1:]


def _concat_element(udh: Udh) -> tuple[int, int, int, int] | None:
    """(iei, ref, total, seq) of the last valid concatenation element.

    23.040 §9.2.3.24.1: ignore the element if seq is 0 or above total; on duplicates the
    last occurrence wins.
    """
    found = None
    for iei, data in udh.elements:
        if iei == IEI_CONCAT8 and len(data) == 3:
            ref, total, seq = data
        elif iei == IEI_CONCAT16 and len(data) == 4:
            ref, total, seq = int.from_bytes(data[:2], "big"), data[2], data[3]
        else:
            continue
        if 1 <= seq <= total:
            found = (iei, ref, total, seq)
    return found


def parse_udh(short_message: bytes) -> Udh:
    """Parse the UDH at the start of short_message (caller knows UDHI is set)."""
    if not short_message:
        raise BadUdh("short_message is empty; expected a UDH")
    end = 1 + short_message[0]
    if end > len(short_message):
        raise BadUdh(f"UDH length {short_message[0]} exceeds the {len(short_message)}-octet data")
    elements = []
    i = 1
    while i < end:
        if i + 2 > end:
            raise BadUdh("UDH ends inside an element header")
        iei, iedl = short_message[i], short_message[i + 1]
        i += 2
        if i + iedl > end:
            raise BadUdh(f"UDH element 0x{iei:02X} overruns the header")
        elements.append((iei, bytes(short_message[i : i + iedl])))
        i += iedl
    return Udh(end - 1, tuple(elements))


def strip_udh(short_message: bytes) -> tuple[Udh, bytes]:
    """Split short_message into its parsed UDH and the body after it."""
    udh = parse_udh(short_message)
    return udh, bytes(short_message[udh.size :])


def join(parts: list[bytes]) -> bytes:
    """Concatenate the bodies of all UDH parts of one message, given in any order."""
    if not parts:
        raise BadUdh("no parts to join")
    bodies: dict[int, bytes] = {}
    key: tuple[int, int, int] | None = None
    for short_message in parts:
        udh, body = strip_udh(short_message)
        found = _concat_element(udh)
        if found is None:
            raise BadUdh("part has no valid concatenation element")
        iei, ref, total, seq = found
        if key is None:
            key = (iei, ref, total)
        elif key != (iei, ref, total):
            raise BadUdh("parts belong to different messages (reference or total differs)")
        if seq in bodies:
            raise BadUdh(f"duplicate part {seq}")
        bodies[seq] = body
    assert key is not None  # parts is non-empty
    total = key[2]
    missing = [seq for seq in range(1, total + 1) if seq not in bodies]
    if missing:
        raise BadUdh(f"missing parts {missing[:10]} of {total}")
    return b"".join(bodies[seq] for seq in range(1, total + 1))
