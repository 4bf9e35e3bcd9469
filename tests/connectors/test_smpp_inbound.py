"""What an upstream's deliver_sm means (smpp_inbound.py), with no network: reports from
the receipt vectors of smpp-vectors.md (hex TLV ids, decimal text ids, message_payload,
vendor TLVs), id spellings per id_format, MO kept as received."""

import pytest

from smsgate.connectors.smpp_inbound import (
    BadReport,
    id_spellings,
    is_report,
    read_inbound,
    read_report,
)
from smsgate.smpp.codec import Codec, decode_tlvs
from smsgate.smpp.constants import CommandId, Tag
from smsgate.smpp.pdu import Pdu

CODEC = Codec(lenient=True)
V10 = bytes.fromhex(
    "000000BA00000005000000000000000200010134343935313336313932300001013430343034000400"
    "000000000000006E69643A30303539313133393738207375623A30303120646C7672643A30303120"
    "7375626D697420646174653A3130303231303137333020646F6E6520646174653A31303032313031"
    "37333120737461743A44454C49565244206572723A30303020746578743A4024232125262F3A000E"
    "0001010006000101001E000833383630316661000427000102")
V11 = bytes.fromhex(
    "000000cb00000005000000000000000100010133313630303030303030300005005858582059595959"
    "0004000000000000000000000e0001010006000101001e000931643330356234630004270001020424"
    "007269643a30343839373038333634207375623a30303120646c7672643a303031207375626d697420"
    "646174653a3138313031353139303720646f6e6520646174653a31383130313531393037207374617"
    "43a44454c49565244206572723a30303020746578743a041f044004380432043504420426000101")
V12 = bytes.fromhex(
    "000000a800000005000000002f70c69a0000003232353439393039303238000100000400000000000000"
    "006969643a373935393230303236207375623a30303120646c7672643a303031207375626d69742064"
    "6174653a32303033313931333139313320646f6e6520646174653a3230303331393133313931332073"
    "7461743a44454c49565244206572723a30303020746578743a14030007286e756c6c29001402000436"
    "313200")


def receipt(text: bytes, tlvs: list | None = None, esm_class: int = 0x04) -> Pdu:
    return Pdu(CommandId.deliver_sm, 1, 0, {"esm_class": esm_class, "short_message": text},
               tlvs or [])


def test_v10_hex_tlv_id_and_decimal_text_id() -> None:
    report = read_report(CODEC.decode(V10), "up", "auto", 5.0)
    assert report.upstream_ids[0] == "38601fa" and report.status == "DELIVRD"
    assert (report.connector, report.at, report.error_code) == ("up", 5.0, 0)


def test_v11_receipt_in_message_payload() -> None:
    report = read_report(CODEC.decode(V11), "up", "auto", 0.0)
    assert report.upstream_ids[0] == "1d305b4c" and report.status == "DELIVRD"


def test_v12_text_only_receipt_with_vendor_tlvs() -> None:
    pdu = CODEC.decode(V12)
    assert is_report(pdu)
    report = read_report(pdu, "up", "auto", 0.0)
    assert report.upstream_ids[0] == "795920026" and report.status == "DELIVRD"
    assert "2f70c69a" in report.upstream_ids  # the same number in hex


def test_decimal_text_id_matches_a_hex_resp_id() -> None:
    text = b"id:0059113978 sub:001 dlvrd:000 submit date:2401011200 done date:2401011201 " \
           b"stat:UNDELIV err:034 text:hi"
    report = read_report(receipt(text), "up", "auto", 0.0)
    assert report.upstream_ids[0] == "0059113978" and "38601fa" in report.upstream_ids
    assert (report.status, report.error_code) == ("UNDELIV", 34)


def test_tlv_state_wins_over_the_text() -> None:
    text = b"id:77 stat:DELIVRD err:000"
    report = read_report(receipt(text, [(Tag.message_state, 5)]), "up", "auto", 0.0)
    assert report.status == "UNDELIV" and report.upstream_ids[0] == "77"


def test_network_error_code_tlv_gives_the_error() -> None:
    pdu = receipt(b"", [(Tag.receipted_message_id, "ab12"), (Tag.message_state, 8),
                        (Tag.network_error_code, b"\x03\x00\x45")])
    report = read_report(pdu, "up", "hex", 0.0)
    assert (report.status, report.error_code) == ("REJECTD", 0x45)


def test_enroute_and_intermediate_notifications_are_acceptd() -> None:
    pdu = receipt(b"id:5 stat:ENROUTE err:000", esm_class=0x20)
    assert is_report(pdu) and read_report(pdu, "up", "dec", 0.0).status == "ACCEPTD"


def test_a_receipt_without_any_id_is_bad() -> None:
    with pytest.raises(BadReport):
        read_report(receipt(b"stat:DELIVRD"), "up", "auto", 0.0)


@pytest.mark.parametrize(("given", "fmt", "expected"), [
    ("0012", "dec", ("0012", "12", "0000000012")),
    ("12", "dec", ("12", "0000000012")),
    ("00aB", "hex", ("00aB", "00ab", "00AB", "aB", "ab", "AB", "000000aB", "000000ab",
                     "000000AB")),
    ("x-1", "dec", ("x-1",)),
])
def test_id_spellings_of_one_base(given: str, fmt: str, expected: tuple) -> None:
    assert id_spellings(given, fmt) == expected


def test_auto_tries_both_bases() -> None:
    assert set(id_spellings("255", "auto")) >= {"255", "ff", "FF", "597"}


def test_an_mo_is_kept_as_received() -> None:
    udh = bytes((5, 0, 3, 1, 2, 1))
    pdu = Pdu(CommandId.deliver_sm, 3, 0, {
        "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "447700900123",
        "dest_addr_ton": 0, "dest_addr_npi": 1, "destination_addr": "12345",
        "esm_class": 0x40, "data_coding": 8, "short_message": udh + b"\x00h"},
        [(0x1402, b"612\x00")])
    assert not is_report(pdu)
    mo = read_inbound(pdu, "up", 9.0)
    assert (mo.source_addr, mo.dest_addr, mo.payload) == ("447700900123", "12345", udh + b"\x00h")
    assert (mo.esm_class, mo.data_coding, mo.dest_ton, mo.received_at) == (0x40, 8, 0, 9.0)
    assert decode_tlvs(mo.options) == [(0x1402, b"612\x00")]


def test_an_mo_in_message_payload() -> None:
    pdu = Pdu(CommandId.data_sm, 3, 0, {"source_addr": "4477", "destination_addr": "1"},
              [(Tag.message_payload, b"long text"), (Tag.source_port, 9)])
    mo = read_inbound(pdu, "up", 0.0)
    assert mo.payload == b"long text" and decode_tlvs(mo.options) == [(Tag.source_port, 9)]
