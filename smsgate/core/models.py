"""The gateway's records. Plain data, shared by core, store and the adapters.

Money: credits are fixed-point integers of 1/10,000 credit (`CREDIT_SCALE`), identical in
SQLite and PostgreSQL and exact in sums. Times are float seconds since the Unix epoch
(UTC): cheap to make on the hot path and the same in both databases.
"""

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

CREDIT_SCALE = 10_000

# Message status words: SPEC §5 and the HTTP status endpoint.
ATES = "ATES"
ACCEPTD = "ACCEPTD"
DELIVRD = "DELIVRD"
UNDELIV = "UNDELIV"
EXPIRED = "EXPIRED"
REJECTD = "REJECTD"
DELETED = "DELETED"
UNKNOWN = "UNKNOWN"
FINAL_STATUSES = frozenset({DELIVRD, UNDELIV, EXPIRED, REJECTD, DELETED, UNKNOWN})
ALL_STATUSES = frozenset({ATES, ACCEPTD, *FINAL_STATUSES})
# The final statuses that mean "not delivered" (DELETED is the customer's own cancel)
FAILED_STATUSES = frozenset({UNDELIV, EXPIRED, REJECTD, UNKNOWN})

# A connector's standing in a running gateway (connectors/registry.py): running, turned
# off by the operator, or refused (its settings cannot run).
RUNNING, DISABLED, BROKEN = "running", "disabled", "broken"


def credits_to_units(value: str | int | float | Decimal) -> int:
    """'12.5' -> 125000. Raises ValueError for anything that is not a number."""
    try:
        amount = Decimal(str(value))
    except ArithmeticError as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return int((amount * CREDIT_SCALE).to_integral_value(ROUND_HALF_EVEN))


def units_to_credits(units: int) -> Decimal:
    return Decimal(units) / CREDIT_SCALE


def format_credits(units: int) -> str:
    """Balance as the HTTP API prints it: at least two decimal places."""
    text = f"{units_to_credits(units):.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


@dataclass(slots=True)
class Account:
    system_id: str
    password_hash: str
    id: int = 0
    balance: int = 0  # units of 1/CREDIT_SCALE credit
    credit_limit: int = 0  # how far below zero the balance may go
    expires_at: float | None = None
    enabled: bool = True
    allowed_senders: tuple[str, ...] = ()  # empty = any valid sender id
    allowed_ips: tuple[str, ...] = ()  # CIDRs; empty = any
    tps: int = 0  # messages (parts) per second; 0 = unlimited
    max_tx: int = 10  # transmitter sessions at once (plus one Rx/TRx)
    smpp_enabled: bool = True
    http_enabled: bool = True
    max_parts: int = 10  # parts of one concatenated message
    created_at: float = 0.0
    status_auth: bool = False  # HTTP status queries must carry the owner's user/pass


@dataclass(slots=True)
class LedgerEntry:
    account_id: int
    amount: int  # positive = credit, negative = debit
    reason: str
    message_id: int | None = None
    id: int = 0
    created_at: float = 0.0


@dataclass(slots=True)
class Connector:
    name: str
    type: str  # "simulator" | "smpp" | "http"
    config: dict = field(default_factory=dict)
    enabled: bool = True


@dataclass(slots=True)
class Route:
    """A way out for destinations starting with `prefix` (SPEC §8; core/routing.py
    orders them). Fields after `id` came later: positional construction stays valid."""

    prefix: str  # destination digits; "" = catch-all
    connector: str
    price: int  # units per SMS part: what the customer pays
    account_id: int | None = None  # None = global route
    priority: int = 0  # LOWER first among routes of the longest matching prefix
    id: int = 0
    cost: int = 0  # units per SMS part the upstream charges us: lower first (least cost)
    weight: int = 1  # share of the load among routes equal in priority and cost
    senders: tuple[str, ...] = ()  # sender ids the route is limited to; empty = any


@dataclass(slots=True)
class InboundNumber:
    """A number or short code of ours that MO (inbound SMS) is addressed to: matched as
    the longest prefix of the MO's destination (core/numbers.py)."""

    number: str  # digits
    account_id: int
    mo_url: str = ""  # also POSTed here as an HTTP request; "" = SMPP receiver only


