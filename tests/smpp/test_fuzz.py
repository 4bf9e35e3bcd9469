"""Fuzzing the framer, codec and session with random and mutated PDUs: decode may raise
only PduError, the framer and the session raise nothing, nothing hangs, and every
automatic answer is itself a valid PDU."""

import random
import signal
from collections.abc import Iterator
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgate.smpp.codec import Codec, Framer, PduError
from smsgate.smpp.constants import CommandId as C
from smsgate.smpp.layouts import DistributionList, SmeAddress, UnsuccessSme
from smsgate.smpp.pdu import Pdu
from smsgate.smpp.session import Role, Session, State
from smsgate.smpp.timers import SessionConfig

STRICT, LENIENT = Codec(), Codec(lenient=True)
SMALL_MAX = 4096  # a smaller cap so random lengths hit both sides of it

CORPUS = [bytes.fromhex(h) for h in (
    "0000002F000000020000000000000001534D50503354455354007365637265743038005355424D49543100"
    "00010100",
    "0000001d800000090000000000039943536d7363204757000210000134",
    "00000015800000090000000e00004db3534d534300",
    "0000001000000015000000000a342ee7",
    "0000001c80000004000000000a342ee1393432353834333135393400",
    "0000001180000004000000000a342ee139",
    "000000BA00000005000000000000000200010134343935313336313932300001013430343034000400000000"
    "000000006E69643A30303539313133393738207375623A30303120646C7672643A3030312073756"
    "26D697420646174653A3130303231303137333020646F6E6520646174653A31303032313031373331"
    "20737461743A44454C49565244206572723A30303020746578743A4024232125262F3A000E00010100060"
    "00101001E000833383630316661000427000102",
    "000000300000010300000000000000000001013535353237313030303000000139363935000001000424000"
    "454657374",
    "00000019800000030000000000004FE8313233343500000600",
    "00000050000000070000000000004FE86D73672D313233343500010135353532373130303030003135303230"
    "333034303530363730382B00303130323033303430353036303030520001020474657874",
    "00000025000001020000000200004FE8010135353532373130303030000101343034303400",
    "000000240000000b000000000000000d696e76656e746f7279006970617373776f726400",
)] + [STRICT.encode(p) for p in (
    Pdu(C.submit_multi, 9, 0, {"source_addr": "1", "short_message": b"hello",
                               "dest_addresses": (SmeAddress(1, 1, "2"), DistributionList("dl"))},
        [(0x020C, 7), (0x1400, b"vendor")]),
    Pdu(C.submit_multi_resp, 9, 0, {"message_id": "m",
                                    "unsuccess_smes": (UnsuccessSme(1, 1, "2", 0x14),)}),
    Pdu(C.cancel_sm, 3, 0, {"message_id": "abc", "source_addr": "1", "destination_addr": "2"}),
    Pdu(C.query_sm, 4, 0, {"message_id": "abc", "source_addr": "1"}),
    Pdu(C.alert_notification, 5, 0, {"source_addr": "1", "esme_addr": "2"}, [(0x0422, 1)]),
)]


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """Fail instead of hanging: any single test here must end within 60 s."""

    def alarm(signum: int, frame: object) -> None:
        raise TimeoutError("fuzz test hung")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(points)]


def check_decode(codec: Codec, frame: bytes) -> None:
    try:
        pdu = codec.decode(frame)
    except PduError as exc:
        assert exc.status != 0
        return
    wire = codec.encode(pdu)  # whatever decodes can be encoded again
    if codec is STRICT:
        assert codec.encode(codec.decode(wire)) == wire  # a fixed point after one round


def check_answers(data: bytes) -> None:
    """Automatic answers are well-formed responses."""
    framer = Framer()
    frames = framer.feed(data)
    assert framer.error is None and framer.buffered == 0
    for frame in frames:
        assert STRICT.decode(frame).is_response


def check(data: bytes, cuts: list[int]) -> None:
    chunks = split(data, cuts)
    whole = Framer(SMALL_MAX)
    expected = whole.feed(data)
    framer = Framer(SMALL_MAX)
    frames = [f for chunk in chunks for f in framer.feed(chunk)]
    assert frames == expected  # chunking never matters...
    assert (framer.error is None) == (whole.error is None)  # ...not even for errors
    if framer.error is not None and whole.error is not None:
        assert framer.error.fatal
        assert (framer.error.status, framer.error.sequence) == (whole.error.status,
                                                                 whole.error.sequence)
    for frame in [*frames, data]:
        check_decode(STRICT, frame)
        check_decode(LENIENT, frame)
    for role, state in ((Role.SMSC, State.OPEN), (Role.SMSC, State.BOUND_TRX),
                        (Role.ESME, State.BOUND_TRX)):
        session = Session(role, Codec(SMALL_MAX), SessionConfig(window=3, max_pending_in=3))
        session.state = state
        session.pending_out[1] = Pdu(C.submit_sm, 1)  # something for responses to match
        for chunk in chunks:
            session.receive_data(chunk, 0.0)
        check_answers(session.data_to_send())


