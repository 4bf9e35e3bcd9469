"""Core records <-> the admin API's models (servers/admin_models.py): the one place
where credits become decimal strings and account ids become system_ids."""

from decimal import Decimal

from ..core.admin import ConnectorView, Timeline
from ..core.models import (
    Account,
    CoverageEntry,
    InboundNumber,
    LedgerEntry,
    Message,
    MessageQuery,
    NodeStatus,
    Route,
    SessionLease,
    credits_to_units,
    format_credits,
)
from ..core.throughput import Sample
from .admin_models import (
    AccountFields,
    AccountOut,
    ConnectorOut,
    ConnectorStateOut,
    CoverageOut,
    EventOut,
    LedgerEntryOut,
    MessageOut,
    MessageQueryIn,
    NodeOut,
    NumberOut,
    PartOut,
    PendingOut,
    RouteIn,
    RouteOut,
    SessionOut,
    StatsBucket,
    StatsOut,
    ThroughputOut,
    ThroughputPoint,
    TimelineOut,
)


def units(amount: Decimal) -> int:
    return credits_to_units(amount)


def credits(amount: int) -> str:
    return format_credits(amount)


def account(a: Account) -> AccountOut:
    return AccountOut(
        system_id=a.system_id, balance=credits(a.balance), credit_limit=credits(a.credit_limit),
        enabled=a.enabled, expires_at=a.expires_at, max_tx=a.max_tx, tps=a.tps,
        allowed_senders=list(a.allowed_senders), allowed_ips=list(a.allowed_ips),
        smpp_enabled=a.smpp_enabled, http_enabled=a.http_enabled, status_auth=a.status_auth,
        max_parts=a.max_parts, created_at=a.created_at)


def account_changes(body: AccountFields, exclude: set[str] | None = None) -> dict:
    """The fields given in a request (None = not given), as core values."""
    changes = body.model_dump(exclude_none=True, exclude=exclude)
    if "credit_limit" in changes:
        changes["credit_limit"] = units(changes["credit_limit"])
    for key in ("allowed_senders", "allowed_ips"):
        if key in changes:
            changes[key] = tuple(changes[key])
    return changes


def ledger_entry(e: LedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(id=e.id, amount=credits(e.amount), reason=e.reason,
                          message_id=e.message_id, created_at=e.created_at)


def route_in(body: RouteIn) -> Route:
    return Route(prefix=body.prefix, connector=body.connector, price=units(body.price),
                 priority=body.priority, cost=units(body.cost), weight=body.weight,
                 senders=tuple(body.senders))


def route(r: Route, names: dict[int, str]) -> RouteOut:
    return RouteOut(id=r.id, prefix=r.prefix, connector=r.connector, price=credits(r.price),
                    cost=credits(r.cost),
                    account=names.get(r.account_id, "") if r.account_id else None,
                    priority=r.priority, weight=r.weight, senders=list(r.senders))


def connector(v: ConnectorView) -> ConnectorOut:
    c = v.connector
    return ConnectorOut(
        name=c.name, type=c.type, enabled=c.enabled, summary=v.summary, settings=v.settings,
        routes=v.routes, states=[ConnectorStateOut(node=s.node, state=s.state,
                                                   reported_at=s.reported_at)
                                 for s in v.states])


def number(n: InboundNumber, names: dict[int, str]) -> NumberOut:
    return NumberOut(number=n.number, account=names.get(n.account_id), mo_url=n.mo_url)


def coverage(c: CoverageEntry) -> CoverageOut:
    return CoverageOut(country=c.country, iso=c.iso, operator=c.operator, mcc=c.mcc,
                       mnc=c.mnc, prefix=c.prefix,
                       price=None if c.price is None else credits(c.price))


def message_query(q: MessageQueryIn) -> MessageQuery:
    return MessageQuery(dest_addr=q.dest.removeprefix("+") if q.dest else None,
                        status=q.status, since=q.since, until=q.until, before_id=q.cursor,
                        limit=q.limit)


def message(m: Message, names: dict[int, str]) -> MessageOut:
    return MessageOut(
        id=m.id, account=names.get(m.account_id), source_addr=m.source_addr,
        dest_addr=m.dest_addr, status=m.status, error_code=m.error_code, parts=m.parts,
        price=credits(m.price), connector=m.connector, upstream_id=m.upstream_id,
        channel=m.channel, node=m.node, registered_delivery=m.registered_delivery,
        created_at=m.created_at, schedule_at=m.schedule_at, expires_at=m.expires_at,
        sent_at=m.sent_at, accepted_at=m.accepted_at, done_at=m.done_at)


def timeline(t: Timeline, names: dict[int, str]) -> TimelineOut:
    return TimelineOut(
        message=message(t.message, names),
        events=[EventOut(at=at, event=event, detail=detail) for at, event, detail in t.events],
        parts=[PartOut(part=p.part, connector=p.connector, upstream_id=p.upstream_id,
                       status=p.status) for p in t.parts],
        receipts_waiting=[PendingOut(id=r[0], status=r[1], created_at=r[2], attempts=r[3],
                                     next_attempt_at=r[4]) for r in t.receipts],
        callbacks_waiting=[PendingOut(id=c[0], status=c[1], created_at=c[2], attempts=c[3],
                                      next_attempt_at=c[4]) for c in t.callbacks])


def session(s: SessionLease) -> SessionOut:
    return SessionOut(node=s.node_id, session=s.session, account=s.system_id, kind=s.kind,
                      bound_at=s.acquired_at, kick_requested=s.kick_requested)


def node(n: NodeStatus) -> NodeOut:
    f = n.figures
    return NodeOut(id=n.id, state=n.state, address=n.address, started_at=n.started_at,
                   heartbeat_at=n.heartbeat_at, silent_for=n.silent_for,
                   smpp_sessions=f.smpp_sessions, upstream_binds=f.upstream_binds,
                   messages_per_second=f.messages_per_second,
                   delivered_per_second=f.delivered_per_second,
                   failed_per_second=f.failed_per_second)


def throughput(interval: float, samples: list[Sample]) -> ThroughputOut:
    return ThroughputOut(interval=interval, points=[
        ThroughputPoint(at=s.at, accepted=s.accepted, delivered=s.delivered,
                        failed=s.failed, nodes=s.nodes) for s in samples])


def stats(since: float, step: int, rate: float, series: list) -> StatsOut:
    totals: dict[str, int] = {}
    buckets: dict[float, dict[str, int]] = {}
    for at, status, count in series:
        totals[status] = totals.get(status, 0) + count
        buckets.setdefault(at, {})[status] = count
    return StatsOut(since=since, step=step, messages_per_second=rate, totals=totals,
                    series=[StatsBucket(at=at, counts=c) for at, c in sorted(buckets.items())])