@dataclass(slots=True)
class ConnectorState:
    """A connector's live state as one node last reported it (`connector list`): free
    JSON (binds up, window in use, sent/s, errors), one row per connector and node."""

    connector: str
    node: str
    state: dict
    reported_at: float


@dataclass(slots=True)
class CoverageEntry:
    country: str
    iso: str
    operator: str
    mcc: str
    mnc: str
    prefix: str
    price: int | None = None  # None = priced by the account's routes


@dataclass(slots=True)
class Message:
    """One message to one destination, as stored.

    `payload` is the user data: for an SMPP customer's submit_sm the short_message as
    given (including its UDH when esm_class has UDHI), or the whole text of a long
    message that the connector splits into `parts` on the way out.
    """

    id: int
    account_id: int
    source_addr: str
    dest_addr: str
    payload: bytes
    data_coding: int = 0
    esm_class: int = 0
    parts: int = 1
    price: int = 0  # units charged in all (parts x route price)
    connector: str = ""
    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 1
    dest_npi: int = 1
    protocol_id: int = 0
    priority: int = 0
    registered_delivery: int = 0
    service_type: str = ""
    options: bytes = b""  # TLVs to pass upstream (sar_*, vendor TLVs), wire-encoded
    channel: str = "smpp"  # "smpp" | "http"
    ref: str = ""  # customer reference echoed in HTTP callbacks
    dlr_url: str = ""
    status: str = ATES
    error_code: int = 0
    upstream_id: str = ""
    created_at: float = 0.0
    schedule_at: float | None = None  # None = send now
    expires_at: float | None = None  # end of validity
    sent_at: float | None = None  # handed to the upstream
    accepted_at: float | None = None  # ACCEPTD from the upstream
    done_at: float | None = None  # final status reached
    node: str = ""  # node that owns its dispatch


@dataclass(slots=True)
class StatusUpdate:
    """A transition of a stored message (SPEC §5); `at` becomes accepted_at/done_at."""

    message_id: int
    status: str
    at: float
    error_code: int = 0
    upstream_id: str = ""
    # A "sent" mark the dispatcher held back and folds into this update (one row write
    # instead of two); None when the message's sent_at is stored already.
    sent_at: float | None = None
    connector: str = ""
    # Money back for the message, granted in the same transaction as this status and
    # only if this very write moves the message into its final state (store/charging.py).
    refund: "Refund | None" = None


@dataclass(slots=True)
class SentUpdate:
    message_id: int
    connector: str
    at: float
    upstream_id: str = ""  # the (first) part's id, as the upstream gave it
    # Every part's upstream id, for a message the connector split into several
    # submits (stored as message_parts rows for receipt correlation); () otherwise.
    part_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class Refund:
    account_id: int
    amount: int
    message_id: int
    reason: str = "refund"


RECEIPT, MO = "receipt", "mo"  # what a PendingReceipt carries: its `kind`


@dataclass(slots=True)
class PendingReceipt:
    """A deliver_sm waiting for the customer's receiver session: a delivery receipt
    (SPEC §4) or an MO (SPEC §8). Both wait, go out and are retried the same way
    (core/receipts.py), so they are one record in one table (`pending_receipts`).

    For an MO (`kind` MO): message_id is the MO's id, source/dest are the handset's
    and our number, and `payload`, `data_coding`, `esm_class` (0x00, or 0x40 with a
    UDH) and `options` (its sar_* TLVs, wire-encoded) are what the customer receives;
    status, error_code and text stay empty. Receipts leave those four at their defaults.
    """

    account_id: int
    message_id: int
    source_addr: str  # the receipt's source = the message's destination
    dest_addr: str  # the receipt's destination = the message's source
    status: str
    error_code: int
    submitted_at: float
    done_at: float
    text: str = ""  # first 20 characters of the message
    source_ton: int = 1
    source_npi: int = 1
    dest_ton: int = 0
    dest_npi: int = 0
    id: int = 0
    created_at: float = 0.0
    expires_at: float = 0.0
    attempts: int = 0
    next_attempt_at: float = 0.0
    kind: str = RECEIPT
    payload: bytes = b""
    data_coding: int = 0
    esm_class: int = 0
    options: bytes = b""


