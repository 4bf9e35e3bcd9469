"""Bytes <-> Pdu, driven by the layout table; and a stream framer.

No I/O here. Decoding is strict by default: every violation raises `PduError` carrying
the command_status to answer with. `lenient=True` is for reading upstream SMSCs, whose
quirks (SMPP34.md §9) we tolerate rather than reject.

The mandatory fields are walked two ways, both driven by the same table. The generic
walk (`Codec._decode_fields`, `_encode_field`) is the reference: it handles every edge
(truncation, partial responses, field limits, lenient mode). For speed, each command
also gets a decoder and an encoder generated from its layout once per process
(`_decoder_source`, `_encoder_source`): straight-line code for the well-formed case,
with no per-field branching on the field kind. Whenever a field is anything but plainly
valid, the generated code hands over to the generic walk at that field, so the results
and the errors are the generic walk's. `inspect.getsource(codec.decoders[command_id])`
shows the generated code.
"""

import functools
import itertools
import linecache
import struct
from collections.abc import Callable, Mapping
from typing import Any

from .constants import HEADER_SIZE, RESPONSE_BIT, CommandId, Status
from .layouts import (
    CSTR,
    DEST_FLAG_DL,
    DEST_FLAG_SME,
    DEST_LIST,
    DL_NAME,
    FLAG,
    HAS_TLVS,
    INT_SIZES,
    LAYOUTS,
    MESSAGE_ID,
    OCTETS,
    SHORT_MESSAGE,
    SME_DEST_ADDRESS,
    TIME,
    TLV_TYPES,
    U8,
    U32,
    UNSUCCESS_LIST,
    UNSUCCESS_SME,
    DistributionList,
    Field,
    SmeAddress,
    UnsuccessSme,
)
from .pdu import Pdu

DEFAULT_MAX_LENGTH = 64 * 1024
_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_MESSAGE_ID_RESPONSES = frozenset(
    cid for cid, layout in LAYOUTS.items() if layout == (MESSAGE_ID,) and cid & RESPONSE_BIT)
_U8_TLVS = frozenset(tag for tag, tlv_type in TLV_TYPES.items() if tlv_type.kind == U8)
_DEFAULTS: dict[int, Any] = {
    CSTR: "",
    TIME: "",
    U8: 0,
    U32: 0,
    SHORT_MESSAGE: b"",
    DEST_LIST: (),
    UNSUCCESS_LIST: (),
}


