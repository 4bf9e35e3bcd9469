"""Every vector of /work/shared/smpp-vectors.md (V1-V21): decode to the documented fields,
re-encode to the identical bytes (except the documented edge cases)."""

from typing import Any

import pytest

from smsgate.smpp.codec import Codec, Framer, PduError
from smsgate.smpp.constants import CommandId as C
from smsgate.smpp.constants import Status as S
from smsgate.smpp.constants import Tag as T
from smsgate.smpp.layouts import DistributionList, SmeAddress, UnsuccessSme
from smsgate.smpp.pdu import Pdu
from smsgate.smpp.session import Role, Session, State

CODEC = Codec()


def raw(hexstr: str) -> bytes:
    return bytes.fromhex("".join(hexstr.split()))


def roundtrip(hexstr: str, codec: Codec = CODEC) -> Pdu:
    """Decode; assert the re-encoding is byte-identical; return the PDU."""
    data = raw(hexstr)
    pdu = codec.decode(data)
    assert codec.encode(pdu) == data
    assert Framer().feed(data) == [data]
    return pdu


def sm(**fields: Any) -> dict[str, Any]:
    """submit_sm / deliver_sm fields: everything NULL unless given."""
    base: dict[str, Any] = {
        "service_type": "",
        "source_addr_ton": 0,
        "source_addr_npi": 0,
        "source_addr": "",
        "dest_addr_ton": 0,
        "dest_addr_npi": 0,
        "destination_addr": "",
        "esm_class": 0,
        "protocol_id": 0,
        "priority_flag": 0,
        "schedule_delivery_time": "",
        "validity_period": "",
        "registered_delivery": 0,
        "replace_if_present_flag": 0,
        "data_coding": 0,
        "sm_default_msg_id": 0,
        "short_message": b"",
    }
    assert fields.keys() <= base.keys()
    return base | fields


def bind(system_id: str, password: str, system_type: str, version: int, ton: int, npi: int,
         address_range: str = "") -> dict[str, Any]:
    return {
        "system_id": system_id,
        "password": password,
        "system_type": system_type,
        "interface_version": version,
        "addr_ton": ton,
        "addr_npi": npi,
        "address_range": address_range,
    }


# -- V1-V4: binds ----------------------------------------------------------------------


def test_v1_bind_transmitter_spec_example() -> None:
    pdu = roundtrip("0000002F000000020000000000000001534D50503354455354007365637265743038"
                    "005355424D4954310000010100")
    assert pdu == Pdu(C.bind_transmitter, 1, 0, bind("SMPP3TEST", "secret08", "SUBMIT1",
                                                     0x00, 1, 1))


def test_v2_bind_transmitter_v34() -> None:
    pdu = roundtrip("0000002a000000020000000000000001736d7070636c69656e74310070617373776f72"
                    "64000034000000")
    assert pdu == Pdu(C.bind_transmitter, 1, 0, bind("smppclient1", "password", "", 0x34,
                                                     0, 0))


def test_v3_bind_transceiver() -> None:
    pdu = roundtrip("00000023000000090000000000039951414c4c5f545700414c4c5f5457000034010200")
    assert pdu == Pdu(C.bind_transceiver, 0x39951, 0, bind("ALL_TW", "ALL_TW", "", 0x34, 1, 2))


@pytest.mark.parametrize(
    ("hexstr", "command_id", "sequence", "system_id"),
    [
        ("0000001d800000090000000000039943536d7363204757000210000134",
         C.bind_transceiver_resp, 0x39943, "Smsc GW"),
        ("0000001d80000002000000000003995f54574954544552000210000134",
         C.bind_transmitter_resp, 0x3995F, "TWITTER"),
        ("0000001d80000001000000000003996274776974746572000210000134",
         C.bind_receiver_resp, 0x39962, "twitter"),
    ],
)
def test_v4_bind_resp_with_sc_interface_version(
    hexstr: str, command_id: int, sequence: int, system_id: str
) -> None:
    pdu = roundtrip(hexstr)
    assert pdu == Pdu(command_id, sequence, 0, {"system_id": system_id},
                      [(T.sc_interface_version, 0x34)])


def test_v5_failed_bind_resp_with_body() -> None:
    pdu = roundtrip("00000015800000090000000e00004db3534d534300")
    assert pdu == Pdu(C.bind_transceiver_resp, 0x4DB3, S.ESME_RINVPASWD, {"system_id": "SMSC"})