@dataclass(slots=True)
class PendingCallback:
    """An HTTP request to a customer's URL waiting to be sent (servers/http_callbacks.py):
    a `dlrurl` delivery report, or an MO for a number's `--mo-url` (status MO)."""

    message_id: int  # the message's id, or the MO's
    url: str  # the customer's URL with our parameters
    status: str  # the status reported, or MO
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    holder: str = ""  # the node whose memory holds it; "" = waiting in the store only
    id: int = 0


@dataclass(slots=True)
class WriteBatch:
    """Everything one group commit writes, in one transaction.

    New messages are charged in the same transaction as they are inserted: a message
    is either stored and charged, or neither. The store refuses (does not insert) a new
    message whose charge would take its account below -credit_limit, and reports it.
    Refunds ride on statuses (`StatusUpdate.refund`): there is no refund of its own.
    """

    new_messages: list[Message] = field(default_factory=list)
    sent: list[SentUpdate] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    new_receipts: list[PendingReceipt] = field(default_factory=list)
    done_receipts: list[int] = field(default_factory=list)  # PendingReceipt ids to delete
    retry_receipts: list[tuple[int, float]] = field(default_factory=list)  # (id, next time)
    # Groups of new message ids (of one account) accepted or refused together: a
    # multi-destination HTTP submit is all-or-nothing (SPEC §3.1).
    atomic: list[list[int]] = field(default_factory=list)
    # (message id, part, final status) of a part of a message split upstream
    part_statuses: list[tuple[int, int, str]] = field(default_factory=list)
    unmatched: list["UpstreamReport"] = field(default_factory=list)  # reports kept unmatched
    # The HTTP callback outbox (dlrurl, mo-url): new rows, rows to delete (sent or given
    # up), and (id, attempts, next_attempt_at) of rows given back to the store for later.
    new_callbacks: list[PendingCallback] = field(default_factory=list)
    done_callbacks: list[int] = field(default_factory=list)
    retry_callbacks: list[tuple[int, int, float]] = field(default_factory=list)
    new_inbound: list["InboundMessage"] = field(default_factory=list)  # MO, as received
    # MO parts whose concatenated message is settled (joined, or given up): no longer
    # `joining` (core/inbound.py)
    joined_inbound: list[int] = field(default_factory=list)
    # unmatched reports a message claimed later (core/correlation.py): their rows go
    rematched: list["UpstreamReport"] = field(default_factory=list)
    # outbox rows given up (refused target, too old): deleted like done_callbacks, and
    # logged as given up rather than delivered (`deliveries`, for the admin API)
    given_up_callbacks: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return (len(self.new_messages) + len(self.sent) + len(self.statuses)
                + len(self.new_receipts) + len(self.done_receipts) + len(self.retry_receipts)
                + len(self.part_statuses) + len(self.unmatched) + len(self.new_callbacks)
                + len(self.done_callbacks) + len(self.retry_callbacks)
                + len(self.new_inbound) + len(self.joined_inbound) + len(self.rematched)
                + len(self.given_up_callbacks))


@dataclass(slots=True)
class BatchResult:
    refused: set[int] = field(default_factory=set)  # new message ids refused for credit
    receipt_ids: list[int] = field(default_factory=list)  # ids given to new_receipts
    callback_ids: list[int] = field(default_factory=list)  # ids given to new_callbacks


@dataclass(slots=True)
class UpstreamReport:
    """A delivery report from an upstream (an SMPP receipt, an HTTP provider's DLR) before
    it is matched to a message by the upstream's id (SPEC §8 receipt correlation)."""

    connector: str
    # The id as the report gave it first, then every other spelling the connector's
    # id_format accepts (decimal/hex/leading zeros): the first that matches wins.
    upstream_ids: tuple[str, ...]
    status: str  # ACCEPTD or a final status word (DELIVRD, UNDELIV, ...)
    at: float
    error_code: int = 0
    # Where the id was read ("tlv": receipted_message_id, "text": the receipt's id:),
    # since an SMSC may spell the two differently (hex in one, decimal in the other).
    id_source: str = ""


