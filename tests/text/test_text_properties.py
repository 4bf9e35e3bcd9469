"""Property tests across the text package (hypothesis)."""

import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from smsgate.text import (
    NotEncodable,
    TextError,
    count_parts,
    decode_payload,
    encode_message,
    gsm7,
    join,
    parse_udh,
    split,
    strip_udh,
    ucs2,
)

FAST = settings(max_examples=150, deadline=None)
THOROUGH = settings(max_examples=400, deadline=None)  # for the boundary-hunting split tests

gsm_text = st.text(alphabet=sorted(gsm7.ALPHABET), max_size=400)
# Raw septets with plenty of ESC runs, including ESC ESC and a trailing ESC.
septets = st.lists(
    st.sampled_from([0x1B, 0x1B, 0x1B, 0x41, 0x65, 0x00]), min_size=8, max_size=40
).map(bytes)
# Mostly non-BMP and Arabic so that surrogate pairs straddle part boundaries.
pairs_text = st.text(alphabet=st.sampled_from(["a", "ع", "😀", "🇸", "𝄞"]), min_size=4, max_size=40)
unicode_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200)


def padded(tail: st.SearchStrategy[bytes], unit: bytes, boundary: int) -> st.SearchStrategy[bytes]:
    """`unit` repeated to end just before a part boundary (1st or 2nd), then `tail`.

    This puts the tricky bytes right at the cut without hypothesis generating hundreds of
    elements. `boundary` is the per-part capacity in units.
    """
    counts = st.one_of(
        st.integers(boundary - 6, boundary), st.integers(2 * boundary - 6, 2 * boundary)
    )
    return st.builds(lambda n, t: unit * n + t, counts, tail)


gsm_payload = st.one_of(
    gsm_text.map(gsm7.encode),
    padded(septets, b"a", 153),
    padded(gsm_text.map(gsm7.encode), b"a", 152),
)
ucs2_payload = st.one_of(
    unicode_text.map(ucs2.encode),
    padded(pairs_text.map(ucs2.encode), b"\x00a", 67),
    padded(unicode_text.map(ucs2.encode), b"\x00a", 66),
)
binary_payload = st.one_of(st.binary(max_size=200), padded(st.binary(max_size=40), b"x", 134))

TP_UD_BITS = 140 * 8


@FAST
@given(gsm_text)
def test_gsm7_round_trip(text: str) -> None:
    data = gsm7.encode(text)
    assert gsm7.can_encode(text)
    assert gsm7.decode(data) == text
    assert len(data) == gsm7.septet_count(text)
    assert max(data, default=0) < 0x80


@FAST
@given(st.binary(max_size=300))
def test_pack_round_trip(data: bytes) -> None:
    sept = bytes(b & 0x7F for b in data)
    packed = gsm7.pack(sept)
    assert len(packed) == math.ceil(len(sept) * 7 / 8)
    assert gsm7.unpack(packed, len(sept)) == sept


def _gsm_boundaries(payload: bytes) -> set[int]:
    """Offsets where an ESC+char pair is not cut."""
    bounds, i = {0}, 0
    while i < len(payload):
        i += 2 if payload[i] == 0x1B and i + 1 < len(payload) else 1
        bounds.add(i)
    return bounds


def _check_split(payload: bytes, dc: int, ref: int, ref16: bool) -> list[bytes]:
    parts = split(payload, dc, ref, ref16)
    event(f"parts: {min(len(parts), 3)}{'+' if len(parts) >= 3 else ''}")
    assert count_parts(payload, dc, ref16) == len(parts)
    if len(parts) == 1:
        assert parts == [payload]
    else:
        assert join(parts) == payload
        for seq, part in enumerate(parts, 1):
            assert parse_udh(part).concat == (ref, len(parts), seq)
    return parts


def _bodies(parts: list[bytes]) -> list[tuple[int, bytes]]:
    """(UDH octets incl. UDHL, body) per part."""
    if len(parts) == 1:
        return [(0, parts[0])]
    out = []
    for part in parts:
        udh, body = strip_udh(part)
        out.append((udh.size, body))
    return out