# -- V6: header-only PDUs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("hexstr", "command_id", "status", "sequence"),
    [
        ("0000001000000015000000000a342ee7", C.enquire_link, 0, 0x0A342EE7),
        ("0000001080000015000000000a342eed", C.enquire_link_resp, 0, 0x0A342EED),
        ("00000010000000060000000000000001", C.unbind, 0, 1),
        ("00000010800000060000000000000001", C.unbind_resp, 0, 1),
        ("0000001080000000000000010000000d", C.generic_nack, S.ESME_RINVMSGLEN, 13),
        ("00000010800000000000000100082a77", C.generic_nack, S.ESME_RINVMSGLEN, 0x82A77),
        ("00000010800000080000000000004FE8", C.cancel_sm_resp, 0, 0x4FE8),
        ("00000010800000070000000200004FE8", C.replace_sm_resp, S.ESME_RINVCMDLEN, 0x4FE8),
    ],
)
def test_v6_header_only(hexstr: str, command_id: int, status: int, sequence: int) -> None:
    assert roundtrip(hexstr) == Pdu(command_id, sequence, status)


def test_v6_header_only_with_extra_octet_is_rinvcmdlen() -> None:
    with pytest.raises(PduError) as info:
        CODEC.decode(raw("0000001100000015000000000a342ee700"))
    assert (info.value.status, info.value.sequence, info.value.fatal) == (
        S.ESME_RINVCMDLEN, 0x0A342EE7, False)


# -- V7, V8, V21: submit_sm ------------------------------------------------------------------


def test_v7_submit_sm() -> None:
    pdu = roundtrip("00000039000000040000000000004FE800010134303430340001013434393531333631"
                    "39323000000000000001000000084024232125262F3A")
    assert pdu == Pdu(C.submit_sm, 0x4FE8, 0, sm(
        source_addr_ton=1, source_addr_npi=1, source_addr="40404",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="44951361920",
        registered_delivery=1, short_message=bytes.fromhex("4024232125262F3A")))
    assert pdu["short_message"] == b"@$#!%&/:"  # kept as raw octets: no alphabet guessed


V8 = ("0000003f0000000400000000000000020001003436373031313333313131000101343637303937373133"
      "3337004000000000000001000803240103747B7374")
V8_FIELDS = sm(
    source_addr_ton=1, source_addr_npi=0, source_addr="46701133111",
    dest_addr_ton=1, dest_addr_npi=1, destination_addr="46709771337",
    esm_class=0x40, data_coding=0x01, short_message=bytes.fromhex("03240103747B7374"))


def test_v8_submit_sm_udh() -> None:
    pdu = roundtrip(V8)
    assert pdu == Pdu(C.submit_sm, 2, 0, V8_FIELDS)
    udh = pdu["short_message"][: pdu["short_message"][0] + 1]
    assert udh == bytes([3, 0x24, 1, 3])  # national language single shift, Portuguese


def test_v8_message_payload_variant() -> None:
    hexstr = "00000047" + V8[8:] + "0424000474657374"
    pdu = roundtrip(hexstr)
    assert pdu == Pdu(C.submit_sm, 2, 0, V8_FIELDS, [(T.message_payload, b"test")])


def test_v21_wikipedia_submit_sm() -> None:
    pdu = roundtrip("0000003C0000000400000000000000050002083535350001013535353535353535350000"
                    "00000000000000000F48656C6C6F2077696B697065646961")
    assert pdu == Pdu(C.submit_sm, 5, 0, sm(
        source_addr_ton=2, source_addr_npi=8, source_addr="555",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="555555555",
        short_message=b"Hello wikipedia"))


def test_v21_openmarket_submit_sm() -> None:
    pdu = roundtrip(
        "0000006b00000004000000000005c4a34f4d56340003013830333632000101383132333435303031"
        "30303000000000003138303130353132303030303030342b0001000000255265706c792059657320"
        "746f206f707420696e206f72204e6f20746f206f7074206f75742e")
    assert pdu == Pdu(C.submit_sm, 0x5C4A3, 0, sm(
        service_type="OMV4", source_addr_ton=3, source_addr_npi=1, source_addr="80362",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="812345001000",
        validity_period="180105120000004+", registered_delivery=1,
        short_message=b"Reply Yes to opt in or No to opt out."))