class PduError(Exception):
    """A PDU that cannot be accepted. `status` is the command_status to answer with;
    `fatal` means framing is lost and the connection must be closed."""

    def __init__(
        self,
        status: int,
        reason: str,
        command_id: int = 0,
        sequence: int = 0,
        fatal: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.command_id = command_id
        self.sequence = sequence
        self.fatal = fatal


class _Truncated(Exception):
    """A mandatory field runs past the end of the body (internal)."""


class Codec:
    """Encoder/decoder for one connection's settings.

    `field_limits` overrides C-string maxima by field name (for example a longer
    `password`, since many operators issue passwords above the 8 characters of 3.4).
    """

    def __init__(
        self,
        max_length: int = DEFAULT_MAX_LENGTH,
        field_limits: Mapping[str, int] | None = None,
        lenient: bool = False,
    ) -> None:
        self.max_length = max_length
        self.lenient = lenient
        # Shared by every Codec with the same limits: read them, do not change them.
        self.layouts, self.decoders, self.encoders = _tables(
            tuple(sorted((field_limits or {}).items())))
        self._message_id_size = self.layouts[CommandId.submit_sm_resp][0].size

    # -- decoding ----------------------------------------------------------------------

    def decode(self, data: bytes) -> Pdu:
        """Decode one complete PDU (as cut by `Framer`)."""
        size = len(data)
        if size < HEADER_SIZE:
            raise PduError(Status.ESME_RINVCMDLEN, "PDU shorter than its header", fatal=True)
        length, command_id, status, sequence = _HEADER.unpack_from(data)
        if length != size:
            raise PduError(Status.ESME_RINVCMDLEN, "command_length does not match", command_id,
                           sequence, fatal=True)
        decoder = self.decoders.get(command_id)  # None for header-only PDUs
        if decoder is None and command_id not in self.layouts:
            raise PduError(Status.ESME_RINVCMDID, f"unknown command_id 0x{command_id:08x}",
                           command_id, sequence)
        pdu = Pdu(command_id, sequence, status, {}, [])
        if size == HEADER_SIZE:
            if decoder and not command_id & RESPONSE_BIT:
                raise PduError(Status.ESME_RINVCMDLEN, "body missing", command_id, sequence)
            return pdu
        if decoder is None:
            raise PduError(Status.ESME_RINVCMDLEN, "header-only PDU carries a body",
                           command_id, sequence)
        try:
            pos = decoder(self, data, pdu)
        except _Truncated as exc:
            raise PduError(Status.ESME_RINVCMDLEN, f"{exc} runs past the PDU end", command_id,
                           sequence) from None
        except PduError as exc:
            exc.command_id, exc.sequence = command_id, sequence
            raise
        if pos < size:  # TLVs: every PDU with a body may carry them
            self._decode_tlvs(data, pos, pdu)
        return pdu

    def _decode_fields(self, layout: tuple[Field, ...], data: bytes, pdu: Pdu, start: int = 0,
                       pos: int = HEADER_SIZE) -> int:
        """The generic walk, from field `start` at offset `pos`; returns the end offset."""
        fields = pdu.fields
        end = len(data)
        # Responses may stop early (error responses without body, SMPP34.md §9.4).
        partial_ok = self.lenient or bool(pdu.command_id & RESPONSE_BIT)
        for name, kind, size, status in layout[start:]:
            if pos >= end:
                if partial_ok:
                    return pos
                raise _Truncated(name)
            if kind == CSTR or kind == TIME:  # noqa: SIM109 - measurably faster here
                nul = data.find(b"\0", pos, pos + size)
                if nul < 0:
                    if partial_ok and end - pos < size:
                        nul = end  # unterminated at the very end, within limit: tolerated (V9)
                    else:
                        raise PduError(status, f"{name}: over {size - 1} octets or no NUL")
                value = data[pos:nul].decode("latin-1")
                if kind == TIME and len(value) not in (0, 16):
                    raise PduError(status, f"{name}: must be empty or 16 characters")
                fields[name] = value
                pos = nul + 1
            elif kind == U8:
                fields[name] = data[pos]
                pos += 1
            elif kind == SHORT_MESSAGE:
                sm_length = data[pos]
                if sm_length > size and not self.lenient:
                    raise PduError(status, f"sm_length {sm_length} over {size}")
                pos += 1
                if pos + sm_length > end:
                    raise PduError(status, "sm_length runs past the PDU end")
                fields[name] = data[pos : pos + sm_length]
                pos += sm_length
            elif kind == U32:
                if pos + 4 > end:
                    raise _Truncated(name)
                fields[name] = int.from_bytes(data[pos : pos + 4], "big")
                pos += 4
            elif kind == DEST_LIST:
                fields[name], pos = _decode_dest_list(data, pos, end, size, status)
            elif kind == UNSUCCESS_LIST:
                fields[name], pos = _decode_unsuccess_list(data, pos, end)
        return pos

    def _decode_tlvs(self, data: bytes, pos: int, pdu: Pdu) -> None:
        end = len(data)
        tlvs = pdu.tlvs
        while pos < end:
            if end - pos < 4:
                if self.lenient:
                    return  # trailing partial TLV: ignore it (SMPP34.md §9.10)
                raise PduError(Status.ESME_RINVOPTPARSTREAM, "partial TLV header",
                               pdu.command_id, pdu.sequence)
            tag, length = _TLV_HEAD.unpack_from(data, pos)
            pos += 4
            if pos + length > end:
                if self.lenient:
                    return
                raise PduError(Status.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04x} runs past the end",
                               pdu.command_id, pdu.sequence)
            if length == 1 and tag in _U8_TLVS:  # most TLVs are a valid one-octet integer
                tlvs.append((tag, data[pos]))
            else:
                tlvs.append((tag, self._tlv_value(tag, data[pos : pos + length], pdu)))
            pos += length

    def _tlv_value(self, tag: int, raw: bytes, pdu: Pdu) -> Any:
        tlv_type = TLV_TYPES.get(tag)
        if tlv_type is None:
            return raw  # unknown or vendor TLV: kept as bytes, re-encoded unchanged
        kind, max_size = tlv_type
        problem = None
        if kind in INT_SIZES:
            if len(raw) == INT_SIZES[kind]:
                return int.from_bytes(raw, "big")
            problem = Status.ESME_RINVPARLEN
        elif kind == CSTR:
            if raw and raw[-1] == 0 and len(raw) <= max_size and raw.find(b"\0") == len(raw) - 1:
                return raw[:-1].decode("latin-1")
            problem = Status.ESME_RINVOPTPARAMVAL
        elif kind == FLAG:
            if not raw:
                return raw
            problem = Status.ESME_RINVPARLEN
        elif kind == OCTETS:
            if not max_size or len(raw) <= max_size:
                return raw
            problem = Status.ESME_RINVPARLEN
        if self.lenient:
            return raw
        raise PduError(problem or Status.ESME_RINVOPTPARAMVAL, f"bad value for TLV 0x{tag:04x}",
                       pdu.command_id, pdu.sequence)

    # -- encoding ----------------------------------------------------------------------

    def message_id_answer(self, request_id: int, sequence: int, message_id: str) -> bytes:
        """`encode` of the ESME_ROK response to request `request_id` (submit_sm,
        data_sm) carrying `message_id`, without building its Pdu where it can."""
        command_id = request_id | RESPONSE_BIT
        packed = self._packed_message_id(command_id, sequence, message_id)
        if packed is None:
            return self.encode(Pdu(command_id, sequence, 0, {"message_id": message_id}))
        return packed

    def _packed_message_id(self, command_id: int, sequence: int,
                           message_id: object) -> bytes | None:
        """The answer to every accepted submit, packed in one go; None for anything but
        a plainly valid message_id (the general path knows what to do with it)."""
        if type(message_id) is str and len(message_id) < self._message_id_size \
                and "\0" not in message_id:
            raw = message_id.encode("latin-1")  # raises as the general path would
            return _HEADER.pack(HEADER_SIZE + 1 + len(raw), command_id, 0, sequence) \
                + raw + b"\0"
        return None

    def encode(self, pdu: Pdu) -> bytes:
        command_id = pdu.command_id
        if command_id in _MESSAGE_ID_RESPONSES and not (pdu.status or pdu.tlvs):
            packed = self._packed_message_id(command_id, pdu.sequence,
                                             pdu.fields.get("message_id", ""))
            if packed is not None:
                return packed
        encoder = self.encoders.get(command_id)
        if encoder is None:
            raise ValueError(f"cannot encode unknown command_id 0x{command_id:08x}")
        if pdu.tlvs and command_id not in HAS_TLVS:
            raise ValueError(f"{pdu.name} is header-only: it cannot carry TLVs")
        body = bytearray()
        if command_id & RESPONSE_BIT and pdu.status:
            # An error response carries exactly the fields it was given (often none).
            _encode_present(body, self.layouts[command_id], pdu.fields)
        else:
            encoder(pdu.fields, body)
        for tag, value in pdu.tlvs:
            _encode_tlv(body, tag, value)
        return _HEADER.pack(HEADER_SIZE + len(body), command_id, pdu.status,
                            pdu.sequence) + body


