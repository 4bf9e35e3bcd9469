"""Properties of the codec for every command in the layout table: encode -> decode is the
identity, and every field limit of the table is enforced with its own status."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.smpp import layouts as L
from smsgate.smpp.codec import Codec, Framer, PduError
from smsgate.smpp.constants import RESPONSE_BIT
from smsgate.smpp.constants import CommandId as C
from smsgate.smpp.constants import Status as S
from smsgate.smpp.pdu import Pdu

CODEC = Codec()
LENIENT = Codec(lenient=True)
U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
MAX_DESTS = 6  # the table allows 254; a separate test covers that


def cstring(size: int) -> st.SearchStrategy[str]:
    """A C-string value of at most size-1 ASCII characters, no NUL."""
    return st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=size - 1)


def two(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map("{:02d}".format)


# YYMMDDhhmmsstnnp: absolute (+/-) or relative (R, nn = 00)
TIME = st.one_of(
    st.just(""),
    st.builds(lambda d, t, n, p: f"{d}{t}{n}{p}",
              st.tuples(two(0, 99), two(1, 12), two(1, 28), two(0, 23), two(0, 59),
                        two(0, 59)).map("".join),
              st.integers(0, 9).map(str), two(0, 48), st.sampled_from("+-")),
    st.tuples(two(0, 99), two(0, 11), two(0, 30), two(0, 23), two(0, 59), two(0, 59))
    .map(lambda parts: "".join(parts) + "000R"),
)
DEST = st.one_of(st.builds(L.SmeAddress, U8, U8, cstring(21)),
                 st.builds(L.DistributionList, cstring(21)))
UNSUCCESS = st.builds(L.UnsuccessSme, U8, U8, cstring(21), U32)


def field_strategy(f: L.Field, max_dests: int = MAX_DESTS) -> st.SearchStrategy[Any]:
    if f.kind == L.CSTR:
        return cstring(f.size)
    if f.kind == L.TIME:
        return TIME
    if f.kind == L.U8:
        return U8
    if f.kind == L.U32:
        return U32
    if f.kind == L.SHORT_MESSAGE:
        return st.binary(max_size=f.size)
    if f.kind == L.DEST_LIST:
        return st.lists(DEST, min_size=1, max_size=min(f.size, max_dests)).map(tuple)
    if f.kind == L.UNSUCCESS_LIST:
        return st.lists(UNSUCCESS, max_size=min(f.size, max_dests)).map(tuple)
    raise AssertionError(f"no strategy for field kind {f.kind}")


def tlv_value(tlv_type: L.TlvType) -> st.SearchStrategy[Any]:
    kind, max_size = tlv_type
    if kind == L.U8:
        return U8
    if kind == L.U16:
        return U16
    if kind == L.U32:
        return U32
    if kind == L.CSTR:
        return cstring(max_size)
    if kind == L.OCTETS:
        return st.binary(max_size=max_size or 300)
    if kind == L.FLAG:
        return st.just(b"")
    raise AssertionError(f"no strategy for TLV kind {kind}")


KNOWN_TLV = st.one_of(*(st.tuples(st.just(tag), tlv_value(t)) for tag, t in L.TLV_TYPES.items()))
VENDOR_TLV = st.tuples(st.integers(0x1400, 0xFFFF), st.binary(max_size=40))
TLVS = st.lists(st.one_of(KNOWN_TLV, VENDOR_TLV), max_size=6)


def all_fields(layout: tuple[L.Field, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f.name: field_strategy(f) for f in layout})


@st.composite
def pdus(draw: st.DrawFn, command_id: int) -> Pdu:
    layout = L.LAYOUTS[command_id]
    sequence = draw(U32)
    fields = draw(all_fields(layout))
    tlvs = draw(TLVS) if command_id in L.HAS_TLVS else []
    if not command_id & RESPONSE_BIT:
        return Pdu(command_id, sequence, draw(U32), fields, tlvs)  # status in requests: V17
    status = draw(st.one_of(st.just(0), U32))
    if status and draw(st.booleans()):
        # Error responses carry the first n fields of their layout and no TLVs.
        keep = draw(st.integers(0, len(layout)))
        fields = {f.name: fields[f.name] for f in layout[:keep]}
        tlvs = []
    return Pdu(command_id, sequence, status, fields, tlvs)


@pytest.mark.parametrize("command_id", sorted(L.LAYOUTS), ids=lambda c: C(c).name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_roundtrip_every_command(command_id: int, data: st.DataObject) -> None:
    pdu = data.draw(pdus(command_id))
    wire = CODEC.encode(pdu)
    assert int.from_bytes(wire[:4], "big") == len(wire)
    assert CODEC.decode(wire) == pdu
    assert LENIENT.decode(wire) == pdu
    assert Framer().feed(wire) == [wire]


def test_every_command_has_a_strategy() -> None:
    for layout in L.LAYOUTS.values():
        for f in layout:
            field_strategy(f)
    for t in L.TLV_TYPES.values():
        tlv_value(t)


@settings(max_examples=20, deadline=None)
@given(st.lists(DEST, min_size=254, max_size=254).map(tuple))
def test_submit_multi_254_destinations(dests: tuple[Any, ...]) -> None:
    pdu = Pdu(C.submit_multi, 1, 0, {"dest_addresses": dests})
    decoded = CODEC.decode(CODEC.encode(pdu))
    assert decoded["dest_addresses"] == dests


def test_field_limits_roundtrip() -> None:
    codec = Codec(field_limits={"password": 33, "system_id": 33})
    pdu = Pdu(C.bind_transceiver, 1, 0, {"system_id": "a" * 32, "password": "p" * 32})
    assert codec.decode(codec.encode(pdu))["password"] == "p" * 32
    with pytest.raises(PduError):
        CODEC.decode(codec.encode(pdu))


# -- every C-string limit of the table, with its status -------------------------------------

CSTR_FIELDS = [
    (cid, f)
    for cid, layout in sorted(L.LAYOUTS.items())
    for f in layout
    if f.kind in (L.CSTR, L.TIME)
]


@pytest.mark.parametrize(("command_id", "field"), CSTR_FIELDS,
                         ids=[f"{C(c).name}.{f.name}" for c, f in CSTR_FIELDS])
@pytest.mark.parametrize("codec", [CODEC, LENIENT], ids=["strict", "lenient"])
def test_overlong_string_refused_with_field_status(
    command_id: int, field: L.Field, codec: Codec
) -> None:
    pdu = Pdu(command_id, 77, 0, {"dest_addresses": (L.SmeAddress(1, 1, "1"),)})
    if field.kind == L.TIME:
        # One character too many: a 17-character time.
        pdu.fields[field.name] = "X" * 16
        good = CODEC.encode(pdu)
        at = good.index(b"X" * 16)
        data = good[:at] + b"X" + good[at:]
        data = len(data).to_bytes(4, "big") + data[4:]
        marker = b"X" * field.size
    else:
        pdu.fields[field.name] = "x" * field.size  # size-1 is the maximum
        longer = Codec(field_limits={field.name: field.size + 1})
        data = longer.encode(pdu)
        assert longer.decode(data)[field.name] == "x" * field.size
        marker = b"x" * field.size
    with pytest.raises(PduError) as info:
        codec.decode(data)
    assert (info.value.status, info.value.command_id, info.value.sequence) == (
        field.status, command_id, 77)
    # At the end of a body, with no NUL at all, the limit still holds.
    cut = data[: data.index(marker) + field.size]
    truncated = len(cut).to_bytes(4, "big") + cut[4:]
    with pytest.raises(PduError):
        codec.decode(truncated)


@pytest.mark.parametrize(("command_id", "field"), CSTR_FIELDS,
                         ids=[f"{C(c).name}.{f.name}" for c, f in CSTR_FIELDS])
def test_string_at_its_limit_accepted(command_id: int, field: L.Field) -> None:
    value = "X" * 16 if field.kind == L.TIME else "x" * (field.size - 1)
    pdu = Pdu(command_id, 5, 0, {"dest_addresses": (L.SmeAddress(1, 1, "1"),),
                                 field.name: value})
    data = CODEC.encode(pdu)
    assert CODEC.decode(data)[field.name] == value
    # Unterminated at the very end of a body (V9's "9"): tolerated for responses and
    # by the lenient codec, within the limit.
    cut = data[: data.index(value.encode()) + len(value)]
    truncated = len(cut).to_bytes(4, "big") + cut[4:]
    assert LENIENT.decode(truncated)[field.name] == value
    if command_id & RESPONSE_BIT:
        assert CODEC.decode(truncated)[field.name] == value
    else:
        with pytest.raises(PduError):
            CODEC.decode(truncated)


@pytest.mark.parametrize("value", ["1", "150203040506708", "150203040506708+X"])
def test_time_must_be_empty_or_16(value: str) -> None:
    body = bytearray(CODEC.encode(Pdu(C.submit_sm, 3, 0, {"schedule_delivery_time": "T" * 16})))
    at = body.index(b"T" * 16)
    body[at : at + 16] = value.encode()
    body[:4] = len(body).to_bytes(4, "big")
    with pytest.raises(PduError) as info:
        CODEC.decode(bytes(body))
    assert info.value.status == S.ESME_RINVSCHED
    with pytest.raises(ValueError):
        CODEC.encode(Pdu(C.submit_sm, 3, 0, {"schedule_delivery_time": value}))


# -- encoder refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pdu",
    [
        Pdu(0x110),
        Pdu(C.submit_sm, fields={"source_addr": "1" * 21}),
        Pdu(C.submit_sm, fields={"source_addr": "a\0b"}),
        Pdu(C.submit_sm, fields={"short_message": b"x" * 256}),
        Pdu(C.submit_sm, tlvs=[(0x1400, 5)]),  # integer for a tag of unknown type
        Pdu(C.submit_sm, tlvs=[(0x0424, 1.5)]),
        Pdu(C.enquire_link, tlvs=[(0x0210, 0x34)]),  # header-only PDUs carry no TLVs
        Pdu(C.generic_nack, 1, 3, tlvs=[(0x1400, b"")]),
    ],
    ids=["unknown-command", "long-cstring", "nul-in-cstring", "sm-256", "int-unknown-tag",
         "float-tlv", "tlv-on-header-only", "tlv-on-nack"],
)
def test_encoder_refuses(pdu: Pdu) -> None:
    with pytest.raises(ValueError):
        CODEC.encode(pdu)


def test_error_response_writes_only_present_fields() -> None:
    assert len(CODEC.encode(Pdu(C.submit_sm_resp, 1, S.ESME_RTHROTTLED))) == 16
    assert len(CODEC.encode(Pdu(C.submit_sm_resp, 1, 0))) == 17
    wire = CODEC.encode(Pdu(C.query_sm_resp, 1, S.ESME_RQUERYFAIL, {"message_id": "5"}))
    assert wire[16:] == b"5\0"
    assert CODEC.decode(wire).fields == {"message_id": "5"}


# -- TLV decoding -----------------------------------------------------------------------------


def with_tlv(tag: int, value: bytes) -> bytes:
    base = CODEC.encode(Pdu(C.data_sm, 4))
    tlv = tag.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
    data = base + tlv
    return len(data).to_bytes(4, "big") + data[4:]


@pytest.mark.parametrize(
    ("tag", "value", "status"),
    [
        (0x0427, b"", S.ESME_RINVPARLEN),  # U8 of length 0
        (0x0427, b"\x01\x02", S.ESME_RINVPARLEN),
        (0x020A, b"\x01", S.ESME_RINVPARLEN),  # U16 of length 1
        (0x001E, b"abc", S.ESME_RINVOPTPARAMVAL),  # C-string without NUL
        (0x001E, b"a\0b\0", S.ESME_RINVOPTPARAMVAL),
        (0x001E, b"x" * 65 + b"\0", S.ESME_RINVOPTPARAMVAL),
        (0x0423, b"1234", S.ESME_RINVPARLEN),  # network_error_code is 3 octets
        (0x130C, b"\x01", S.ESME_RINVPARLEN),  # a flag has no value
    ],
)
def test_bad_tlv_values(tag: int, value: bytes, status: int) -> None:
    data = with_tlv(tag, value)
    with pytest.raises(PduError) as info:
        CODEC.decode(data)
    assert (info.value.status, info.value.sequence) == (status, 4)
    assert LENIENT.decode(data).tlvs == [(tag, value)]  # lenient: raw bytes
    assert LENIENT.encode(LENIENT.decode(data)) == data


@pytest.mark.parametrize("tail", [b"\x04", b"\x04\x24\x00", b"\x04\x24\x00\x05ab"])
def test_partial_tlv(tail: bytes) -> None:
    base = with_tlv(0x0427, b"\x02")
    data = len(base + tail).to_bytes(4, "big") + base[4:] + tail
    with pytest.raises(PduError) as info:
        CODEC.decode(data)
    assert info.value.status == S.ESME_RINVOPTPARSTREAM
    assert LENIENT.decode(data).tlvs == [(0x0427, 2)]  # the trailing partial TLV is ignored


def test_repeated_tlvs_kept_in_order() -> None:
    pdu = Pdu(C.submit_sm, 1, 0, {}, [(0x0381, b"\x01"), (0x0205, 3), (0x0381, b"\x02")])
    assert CODEC.decode(CODEC.encode(pdu)).tlvs == pdu.tlvs
