"""The codec's generated per-layout decoders and encoders against the generic walk they
stand in for: on valid, truncated, corrupted and mutated PDUs, and on bad field values,
both give the same PDU or bytes, or the same error."""

import functools
import inspect
import random
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_codec_properties import pdus
from test_fuzz import CORPUS, mutate

from smsgate.smpp import layouts as L
from smsgate.smpp.codec import _DEFAULTS, Codec, PduError, _encode_field
from smsgate.smpp.constants import RESPONSE_BIT
from smsgate.smpp.constants import CommandId as C
from smsgate.smpp.constants import Tag as T
from smsgate.smpp.pdu import Pdu


def generic_decode(layout: tuple[L.Field, ...], codec: Codec, data: bytes, pdu: Pdu) -> int:
    return codec._decode_fields(layout, data, pdu)


def generic_encode(layout: tuple[L.Field, ...], fields: dict[str, Any], body: bytearray) -> None:
    for name, kind, size, _status in layout:
        value = fields.get(name)
        _encode_field(body, name, kind, size, _DEFAULTS[kind] if value is None else value)


class GenericCodec(Codec):
    """The codec without generated code: the generic walk for every layout."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decoders = {cid: functools.partial(generic_decode, layout)
                         for cid, layout in self.layouts.items() if layout}
        self.encoders = {cid: functools.partial(generic_encode, layout)
                         for cid, layout in self.layouts.items()}
        self._message_id_size = 0  # and no fast path for message_id responses


SETTINGS: list[dict[str, Any]] = [
    {}, {"lenient": True}, {"field_limits": {"password": 33, "message_id": 9}},
]
PAIRS = [(Codec(**s), GenericCodec(**s)) for s in SETTINGS]


def outcome(call: Callable[[Any], Any], arg: Any) -> Any:
    try:
        return call(arg)
    except PduError as exc:
        return ("PduError", exc.status, exc.reason, exc.command_id, exc.sequence, exc.fatal)
    except Exception as exc:  # the kind of error is what is compared
        return (type(exc), str(exc))


def assert_same_decode(data: bytes) -> None:
    for codec, generic in PAIRS:
        assert outcome(codec.decode, data) == outcome(generic.decode, data), data.hex()


def assert_same_encode(pdu: Pdu) -> None:
    for codec, generic in PAIRS:
        assert outcome(codec.encode, pdu) == outcome(generic.encode, pdu), pdu


def set_length(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data[4:]


# Valid PDUs of the hot commands with every kind of field filled in, and the fuzz corpus.
SAMPLES = [
    Codec().encode(Pdu(cid, 7, 0, {
        "service_type": "CMT", "source_addr": "40404", "destination_addr": "44951361920",
        "schedule_delivery_time": "261201103000000R", "validity_period": "261202103000004+",
        "esm_class": 4, "registered_delivery": 1, "data_coding": 8, "short_message": b"hi\0!",
    }, [(T.source_network_type, 1), (T.receipted_message_id, "38601fa")]))
    for cid in (C.submit_sm, C.deliver_sm, C.data_sm)
] + [
    # Every field at its limit: one octet more (or a NUL less) is over it.
    Codec().encode(Pdu(C.submit_sm, 9, 0, {
        "service_type": "x" * 5, "source_addr": "1" * 20, "destination_addr": "2" * 20,
        "schedule_delivery_time": "0" * 16, "short_message": b"m" * 254},
        [(T.message_payload, b"p" * 600)])),  # over 512 octets, and room after the 254
    Codec().encode(Pdu(C.submit_sm_resp, 8, 0, {"message_id": "4200001"})),
    *CORPUS,
]


@pytest.mark.parametrize("data", SAMPLES, ids=range(len(SAMPLES)))
def test_every_truncation_and_byte_damage(data: bytes) -> None:
    """Each resume point of the generated decoders, deterministically: every cut, every
    octet replaced (by one more or less: lengths just over or under their limits) or
    inserted before (shifting the rest), with the length fixed or not."""
    assert_same_decode(data)
    for at in range(16, len(data) + 1):
        assert_same_decode(set_length(data[:at]))
        assert_same_decode(data[:at])
    for at in range(16, len(data)):
        for octet in {0, 0xFF, (data[at] + 1) % 256, (data[at] - 1) % 256}:
            assert_same_decode(data[:at] + bytes([octet]) + data[at + 1 :])
        for octet in (b"\0", b"A"):
            assert_same_decode(set_length(data[:at] + octet + data[at:]))


@settings(max_examples=300, deadline=None)
@given(command_id=st.sampled_from(sorted(L.LAYOUTS)), data=st.data(), rng=st.randoms())
def test_mutated_pdus_of_every_command(command_id: int, data: st.DataObject,
                                       rng: random.Random) -> None:
    pdu = data.draw(pdus(command_id))
    assert_same_encode(pdu)
    wire = Codec().encode(pdu)
    assert_same_decode(wire)
    assert_same_decode(mutate(rng, wire))


BAD_VALUES: list[Any] = [None, "", "x" * 300, "a\0b", "é" * 3, "\u20ac", b"bytes", 7, -1, 256,
                         1 << 32, 2.5, True, (), (L.SmeAddress(1, 1, "2"),), b"x" * 256]


def at_the_limit(field: L.Field) -> list[Any]:
    """The longest valid value of a field and one octet more (or less, for a time)."""
    if field.kind == L.CSTR:
        return ["x" * (field.size - 1), "x" * field.size]
    if field.kind == L.TIME:
        return ["1" * 15, "1" * 16, "1" * 17]
    if field.kind == L.SHORT_MESSAGE:
        return [b"x" * 254, b"x" * 255, b"x" * 256]
    return []


@pytest.mark.parametrize("command_id", sorted(L.LAYOUTS), ids=lambda c: C(c).name)
def test_encoders_refuse_and_default_as_the_generic_walk(command_id: int) -> None:
    for field in L.LAYOUTS[command_id]:
        for value in [*BAD_VALUES, *at_the_limit(field)]:
            for status in (0, 8):
                assert_same_encode(Pdu(command_id, 3, status, {field.name: value}))
    if command_id & RESPONSE_BIT:
        for value in [*BAD_VALUES, "9" * 64, "9" * 65]:  # the message_id fast path
            assert_same_encode(Pdu(command_id, 3, 0, {"message_id": value}))
            assert_same_encode(Pdu(command_id, 3, 0, {"message_id": value}, [(0x1400, b"v")]))


def test_generated_code_is_shared_and_inspectable() -> None:
    # A Codec is made per connection: the code is generated once per set of limits.
    assert Codec().decoders is Codec(lenient=True).decoders
    limited = Codec(field_limits={"password": 33})
    assert limited.encoders is Codec(field_limits={"password": 33}).encoders
    source = inspect.getsource(limited.decoders[C.bind_transmitter])
    assert source.startswith("def decode_bind_transmitter(codec, data, pdu):")
    assert "pos + 33" in source and "pos + 33" not in inspect.getsource(
        Codec().decoders[C.bind_transmitter])
    # A failure inside generated code shows its line in the traceback.
    try:
        Codec().encode(Pdu(C.submit_sm, 1, 0, {"esm_class": "4"}))
    except TypeError as exc:
        assert "body.append(value)" in "".join(traceback.format_exception(exc))
    else:
        raise AssertionError("a str esm_class was encoded")
