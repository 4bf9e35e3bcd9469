"""Concatenated MO without a network: which message a part belongs to, the joined text,
and the joiner's bookkeeping (complete, sent again, timed out, a failed commit)."""

from smsgate.core.mo_parts import Joiner, joined_text, part_of, sar_options
from smsgate.core.models import InboundMessage
from smsgate.smpp.codec import decode_tlvs, encode_tlvs
from smsgate.smpp.constants import Tag


def mo(payload: bytes, esm_class: int = 0x40, options: bytes = b"", at: float = 100.0,
       source: str = "447700900123", **fields) -> InboundMessage:
    return InboundMessage("up", source, "4477009001", payload, esm_class=esm_class,
                          options=options, received_at=at, **fields)


def udh8(ref: int, total: int, seq: int) -> bytes:
    return bytes((5, 0, 3, ref, total, seq))


def sar(ref: int, total: int, seq: int, more: tuple = ()) -> bytes:
    return encode_tlvs([(Tag.sar_msg_ref_num, ref), (Tag.sar_total_segments, total),
                        (Tag.sar_segment_seqnum, seq), *more])


def test_parts_by_udh_8_and_16_bit_and_by_sar_tlvs():
    first = part_of(mo(udh8(7, 3, 1) + b"a"))
    assert (first.seq, first.total) == (1, 3)
    assert part_of(mo(udh8(7, 3, 2) + b"b")).key == first.key
    assert part_of(mo(udh8(8, 3, 2) + b"b")).key != first.key  # another reference
    assert part_of(mo(udh8(7, 3, 2) + b"b", source="447700900999")).key != first.key
    sixteen = part_of(mo(bytes((6, 8, 4, 1, 2, 2, 2)) + b"x"))
    assert (sixteen.key[4], sixteen.seq, sixteen.total) == (0x102, 2, 2)
    by_tlv = part_of(mo(b"plain", esm_class=0, options=sar(513, 2, 1)))
    assert (by_tlv.key[3:], by_tlv.seq) == (("sar", 513, 2), 1)


def test_whole_sms_and_broken_headers_are_no_parts():
    assert part_of(mo(b"hello", esm_class=0)) is None
    assert part_of(mo(udh8(7, 1, 1) + b"a")) is None  # a message of one part
    assert part_of(mo(udh8(7, 3, 0) + b"a")) is None  # part 0 is invalid (23.040)
    assert part_of(mo(udh8(7, 3, 4) + b"a")) is None  # beyond the total
    assert part_of(mo(bytes((9, 0, 3)) + b"a")) is None  # UDH longer than the data
    assert part_of(mo(bytes((4, 5, 2, 0, 0)) + b"a")) is None  # ports only
    assert part_of(mo(b"x", esm_class=0, options=b"\x02\x0c\x00")) is None  # garbled


def test_joined_text_keeps_characters_split_between_parts():
    gsm = [mo(udh8(1, 2, 1) + b"a\x1b"), mo(udh8(1, 2, 2) + b"\x3cb")]  # ESC + '<' = '['
    assert joined_text(gsm) == "a[b"
    smile = "😀".encode("utf-16-be")
    ucs2 = [mo(b"\x00a" + smile[:2], esm_class=0, data_coding=8),
            mo(smile[2:], esm_class=0, data_coding=8)]
    assert joined_text(ucs2) == "a😀"


def test_sar_options_keep_only_the_sar_tlvs():
    options = sar(5, 2, 1, ((Tag.source_port, 80),))
    assert decode_tlvs(options)[-1][0] == Tag.source_port
    assert [t for t, _ in decode_tlvs(sar_options(mo(b"x", options=options)))] == \
        [Tag.sar_msg_ref_num, Tag.sar_total_segments, Tag.sar_segment_seqnum]
    assert sar_options(mo(b"x")) == b""


def _parts(ref: int = 7, total: int = 2) -> list[InboundMessage]:
    return [mo(udh8(ref, total, seq) + bytes([96 + seq]), at=100.0 + seq)
            for seq in range(1, total + 1)]


def test_joiner_settles_a_complete_message_and_skips_a_part_sent_again():
    joiner = Joiner(timeout=60)
    one, two = _parts()
    assembly = joiner.add(one, part_of(one))
    assert not assembly.settled and len(joiner) == 1
    again = mo(one.payload, at=102.0)
    assert joiner.add(again, part_of(again)) is None  # part 1 held already
    assert joiner.add(two, part_of(two)) is assembly and assembly.settled
    assert assembly.ordered() == [one, two] and len(joiner) == 0


def test_joiner_gives_up_after_the_timeout_counted_from_the_first_part():
    joiner = Joiner(timeout=60)
    one, _two, three = _parts(total=3)
    joiner.add(three, part_of(three))
    joiner.add(one, part_of(one))  # came later, received earlier: the start moves back
    assert joiner.due(160.5) == []
    [late] = joiner.due(161.0)
    assert late.settled and late.ordered() == [one, three] and len(joiner) == 0


def test_a_failed_commit_forgets_its_part_and_reopens_what_it_settled():
    joiner = Joiner(timeout=60)
    one, two = _parts()
    assembly = joiner.add(one, part_of(one))
    joiner.add(two, part_of(two))
    joiner.unstored(assembly, two, settling=True)  # the completing part's commit failed
    assert not assembly.settled and len(joiner) == 1
    assert joiner.add(two, part_of(two)).settled  # sent again by the upstream: complete
    joiner.unstored(assembly, one, settling=False)  # (an earlier part's commit failed)
    assert list(assembly.parts) == [2]


def test_a_failed_first_part_leaves_nothing_open():
    joiner = Joiner(timeout=60)
    one, _ = _parts()
    assembly = joiner.add(one, part_of(one))
    joiner.unstored(assembly, one, settling=False)
    assert len(joiner) == 0
