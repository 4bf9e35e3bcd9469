"""What an operator does, as the admin API (servers/admin_api.py) calls it: accounts,
credits, routes, connectors, numbers, coverage, messages and their history, nodes and
statistics. The API's handlers reach storage only through here (DESIGN.md).

Every refusal is an `AdminError` whose `code` names it (`not_found`, `exists`,
`invalid`, `in_use`): the adapter maps codes to HTTP statuses. Money is in units of
1/CREDIT_SCALE credit here, as everywhere in the core; the adapter converts decimal
credits in and out (`credits_to_units`, `format_credits`), as the CLI does.

Changes are written to the store; a running gateway picks them up from there within
seconds (accounts, routes, connectors reload on their own), on every node alike.
"""

import asyncio
import csv
import io
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .accounts import hash_password
from .models import (
    Account,
    Connector,
    ConnectorState,
    CoverageEntry,
    InboundNumber,
    LedgerEntry,
    Message,
    MessagePart,
    MessageQuery,
    NodeStatus,
    Route,
    credits_to_units,
)
from .numbers import number_digits
from .ports import Conflict, InUse, Store
from .status_history import BUCKET_SECONDS, bucket_of
from .validation import well_formed_sender

# Account fields an update may set (with "password", hashed here)
ACCOUNT_FIELDS = frozenset({"enabled", "expires_at", "max_tx", "tps", "allowed_senders",
                            "allowed_ips", "smpp_enabled", "http_enabled", "status_auth",
                            "credit_limit", "max_parts"})
# (type, config) -> (summary, config with secrets masked, config as stored); raises
# ValueError with the reason. Wired by app.py from connectors/settings.py.
ConnectorCheck = Callable[[str, dict], tuple[str, dict, dict]]


class AdminError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def not_found(what: str) -> AdminError:
    return AdminError("not_found", f"no {what}")


def invalid(detail: str) -> AdminError:
    return AdminError("invalid", detail)


@dataclass
class ConnectorView:
    connector: Connector
    summary: str
    settings: dict  # secrets masked
    states: list[ConnectorState] = field(default_factory=list)
    routes: list[int] = field(default_factory=list)


@dataclass
class Timeline:
    message: Message
    parts: list[MessagePart]
    events: list[tuple[float, str, str]]  # (at, event, detail), in time order
    receipts: list[tuple]  # waiting for the customer's receiver (Store.message_outbox)
    callbacks: list[tuple]  # dlrurl requests waiting to be sent


def check_senders(senders: list[str]) -> tuple[str, ...]:
    for sender in senders:
        if not well_formed_sender(sender):
            raise invalid(f"sender {sender!r} is not a sender id (up to 15 digits or 11 "
                          "letters and digits)")
    return tuple(dict.fromkeys(senders))


def check_cidrs(cidrs: list[str]) -> tuple[str, ...]:
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise invalid(f"{cidr!r} is not an IP address or CIDR") from None
    return tuple(dict.fromkeys(cidrs))


def parse_coverage_csv(text: str) -> list[CoverageEntry]:
    """country, iso, operator, mcc, mnc, prefix[, price] rows (a header row allowed);
    ValueError naming the line."""
    entries = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for number, row in enumerate(reader, 1):
            entry = _coverage_row(number, row)
            if entry is not None:
                entries.append(entry)
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None
    return entries


def _coverage_row(number: int, row: list[str]) -> CoverageEntry | None:
    if not row or (number == 1 and row[0].strip().lower() == "country"):
        return None
    if len(row) < 6:
        raise ValueError(f"line {number}: expected country, iso, operator, mcc, mnc, "
                         "prefix[, price]")
    country, iso, operator, mcc, mnc, prefix = (c.strip() for c in row[:6])
    if not (prefix.isascii() and prefix.isdigit()):
        raise ValueError(f"line {number}: prefix {prefix!r} must be digits")
    price = None
    if len(row) > 6 and row[6].strip():
        try:
            price = credits_to_units(row[6].strip())
        except ValueError:
            raise ValueError(f"line {number}: price {row[6]!r} is not a number") from None
        if price < 0:
            raise ValueError(f"line {number}: price must not be negative")
    return CoverageEntry(country, iso, operator, mcc, mnc, prefix, price)