# -- V9: submit_sm_resp -------------------------------------------------------------------


def test_v9_submit_sm_resp() -> None:
    pdu = roundtrip("0000001c80000004000000000a342ee1393432353834333135393400")
    assert pdu == Pdu(C.submit_sm_resp, 0x0A342EE1, 0, {"message_id": "94258431594"})


@pytest.mark.parametrize(
    ("hexstr", "status", "fields"),
    [
        ("0000001080000004000000000a342ee1", 0, {}),  # no body at all
        ("0000001180000004000000000a342ee100", 0, {"message_id": ""}),
        ("0000001180000004000000000a342ee139", 0, {"message_id": "9"}),  # no NUL
        ("00000010800000040000005800000001", S.ESME_RTHROTTLED, {}),  # gosmpp
    ],
)
@pytest.mark.parametrize("codec", [Codec(), Codec(lenient=True)], ids=["strict", "lenient"])
def test_v9_edge_cases_decode(hexstr: str, status: int, fields: dict, codec: Codec) -> None:
    data = raw(hexstr)
    pdu = codec.decode(data)
    assert (pdu.command_id, pdu.status, pdu.fields, pdu.tlvs) == (
        C.submit_sm_resp, status, fields, [])
    # Re-encoding gives a well-formed PDU with the same content (not necessarily the bytes).
    assert codec.decode(codec.encode(pdu)).get("message_id", "") == fields.get("message_id", "")


def test_v9_error_response_reencodes_header_only() -> None:
    assert roundtrip("00000010800000040000005800000001") == Pdu(
        C.submit_sm_resp, 1, S.ESME_RTHROTTLED)


# -- V10-V13, V19: deliver_sm -------------------------------------------------------------

V10_TEXT = (b"id:0059113978 sub:001 dlvrd:001 submit date:1002101730 done date:1002101731"
            b" stat:DELIVRD err:000 text:@$#!%&/:")


def test_v10_deliver_sm_receipt() -> None:
    pdu = roundtrip(
        "000000BA0000000500000000000000020001013434393531333631393230000101343034303400040000"
        "0000000000006E69643A30303539313133393738207375623A30303120646C7672643A30303120737562"
        "6D697420646174653A3130303231303137333020646F6E6520646174653A313030323130313733312073"
        "7461743A44454C49565244206572723A30303020746578743A4024232125262F3A000E00010100060001"
        "01001E000833383630316661000427000102")
    assert pdu == Pdu(C.deliver_sm, 2, 0, sm(
        source_addr_ton=1, source_addr_npi=1, source_addr="44951361920",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="40404",
        esm_class=0x04, short_message=V10_TEXT),
        [(0x000E, 1), (0x0006, 1), (0x001E, "38601fa"), (0x0427, 2)])
    assert len(V10_TEXT) == 110
    assert int(pdu.tlv(T.receipted_message_id), 16) == 59113978
    assert pdu.tlv(T.message_state) == 2


def test_v11_receipt_in_message_payload() -> None:
    pdu = roundtrip(
        "000000cb000000050000000000000001000101333136303030303030303000050058585820595959590004"
        "000000000000000000000e0001010006000101001e000931643330356234630004270001020424007269"
        "643a30343839373038333634207375623a30303120646c7672643a303031207375626d69742064617465"
        "3a3138313031353139303720646f6e6520646174653a3138313031353139303720737461743a44454c49"
        "565244206572723a30303020746578743a041f044004380432043504420426000101")
    payload = (b"id:0489708364 sub:001 dlvrd:001 submit date:1810151907 done date:1810151907"
               b" stat:DELIVRD err:000 text:" + "Привет".encode("utf-16-be"))
    assert len(payload) == 114
    assert pdu == Pdu(C.deliver_sm, 1, 0, sm(
        source_addr_ton=1, source_addr_npi=1, source_addr="31600000000",
        dest_addr_ton=5, dest_addr_npi=0, destination_addr="XXX YYYY", esm_class=0x04),
        [(0x000E, 1), (0x0006, 1), (0x001E, "1d305b4c"), (0x0427, 2), (0x0424, payload),
         (0x0426, 1)])


