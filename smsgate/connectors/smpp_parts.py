"""What the SMPP connector sends for one message: its submit_sm PDUs, with no I/O.

- A message whose esm_class has UDHI is a part the customer made: it goes as is.
- A message of several parts without UDHI is the whole text: it is split here into
  concatenated parts, each with a UDH of an 8-bit reference (one per connector, wrapping).
- data_coding: GSM-7 text (data_coding 0, unpacked septets as stored) goes as 0 with
  `coding_default` gsm. With latin1 it is transcoded to Latin-1 and goes as 3, its parts
  cut where the GSM-7 text would be cut (the SMSC maps Latin-1 back to GSM-7 on the
  air, so the air parts are GSM-7's). A character Latin-1 lacks (Δ, €, Greek capitals)
  makes the whole text UCS-2 (8), split again at 67 characters. A customer's part that
  would not fit as UCS-2 goes as stored (0). Other codings go as stored.
- Every submit_sm asks for a receipt (registered_delivery 1): the gateway needs the
  final status whatever the customer asked. TON/NPI come from the connector's settings
  when set, else from the message. The message's TLVs (vendor ones included) go with
  every part, except the SAR TLVs of a text we split (the UDH says it all).
- validity_period and schedule_delivery_time stay empty: the gateway schedules (it
  dispatches when due) and expires (EXPIRED) messages itself, and an upstream refusing
  our choice of validity (ESME_RINVEXPIRY) would reject messages the customer sent
  without one.
"""

import random

from ..core.models import Message
from ..smpp.codec import decode_tlvs
from ..smpp.constants import ESM_UDHI, CommandId, Tag
from ..smpp.pdu import Pdu
from ..text import gsm7, ucs2
from ..text.errors import TextError
from ..text.message_types import DC_DEFAULT, DC_LATIN1, DC_UCS2
from ..text.segments import build_concat_udh, split_bodies, strip_udh
from .settings import SmppSettings

REGISTERED_DELIVERY = 1  # a receipt on final success or failure
SAR_TAGS = frozenset({Tag.sar_msg_ref_num, Tag.sar_total_segments, Tag.sar_segment_seqnum})
SINGLE_SMS_OCTETS = 140


class PartsError(ValueError):
    """The message cannot become submit_sm PDUs (refused permanently)."""


class SubmitBuilder:
    """Turns messages into submit_sm PDUs for one connector (its settings, its
    concatenation reference)."""

    def __init__(self, settings: SmppSettings, first_ref: int | None = None) -> None:
        self.latin1 = settings.coding_default == "latin1"
        self.src_ton, self.src_npi = settings.src_ton, settings.src_npi
        self.dst_ton, self.dst_npi = settings.dst_ton, settings.dst_npi
        # Random at start: a restart soon after does not reuse the last references.
        self._ref = random.randrange(256) if first_ref is None else first_ref & 0xFF

    def next_ref(self) -> int:
        self._ref = (self._ref + 1) & 0xFF
        return self._ref

    def submits(self, message: Message) -> list[Pdu]:
        """One submit_sm per part, in order. PartsError when the text cannot be cut."""
        try:
            data_coding, esm_class, bodies = self._user_data(message)
        except TextError as exc:
            raise PartsError(str(exc)) from None
        tlvs = decode_tlvs(message.options) if message.options else []
        if len(bodies) > 1:
            esm_class |= ESM_UDHI
            tlvs = [tlv for tlv in tlvs if tlv[0] not in SAR_TAGS]
            ref, total = self.next_ref(), len(bodies)
            bodies = [build_concat_udh(ref, total, n) + body
                      for n, body in enumerate(bodies, 1)]
        return [self._pdu(message, data_coding, esm_class, body, tlvs) for body in bodies]

    def _pdu(self, message: Message, data_coding: int, esm_class: int, body: bytes,
             tlvs: list) -> Pdu:
        src_ton = message.source_ton if self.src_ton is None else self.src_ton
        src_npi = message.source_npi if self.src_npi is None else self.src_npi
        dst_ton = message.dest_ton if self.dst_ton is None else self.dst_ton
        dst_npi = message.dest_npi if self.dst_npi is None else self.dst_npi
        return Pdu(CommandId.submit_sm, fields={
            "service_type": message.service_type, "source_addr_ton": src_ton,
            "source_addr_npi": src_npi, "source_addr": message.source_addr,
            "dest_addr_ton": dst_ton, "dest_addr_npi": dst_npi,
            "destination_addr": message.dest_addr, "esm_class": esm_class,
            "protocol_id": message.protocol_id, "priority_flag": message.priority,
            "registered_delivery": REGISTERED_DELIVERY, "data_coding": data_coding,
            "short_message": body}, tlvs=list(tlvs))

    def _user_data(self, message: Message) -> tuple[int, int, list[bytes]]:
        """(data_coding, esm_class, part bodies without UDH; or the one part as is)."""
        payload, data_coding, esm_class = message.payload, message.data_coding, \
            message.esm_class
        gsm_text = data_coding == DC_DEFAULT
        if esm_class & ESM_UDHI:
            if gsm_text and self.latin1:
                return _latin1_part(payload, esm_class)
            return data_coding, esm_class, [payload]
        if gsm_text and self.latin1:
            return _latin1_text(payload, esm_class)
        if message.parts <= 1:
            return data_coding, esm_class, [payload]
        return data_coding, esm_class, split_bodies(payload, data_coding)


def _latin1_text(payload: bytes, esm_class: int) -> tuple[int, int, list[bytes]]:
    bodies = split_bodies(payload, DC_DEFAULT)
    try:
        return DC_LATIN1, esm_class, [gsm7.decode(b).encode("latin-1") for b in bodies]
    except UnicodeEncodeError:
        text = ucs2.encode(gsm7.decode(payload))
        return DC_UCS2, esm_class, split_bodies(text, DC_UCS2)


def _latin1_part(payload: bytes, esm_class: int) -> tuple[int, int, list[bytes]]:
    try:
        udh, body = strip_udh(payload)
    except TextError:
        return DC_DEFAULT, esm_class, [payload]  # not ours to judge: as stored
    header, text = payload[:udh.size], gsm7.decode(body)
    try:
        return DC_LATIN1, esm_class, [header + text.encode("latin-1")]
    except UnicodeEncodeError:
        wide = ucs2.encode(text)
        if len(header) + len(wide) <= SINGLE_SMS_OCTETS:
            return DC_UCS2, esm_class, [header + wide]
        return DC_DEFAULT, esm_class, [payload]
