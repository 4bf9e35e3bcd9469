"""The ONE error table: core error <-> HTTP `ERROR - HTTPnn` line <-> SMPP command_status.

Everything that answers a customer (SMPP server, HTTP API) turns a `GatewayError` into
its wire form here; docs/api.md reproduces this table.
"""

from enum import Enum

from ..smpp.constants import Status
from ..text.errors import BadHex, BadType, BadUdh, NotEncodable, TextError, TooManyParts

# The seed document's descriptions, verbatim (SPEC §3, seed/http-smpp-api-spec.txt).
HTTP_DESCRIPTIONS = {
    "HTTP01": "Invalid HTTP URL Format",
    "HTTP02": "Invalid query string",
    "HTTP03": "Message Submission Failed",
    "HTTP04": "Invalid Password",
    "HTTP05": "Invalid System ID",
    "HTTP06": "Invalid Sender ID",
    "HTTP07": "Invalid Type",
    "HTTP08": "Invalid Message ID",
    "HTTP09": "Invalid Destination Address",
    "HTTP10": "Invalid number of messages",
    "HTTP11": "Requested service is unavailable",
    "HTTP12": "Submit Failed",
    "HTTP13": "Query request failed",
    "HTTP14": "Bind failed",
    "HTTP15": "Not Authorized for the request",
    "HTTP16": "Invalid Request",
    "HTTP17": "Invalid Message Length",
    "HTTP18": "INSUFFICIENT CREDITS/BALANCE",
    "HTTP19": "Invalid DATA CODING SCHEME",
    "HTTP20": "Invalid ESM",
    "HTTP21": "Invalid HEADER",
    "HTTP22": "Invalid Schedule Time",
    "HTTP23": "Routing Error",
    "HTTP24": "Exceeded number of Destination",
    "HTTP25": "No Record Found",
    "HTTP26": "Account Expired",
}


class Err(Enum):
    """Core errors: value = (HTTP code, SMPP command_status)."""

    UNKNOWN_PATH = ("HTTP01", Status.ESME_RINVCMDID)
    BAD_REQUEST_PARAMS = ("HTTP02", Status.ESME_RINVCMDLEN)
    INTERNAL = ("HTTP03", Status.ESME_RSYSERR)
    BAD_PASSWORD = ("HTTP04", Status.ESME_RINVPASWD)
    UNKNOWN_ACCOUNT = ("HTTP05", Status.ESME_RINVSYSID)
    BAD_SENDER = ("HTTP06", Status.ESME_RINVSRCADR)
    BAD_TYPE = ("HTTP07", Status.ESME_RINVDCS)
    BAD_MESSAGE_ID = ("HTTP08", Status.ESME_RINVMSGID)
    BAD_DESTINATION = ("HTTP09", Status.ESME_RINVDSTADR)
    TOO_MANY_PARTS_IN_REQUEST = ("HTTP10", Status.ESME_RINVNUMMSGS)
    THROTTLED = ("HTTP11", Status.ESME_RTHROTTLED)
    QUEUE_FULL = ("HTTP11", Status.ESME_RMSGQFUL)
    UPSTREAM_REFUSED = ("HTTP12", Status.ESME_RSUBMITFAIL)
    QUERY_FAILED = ("HTTP13", Status.ESME_RQUERYFAIL)
    NO_UPSTREAM = ("HTTP14", Status.ESME_RSUBMITFAIL)
    NOT_AUTHORIZED = ("HTTP15", Status.ESME_RBINDFAIL)
    BAD_REQUEST = ("HTTP16", Status.ESME_RUNKNOWNERR)
    BAD_LENGTH = ("HTTP17", Status.ESME_RINVMSGLEN)
    NO_CREDIT = ("HTTP18", Status.SMSGATE_NO_CREDIT)
    BAD_DATA_CODING = ("HTTP19", Status.ESME_RINVDCS)
    BAD_ESM = ("HTTP20", Status.ESME_RINVESMCLASS)
    BAD_PRIORITY = ("HTTP16", Status.ESME_RINVPRTFLG)  # priority_flag over 3 (SMPP only)
    BAD_UDH = ("HTTP21", Status.ESME_RINVESMCLASS)
    BAD_SCHEDULE = ("HTTP22", Status.ESME_RINVSCHED)
    BAD_VALIDITY = ("HTTP22", Status.ESME_RINVEXPIRY)
    NO_ROUTE = ("HTTP23", Status.SMSGATE_NO_ROUTE)
    TOO_MANY_DESTINATIONS = ("HTTP24", Status.ESME_RINVNUMDESTS)
    UNKNOWN_MESSAGE_ID = ("HTTP25", Status.ESME_RQUERYFAIL)
    ACCOUNT_EXPIRED = ("HTTP26", Status.ESME_RBINDFAIL)  # refused at bind
    # SPEC §11: logins refused unchecked during a failed-login back-off
    LOGIN_BACKOFF = ("HTTP04", Status.ESME_RBINDFAIL)
    LOGIN_BACKOFF_UNKNOWN = ("HTTP05", Status.ESME_RBINDFAIL)
    EXPIRED_AFTER_BIND = ("HTTP26", Status.SMSGATE_EXPIRED)

    @property
    def http_code(self) -> str:
        return self.value[0]

    @property
    def smpp_status(self) -> int:
        return self.value[1]

    @property
    def http_line(self) -> str:
        code = self.http_code
        return f"ERROR - {code} --> {HTTP_DESCRIPTIONS[code]}"


# What text/ raises, as the core error a customer is answered with: the most specific
# class wins (see `text_error`). A plain TextError is a payload the alphabet does not
# allow (e.g. UCS-2 of an odd number of octets).
TEXT_ERRORS: dict[type[TextError], "Err"] = {
    TooManyParts: Err.BAD_LENGTH,
    BadUdh: Err.BAD_UDH,
    NotEncodable: Err.BAD_DATA_CODING,
    BadHex: Err.BAD_DATA_CODING,
    BadType: Err.BAD_TYPE,
    TextError: Err.BAD_DATA_CODING,
}

# Failed logins that count towards the back-off of SPEC §11.
LOGIN_FAILURES = frozenset({Err.UNKNOWN_ACCOUNT, Err.BAD_PASSWORD, Err.NOT_AUTHORIZED})

# Unknown message ids answer with the operation's own failure status (SPEC §4 table).
UNKNOWN_ID_STATUS_BY_OPERATION = {
    "query_sm": Status.ESME_RQUERYFAIL,
    "cancel_sm": Status.ESME_RCANCELFAIL,
    "replace_sm": Status.ESME_RREPLACEFAIL,
}


class GatewayError(Exception):
    """A request refused by the core, with the reason for logs (never shown raw)."""

    def __init__(self, error: Err, detail: str = "") -> None:
        super().__init__(detail or error.name)
        self.error = error
        self.detail = detail

    @property
    def smpp_status(self) -> int:
        return self.error.smpp_status

    @property
    def http_line(self) -> str:
        return self.error.http_line


def text_error(exc: TextError) -> GatewayError:
    """The GatewayError for an unusable text or payload raised by text/."""
    error = next(TEXT_ERRORS[cls] for cls in type(exc).__mro__ if cls in TEXT_ERRORS)
    return GatewayError(error, str(exc))