def _encode_present(body: bytearray, layout: tuple[Field, ...], fields: dict[str, Any]) -> None:
    """The fields of `layout` up to the first absent one."""
    for name, kind, size, _status in layout:
        value = fields.get(name)
        if value is None:
            return
        _encode_field(body, name, kind, size, value)


# -- generated per-layout decoders and encoders ---------------------------------------------

BodyDecoder = Callable[["Codec", bytes, Pdu], int]
BodyEncoder = Callable[[dict[str, Any], bytearray], None]
_WIDTHS = {U8: 1, U32: 4}  # fixed-width mandatory fields
_source_numbers = itertools.count()


@functools.lru_cache(maxsize=16)
def _tables(limits: tuple[tuple[str, int], ...]) -> tuple[
        dict[int, tuple[Field, ...]], dict[int, BodyDecoder], dict[int, BodyEncoder]]:
    """Layouts with C-string maxima overridden by `limits`, and their generated code.
    Cached: a Codec is made per connection, the code once per process and limits."""
    sizes = dict(limits)
    layouts = {
        cid: tuple(f._replace(size=sizes[f.name]) if f.name in sizes else f for f in layout)
        for cid, layout in LAYOUTS.items()
    }
    decoders, encoders = {}, {}
    for cid, layout in layouts.items():
        name = CommandId(cid).name
        if layout:  # a header-only PDU has no body to decode
            decoders[cid] = _compile(f"decode_{name}", _decoder_source, layout)
        encoders[cid] = _compile(f"encode_{name}", _encoder_source, layout)
    return layouts, decoders, encoders


