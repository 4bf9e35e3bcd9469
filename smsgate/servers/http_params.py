"""Reading `/websmpp/` parameters into core requests (SPEC §3).

The checks that only the HTTP API has (message type, text per type, hex UDH, dcs/esm
parameters, gmt/schtime, dlrurl) live here; everything else is the core pipeline's.
`submit_request` runs the HTTP checks in SPEC §3.1's order *around* the core's: the core
repeats sender, destination and coding checks cheaply, and the HTTP-only checks that
come before them in the order are done first here.
"""

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from ..core.errors import Err, GatewayError
from ..core.models import Account
from ..core.submit import SubmitRequest
from ..core.validation import check_data_coding, check_esm_class, check_sender
from ..core.validation import normalize_destination as normalize_number
from ..smpp.constants import ESM_UDHI
from ..text import TextError, encode_message, parse_udh, unit_for
from .outbound_http import url_refusal

MESSAGE_TYPES = {"1": 1, "2": 2, "3": 3, "4": 4}
# A value the core's schedule/validity range checks always refuse: malformed `schtime`,
# `gmt` or `validity` are reported as HTTP22 at the core's place in the order (after the
# length checks), not before them.
INVALID_TIME = float("-inf")
MAX_REF = 64
MAX_DLR_URL = 2048
_GMT = re.compile(r"([+-]?)(\d{2}):?(\d{2})")
_SCHTIME = re.compile(r"\d{12}")


class Params:
    """A request's parameters, from the query string and a form body together."""

    __slots__ = ("repeated", "values")

    def __init__(self, *sources: Iterable[tuple[str, str]]) -> None:
        self.values: dict[str, str] = {}
        self.repeated: set[str] = set()
        for source in sources:
            for key, value in source:
                if key in self.values:
                    self.repeated.add(key)
                else:
                    self.values[key] = value

    def one(self, *names: str) -> str:
        """A mandatory parameter under one of its spellings, given exactly once."""
        found = [name for name in names if name in self.values]
        if len(found) != 1 or found[0] in self.repeated:
            raise GatewayError(Err.BAD_REQUEST_PARAMS, f"{names[0]} missing or repeated")
        return self.values[found[0]]

    def optional(self, *names: str) -> str | None:
        if not any(name in self.values for name in names):
            return None
        return self.one(*names)

    def credentials(self) -> tuple[str, str]:
        """Both spellings are accepted on every endpoint (SPEC §3)."""
        return self.one("user", "userid"), self.one("pass", "password")

    def has_credentials(self) -> bool:
        return any(name in self.values for name in ("user", "userid", "pass", "password"))


@dataclass(slots=True)
class SubmitFields:
    """The websms parameters, read (HTTP02 checks done) but not yet validated."""

    sid: str
    mno: str
    type: str
    text: str
    gmt: str | None = None
    schtime: str | None = None
    dlrurl: str | None = None
    validity: str | None = None
    ref: str | None = None
    dcs: str | None = None
    esm: str | None = None
    udh: str | None = None

    @classmethod
    def read(cls, params: Params) -> "SubmitFields":
        return cls(sid=params.one("sid"), mno=params.one("mno"), type=params.one("type"),
                   text=params.one("text"), gmt=params.optional("gmt"),
                   schtime=params.optional("schtime"), dlrurl=params.optional("dlrurl"),
                   validity=params.optional("validity"), ref=params.optional("ref"),
                   dcs=params.optional("dcs"), esm=params.optional("esm"),
                   udh=params.optional("udh"))


def submit_request(fields: SubmitFields, account: Account, max_destinations: int,
                   now: float | None = None, private_callbacks: bool = False
                   ) -> SubmitRequest:
    """The SubmitRequest for `fields`, raising the first failing check of SPEC §3.1 that
    the core would not report in the right place itself. `private_callbacks`: whether
    a dlrurl may name a loopback/private/... address (SPEC §11)."""
    now = now or time.time()
    message_type = MESSAGE_TYPES.get(fields.type.strip())
    if message_type is None:
        raise GatewayError(Err.BAD_TYPE, f"type {fields.type!r}")
    dlr_url, ref = _dlr_url(fields.dlrurl, private_callbacks), fields.ref or ""
    if len(ref) > MAX_REF:
        raise GatewayError(Err.BAD_REQUEST, "ref too long")
    sid = fields.sid
    sender = check_sender(account, _plus(sid) if sid[1:].isdigit() else sid)
    destinations = [normalize_number(n) for n in _plus(fields.mno).split(",")]
    if len(destinations) > max_destinations:
        raise GatewayError(Err.TOO_MANY_DESTINATIONS)
    data_coding, esm_class, udh = _advanced(fields)
    encoded = _encode(message_type, fields.text)
    if data_coding is None:
        data_coding = encoded.data_coding
    elif unit_for(data_coding) != encoded.unit:  # the dcs must say how the text is coded
        raise GatewayError(Err.BAD_DATA_CODING, "dcs does not match the message type")
    schedule_at = _schedule(fields.schtime, fields.gmt)
    return SubmitRequest(
        account=account, source_addr=sender, destinations=destinations,
        payload=udh + encoded.payload, data_coding=data_coding,
        esm_class=esm_class | (ESM_UDHI if udh else 0), single_part=bool(udh),
        source_ton=_sender_ton(sender), source_npi=0 if _sender_ton(sender) == 5 else 1,
        schedule_at=schedule_at, expires_at=_expiry(fields.validity, schedule_at, now),
        channel="http", ref=ref, dlr_url=dlr_url, max_destinations=max_destinations,
        paced=True)