@dataclass(slots=True)
class InboundMessage:
    """An MO (SPEC §8): an SMS from a handset to one of our numbers, as an upstream gave
    it. `payload` is the short_message (or message_payload) with its UDH, if any."""

    connector: str
    source_addr: str
    dest_addr: str
    payload: bytes
    data_coding: int = 0
    esm_class: int = 0
    source_ton: int = 1
    source_npi: int = 1
    dest_ton: int = 1
    dest_npi: int = 1
    options: bytes = b""  # TLVs as received (sar_* for concatenation), wire-encoded
    received_at: float = 0.0
    id: int = 0
    account_id: int | None = None  # the number's account; None = unrouted (kept)
    # A part of a concatenated MO whose message is still being joined for its number's
    # mo-url (core/inbound.py): reloaded at start, so a restart loses no half message.
    joining: bool = False


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """Why an upstream did not take a message."""

    status: int  # the upstream's command_status (SMPP) or HTTP status; 0 = none (no answer)
    temporary: bool  # True: send again (maybe by the next route); False: REJECTD
    detail: str = ""



@dataclass(frozen=True, slots=True)
class PurgeStep:
    """One step of retention in one table (Store.purge_step)."""

    deleted: int
    last_id: int  # where the next step starts (after it)
    done: bool  # the table's pass is over: nothing left, or only newer rows


# A node (a `serve` process, SPEC §9) is alive while it heartbeats; silent this long it
# is dead (others may take over what it held); a clean stop marks it stopped.
NODE_DEAD_AFTER = 5.0
ALIVE, DEAD, STOPPED = "alive", "dead", "stopped"


@dataclass(slots=True)
class NodeFigures:
    """What a node reports with each heartbeat, for `smsgate nodes`."""

    smpp_sessions: int = 0  # customer SMPP sessions bound on it
    upstream_binds: int = 0  # its upstream SMPP binds that are up
    messages_per_second: float = 0.0  # accepted in the last heartbeat interval
    delivered_per_second: float = 0.0  # DELIVRD reported in it
    failed_per_second: float = 0.0  # FAILED_STATUSES reported in it


@dataclass(slots=True)
class NodeStatus:
    """A node's row. Times are read by the store's clock (PostgreSQL's own for every
    node), so that nodes whose clocks differ still judge one another alike."""

    id: str
    address: str  # where it listens, e.g. "10.0.0.5 smpp:8899 http:8080"
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    figures: NodeFigures
    silent_for: float  # seconds since its last heartbeat

    @property
    def state(self) -> str:
        if self.stopped_at is not None:
            return STOPPED
        return DEAD if self.silent_for >= NODE_DEAD_AFTER else ALIVE


@dataclass(slots=True)
class AdminToken:
    """A bearer token of the admin API (SPEC §10): only its hash is stored."""

    name: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None


@dataclass(slots=True)
class SessionLease:
    """A bound customer SMPP session somewhere in the cluster, as its lease row tells
    (store/bind_leases.py): the admin API lists these and may ask for a kick."""

    node_id: str
    session: str  # the lease key, unique per node
    account_id: int
    system_id: str
    kind: str  # tx | rx | trx
    acquired_at: float
    kick_requested: bool = False


@dataclass(slots=True)
class MessageQuery:
    """A search of stored messages (admin API): every filter is optional; newest
    first, `before_id` is the paging cursor (the last id of the previous page)."""

    account_id: int | None = None
    dest_addr: str | None = None  # a prefix of the destination digits
    status: str | None = None
    since: float | None = None  # created_at >= since
    until: float | None = None  # created_at < until
    before_id: int | None = None
    limit: int = 50


@dataclass(slots=True)
class MessagePart:
    """A later part of a message split upstream (message_parts)."""

    part: int
    connector: str
    upstream_id: str
    status: str  # '' = no final status reported yet
