"""Concatenated MO (SPEC §8): which message a part belongs to, the text of parts joined
in order, and the messages still waiting for parts.

A part carries a concatenation element in its UDH (esm_class UDHI; IEI 0x00 with an
8-bit or 0x08 with a 16-bit reference, SMPP34.md §8.2) or the sar_* TLVs (§8.3). Its
message is known by (connector, from, to, reference, total): a handset numbers its
concatenated messages, and the same reference from another sender, to another number
or through another upstream is another message. A "message" of one part is no
concatenation.

`Joiner` keeps the incomplete messages in memory; the parts themselves are stored as
they come (`InboundMessage.joining`), so a restart rebuilds it from the store
(core/inbound.py). A message is settled when its last part comes, or when it has
waited `timeout` seconds since its first part: then it is given up with what arrived.
A part that comes again while its message is open is not joined twice; one that comes
after its message was settled opens a new message, which is given up alone.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..smpp.codec import decode_tlvs, encode_tlvs
from ..smpp.constants import ESM_UDHI, Tag
from ..text.errors import BadUdh
from ..text.message_types import decode_payload
from ..text.segments import strip_udh
from .models import InboundMessage

log = logging.getLogger(__name__)

SAR_TAGS = (Tag.sar_msg_ref_num, Tag.sar_total_segments, Tag.sar_segment_seqnum)
MessageKey = tuple[str, str, str, str, int, int]  # connector, from, to, scheme, ref, total


@dataclass(frozen=True, slots=True)
class PartOf:
    """Where a part goes: its message's key, its number (from 1) and the total."""

    key: MessageKey
    seq: int
    total: int


def part_of(mo: InboundMessage) -> PartOf | None:
    """The message `mo` is a part of, or None when it is a whole SMS."""
    found = _udh_concat(mo) if mo.esm_class & ESM_UDHI else _sar_concat(mo)
    if found is None:
        return None
    scheme, ref, total, seq = found
    if not 1 <= seq <= total or total < 2:
        return None
    return PartOf((mo.connector, mo.source_addr, mo.dest_addr, scheme, ref, total), seq, total)


def _udh_concat(mo: InboundMessage) -> tuple[str, int, int, int] | None:
    try:
        concat = strip_udh(mo.payload)[0].concat
    except BadUdh:
        return None
    return None if concat is None else ("udh", *concat)


def _sar_concat(mo: InboundMessage) -> tuple[str, int, int, int] | None:
    values = dict(_tlvs(mo))
    ref, total, seq = (values.get(tag) for tag in SAR_TAGS)
    if not all(isinstance(v, int) for v in (ref, total, seq)):
        return None
    return ("sar", ref, total, seq)  # type: ignore[return-value]


def _tlvs(mo: InboundMessage) -> list[tuple[int, object]]:
    if not mo.options:
        return []
    try:
        return decode_tlvs(mo.options)
    except Exception:  # an upstream's garbled TLVs: read as none
        return []


def sar_options(mo: InboundMessage) -> bytes:
    """The MO's sar_* TLVs, wire-encoded: what an SMPP customer gets with a part (the
    upstream's other TLVs are its own business)."""
    kept = [(tag, value) for tag, value in _tlvs(mo) if tag in SAR_TAGS]
    return encode_tlvs(kept) if kept else b""


def user_data(mo: InboundMessage) -> bytes:
    """The MO's payload without its UDH."""
    if mo.esm_class & ESM_UDHI:
        try:
            return strip_udh(mo.payload)[1]
        except BadUdh:
            pass  # not a header after all: keep everything
    return mo.payload


def joined_text(parts: Iterable[InboundMessage]) -> str:
    """The text of parts given in order: their user data joined before decoding (a
    character split across two parts, an escape pair or a surrogate pair, stays whole)."""
    parts = list(parts)
    codings = {p.data_coding for p in parts}
    if len(codings) == 1:
        return decode_payload(codings.pop(), b"".join(user_data(p) for p in parts))
    return "".join(decode_payload(p.data_coding, user_data(p)) for p in parts)


@dataclass(eq=False, slots=True)
class Assembly:
    """One concatenated MO being joined: its parts so far, by number."""

    key: MessageKey
    total: int
    started: float  # when its first part was received
    parts: dict[int, InboundMessage] = field(default_factory=dict)
    settled: bool = False  # complete, or given up: no longer waiting

    def ordered(self) -> list[InboundMessage]:
        return [self.parts[seq] for seq in sorted(self.parts)]


class Joiner:
    """The concatenated MO still waiting for parts."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._open: dict[MessageKey, Assembly] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(self, mo: InboundMessage, part: PartOf) -> Assembly | None:
        """Take a part: its message (settled when this part completes it), or None for
        a part its open message holds already (sent again by the upstream)."""
        assembly = self._open.get(part.key)
        if assembly is None:
            assembly = self._open[part.key] = Assembly(part.key, part.total, mo.received_at)
        elif part.seq in assembly.parts:
            return None
        assembly.parts[part.seq] = mo
        assembly.started = min(assembly.started, mo.received_at)
        if len(assembly.parts) == assembly.total:
            self._settle(assembly)
        return assembly

    def due(self, now: float) -> list[Assembly]:
        """Settle and return the messages that waited `timeout` since their first part."""
        late = [a for a in self._open.values() if a.started + self.timeout <= now]
        for assembly in late:
            self._settle(assembly)
        return late

    def _settle(self, assembly: Assembly) -> None:
        assembly.settled = True
        if self._open.get(assembly.key) is assembly:
            del self._open[assembly.key]

    def unstored(self, assembly: Assembly, mo: InboundMessage | None,
                 settling: bool) -> None:
        """The commit of `mo` (a part of `assembly`; None: only the settling of a message
        given up) failed: forget the part, which the upstream sends again, and reopen
        the message if that commit was to settle it (`settling`). (A part whose commit
        failed after a later commit joined it stays in that join: at least once.)"""
        for seq, part in list(assembly.parts.items()):
            if part is mo:
                del assembly.parts[seq]
        if not assembly.parts:
            if self._open.get(assembly.key) is assembly:
                del self._open[assembly.key]
            return
        if settling:
            assembly.settled = False
            current = self._open.setdefault(assembly.key, assembly)
            if current is not assembly:  # a new part opened it again meanwhile
                for seq, part in assembly.parts.items():
                    current.parts.setdefault(seq, part)
                current.started = min(current.started, assembly.started)