def test_v12_vendor_tlvs_kept_raw() -> None:
    pdu = roundtrip(
        "000000a800000005000000002f70c69a000000323235343939303930323800010000040000000000000000"
        "6969643a373935393230303236207375623a30303120646c7672643a303031207375626d697420646174"
        "653a32303033313931333139313320646f6e6520646174653a323030333139313331393133207374617"
        "43a44454c49565244206572723a30303020746578743a14030007286e756c6c29001402000436313200")
    text = (b"id:795920026 sub:001 dlvrd:001 submit date:200319131913 done date:200319131913"
            b" stat:DELIVRD err:000 text:")
    assert len(text) == 105
    assert pdu == Pdu(C.deliver_sm, 0x2F70C69A, 0, sm(
        source_addr="22549909028", dest_addr_ton=1, esm_class=0x04, short_message=text),
        [(0x1403, b"(null)\0"), (0x1402, b"612\0")])
    assert all(isinstance(v, bytes) for _, v in pdu.tlvs)


V13_HEAD = ("0000000500000000000547EB00020134343935313336313932000409343034303400000000000000"
            "00000000000E0001010006000101")
V13_FIELDS = sm(source_addr_ton=2, source_addr_npi=1, source_addr="4495136192",
                dest_addr_ton=4, dest_addr_npi=9, destination_addr="40404")


@pytest.mark.parametrize(
    "payload",
    [b"@Maidenman664 was it sappy? &Romantic?", b"Ok", b"O", b""],
    ids=["38", "2", "1", "empty"],
)
def test_v13_text_only_in_message_payload(payload: bytes) -> None:
    body = raw(V13_HEAD) + bytes.fromhex("0424") + len(payload).to_bytes(2, "big") + payload
    hexstr = (len(body) + 4).to_bytes(4, "big").hex() + body.hex()
    if payload.startswith(b"@"):
        assert hexstr.upper().startswith("00000064")  # the vector as published
    pdu = roundtrip(hexstr)
    assert pdu == Pdu(C.deliver_sm, 0x547EB, 0, V13_FIELDS,
                      [(0x000E, 1), (0x0006, 1), (0x0424, payload)])


V19 = ("000000390000000500000000806A179B000101393939393139393134353933000000363436340000000000"
       "000000080008c1e1e9edf3faf1fc")
V19_RESP = "000000118000000500000000806A179B00"


def test_v19_big_sequence_accepted_and_echoed() -> None:
    pdu = roundtrip(V19)
    assert pdu == Pdu(C.deliver_sm, 0x806A179B, 0, sm(
        source_addr_ton=1, source_addr_npi=1, source_addr="999919914593",
        destination_addr="6464", data_coding=0x08,
        short_message=bytes.fromhex("c1e1e9edf3faf1fc")))
    assert pdu["short_message"].decode("latin-1") == "Ááéíóúñü"
    assert roundtrip(V19_RESP) == Pdu(C.deliver_sm_resp, 0x806A179B, 0, {"message_id": ""})
    assert CODEC.encode(pdu.response()) == raw(V19_RESP)
    assert CODEC.encode(pdu.response(message_id="")) == raw(V19_RESP)


def test_v19_big_sequence_through_session() -> None:
    esme = Session(Role.ESME)
    esme.state = State.BOUND_RX
    [pdu] = esme.receive_data(raw(V19), 0.0)
    assert pdu.sequence == 0x806A179B
    esme.send(pdu.response())
    assert esme.data_to_send() == raw(V19_RESP)


# -- V14-V18: data_sm, query, cancel, replace, alert, submit_multi ---------------------------


def test_v14_data_sm_sequence_zero() -> None:
    pdu = roundtrip("000000300000010300000000000000000001013535353237313030303000000139363935"
                    "000001000424000454657374")
    assert pdu == Pdu(C.data_sm, 0, 0, {
        "service_type": "", "source_addr_ton": 1, "source_addr_npi": 1,
        "source_addr": "5552710000", "dest_addr_ton": 0, "dest_addr_npi": 1,
        "destination_addr": "9695", "esm_class": 0, "registered_delivery": 1,
        "data_coding": 0}, [(T.message_payload, b"Test")])


def test_v15_query_sm() -> None:
    pdu = roundtrip("0000001E000000030000000000004FE83132333435000101343034303400")
    assert pdu == Pdu(C.query_sm, 0x4FE8, 0, {
        "message_id": "12345", "source_addr_ton": 1, "source_addr_npi": 1,
        "source_addr": "40404"})


