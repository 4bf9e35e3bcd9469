"""The one declarative table of SMPP 3.4 PDU bodies and TLV types.

Each PDU body is a tuple of `Field`s in wire order; `codec.py` walks these tuples, and
generates its per-command decoders and encoders from them, so adding or fixing a field
happens here and nowhere else.
C-string sizes include the NUL (SMPP34.md §0); `status` is the command_status to answer
with when that field is malformed (SMPP34.md §7.3, jsmpp's StringParameter mapping).
"""

from typing import NamedTuple

from .constants import CommandId as C
from .constants import Status as S
from .constants import Tag as T

# Field kinds
CSTR = 0  # C-Octet String, `size` = maximum octets including the NUL
U8 = 1  # 1-octet integer
U16 = 2  # 2-octet integer (TLVs only)
U32 = 3  # 4-octet integer
TIME = 4  # C-Octet String of exactly 0 or 16 characters
SHORT_MESSAGE = 5  # sm_length (1 octet) followed by that many octets
DEST_LIST = 6  # submit_multi: number_of_dests then dest_address entries
UNSUCCESS_LIST = 7  # submit_multi_resp: no_unsuccess then unsuccess_sme entries
OCTETS = 8  # raw octets (TLVs only)
FLAG = 9  # zero-length presence flag (TLVs only)


class Field(NamedTuple):
    name: str
    kind: int
    size: int = 0
    status: int = S.ESME_RINVCMDLEN


class SmeAddress(NamedTuple):
    """A submit_multi destination with dest_flag 1."""

    ton: int
    npi: int
    addr: str


class DistributionList(NamedTuple):
    """A submit_multi destination with dest_flag 2."""

    name: str


class UnsuccessSme(NamedTuple):
    ton: int
    npi: int
    addr: str
    error: int


def _u8(*names: str) -> tuple[Field, ...]:
    return tuple(Field(n, U8) for n in names)


SERVICE_TYPE = Field("service_type", CSTR, 6, S.ESME_RINVSERTYP)
MESSAGE_ID = Field("message_id", CSTR, 65, S.ESME_RINVMSGID)
SCHEDULE = Field("schedule_delivery_time", TIME, 17, S.ESME_RINVSCHED)
VALIDITY = Field("validity_period", TIME, 17, S.ESME_RINVEXPIRY)
SHORT_MSG = Field("short_message", SHORT_MESSAGE, 254, S.ESME_RINVMSGLEN)


def _source(size: int = 21) -> tuple[Field, ...]:
    return (
        *_u8("source_addr_ton", "source_addr_npi"),
        Field("source_addr", CSTR, size, S.ESME_RINVSRCADR),
    )


def _dest(size: int = 21) -> tuple[Field, ...]:
    return (
        *_u8("dest_addr_ton", "dest_addr_npi"),
        Field("destination_addr", CSTR, size, S.ESME_RINVDSTADR),
    )


BIND = (
    Field("system_id", CSTR, 16, S.ESME_RINVSYSID),
    Field("password", CSTR, 9, S.ESME_RINVPASWD),
    Field("system_type", CSTR, 13, S.ESME_RINVSYSTYP),
    *_u8("interface_version", "addr_ton", "addr_npi"),
    Field("address_range", CSTR, 41, S.ESME_RINVPARLEN),
)
BIND_RESP = (Field("system_id", CSTR, 16, S.ESME_RINVSYSID),)
MESSAGE_ID_ONLY = (MESSAGE_ID,)

SUBMIT_SM = (
    SERVICE_TYPE,
    *_source(),
    *_dest(),
    *_u8("esm_class", "protocol_id", "priority_flag"),
    SCHEDULE,
    VALIDITY,
    *_u8("registered_delivery", "replace_if_present_flag", "data_coding", "sm_default_msg_id"),
    SHORT_MSG,
)

SUBMIT_MULTI = (
    SERVICE_TYPE,
    *_source(),
    Field("dest_addresses", DEST_LIST, 254, S.ESME_RINVNUMDESTS),
    *_u8("esm_class", "protocol_id", "priority_flag"),
    SCHEDULE,
    VALIDITY,
    *_u8("registered_delivery", "replace_if_present_flag", "data_coding", "sm_default_msg_id"),
    SHORT_MSG,
)

DATA_SM = (
    SERVICE_TYPE,
    *_source(65),
    *_dest(65),
    *_u8("esm_class", "registered_delivery", "data_coding"),
)

QUERY_SM = (MESSAGE_ID, *_source())
QUERY_SM_RESP = (
    MESSAGE_ID,
    Field("final_date", TIME, 17, S.ESME_RINVPARLEN),
    *_u8("message_state", "error_code"),
)
CANCEL_SM = (SERVICE_TYPE, MESSAGE_ID, *_source(), *_dest())
REPLACE_SM = (
    MESSAGE_ID,
    *_source(),
    SCHEDULE,
    VALIDITY,
    *_u8("registered_delivery", "sm_default_msg_id"),
    SHORT_MSG,
)
OUTBIND = BIND[:2]
ALERT_NOTIFICATION = (
    *_source(65),
    *_u8("esme_addr_ton", "esme_addr_npi"),
    Field("esme_addr", CSTR, 65, S.ESME_RINVDSTADR),
)
SUBMIT_MULTI_RESP = (MESSAGE_ID, Field("unsuccess_smes", UNSUCCESS_LIST, 254))
HEADER_ONLY: tuple[Field, ...] = ()