def _compile(name: str, generate: Callable[[str, tuple[Field, ...]], str],
             layout: tuple[Field, ...]) -> Any:
    """Generate and compile a function, its source registered for tracebacks and inspect."""
    source = generate(name, layout)
    filename = f"<smpp codec {name} #{next(_source_numbers)}>"
    namespace = {"LAYOUT": layout, "_encode_field": _encode_field}
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return namespace[name]


def _decoder_source(function: str, layout: tuple[Field, ...]) -> str:
    """`function(codec, data, pdu) -> end offset`, for a PDU whose header is checked.

    Each step checks that its field is plainly valid (in bounds, terminated, within its
    limit) and otherwise resumes the generic walk there, which decides what that means.
    C-strings are sliced from one latin-1 decoding of (at least) the part of the PDU
    they can be in; if that part were too short, the generic walk would only take over.
    """
    lines = [f"def {function}(codec, data, pdu):", "    fields = pdu.fields", "    end = len(data)"]
    text_end = _text_end(layout)
    if text_end:  # a short PDU is decoded whole: cheaper than slicing it first
        lines += [f"    text = (data if end <= 512 else data[:{text_end}]).decode('latin-1')",
                  "    find = text.find"]
    lines.append(f"    pos = {HEADER_SIZE}")
    index = 0
    for step in _steps(layout):
        resume = f"return codec._decode_fields(LAYOUT, data, pdu, {index}, pos)"
        code = _decode_step(step, resume)
        if code is None:  # the lists of submit_multi(_resp): rare, left to the generic walk
            lines.append(f"    {resume}")
            break
        lines += [f"    {line}" for line in code]
        index += len(step)
    else:
        lines.append("    return pos")
    return "\n".join(lines) + "\n"


def _steps(layout: tuple[Field, ...]) -> list[tuple[Field, ...]]:
    """The fields in decoding steps: a run of fixed-width fields together, others alone."""
    steps: list[tuple[Field, ...]] = []
    for fixed, group in itertools.groupby(layout, lambda f: f.kind in _WIDTHS):
        fields = tuple(group)
        steps += [fields] if fixed else [(f,) for f in fields]
    return steps


def _decode_step(step: tuple[Field, ...], resume: str) -> list[str] | None:
    name, kind, size, _status = step[0]
    if kind in _WIDTHS:  # one bounds check for the run
        lines = [f"if pos + {sum(_WIDTHS[f.kind] for f in step)} > end: {resume}"]
        offset = 0
        for f in step:
            at = f"pos + {offset}" if offset else "pos"
            value = (f"data[{at}]" if f.kind == U8
                     else f"int.from_bytes(data[{at}:pos + {offset + 4}], 'big')")
            lines.append(f"fields[{f.name!r}] = {value}")
            offset += _WIDTHS[f.kind]
        return [*lines, f"pos += {offset}"]
    if kind in (CSTR, TIME):
        invalid = "nul - pos not in (0, 16)" if kind == TIME else "nul < 0"
        return [f"nul = find('\\0', pos, pos + {size})", f"if {invalid}: {resume}",
                f"fields[{name!r}] = text[pos:nul]", "pos = nul + 1"]
    if kind == SHORT_MESSAGE:
        invalid = f"pos >= end or data[pos] > {size} or pos + data[pos] >= end"
        return [f"if {invalid}: {resume}", "start = pos + 1", "pos = start + data[pos]",
                f"fields[{name!r}] = data[start:pos]"]
    return None