@THOROUGH
@given(gsm_payload, st.integers(0, 255), st.booleans())
def test_split_join_gsm(payload: bytes, ref: int, ref16: bool) -> None:
    parts = _check_split(payload, 0x00, ref, ref16)
    bounds = _gsm_boundaries(payload)
    offset = 0
    for udh_octets, body in _bodies(parts):
        # Septet budget: UDH padded to a septet boundary plus one septet per octet of body.
        udh_septets = math.ceil(udh_octets * 8 / 7)
        assert (udh_septets + len(body)) * 7 <= TP_UD_BITS
        offset += len(body)
        assert offset in bounds  # no ESC+char pair split
    assert offset == len(payload)


@THOROUGH
@given(ucs2_payload, st.integers(0, 0xFFFF), st.booleans())
def test_split_join_ucs2(payload: bytes, ref: int, ref16: bool) -> None:
    parts = _check_split(payload, 0x08, ref if ref16 else ref & 0xFF, ref16)
    for part in parts:
        assert len(part) <= 140
    # Every part is whole UTF-16 units and no boundary falls inside a surrogate pair.
    offset = 0
    for _, body in _bodies(parts)[:-1]:
        assert len(body) % 2 == 0
        offset += len(body)
        assert not (0xD8 <= payload[offset - 2] <= 0xDB and 0xDC <= payload[offset] <= 0xDF)


@FAST
@given(binary_payload, st.integers(0, 255), st.booleans())
def test_split_join_binary(payload: bytes, ref: int, ref16: bool) -> None:
    parts = _check_split(payload, 0x04, ref, ref16)
    for part in parts:
        assert len(part) <= 140


@FAST
@given(st.binary(max_size=200))
def test_decoders_never_raise(data: bytes) -> None:
    assert isinstance(gsm7.decode(data), str)
    assert isinstance(ucs2.decode(data), str)
    for dc in (0x00, 0x01, 0x03, 0x04, 0x06, 0x08, 0x18, 0xF0, 0xF5, 0x0E, 0xFF):
        assert isinstance(decode_payload(dc, data), str)


@FAST
@given(st.binary(max_size=40))
def test_parse_udh_raises_only_text_error(data: bytes) -> None:
    try:
        udh, body = strip_udh(data)
    except TextError:
        return
    assert udh.size + len(body) == len(data)
    _ = udh.concat


near_valid_part = st.builds(
    lambda ref, total, seq, body: bytes([5, 0, 3, ref, total, seq]) + body,
    st.integers(0, 1),
    st.integers(0, 3),
    st.integers(0, 3),
    st.binary(max_size=3),
)


@FAST
@given(st.lists(st.one_of(st.binary(max_size=12), near_valid_part), max_size=4))
def test_join_raises_only_text_error(parts: list[bytes]) -> None:
    try:
        joined = join(parts)
    except TextError:
        return
    assert isinstance(joined, bytes)


# Type 2 (hex UCS-2): 16-bit units, surrogates included, so that lone ones come up often.
utf16_units = st.lists(st.one_of(st.integers(0, 0xFFFF), st.integers(0xD800, 0xDFFF)),
                       max_size=12)


def _well_paired(units: list[int]) -> bool:
    """Every high surrogate is followed by a low one and every low one follows a high."""
    i = 0
    while i < len(units):
        if 0xD800 <= units[i] <= 0xDBFF:
            if i + 1 == len(units) or not 0xDC00 <= units[i + 1] <= 0xDFFF:
                return False
            i += 2
        elif 0xDC00 <= units[i] <= 0xDFFF:
            return False
        else:
            i += 1
    return True


@FAST
@given(utf16_units)
def test_type2_accepts_exactly_the_well_paired_texts(units: list[int]) -> None:
    hex_text = "".join(f"{unit:04X}" for unit in units)
    if _well_paired(units):
        encoded = encode_message(2, hex_text)
        assert encoded.payload == bytes.fromhex(hex_text)
        assert ucs2.encode(ucs2.decode(encoded.payload)) == encoded.payload
    else:
        event("lone surrogate")
        with pytest.raises(NotEncodable):
            encode_message(2, hex_text)
