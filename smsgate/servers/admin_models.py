"""The admin API's request and response models (pydantic v2). The same classes validate
what comes in, shape what goes out, and are the OpenAPI document's schemas
(servers/admin_openapi.py): the document cannot drift from the code.

Money is credits as a decimal string in answers ("12.50", `format_credits`, as the CLI
and the HTTP API print it) and a number or decimal string in requests, with at most
four decimal places (CREDIT_SCALE): no float rounding on the way in or out. Times are
float seconds since the Unix epoch (UTC), as stored.
"""

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..core.models import ALL_STATUSES

Credits = Annotated[Decimal, Field(max_digits=18, decimal_places=4, allow_inf_nan=False,
                                   description="credits, e.g. 12.5 (at most 4 decimals)")]
CreditsOut = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{2,4}$",
                                  description="credits as a decimal string")]
SystemId = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[\x21-\x7e]+$")]
Name = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Digits = Annotated[str, Field(max_length=20, pattern=r"^[0-9]*$")]
Sender = Annotated[str, Field(min_length=1, max_length=16)]
Cidr = Annotated[str, Field(min_length=1, max_length=64)]
Status = Literal[tuple(sorted(ALL_STATUSES))]  # type: ignore[valid-type]
Epoch = Annotated[float, Field(ge=0, le=10**11, allow_inf_nan=False)]