# The repeated entries inside DEST_LIST and UNSUCCESS_LIST fields: after a dest_flag
# octet, an SME address (flag 1, SmeAddress) or a distribution list name (flag 2,
# DistributionList); an UnsuccessSme per refused destination. The codec walks these
# like the bodies above; their order is the NamedTuples' order.
DEST_FLAG_SME, DEST_FLAG_DL = 1, 2
SME_DEST_ADDRESS = _dest()
DL_NAME = (Field("dl_name", CSTR, 21, S.ESME_RINVDLNAME),)
UNSUCCESS_SME = (*_dest(), Field("error_status_code", U32))

# command_id -> body layout. A command_id missing here is unknown (ESME_RINVCMDID).
LAYOUTS: dict[int, tuple[Field, ...]] = {
    C.generic_nack: HEADER_ONLY,
    C.bind_receiver: BIND,
    C.bind_receiver_resp: BIND_RESP,
    C.bind_transmitter: BIND,
    C.bind_transmitter_resp: BIND_RESP,
    C.bind_transceiver: BIND,
    C.bind_transceiver_resp: BIND_RESP,
    C.query_sm: QUERY_SM,
    C.query_sm_resp: QUERY_SM_RESP,
    C.submit_sm: SUBMIT_SM,
    C.submit_sm_resp: MESSAGE_ID_ONLY,
    C.deliver_sm: SUBMIT_SM,
    C.deliver_sm_resp: MESSAGE_ID_ONLY,
    C.unbind: HEADER_ONLY,
    C.unbind_resp: HEADER_ONLY,
    C.replace_sm: REPLACE_SM,
    C.replace_sm_resp: HEADER_ONLY,
    C.cancel_sm: CANCEL_SM,
    C.cancel_sm_resp: HEADER_ONLY,
    C.outbind: OUTBIND,
    C.enquire_link: HEADER_ONLY,
    C.enquire_link_resp: HEADER_ONLY,
    C.submit_multi: SUBMIT_MULTI,
    C.submit_multi_resp: SUBMIT_MULTI_RESP,
    C.alert_notification: ALERT_NOTIFICATION,
    C.data_sm: DATA_SM,
    C.data_sm_resp: MESSAGE_ID_ONLY,
}

# PDUs whose body may carry TLVs after the mandatory fields. Header-only PDUs may not:
# one extra octet there is ESME_RINVCMDLEN (SMPP34.md §2.12).
HAS_TLVS = frozenset(cid for cid, layout in LAYOUTS.items() if layout)


class TlvType(NamedTuple):
    kind: int
    max_size: int = 0  # for CSTR (including NUL) and OCTETS; 0 = no limit


TLV_TYPES: dict[int, TlvType] = {
    T.dest_addr_subunit: TlvType(U8),
    T.dest_network_type: TlvType(U8),
    T.dest_bearer_type: TlvType(U8),
    T.dest_telematics_id: TlvType(U16),
    T.source_addr_subunit: TlvType(U8),
    T.source_network_type: TlvType(U8),
    T.source_bearer_type: TlvType(U8),
    T.source_telematics_id: TlvType(U8),
    T.qos_time_to_live: TlvType(U32),
    T.payload_type: TlvType(U8),
    T.additional_status_info_text: TlvType(CSTR, 256),
    T.receipted_message_id: TlvType(CSTR, 65),
    T.ms_msg_wait_facilities: TlvType(U8),
    T.privacy_indicator: TlvType(U8),
    T.source_subaddress: TlvType(OCTETS, 23),
    T.dest_subaddress: TlvType(OCTETS, 23),
    T.user_message_reference: TlvType(U16),
    T.user_response_code: TlvType(U8),
    T.source_port: TlvType(U16),
    T.destination_port: TlvType(U16),
    T.sar_msg_ref_num: TlvType(U16),
    T.language_indicator: TlvType(U8),
    T.sar_total_segments: TlvType(U8),
    T.sar_segment_seqnum: TlvType(U8),
    T.sc_interface_version: TlvType(U8),
    T.callback_num_pres_ind: TlvType(U8),
    T.callback_num_atag: TlvType(OCTETS, 65),
    T.number_of_messages: TlvType(U8),
    T.callback_num: TlvType(OCTETS, 19),
    T.dpf_result: TlvType(U8),
    T.set_dpf: TlvType(U8),
    T.ms_availability_status: TlvType(U8),
    T.network_error_code: TlvType(OCTETS, 3),
    T.message_payload: TlvType(OCTETS),
    T.delivery_failure_reason: TlvType(U8),
    T.more_messages_to_send: TlvType(U8),
    T.message_state: TlvType(U8),
    T.ussd_service_op: TlvType(U8),
    T.display_time: TlvType(U8),
    T.sms_signal: TlvType(U16),
    T.ms_validity: TlvType(U8),
    T.alert_on_message_delivery: TlvType(FLAG),
    T.its_reply_type: TlvType(U8),
    T.its_session_info: TlvType(OCTETS, 2),
}

INT_SIZES = {U8: 1, U16: 2, U32: 4}