class Admin:
    def __init__(self, store: Store, check_connector: ConnectorCheck) -> None:
        self._store = store
        self._check_connector = check_connector

    # -- accounts ----------------------------------------------------------------------

    async def accounts(self) -> list[Account]:
        return await self._store.list_accounts()

    async def account(self, system_id: str) -> Account:
        account = await self._store.get_account(system_id)
        if account is None:
            raise not_found(f"account {system_id!r}")
        return account

    async def create_account(self, system_id: str, password: str, credits: int,
                             changes: dict) -> Account:
        if not 1 <= len(system_id) <= 16 or not system_id.isprintable():
            raise invalid("system_id must be 1 to 16 printable characters")
        account = Account(system_id=system_id, password_hash=await _hashed(password),
                          created_at=time.time())
        _apply(account, changes)
        try:
            created = await self._store.add_account(account)
        except Conflict:
            raise AdminError("exists", f"account {system_id!r} exists already") from None
        if credits:
            created.balance = await self._store.adjust_balance(created.id, credits,
                                                               "opening balance")
        return created

    async def update_account(self, system_id: str, changes: dict) -> Account:
        """Set the fields given (a password is hashed); balances change only by credit."""
        account = await self.account(system_id)
        if "password" in changes:
            account.password_hash = await _hashed(changes.pop("password"))
        _apply(account, changes)
        await self._store.update_account(account)
        return account

    async def credit(self, system_id: str, amount: int, reason: str) -> int:
        """Top up (negative: debit) with a ledger entry; returns the new balance."""
        if amount == 0:
            raise invalid("amount must not be zero")
        account = await self.account(system_id)
        kind = "top-up" if amount > 0 else "debit"
        text = f"{kind} (admin api)" + (f": {reason}" if reason else "")
        return await self._store.adjust_balance(account.id, amount, text)

    async def ledger(self, system_id: str, limit: int) -> list[LedgerEntry]:
        account = await self.account(system_id)
        return await self._store.ledger(account.id, limit)

    # -- routes ------------------------------------------------------------------------

    async def routes(self) -> list[Route]:
        return await self._store.list_routes()

    async def add_route(self, route: Route, system_id: str | None) -> Route:
        if route.prefix and not (route.prefix.isascii() and route.prefix.isdigit()):
            raise invalid(f"prefix {route.prefix!r} must be digits")
        if await self._store.get_connector(route.connector) is None:
            raise invalid(f"no connector {route.connector!r}")
        route.senders = check_senders(list(route.senders))
        if system_id is not None:
            route.account_id = (await self.account(system_id)).id
        return await self._store.add_route(route)

    async def remove_route(self, route_id: int) -> None:
        if not await self._store.remove_route(route_id):
            raise not_found(f"route {route_id}")

    # -- connectors --------------------------------------------------------------------

    async def connectors(self) -> list[ConnectorView]:
        states: dict[str, list[ConnectorState]] = {}
        for state in await self._store.connector_states():
            states.setdefault(state.connector, []).append(state)
        routes: dict[str, list[int]] = {}
        for route in await self._store.list_routes():
            routes.setdefault(route.connector, []).append(route.id)
        return [self._view(c, states.get(c.name, []), routes.get(c.name, []))
                for c in await self._store.list_connectors()]

    async def connector(self, name: str) -> ConnectorView:
        for view in await self.connectors():
            if view.connector.name == name:
                return view
        raise not_found(f"connector {name!r}")

    def _view(self, connector: Connector, states: list, routes: list) -> ConnectorView:
        try:
            summary, masked, _config = self._check_connector(connector.type, connector.config)
        except ValueError as exc:
            summary, masked = f"(bad settings: {exc})", {}
        return ConnectorView(connector, summary, masked, states, routes)

    async def add_connector(self, name: str, kind: str, config: dict) -> ConnectorView:
        try:
            _summary, _masked, stored = self._check_connector(kind, config)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        try:
            await self._store.add_connector(Connector(name, kind, stored))
        except Conflict:
            raise AdminError("exists", f"connector {name!r} exists already") from None
        return await self.connector(name)

    async def remove_connector(self, name: str) -> None:
        try:
            removed = await self._store.remove_connector(name)
        except InUse as exc:
            raise AdminError("in_use", f"{exc}: remove those routes first") from None
        if not removed:
            raise not_found(f"connector {name!r}")

    async def set_connector_enabled(self, name: str, enabled: bool) -> ConnectorView:
        if not await self._store.set_connector_enabled(name, enabled):
            raise not_found(f"connector {name!r}")
        return await self.connector(name)

    # -- numbers, coverage -------------------------------------------------------------

    async def numbers(self) -> list[InboundNumber]:
        return await self._store.list_numbers()

    async def add_number(self, number: str, system_id: str, mo_url: str) -> InboundNumber:
        try:
            digits = number_digits(number)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        entry = InboundNumber(digits, (await self.account(system_id)).id, mo_url)
        try:
            await self._store.add_number(entry)
        except Conflict:
            raise AdminError("exists", f"number {digits} exists already") from None
        return entry

    async def remove_number(self, number: str) -> None:
        digits = number.strip().removeprefix("+")
        if not await self._store.remove_number(digits):
            raise not_found(f"number {number!r}")

    async def coverage(self) -> list[CoverageEntry]:
        return await self._store.list_coverage()

    async def import_coverage(self, text: str) -> int:
        try:
            entries = parse_coverage_csv(text)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        if not entries:
            raise invalid("no coverage rows in the body")
        await self._store.replace_coverage(entries)
        return len(entries)

    # -- messages, nodes, statistics -----------------------------------------------------

    async def messages(self, query: MessageQuery, system_id: str | None) -> list[Message]:
        if system_id is not None:
            query.account_id = (await self.account(system_id)).id
        return await self._store.search_messages(query)

    async def timeline(self, message_id: int) -> Timeline:
        message = await self._store.get_message(message_id)
        if message is None:
            raise not_found(f"message {message_id}")
        parts = await self._store.message_parts(message_id)
        receipts, callbacks = await self._store.message_outbox(message_id)
        events = _events(message) + [
            (at, f"{kind} {outcome}", f"{status}, {attempts} attempt(s)")
            for kind, status, outcome, attempts, at in
            await self._store.message_deliveries(message_id)]
        return Timeline(message, parts, sorted(events, key=lambda e: e[0]), receipts,
                        callbacks)

    async def nodes(self) -> list[NodeStatus]:
        return await self._store.list_nodes()

    async def status_series(self, seconds: float, step: int, now: float | None = None,
                            ) -> tuple[float, int, list]:
        """(start, step, [(bucket start, status, count)]): the status changes of the
        last `seconds` over all nodes (core/status_history.py). The step is rounded up
        to a multiple of the stored buckets' BUCKET_SECONDS."""
        now = time.time() if now is None else now
        step = -(-max(step, 1) // BUCKET_SECONDS) * BUCKET_SECONDS
        since = bucket_of(now - seconds)
        found = await self._store.status_series(since, bucket_of(now) + BUCKET_SECONDS, step)
        return since, step, [(bucket * step, status, count) for bucket, status, count in found]


def _events(message: Message) -> list[tuple[float, str, str]]:
    """A message's history from the times its row keeps (SPEC §5's lifecycle)."""
    events = [(message.created_at, "accepted",
               f"ATES: stored by node {message.node or '-'} ({message.channel})")]
    if message.schedule_at is not None:
        events.append((message.schedule_at, "scheduled", "due to be sent"))
    if message.sent_at is not None:
        upstream = f", upstream id {message.upstream_id}" if message.upstream_id else ""
        events.append((message.sent_at, "sent", f"to connector {message.connector}"
                       f"{upstream}"))
    if message.accepted_at is not None:
        events.append((message.accepted_at, "ACCEPTD", "accepted by the upstream"))
    if message.done_at is not None:
        detail = f"error code {message.error_code}" if message.error_code else "final"
        events.append((message.done_at, message.status, detail))
    return sorted(events, key=lambda e: e[0])


async def _hashed(password: str) -> str:
    """scrypt takes tens of milliseconds: off the event loop."""
    if not password:
        raise invalid("the password must not be empty")
    return await asyncio.to_thread(hash_password, password)


def _apply(account: Account, changes: dict) -> None:
    for key, value in changes.items():
        if key not in ACCOUNT_FIELDS:
            raise invalid(f"unknown account field {key!r}")
        if key == "allowed_senders":
            value = check_senders(list(value))
        elif key == "allowed_ips":
            value = check_cidrs(list(value))
        setattr(account, key, value)
