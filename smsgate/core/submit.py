"""The submit pipeline: validate -> route -> throttle -> price -> store (charged) -> dispatch.

Every message of every channel takes this one path. `prepare` does all checks without
I/O and raises GatewayError with the first failing check in SPEC §3.1's order; `store`
hands the messages to the group-commit writer, which charges and inserts them in one
transaction; only then is the customer answered and the message dispatched.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat

from .errors import Err, GatewayError
from .models import ATES, DISABLED, RUNNING, Account, Message, Route
from .routing import RoutingTable
from .throttle import Backlog, Throttle
from .traffic import TrafficStats
from .validation import (
    check_data_coding,
    check_esm_class,
    check_sender,
    normalize_destination,
    user_data_parts,
)

# Told a stored message's fate: True, False (refused for credit) or the commit's error.
MessageWaiter = Callable[[bool | Exception], None]
# Told the fate of messages stored together (store_each), once per commit that carries
# some of them: those messages, in order, and the ids refused for credit, or the error.
EachWaiter = Callable[[list[Message], set[int] | Exception], None]

ONE_YEAR = 365 * 86400.0
SCHEDULE_GRACE = 60.0  # a schedule up to a minute in the past means "now" (SPEC §3.1)


@dataclass(slots=True)
class SubmitRequest:
    """What a customer asked to send, already decoded from its channel's format. SMPP
    builds it positionally (servers/smpp_messages.py `submit_request`, checked field by
    field in tests/servers/test_smpp_request.py): a new field goes there too."""

    account: Account
    source_addr: str
    destinations: Sequence[str]
    payload: bytes
    data_coding: int = 0
    esm_class: int = 0
    single_part: bool = True  # payload must fit one SMS (SMPP short_message)
    parts: int | None = None  # known already (HTTP computes it from the text)
    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 1
    dest_npi: int = 1
    protocol_id: int = 0
    priority: int = 0
    registered_delivery: int = 0
    schedule_at: float | None = None
    expires_at: float | None = None
    service_type: str = ""
    options: bytes = b""
    channel: str = "smpp"
    ref: str = ""
    dlr_url: str = ""
    max_destinations: int = 1
    # Spread a many-number request out at the account's tps instead of refusing what
    # exceeds one second of it (HTTP; core/throttle.py). SMPP submits are refused.
    paced: bool = False
    allow_transaction_mode: bool = False  # esm_class mode 2: for data_sm only


@dataclass(slots=True)
class SubmitSettings:
    default_validity: float = 48 * 3600.0
    max_validity: float = 7 * 86400.0
    max_parts_per_request: int = 100_000  # destinations x parts (HTTP10)
    max_paced_backlog: float = 3600.0  # seconds of an account's tps a request may queue


def _delayed(schedule_at: float | None, now: float, delays: list[float] | None,
             n: int) -> float | None:
    """The n-th message's send time: the request's, pushed back by its pacing delay."""
    if delays is None or not delays[n]:
        return schedule_at
    return (schedule_at or now) + delays[n]


def _shared_fields(req: SubmitRequest, parts: int) -> tuple[tuple, tuple, tuple]:
    """What a request's messages have in common, in Message's field order: the fields
    before dest_addr, those between it and price, and those from source_ton to
    upstream_id (tests/core/test_submit.py checks the order against the keywords)."""
    return ((req.account.id, req.source_addr),
            (req.payload, req.data_coding, req.esm_class, parts),
            (req.source_ton, req.source_npi, req.dest_ton, req.dest_npi, req.protocol_id,
             req.priority, req.registered_delivery, req.service_type, req.options,
             req.channel, req.ref, req.dlr_url, ATES, 0, ""))


class SubmitPipeline:
    def __init__(
        self,
        routing: Callable[[], RoutingTable],
        connector_status: Callable[[str], str | None],
        next_id: Callable[[], int],
        writer,  # store.writer.BatchWriter (typed loosely: core does not import store)
        dispatch: Callable[[Message], None],
        settings: SubmitSettings | None = None,
        throttle: Throttle | None = None,
        node: str = "",
        stats: TrafficStats | None = None,
        reserve_ids: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._routing = routing
        self._connector_status = connector_status
        self._next_id = next_id
        self._reserve_ids = reserve_ids  # ids for a many-number request, before prepare
        self._writer = writer
        self._dispatch = dispatch
        self.settings = settings or SubmitSettings()
        self.throttle = throttle or Throttle()
        self.node = node
        # channel -> messages stored and charged; read by metrics at scrape time. A plain
        # dict: get()+1 costs a third of a Counter's += 1. (The adapters count refusals:
        # they also see those raised before the pipeline.)
        self.accepted: dict[str, int] = {}
        self.stats = stats or TrafficStats()  # per account, and the ack latency

    # -- validation, without I/O -------------------------------------------------------

    def prepare(self, req: SubmitRequest, now: float | None = None) -> list[Message]:
        now = now or time.time()
        if len(req.destinations) == 1:
            return [self.prepare_one(req, now)]
        account = req.account
        check_sender(account, req.source_addr)
        if len(req.destinations) > req.max_destinations:
            raise GatewayError(Err.TOO_MANY_DESTINATIONS)
        destinations = [normalize_destination(d) for d in req.destinations]
        if not destinations:
            raise GatewayError(Err.BAD_DESTINATION, "no destination")
        check_data_coding(req.data_coding)
        check_esm_class(req.esm_class, req.allow_transaction_mode)
        parts = req.parts or user_data_parts(req.payload, req.data_coding, req.esm_class,
                                             account.max_parts, req.single_part)
        if parts * len(destinations) > self.settings.max_parts_per_request:
            raise GatewayError(Err.TOO_MANY_PARTS_IN_REQUEST)
        schedule_at, expires_at = self._times(req, now)
        routes = self._routing()
        priced = [(dest, self._route(routes, account.id, dest, req.source_addr))
                  for dest in destinations]
        delays = self._throttle(req, parts, len(destinations), schedule_at)
        head, body, tail = _shared_fields(req, parts)
        next_id, node = self._next_id, self.node
        sends = repeat(schedule_at) if delays is None else \
            [_delayed(schedule_at, now, delays, n) for n in range(len(priced))]
        # Positional, in Message's field order: a third of the keyword call's cost.
        return [Message(next_id(), *head, dest, *body, route.price * parts, route.connector,
                        *tail, now, send_at, expires_at, None, None, None, node)
                for (dest, route), send_at in zip(priced, sends, strict=False)]  # repeat: endless

    def prepare_one(self, req: SubmitRequest, now: float) -> Message:
        """`prepare` for a request of one destination (every SMPP submit_sm, most HTTP
        GETs): the same checks in the same order, without the lists and the zip a
        many-number request needs (5.2 -> 3.3 µs a message)."""
        account = req.account
        source = req.source_addr
        check_sender(account, source)
        [destination] = req.destinations
        dest = normalize_destination(destination)
        check_data_coding(req.data_coding)
        check_esm_class(req.esm_class, req.allow_transaction_mode)
        parts = req.parts or user_data_parts(req.payload, req.data_coding, req.esm_class,
                                             account.max_parts, req.single_part)
        settings = self.settings
        if parts > settings.max_parts_per_request:
            raise GatewayError(Err.TOO_MANY_PARTS_IN_REQUEST)
        if req.schedule_at is None and req.expires_at is None:  # the common case
            schedule_at = None
            expires_at = now + min(settings.default_validity, settings.max_validity)
        else:
            schedule_at, expires_at = self._times(req, now)
        route = self._route(self._routing(), account.id, dest, source)
        delays = self._throttle(req, parts, 1, schedule_at)
        send_at = schedule_at if delays is None else _delayed(schedule_at, now, delays, 0)
        # Positional, in Message's field order, spelled out: through _shared_fields'
        # three tuples it costs 0.3 µs more (bench/prepare.py). tests/core/test_submit.py
        # checks every field of both paths.
        return Message(self._next_id(), account.id, source, dest, req.payload,
                       req.data_coding, req.esm_class, parts, route.price * parts,
                       route.connector, req.source_ton, req.source_npi, req.dest_ton,
                       req.dest_npi, req.protocol_id, req.priority, req.registered_delivery,
                       req.service_type, req.options, req.channel, req.ref, req.dlr_url,
                       ATES, 0, "", now, send_at, expires_at, None, None, None, self.node)

    def _route(self, routes: RoutingTable, account_id: int, dest: str, sender: str) -> Route:
        """The first route of the failover order: its price is what the customer pays,
        whichever route carries the message. HTTP12 when routes exist for the
        destination but none takes this sender; HTTP14 when every route's connector is
        disabled; HTTP23 when none exists (or no connector of them can run)."""
        try:
            route = routes.lookup(account_id, dest, sender)
        except GatewayError:
            if routes.matching(account_id, dest):
                raise GatewayError(Err.UPSTREAM_REFUSED,
                                   f"no route takes sender {sender!r}") from None
            raise
        status = self._connector_status
        if status(route.connector) == RUNNING:
            return route
        statuses = {status(r.connector) for r in routes.matching(account_id, dest, sender)}
        if RUNNING in statuses:
            return route  # the dispatcher fails over to a running one
        if DISABLED in statuses:
            raise GatewayError(Err.NO_UPSTREAM, f"every connector for {dest} is disabled")
        raise GatewayError(Err.NO_ROUTE, f"no connector for {dest} can run")

    def _throttle(self, req: SubmitRequest, parts: int, count: int,
                  schedule_at: float | None) -> list[float] | None:
        """The account's tps: refuse (SMPP) or the send delays that keep to it (paced)."""
        account = req.account
        if not req.paced:
            if not self.throttle.allow(account.id, account.tps, parts * count):
                raise GatewayError(Err.THROTTLED)
            return None
        try:
            return self.throttle.pace(account.id, account.tps, parts, count,
                                      self.settings.max_paced_backlog,
                                      later=schedule_at is not None)
        except Backlog as exc:
            raise GatewayError(Err.THROTTLED, str(exc)) from None

    def _times(self, req: SubmitRequest, now: float) -> tuple[float | None, float]:
        schedule_at = req.schedule_at
        if schedule_at is not None:
            if schedule_at < now - SCHEDULE_GRACE or schedule_at > now + ONE_YEAR:
                raise GatewayError(Err.BAD_SCHEDULE)
            if schedule_at <= now:
                schedule_at = None
        start = schedule_at or now
        expires_at = req.expires_at
        if expires_at is None:
            expires_at = start + self.settings.default_validity
        elif expires_at <= start:
            raise GatewayError(Err.BAD_VALIDITY)
        return schedule_at, min(expires_at, start + self.settings.max_validity)

    # -- storing -----------------------------------------------------------------------

    def store(self, message: Message, then: MessageWaiter) -> None:
        """Queue one prepared message for the next group commit; `then(result)` follows
        the commit: True once stored and charged (the message is then dispatched), False
        when refused for credit, or the StoreError of a failed commit."""
        self._writer.add_message_then(message, partial(self._stored, message, then))

    def _stored(self, message: Message, then: MessageWaiter, result: bool | Exception) -> None:
        if result is True:
            self._count_and_dispatch([message])
        then(result)

    def store_each(self, messages: list[Message], then: EachWaiter) -> None:
        """`store` for a channel's run of requests (an SMPP read's submit_sm), each
        message charged on its own, one waiter for them all: one call a commit instead
        of two a message. The messages are one account's, prepared at one `now`."""
        self._writer.add_each_then(messages, partial(self._each_stored, then))

    def _each_stored(self, then: EachWaiter, messages: list[Message],
                     refused: set[int] | Exception) -> None:
        if not isinstance(refused, Exception):
            stored = [m for m in messages if m.id not in refused] if refused else messages
            if stored:
                self._count_and_dispatch(stored)
        then(messages, refused)

    def _group_stored(self, messages: list[Message], future: "asyncio.Future[bool]") -> None:
        """Counts and dispatches a stored group, even when its caller is gone. The
        dispatcher's flush is queued behind the caller's wake-up: the customer's answer
        is written before ten thousand messages go to their connectors."""
        if future.cancelled() or future.exception() is not None or not future.result():
            return
        self._count_and_dispatch(messages)

    def _count_and_dispatch(self, messages: list[Message]) -> None:
        """Stored and charged messages of one account and channel (counted as the
        first, created at the same moment): counted, and those due now dispatched."""
        first = messages[0]
        self.accepted[first.channel] = self.accepted.get(first.channel, 0) + len(messages)
        self.stats.accepted(first, time.time(), len(messages))
        dispatch = self._dispatch
        for message in messages:
            if message.schedule_at is None:  # paced or scheduled: the scheduler's
                dispatch(message)

    async def submit_all(self, req: SubmitRequest) -> list[int]:
        """Prepare, store and dispatch every destination, or none: not enough credit for
        all of them stores and charges nothing (SPEC §3.1). Returns the ids in
        destination order."""
        if self._reserve_ids is not None:
            await self._reserve_ids(len(req.destinations))
        messages = self.prepare(req)
        stored = self._writer.add_messages(messages)
        stored.add_done_callback(partial(self._group_stored, messages))
        # shield: a caller cancelled meanwhile must not cancel the group's future, which
        # would leave its messages stored and charged but never dispatched
        if not await asyncio.shield(stored):
            raise GatewayError(Err.NO_CREDIT)
        return [m.id for m in messages]