def _text_end(layout: tuple[Field, ...]) -> int:
    """How far into a PDU its C-strings can reach (0: none before a variable-size list)."""
    end = reach = HEADER_SIZE
    for _name, kind, size, _status in layout:
        if kind in (DEST_LIST, UNSUCCESS_LIST):
            break
        reach += _WIDTHS.get(kind) or size + (kind == SHORT_MESSAGE)
        if kind in (CSTR, TIME):
            end = reach
    return 0 if end == HEADER_SIZE else end


def _encoder_source(function: str, layout: tuple[Field, ...]) -> str:
    """`function(fields, body)`: append `layout`'s fields, absent ones as their defaults.

    A value that is not plainly valid goes to `_encode_field`, which raises for it.
    """
    lines = [f"def {function}(fields, body):"]
    for name, kind, size, _status in layout:
        generic = f"_encode_field(body, {name!r}, {kind}, {size}, value)"
        lines += [f"    value = fields.get({name!r})",
                  f"    if value is None: value = {_DEFAULTS[kind]!r}"]
        if kind == CSTR:
            lines += ["    raw = value.encode('latin-1')",
                      f"    if len(raw) < {size} and 0 not in raw: body += raw; body.append(0)",
                      f"    else: {generic}"]
        elif kind == TIME:
            lines += ["    if value == '': body.append(0)", f"    else: {generic}"]
        elif kind == U8:
            lines.append("    body.append(value)")
        elif kind == U32:
            lines.append("    body += value.to_bytes(4, 'big')")
        elif kind == SHORT_MESSAGE:
            lines += ["    if len(value) <= 255: body.append(len(value)); body += value",
                      f"    else: {generic}"]
        else:
            lines.append(f"    {generic}")
    if len(lines) == 1:
        lines.append("    pass")
    return "\n".join(lines) + "\n"


def _cstring(data: bytes, pos: int, end: int, size: int, status: int, name: str) -> tuple[str, int]:
    nul = data.find(b"\0", pos, min(end, pos + size))
    if nul < 0:
        raise PduError(status, f"{name}: over {size - 1} octets or no NUL")
    return data[pos:nul].decode("latin-1"), nul + 1


def _decode_entry(layout: tuple[Field, ...], data: bytes, pos: int,
                  end: int) -> tuple[list[Any], int]:
    """One entry of a DEST_LIST or UNSUCCESS_LIST, as the values of its layout."""
    values: list[Any] = []
    for name, kind, size, status in layout:
        if kind == CSTR:
            value, pos = _cstring(data, pos, end, size, status, name)
        else:
            width = INT_SIZES[kind]
            if pos + width > end:
                raise _Truncated(name)
            value = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        values.append(value)
    return values, pos


def _decode_dest_list(
    data: bytes, pos: int, end: int, size: int, status: int
) -> tuple[tuple[SmeAddress | DistributionList, ...], int]:
    count = data[pos]
    pos += 1
    if not 1 <= count <= size:
        raise PduError(status, f"number_of_dests {count} not in 1..{size}")
    dests: list[SmeAddress | DistributionList] = []
    for _ in range(count):
        if pos >= end:
            raise _Truncated("dest_address")
        flag = data[pos]
        if flag == DEST_FLAG_SME:
            values, pos = _decode_entry(SME_DEST_ADDRESS, data, pos + 1, end)
            dests.append(SmeAddress(*values))
        elif flag == DEST_FLAG_DL:
            values, pos = _decode_entry(DL_NAME, data, pos + 1, end)
            dests.append(DistributionList(*values))
        else:
            raise PduError(Status.ESME_RINVDESTFLAG, f"dest_flag {flag} is neither 1 nor 2")
    return tuple(dests), pos


def _decode_unsuccess_list(data: bytes, pos: int, end: int) -> tuple[tuple[UnsuccessSme, ...], int]:
    count = data[pos]
    pos += 1
    smes = []
    for _ in range(count):
        values, pos = _decode_entry(UNSUCCESS_SME, data, pos, end)
        smes.append(UnsuccessSme(*values))
    return tuple(smes), pos