class Strict(BaseModel):
    """Requests: unknown fields are refused, so a typo is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Error(BaseModel):
    error: str = Field(description="a code: unauthorized, forbidden, not_found, invalid, "
                                   "exists, in_use, bad_json, bad_body, "
                                   "method_not_allowed, "
                                   "login_backoff, internal")
    detail: str


# -- accounts ------------------------------------------------------------------------------

class AccountFields(Strict):
    """The settings of an account that may be given at creation or changed later."""

    enabled: bool | None = None
    expires_at: Epoch | None = Field(None, description="the account works until then")
    max_tx: int | None = Field(None, ge=0, le=1000)
    tps: int | None = Field(None, ge=0, le=1_000_000, description="0 = unlimited")
    allowed_senders: list[Sender] | None = Field(None, max_length=1000,
                                                 description="empty = any")
    allowed_ips: list[Cidr] | None = Field(None, max_length=1000, description="empty = any")
    smpp_enabled: bool | None = None
    http_enabled: bool | None = None
    status_auth: bool | None = None
    credit_limit: Credits | None = Field(None, ge=0)
    max_parts: int | None = Field(None, ge=1, le=255)


class AccountCreate(AccountFields):
    system_id: SystemId
    password: str = Field(min_length=1, max_length=128)
    credits: Credits = Field(Decimal(0), description="opening balance")


class AccountUpdate(AccountFields):
    password: str | None = Field(None, min_length=1, max_length=128,
                                 description="a new password")


class AccountOut(BaseModel):
    system_id: str
    balance: CreditsOut
    credit_limit: CreditsOut
    enabled: bool
    expires_at: float | None
    max_tx: int
    tps: int
    allowed_senders: list[str]
    allowed_ips: list[str]
    smpp_enabled: bool
    http_enabled: bool
    status_auth: bool
    max_parts: int
    created_at: float


class CreditIn(Strict):
    amount: Credits = Field(description="credits to add; negative to debit; not 0")
    reason: str = Field("", max_length=200)


class BalanceOut(BaseModel):
    system_id: str
    balance: CreditsOut


class LedgerEntryOut(BaseModel):
    id: int
    amount: CreditsOut
    reason: str
    message_id: int | None
    created_at: float


class LedgerQuery(Strict):
    limit: int = Field(100, ge=1, le=1000)


# -- routes, connectors, numbers, coverage ------------------------------------------------

class RouteIn(Strict):
    prefix: Digits = Field("", description="destination prefix; '' = catch-all")
    connector: Name
    price: Credits = Field(Decimal(1), ge=0, description="per SMS part, paid by the customer")
    cost: Credits = Field(Decimal(0), ge=0, description="per SMS part, paid upstream")
    account: SystemId | None = Field(None, description="only for this account")
    priority: int = Field(0, ge=-1_000_000, le=1_000_000, description="lower first")
    weight: int = Field(1, ge=1, le=1_000_000)
    senders: list[Sender] = Field(default_factory=list, max_length=1000)


class RouteOut(BaseModel):
    id: int
    prefix: str
    connector: str
    price: CreditsOut
    cost: CreditsOut
    account: str | None
    priority: int
    weight: int
    senders: list[str]


class ConnectorIn(Strict):
    name: Name
    type: Literal["smpp", "http", "simulator"]
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="settings by name, as `connector add` "
                                               "options (e.g. host, port, binds, window)")


class ConnectorStateOut(BaseModel):
    node: str
    state: dict[str, Any] = Field(description="binds_up, binds_wanted, window, "
                                              "window_in_use, sent_per_second, errors, ...")
    reported_at: float


class ConnectorOut(BaseModel):
    name: str
    type: str
    enabled: bool
    summary: str
    settings: dict[str, Any] = Field(description="secrets masked")
    routes: list[int]
    states: list[ConnectorStateOut] = Field(description="as each node last reported it")


class NumberIn(Strict):
    number: Annotated[str, Field(pattern=r"^\+?[0-9]{1,15}$")]
    account: SystemId
    mo_url: str = Field("", max_length=2000, pattern=r"^(https?://[^\s]+)?$")


class NumberOut(BaseModel):
    number: str
    account: str | None
    mo_url: str


class CoverageOut(BaseModel):
    country: str
    iso: str
    operator: str
    mcc: str
    mnc: str
    prefix: str
    price: CreditsOut | None


class ImportedOut(BaseModel):
    imported: int


# -- messages --------------------------------------------------------------------------------

class MessageQueryIn(Strict):
    account: SystemId | None = None
    dest: Annotated[str, Field(max_length=21, pattern=r"^\+?[0-9]+$")] | None = Field(
        None, description="destination prefix")
    status: Status | None = None
    since: Epoch | None = Field(None, description="created at or after")
    until: Epoch | None = Field(None, description="created before")
    cursor: int | None = Field(None, ge=1, le=2**63 - 1,
                               description="next_cursor of the previous page")
    limit: int = Field(50, ge=1, le=500)


class MessageOut(BaseModel):
    id: int
    account: str | None
    source_addr: str
    dest_addr: str
    status: str
    error_code: int
    parts: int
    price: CreditsOut
    connector: str
    upstream_id: str
    channel: str
    node: str
    registered_delivery: int
    created_at: float
    schedule_at: float | None
    expires_at: float | None
    sent_at: float | None
    accepted_at: float | None
    done_at: float | None


class MessagePage(BaseModel):
    messages: list[MessageOut]
    next_cursor: int | None = Field(description="pass as cursor for the next page; null at "
                                                "the end")


class EventOut(BaseModel):
    at: float
    event: str
    detail: str


class PartOut(BaseModel):
    part: int
    connector: str
    upstream_id: str
    status: str


class PendingOut(BaseModel):
    """A receipt or callback of the message not delivered yet (delivered ones appear as
    the message's final status; the outbox keeps no sent rows)."""

    id: int
    status: str
    created_at: float
    attempts: int
    next_attempt_at: float


class TimelineOut(BaseModel):
    message: MessageOut
    events: list[EventOut]
    parts: list[PartOut]
    receipts_waiting: list[PendingOut]
    callbacks_waiting: list[PendingOut]


# -- sessions, nodes, stats -----------------------------------------------------------------

class SessionOut(BaseModel):
    node: str
    session: str
    account: str
    kind: str
    bound_at: float
    kick_requested: bool


class KickOut(BaseModel):
    kicked: bool


class NodeOut(BaseModel):
    id: str
    state: Literal["alive", "dead", "stopped"]
    address: str
    started_at: float
    heartbeat_at: float
    silent_for: float
    smpp_sessions: int
    upstream_binds: int
    messages_per_second: float
    delivered_per_second: float
    failed_per_second: float


class StatsQuery(Strict):
    window: int = Field(300, ge=1, le=86_400, description="seconds back from now")
    step: int = Field(10, ge=1, le=3_600, description="seconds per bucket (rounded up to "
                      "a multiple of 10)")


class StatsBucket(BaseModel):
    at: float
    counts: dict[str, int]


class StatsOut(BaseModel):
    since: float
    step: int
    messages_per_second: float = Field(description="accepted now, summed over live nodes")
    totals: dict[str, int] = Field(description="status changes in the window, by status "
                                   "(ATES: messages accepted)")
    series: list[StatsBucket]


class ThroughputQuery(Strict):
    seconds: int = Field(120, ge=1, le=900, description="seconds back from now")


class ThroughputPoint(BaseModel):
    at: float
    accepted: float = Field(description="messages accepted per second")
    delivered: float = Field(description="DELIVRD statuses per second")
    failed: float = Field(description="UNDELIV, EXPIRED, REJECTD, UNKNOWN per second")
    nodes: int = Field(description="live nodes summed")


class ThroughputOut(BaseModel):
    interval: float = Field(description="seconds between points")
    points: list[ThroughputPoint] = Field(description="oldest first")


class Health(BaseModel):
    status: str