def _plus(value: str) -> str:
    """An unencoded '+' in a query string arrives as a space ('+0530', '+961...')."""
    return "+" + value[1:] if value.startswith(" ") else value


def _sender_ton(sender: str) -> int:
    # alphanumeric senders are TON 5; numbers are international (TON 1, NPI E.164)
    plain = sender[1:] if sender.startswith("+") else sender
    return 1 if plain.isdigit() else 5


def _advanced(fields: SubmitFields) -> tuple[int | None, int, bytes]:
    """dcs (HTTP19), esm (HTTP20) and udh (HTTP21), in that order."""
    data_coding = None
    if fields.dcs is not None:
        data_coding = _octet(fields.dcs, Err.BAD_DATA_CODING)
        check_data_coding(data_coding)
    esm_class = 0
    if fields.esm is not None:
        esm_class = _octet(fields.esm, Err.BAD_ESM)
        check_esm_class(esm_class)
    udh = b""
    if fields.udh:
        udh = _udh(fields.udh)
    elif esm_class & ESM_UDHI:
        raise GatewayError(Err.BAD_UDH, "esm has UDHI but no udh given")
    return data_coding, esm_class & ~ESM_UDHI, udh


def _octet(value: str, error: Err) -> int:
    text = value.strip().lower()
    try:
        number = int(text[2:], 16) if text.startswith("0x") else int(text, 10)
    except ValueError:
        raise GatewayError(error, f"not a number: {value!r}") from None
    if not 0 <= number <= 255:
        raise GatewayError(error, f"out of range: {value!r}")
    return number


def _udh(hex_text: str) -> bytes:
    try:
        udh = bytes.fromhex(hex_text.strip())
        if parse_udh(udh).size != len(udh):  # exactly one header, nothing after it
            raise ValueError("udh length octet does not match")
    except ValueError as exc:  # also TextError (BadUdh)
        raise GatewayError(Err.BAD_UDH, str(exc)) from None
    return udh


def _encode(message_type: int, text: str):
    try:
        return encode_message(message_type, text)
    except TextError as exc:  # not encodable in the type's alphabet, or bad hex
        raise GatewayError(Err.BAD_DATA_CODING, str(exc)) from None


def _schedule(schtime: str | None, gmt: str | None) -> float | None:
    """`schtime` yyyyMMddHHmm in the zone `gmt` (+0530; default +0000) -> epoch seconds."""
    if not schtime:
        return None
    zone = _zone(_plus(gmt.strip()) if gmt else "+0000")
    if zone is None or not _SCHTIME.fullmatch(schtime):
        return INVALID_TIME
    try:
        moment = datetime.strptime(schtime, "%Y%m%d%H%M").replace(tzinfo=zone)
    except ValueError:
        return INVALID_TIME
    return moment.timestamp()


def _zone(gmt: str) -> timezone | None:
    match = _GMT.fullmatch(gmt)
    if match is None:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3))
    if hours > 14 or minutes > 59:
        return None
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if sign == "-" else offset)


def _expiry(validity: str | None, schedule_at: float | None, now: float) -> float | None:
    """`validity` in minutes from the (scheduled) send time; the core caps it."""
    if validity is None or validity == "":
        return None
    if not validity.isdigit() or int(validity) < 1:
        return INVALID_TIME
    start = schedule_at if schedule_at is not None and schedule_at > now else now
    return start + int(validity) * 60.0


def _dlr_url(value: str | None, allow_private: bool) -> str:
    """Only absolute http/https URLs (anything else could make us call file: or
    internal schemes), and no literal address we would refuse to call (inner ones,
    unless allowed; legacy numeric forms such as http://2130706433/); bad ones are
    HTTP16. Names are checked when called, after resolving them."""
    if not value:
        return ""
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise GatewayError(Err.BAD_REQUEST, "dlrurl is not a URL") from None
    if url.scheme not in ("http", "https") or not url.hostname or len(value) > MAX_DLR_URL \
            or any(c.isspace() or not c.isprintable() for c in value):
        raise GatewayError(Err.BAD_REQUEST, "dlrurl must be an http or https URL")
    refusal = url_refusal(value, allow_private)
    if refusal is not None:
        raise GatewayError(Err.BAD_REQUEST, f"dlrurl target refused: {refusal}")
    return value