def _encode_entry(body: bytearray, layout: tuple[Field, ...], values: tuple) -> None:
    for (name, kind, size, _status), value in zip(layout, values, strict=True):
        _encode_field(body, name, kind, size, value)


def _encode_cstring(body: bytearray, name: str, value: str, size: int) -> None:
    raw = value.encode("latin-1")
    if len(raw) >= size or b"\0" in raw:
        raise ValueError(f"{name}: {value!r} does not fit C-string of {size} octets")
    body += raw
    body.append(0)


def _encode_field(body: bytearray, name: str, kind: int, size: int, value: Any) -> None:
    if kind == CSTR:
        _encode_cstring(body, name, value, size)
    elif kind == TIME:
        if len(value) not in (0, 16):
            raise ValueError(f"{name}: time must be empty or 16 characters")
        _encode_cstring(body, name, value, size)
    elif kind == U8:
        body.append(value)
    elif kind == U32:
        body += value.to_bytes(4, "big")
    elif kind == SHORT_MESSAGE:
        if len(value) > 255:
            raise ValueError(f"short_message of {len(value)} octets is over 255")
        body.append(len(value))
        body += value
    elif kind == DEST_LIST:
        body.append(len(value))
        for dest in value:
            if isinstance(dest, DistributionList):
                body.append(DEST_FLAG_DL)
                _encode_entry(body, DL_NAME, dest)
            else:
                body.append(DEST_FLAG_SME)
                _encode_entry(body, SME_DEST_ADDRESS, dest)
    elif kind == UNSUCCESS_LIST:
        body.append(len(value))
        for sme in value:
            _encode_entry(body, UNSUCCESS_SME, sme)


def _encode_tlv(body: bytearray, tag: int, value: Any) -> None:
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        raw = value.encode("latin-1") + b"\0"
    elif isinstance(value, int):
        tlv_type = TLV_TYPES.get(tag)
        if tlv_type is None or tlv_type.kind not in INT_SIZES:
            raise ValueError(f"TLV 0x{tag:04x} does not take an integer")
        raw = value.to_bytes(INT_SIZES[tlv_type.kind], "big")
    else:
        raise ValueError(f"TLV 0x{tag:04x}: cannot encode {type(value).__name__}")
    body += _TLV_HEAD.pack(tag, len(raw))
    body += raw


class Framer:
    """Cuts a byte stream into whole PDUs, whatever the chunking.

    A command_length below 16 or above the maximum is detected as soon as the 16-octet
    header is in, before waiting for the claimed bytes (a 2 GB length is refused
    immediately): the frames before it are returned, `error` is set to a fatal PduError
    carrying the header's command_id and sequence (whatever the chunking), and the
    stream is dead after it.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.max_length = max_length
        self.error: PduError | None = None
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        if self.error is not None:
            return []
        buf = self._buffer
        buf += data
        frames = []
        pos = 0
        available = len(buf)
        while available - pos >= HEADER_SIZE:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < HEADER_SIZE or length > self.max_length:
                del buf[:pos]
                self.error = self._bad_length(length)
                return frames
            if available - pos < length:
                break
            frames.append(bytes(buf[pos : pos + length]))
            pos += length
        if pos:
            del buf[:pos]
        return frames

    def _bad_length(self, length: int) -> PduError:
        buf = self._buffer
        command_id = int.from_bytes(buf[4:8], "big") if len(buf) >= 8 else 0
        sequence = int.from_bytes(buf[12:16], "big") if len(buf) >= 16 else 0
        return PduError(Status.ESME_RINVCMDLEN,
                        f"command_length {length} outside {HEADER_SIZE}..{self.max_length}",
                        command_id, sequence, fatal=True)

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def encode_tlvs(tlvs: list[tuple[int, Any]]) -> bytes:
    """TLVs in wire form, e.g. to keep a customer's TLVs with a stored message."""
    body = bytearray()
    for tag, value in tlvs:
        _encode_tlv(body, tag, value)
    return bytes(body)


def decode_tlvs(data: bytes) -> list[tuple[int, Any]]:
    """The reverse of encode_tlvs (lenient: values are as the codec types them)."""
    pdu = Pdu(0)
    Codec(lenient=True)._decode_tlvs(data, 0, pdu)
    return pdu.tlvs
