"""What an upstream SMSC's deliver_sm / data_sm means, with no I/O: a delivery report
to match by upstream id, or an MO for one of our numbers.

- esm_class message type 0x04 (SMSC delivery receipt) or 0x20 (intermediate
  notification) is a report; everything else is an MO, given to the core as received
  (payload with its UDH, data_coding, esm_class, TLVs).
- A report's id: the receipted_message_id TLV first, else `id:` of the text; its state:
  the message_state TLV first, else `stat:` (SMPP34.md §6.3). ENROUTE (and the v5
  SCHEDULED) are not final: reported as ACCEPTD.
- Its error code: the network_error_code TLV's code, else `err:` when it is a number;
  read only for states other than DELIVRD/ACCEPTD, where it means something.
- `upstream_ids`: the id as given first, then the other spellings `id_format` allows:
  auto = `smpp.receipt.id_variants` (decimal <-> hex, leading zeros, case); dec / hex =
  that base with and without leading zeros (and both cases for hex).
"""

import re

from ..core.models import ACCEPTD, DELIVRD, UNKNOWN, InboundMessage, UpstreamReport
from ..smpp.codec import encode_tlvs
from ..smpp.constants import ESM_DELIVERY_RECEIPT, ESM_INTERMEDIATE_NOTIFICATION, ESM_TYPE_MASK, Tag
from ..smpp.pdu import Pdu
from ..smpp.receipt import STATE_TO_STAT, ReceiptError, id_variants, parse_receipt

REPORT_TYPES = frozenset({ESM_DELIVERY_RECEIPT, ESM_INTERMEDIATE_NOTIFICATION})
NOT_FINAL = {"ENROUTE": ACCEPTD, "ACCEPTD": ACCEPTD}
NO_ERROR_STATES = frozenset({DELIVRD, ACCEPTD})
DEC_PAD = 10  # the spec's receipt id: 10 decimal digits
HEX_PAD = 8  # SMPP 3.3's message ids: 8 hex digits
_ERR = re.compile(r"(?<![^\s\x00])err:([0-9]{1,9})(?![^\s\x00])", re.IGNORECASE | re.ASCII)
_DEC = re.compile(r"[0-9]{1,20}")
_HEX = re.compile(r"[0-9A-Fa-f]{1,16}")


class BadReport(ValueError):
    """A receipt without any id: there is nothing to match it to."""


def is_report(pdu: Pdu) -> bool:
    return (pdu.get("esm_class", 0) & ESM_TYPE_MASK) in REPORT_TYPES


def user_data(pdu: Pdu) -> bytes:
    """short_message, or message_payload when short_message is empty (data_sm has only
    the TLV)."""
    payload = pdu.get("short_message", b"")
    if not payload:
        payload = pdu.tlv(Tag.message_payload, b"") or b""
    return bytes(payload) if not isinstance(payload, bytes) else payload


def read_report(pdu: Pdu, connector: str, id_format: str, now: float) -> UpstreamReport:
    """The report a receipt deliver_sm/data_sm carries; BadReport without an id."""
    tlv_id = _text_tlv(pdu.tlv(Tag.receipted_message_id))
    state = pdu.tlv(Tag.message_state)
    stat = STATE_TO_STAT.get(state) if isinstance(state, int) else None
    receipt = None
    if not tlv_id or stat is None:  # the text is needed: parse it (slower)
        try:
            receipt = parse_receipt(user_data(pdu))
        except ReceiptError as exc:
            if not tlv_id:
                raise BadReport(str(exc)) from None
    report_id = tlv_id or receipt.id  # type: ignore[union-attr]
    stat = stat or (receipt.stat if receipt is not None else UNKNOWN)
    status = NOT_FINAL.get(stat, stat)
    error = 0 if status in NO_ERROR_STATES else _error_code(pdu, receipt)
    return UpstreamReport(connector, id_spellings(report_id, id_format), status, now, error,
                          "tlv" if tlv_id else "text")


def _text_tlv(value: object) -> str:
    """A C-string TLV's text; a lenient decode may leave it raw bytes."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).split(b"\0", 1)[0].decode("latin-1")
    return value.strip() if isinstance(value, str) else ""


def _error_code(pdu: Pdu, receipt) -> int:
    network = pdu.tlv(Tag.network_error_code)
    if isinstance(network, bytes | bytearray) and len(network) == 3:
        return int.from_bytes(network[1:], "big")
    if receipt is not None:
        err = receipt.err
        return int(err) if err.isdigit() and len(err) <= 9 else 0
    match = _ERR.search(user_data(pdu).decode("latin-1"))
    return int(match.group(1)) if match else 0


def id_spellings(report_id: str, id_format: str) -> tuple[str, ...]:
    """The report's id first, then the spellings the connector's id_format allows."""
    if id_format == "auto":
        return tuple(id_variants(report_id))
    out = [report_id]
    bare = report_id.lstrip("0") or "0"
    if id_format == "dec" and _DEC.fullmatch(report_id):
        out += [bare, bare.zfill(DEC_PAD)]
    elif id_format == "hex" and _HEX.fullmatch(report_id):
        for spelling in (report_id, bare, bare.zfill(HEX_PAD)):
            out += [spelling, spelling.lower(), spelling.upper()]
    return tuple(dict.fromkeys(out))


def read_inbound(pdu: Pdu, connector: str, now: float) -> InboundMessage:
    """An MO as the upstream gave it; its TLVs kept, wire-encoded (message_payload
    becomes the payload when short_message is empty)."""
    payload = pdu.get("short_message", b"")
    tlvs = pdu.tlvs
    if not payload:
        payload = user_data(pdu)
        tlvs = [tlv for tlv in tlvs if tlv[0] != Tag.message_payload]
    return InboundMessage(
        connector=connector, source_addr=pdu.get("source_addr", ""),
        dest_addr=pdu.get("destination_addr", ""), payload=bytes(payload),
        data_coding=pdu.get("data_coding", 0), esm_class=pdu.get("esm_class", 0),
        source_ton=pdu.get("source_addr_ton", 0), source_npi=pdu.get("source_addr_npi", 0),
        dest_ton=pdu.get("dest_addr_ton", 0), dest_npi=pdu.get("dest_addr_npi", 0),
        options=encode_tlvs(tlvs) if tlvs else b"", received_at=now)
