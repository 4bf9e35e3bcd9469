"""Framer: cutting a byte stream into PDUs whatever the chunking (SMPP34.md §7.7)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.smpp.codec import DEFAULT_MAX_LENGTH, Codec, Framer
from smsgate.smpp.constants import CommandId as C
from smsgate.smpp.constants import Status as S
from smsgate.smpp.pdu import Pdu

CODEC = Codec()
PDUS = [
    CODEC.encode(Pdu(C.enquire_link, 0x0A342EE7)),
    CODEC.encode(Pdu(C.submit_sm_resp, 7, 0, {"message_id": "94258431594"})),
    CODEC.encode(Pdu(C.submit_sm, 5, 0, {"source_addr": "555", "destination_addr": "4477",
                                         "short_message": b"x" * 160})),
    CODEC.encode(Pdu(C.data_sm, 0, 0, {"source_addr": "1"}, [(0x0424, b"p" * 1000)])),
    CODEC.encode(Pdu(C.generic_nack, 13, S.ESME_RINVMSGLEN)),
]
HUGE = bytes.fromhex("7FFFFFF0000000040000000000001234")  # claims ~2 GB


def feed_chunks(framer: Framer, stream: bytes, cuts: list[int]) -> list[bytes]:
    frames: list[bytes] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        frames += framer.feed(stream[start:cut])
        start = cut
    return frames


@st.composite
def chunked(draw: st.DrawFn, tail: bytes = b"") -> tuple[list[bytes], bytes, list[int]]:
    frames = draw(st.lists(st.sampled_from(PDUS), max_size=8))
    stream = b"".join(frames) + tail
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=12))
    return frames, stream, cuts


@settings(max_examples=300, deadline=1000)
@given(chunked())
def test_any_chunking_yields_the_same_frames(case: tuple[list[bytes], bytes, list[int]]) -> None:
    frames, stream, cuts = case
    framer = Framer()
    assert feed_chunks(framer, stream, cuts) == frames
    assert framer.error is None and framer.buffered == 0
    for frame in frames:
        CODEC.decode(frame)


@settings(max_examples=200, deadline=1000)
@given(chunked(tail=HUGE))
def test_bad_length_after_frames_same_for_any_chunking(
    case: tuple[list[bytes], bytes, list[int]],
) -> None:
    frames, stream, cuts = case
    framer = Framer()
    assert feed_chunks(framer, stream, cuts) == frames  # frames before it still come out
    assert framer.error is not None
    assert (framer.error.status, framer.error.fatal, framer.error.command_id,
            framer.error.sequence) == (S.ESME_RINVCMDLEN, True, C.submit_sm, 0x1234)
    assert framer.feed(PDUS[0]) == []  # the stream is dead


def test_byte_at_a_time() -> None:
    stream = b"".join(PDUS)
    framer = Framer()
    frames = [f for i in range(len(stream)) for f in framer.feed(stream[i : i + 1])]
    assert frames == PDUS


def test_2gb_length_refused_before_it_arrives() -> None:
    framer = Framer()
    assert framer.feed(HUGE) == []
    err = framer.error
    assert err is not None
    assert (err.status, err.fatal, err.command_id, err.sequence) == (
        S.ESME_RINVCMDLEN, True, C.submit_sm, 0x1234)
    assert framer.buffered <= 16  # nothing waits for the 2 GB


def test_incomplete_header_waits_then_refuses_with_sequence() -> None:
    framer = Framer()
    assert framer.feed(HUGE[:4]) == [] and framer.error is None
    assert framer.feed(HUGE[4:15]) == [] and framer.error is None
    assert framer.feed(HUGE[15:]) == []
    assert framer.error is not None and framer.error.sequence == 0x1234


def test_frames_before_bad_length_returned_in_same_feed() -> None:
    framer = Framer()
    bad = bytes.fromhex("0000000f800000060000000000000001")  # length 15
    assert framer.feed(PDUS[0] + PDUS[1] + bad + PDUS[2]) == [PDUS[0], PDUS[1]]
    assert framer.error is not None
    assert (framer.error.status, framer.error.fatal, framer.error.sequence) == (
        S.ESME_RINVCMDLEN, True, 1)


@pytest.mark.parametrize("length", [0, 1, 15, DEFAULT_MAX_LENGTH + 1, 0xF0000011, 0xFFFFFFFF])
def test_lengths_out_of_range(length: int) -> None:
    framer = Framer()
    assert framer.feed(length.to_bytes(4, "big") + bytes(8) + b"\0\0\0\x09") == []
    assert framer.error is not None and framer.error.status == S.ESME_RINVCMDLEN
    assert framer.error.sequence == 9


def test_max_length_is_inclusive_and_configurable() -> None:
    pdu = PDUS[3]
    assert Framer(max_length=len(pdu)).feed(pdu) == [pdu]
    small = Framer(max_length=len(pdu) - 1)
    assert small.feed(pdu) == []
    assert small.error is not None and small.error.status == S.ESME_RINVCMDLEN


def test_partial_pdu_is_buffered() -> None:
    framer = Framer()
    pdu = PDUS[2]
    assert framer.feed(pdu[:-1]) == []
    assert framer.buffered == len(pdu) - 1
    assert framer.feed(pdu[-1:] + pdu[:3]) == [pdu]
    assert framer.buffered == 3