@pytest.mark.parametrize(
    ("hexstr", "sequence", "message_id", "state"),
    [
        ("00000019800000030000000000004FE8313233343500000600", 0x4FE8, "12345", 6),
        ("0000001480000003000000000000000200000200", 2, "", 2),
    ],
)
def test_v15_query_sm_resp(hexstr: str, sequence: int, message_id: str, state: int) -> None:
    assert roundtrip(hexstr) == Pdu(C.query_sm_resp, sequence, 0, {
        "message_id": message_id, "final_date": "", "message_state": state, "error_code": 0})


def test_v16_cancel_sm() -> None:
    pdu = roundtrip("0000002D000000080000000000004FE800313233343500010134303430340001013434393531"
                    "33363139323000")
    assert pdu == Pdu(C.cancel_sm, 0x4FE8, 0, {
        "service_type": "", "message_id": "12345",
        "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "40404",
        "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "44951361920"})


def test_v16_replace_sm_times() -> None:
    pdu = roundtrip("00000050000000070000000000004FE86D73672D313233343500010135353532373130303030"
                    "003135303230333034303530363730382B0030313032303330343035303630303052000102"
                    "0474657874")
    assert pdu == Pdu(C.replace_sm, 0x4FE8, 0, {
        "message_id": "msg-12345", "source_addr_ton": 1, "source_addr_npi": 1,
        "source_addr": "5552710000", "schedule_delivery_time": "150203040506708+",
        "validity_period": "010203040506000R", "registered_delivery": 1,
        "sm_default_msg_id": 2, "short_message": b"text"})


def test_v17_alert_notification_status_in_request() -> None:
    pdu = roundtrip("00000025000001020000000200004FE8010135353532373130303030000101343034303400")
    assert pdu == Pdu(C.alert_notification, 0x4FE8, 2, {
        "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "5552710000",
        "esme_addr_ton": 1, "esme_addr_npi": 1, "esme_addr": "40404"})
    assert pdu.tlv(T.ms_availability_status, 0) == 0


def test_v18_submit_multi() -> None:
    pdu = roundtrip(
        "0000006e00000021000000000000000d616263001c1d416c696365720003010000426f623100024c6973"
        "743100024c69737432000d633d00005300080030006e006700681eaf0020006e00670068006900ea006e"
        "00670020006e0067006800691ec5006e00670020006e00671ea3")
    text = "nghắ nghiêng nghiễng ngả".encode("utf-16-be")
    assert len(text) == 48
    assert pdu == Pdu(C.submit_multi, 13, 0, {
        "service_type": "abc", "source_addr_ton": 0x1C, "source_addr_npi": 0x1D,
        "source_addr": "Alicer",
        "dest_addresses": (SmeAddress(0, 0, "Bob1"), DistributionList("List1"),
                           DistributionList("List2")),
        "esm_class": 0x0D, "protocol_id": 0x63, "priority_flag": 0x3D,
        "schedule_delivery_time": "", "validity_period": "", "registered_delivery": 0x53,
        "replace_if_present_flag": 0, "data_coding": 0x08, "sm_default_msg_id": 0,
        "short_message": text})


def test_v18_submit_multi_resp() -> None:
    pdu = roundtrip("0000003080000021000000000000000d666f6f7462616c6c00022621426f623100000000"
                    "130000426f62320000000014")
    assert pdu == Pdu(C.submit_multi_resp, 13, 0, {
        "message_id": "football",
        "unsuccess_smes": (UnsuccessSme(0x26, 0x21, "Bob1", S.ESME_RREPLACEFAIL),
                           UnsuccessSme(0, 0, "Bob2", S.ESME_RMSGQFUL))})


def test_v18_empty_submit_multi_resp() -> None:
    pdu = roundtrip("0000001280000021000000000000000d0000")
    assert pdu == Pdu(C.submit_multi_resp, 13, 0, {"message_id": "", "unsuccess_smes": ()})
    assert CODEC.encode(Pdu(C.submit_multi_resp, 13)) == raw("0000001280000021000000000000000d0000")


# -- V20: negative and edge vectors -----------------------------------------------------------


@pytest.mark.parametrize("hexstr", ["000000", "0000001000000015000000000a342e"])
def test_v20_incomplete_waits(hexstr: str) -> None:
    framer = Framer()
    assert framer.feed(raw(hexstr)) == []
    assert framer.error is None
    assert framer.buffered == len(raw(hexstr))


def test_v20_unknown_request() -> None:
    data = raw("0000001000000110000000000a342ee7")
    with pytest.raises(PduError) as info:
        CODEC.decode(data)
    assert (info.value.status, info.value.sequence, info.value.fatal) == (
        S.ESME_RINVCMDID, 0x0A342EE7, False)
    smsc = Session(Role.SMSC)
    assert smsc.receive_data(data, 0.0) == []
    assert CODEC.decode(smsc.data_to_send()) == Pdu(C.generic_nack, 0x0A342EE7,
                                                    S.ESME_RINVCMDID)
    assert not smsc.closing


def test_v20_unknown_response_is_not_answered() -> None:
    data = raw("0000001080000110000000000a342ee7")
    with pytest.raises(PduError) as info:
        CODEC.decode(data)
    assert info.value.status == S.ESME_RINVCMDID
    smsc = Session(Role.SMSC)
    assert smsc.receive_data(data, 0.0) == []
    assert smsc.data_to_send() == b""
    assert [e.sequence for e in smsc.rejected] == [0x0A342EE7]


@pytest.mark.parametrize(
    ("hexstr", "sequence"),
    [("F000001100000110000000000a342ee7", 0x0A342EE7),
     ("0000000f800000060000000000000001", 1)],
    ids=["signed-length", "length-15"],
)
def test_v20_bad_length_is_fatal(hexstr: str, sequence: int) -> None:
    framer = Framer()
    assert framer.feed(raw(hexstr)) == []
    assert framer.error is not None
    assert (framer.error.status, framer.error.fatal, framer.error.sequence) == (
        S.ESME_RINVCMDLEN, True, sequence)
    with pytest.raises(PduError) as info:
        CODEC.decode(raw(hexstr))
    assert (info.value.status, info.value.fatal) == (S.ESME_RINVCMDLEN, True)
    smsc = Session(Role.SMSC)
    assert smsc.receive_data(raw(hexstr), 0.0) == []
    assert smsc.closing
    assert CODEC.decode(smsc.data_to_send()) == Pdu(C.generic_nack, sequence, S.ESME_RINVCMDLEN)


OUTBIND_9 = "000000240000000b000000000000000d696e76656e746f7279006970617373776f726400"


def test_v20_outbind_long_password() -> None:
    with pytest.raises(PduError) as info:
        CODEC.decode(raw(OUTBIND_9))
    assert (info.value.status, info.value.command_id, info.value.sequence) == (
        S.ESME_RINVPASWD, C.outbind, 13)
    pdu = roundtrip(OUTBIND_9, Codec(field_limits={"password": 33}))
    assert pdu == Pdu(C.outbind, 13, 0, {"system_id": "inventory", "password": "ipassword"})


TEXT_255 = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit. Vestibulum in orci magna. "
            b"Etiam auctor ultrices lacus vel suscipit. Maecenas eget faucibus purus. Etiam "
            b"aliquet mollis fermentum. Proin vel augue arcu. Praesent venenatis tristique ante "
            b"turpis duis.")
SM_255 = ("00000130000000040000000000004FE80001013430343034000101343439353133363139323000000000"
          "000001000000FF" + TEXT_255.hex())


def test_v20_sm_length_255() -> None:
    assert len(TEXT_255) == 255 and len(raw(SM_255)) == 0x130
    with pytest.raises(PduError) as info:
        CODEC.decode(raw(SM_255))
    assert (info.value.status, info.value.sequence) == (S.ESME_RINVMSGLEN, 0x4FE8)
    pdu = roundtrip(SM_255, Codec(lenient=True))
    assert pdu == Pdu(C.submit_sm, 0x4FE8, 0, sm(
        source_addr_ton=1, source_addr_npi=1, source_addr="40404",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="44951361920",
        registered_delivery=1, short_message=TEXT_255))
    smsc = Session(Role.SMSC)
    smsc.state = State.BOUND_TX
    assert smsc.receive_data(raw(SM_255), 0.0) == []
    assert CODEC.decode(smsc.data_to_send()) == Pdu(C.submit_sm_resp, 0x4FE8, S.ESME_RINVMSGLEN)