# -- mutations ---------------------------------------------------------------------------------


def set_length(data: bytes, length: int | None = None) -> bytes:
    if len(data) < 4:
        return data
    return (len(data) if length is None else length).to_bytes(4, "big") + data[4:]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(8)
        if op == 0 and out:  # bit flips
            for _ in range(rng.randint(1, 4)):
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif op == 1:  # truncate, keeping or fixing the length field
            out = bytearray(out[: rng.randint(0, len(out))])
            if rng.random() < 0.7:
                out = bytearray(set_length(bytes(out)))
        elif op == 2:  # length-field edits
            choices = [len(out) + rng.randint(-20, 20), rng.randrange(1 << 32), 0, 15, 16,
                       0x7FFFFFFF, SMALL_MAX, SMALL_MAX + 1]
            out = bytearray(set_length(bytes(out), max(0, rng.choice(choices)) & 0xFFFFFFFF))
        elif op == 3:  # splice with another PDU
            other = rng.choice(CORPUS)
            out = out[: rng.randint(0, len(out))] + other[rng.randint(0, len(other)) :]
            out = bytearray(set_length(bytes(out)))
        elif op == 4:  # insert random bytes in the body
            at = rng.randint(min(16, len(out)), len(out))
            out[at:at] = rng.randbytes(rng.randint(1, 8))
            out = bytearray(set_length(bytes(out)))
        elif op == 5 and len(out) > 16:  # delete bytes from the body
            at = rng.randrange(16, len(out))
            del out[at : at + rng.randint(1, 8)]
            out = bytearray(set_length(bytes(out)))
        elif op == 6 and len(out) >= 8:  # another command_id
            ids = [*C, 0x110, 0x80000110, 0x0A, 0x00010200, rng.randrange(1 << 32)]
            out[4:8] = int(rng.choice(ids)).to_bytes(4, "big")
        elif op == 7:  # interesting bytes: NUL, 0xFF, a TLV header
            at = rng.randint(0, len(out))
            out[at:at] = rng.choice([b"\0", b"\xff", b"\x04\x24\x00\x05", b"\x00\x00\x00\x10"])
            if rng.random() < 0.7:
                out = bytearray(set_length(bytes(out)))
    return bytes(out)


# -- hypothesis --------------------------------------------------------------------------------

FUZZ = settings(max_examples=1000, deadline=500, suppress_health_check=[HealthCheck.too_slow])
CUTS = st.lists(st.integers(0, 1 << 16), max_size=6)


@FUZZ
@given(st.binary(max_size=300), CUTS)
def test_random_bytes(data: bytes, cuts: list[int]) -> None:
    check(data, cuts)


@FUZZ
@given(st.binary(min_size=12, max_size=200), CUTS)
def test_random_body_with_plausible_header(body: bytes, cuts: list[int]) -> None:
    data = (len(body) + 4).to_bytes(4, "big") + body
    check(data, cuts)


@FUZZ
@given(st.lists(st.sampled_from(CORPUS), min_size=1, max_size=4), st.randoms(), CUTS)
def test_mutated_pdus(pdus: list[bytes], rng: random.Random, cuts: list[int]) -> None:
    data = b"".join(mutate(rng, p) if rng.random() < 0.8 else p for p in pdus)
    check(data, cuts)


# -- a seeded loop, independent of hypothesis ------------------------------------------------


def test_seeded_mutation_loop() -> None:
    rng = random.Random(20240131)
    for _ in range(5000):
        pdus = [rng.choice(CORPUS) for _ in range(rng.randint(1, 3))]
        data = b"".join(mutate(rng, p) for p in pdus)
        if rng.random() < 0.1:
            data = rng.randbytes(rng.randint(0, 64))
        cuts = [rng.randint(0, len(data)) for _ in range(rng.randint(0, 5))]
        check(data, cuts)


def test_corpus_is_valid() -> None:
    codec = Codec(field_limits={"password": 10})  # the outbind has a 9-character password
    for data in CORPUS:
        assert codec.encode(codec.decode(data)) == data or data[4:8] == bytes.fromhex("80000004")
