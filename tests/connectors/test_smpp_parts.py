"""What the SMPP connector sends for a message (smpp_parts.py), with no network: parts,
UDH, codings, TON/NPI, receipts asked for, TLVs passed through."""

import pytest

from smsgate.connectors.settings import SmppSettings
from smsgate.connectors.smpp_parts import PartsError, SubmitBuilder
from smsgate.core.models import Message
from smsgate.smpp.codec import Codec, encode_tlvs
from smsgate.smpp.constants import ESM_UDHI, CommandId, Tag
from smsgate.text import gsm7, segments, ucs2
from smsgate.text.message_types import DC_DEFAULT, DC_LATIN1, DC_UCS2

BASE = {"host": "127.0.0.1", "port": 2775, "system_id": "acme", "password": "pw"}


def builder(**settings) -> SubmitBuilder:
    return SubmitBuilder(SmppSettings.from_config(BASE | settings), first_ref=41)


def message(payload: bytes, **fields) -> Message:
    return Message(id=1, account_id=1, source_addr="Acme", dest_addr="447700900001",
                   payload=payload, source_ton=5, source_npi=0, **fields)


def test_a_single_message_goes_as_stored_asking_for_a_receipt() -> None:
    [pdu] = builder().submits(message(b"Hello", registered_delivery=0, protocol_id=0x40,
                                      priority=2, service_type="CMT"))
    assert pdu.command_id == CommandId.submit_sm
    f = pdu.fields
    assert f["short_message"] == b"Hello" and f["data_coding"] == 0 and f["esm_class"] == 0
    assert f["registered_delivery"] == 1  # whatever the customer asked
    assert (f["source_addr_ton"], f["source_addr_npi"], f["source_addr"]) == (5, 0, "Acme")
    assert (f["dest_addr_ton"], f["dest_addr_npi"]) == (1, 1)
    assert (f["protocol_id"], f["priority_flag"], f["service_type"]) == (0x40, 2, "CMT")
    Codec().encode(pdu)  # every field fits the wire


def test_ton_npi_overrides_from_the_settings() -> None:
    [pdu] = builder(src_ton=1, src_npi=1, dst_ton=2, dst_npi=8).submits(message(b"Hi"))
    f = pdu.fields
    assert (f["source_addr_ton"], f["source_addr_npi"]) == (1, 1)
    assert (f["dest_addr_ton"], f["dest_addr_npi"]) == (2, 8)


def test_a_long_text_is_split_into_udh_parts_with_one_reference() -> None:
    text = gsm7.encode("x" * 300)
    parts = builder().submits(message(text, parts=2))
    assert len(parts) == 2
    bodies = [p["short_message"] for p in parts]
    assert [b[:6] for b in bodies] == [bytes((5, 0, 3, 42, 2, 1)), bytes((5, 0, 3, 42, 2, 2))]
    assert all(p["esm_class"] & ESM_UDHI for p in parts)
    assert segments.join(bodies) == text
    assert len(bodies[0]) == 6 + 153


def test_references_wrap_per_connector() -> None:
    build = SubmitBuilder(SmppSettings.from_config(BASE), first_ref=254)
    refs = [build.submits(message(b"y" * 200, parts=2))[0]["short_message"][3]
            for _ in range(3)]
    assert refs == [255, 0, 1]


def test_a_customer_part_goes_as_is() -> None:
    part = bytes((5, 0, 3, 7, 2, 1)) + b"first half"
    [pdu] = builder().submits(message(part, esm_class=ESM_UDHI))
    assert pdu["short_message"] == part and pdu["esm_class"] == ESM_UDHI


def test_ucs2_long_text_splits_between_surrogate_pairs() -> None:
    text = "é" * 66 + "😀" + "a" * 10
    payload = ucs2.encode(text)
    parts = builder().submits(message(payload, data_coding=DC_UCS2, parts=2))
    bodies = [segments.strip_udh(p["short_message"])[1] for p in parts]
    assert ucs2.decode(bodies[0]) == "é" * 66 and bodies[1].startswith("😀".encode("utf-16-be"))
    assert all(p["data_coding"] == DC_UCS2 for p in parts)


def test_latin1_codes_gsm_text_as_latin1() -> None:
    [pdu] = builder(coding_default="latin1").submits(message(gsm7.encode("Café @ 5€?"[:6])))
    assert pdu["data_coding"] == DC_LATIN1 and pdu["short_message"] == "Café @".encode("latin-1")


def test_latin1_keeps_gsm_part_boundaries() -> None:
    text = "ä" * 200  # 200 septets: two GSM parts; Latin-1 keeps them
    parts = builder(coding_default="latin1").submits(message(gsm7.encode(text), parts=2))
    bodies = [segments.strip_udh(p["short_message"])[1] for p in parts]
    assert [len(b) for b in bodies] == [153, 47] and b"".join(bodies) == text.encode("latin-1")
    assert all(p["data_coding"] == DC_LATIN1 for p in parts)


def test_latin1_falls_back_to_ucs2_and_splits_again() -> None:
    text = "Δ" + "a" * 100  # 101 septets: one GSM part, but two UCS-2 parts
    parts = builder(coding_default="latin1").submits(message(gsm7.encode(text)))
    assert [p["data_coding"] for p in parts] == [DC_UCS2, DC_UCS2]
    bodies = [segments.strip_udh(p["short_message"])[1] for p in parts]
    assert ucs2.decode(b"".join(bodies)) == text


def test_latin1_customer_part_that_does_not_fit_ucs2_goes_as_stored() -> None:
    udh = bytes((5, 0, 3, 9, 2, 1))
    short = udh + gsm7.encode("€ ok")
    [pdu] = builder(coding_default="latin1").submits(message(short, esm_class=ESM_UDHI))
    assert pdu["data_coding"] == DC_UCS2 and pdu["short_message"] == udh + ucs2.encode("€ ok")
    long_part = udh + gsm7.encode("€" + "a" * 140)
    [pdu] = builder(coding_default="latin1").submits(message(long_part, esm_class=ESM_UDHI))
    assert pdu["data_coding"] == DC_DEFAULT and pdu["short_message"] == long_part


def test_other_codings_go_as_stored() -> None:
    [pdu] = builder(coding_default="latin1").submits(message(b"\x01\x02", data_coding=4))
    assert pdu["data_coding"] == 4 and pdu["short_message"] == b"\x01\x02"


def test_vendor_tlvs_pass_through_and_sar_is_dropped_when_we_split() -> None:
    options = encode_tlvs([(0x1400, b"PE123"), (Tag.sar_msg_ref_num, 5)])
    [single] = builder().submits(message(b"Hi", options=options))
    assert single.tlvs == [(0x1400, b"PE123"), (Tag.sar_msg_ref_num, 5)]
    parts = builder().submits(message(b"z" * 200, parts=2, options=options))
    assert [p.tlvs for p in parts] == [[(0x1400, b"PE123")]] * 2


def test_an_odd_ucs2_text_cannot_be_split() -> None:
    with pytest.raises(PartsError):
        builder().submits(message(b"\x00" * 181, data_coding=DC_UCS2, parts=3))
