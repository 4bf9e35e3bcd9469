"""The admin REST API on the admin port (SPEC §10), on aiohttp like the customer API.

`ENDPOINTS` is the one route table: the router, the request validation and the OpenAPI
document (servers/admin_openapi.py) are all built from it, with the pydantic models of
servers/admin_models.py. Every `/api/v1/` request needs `Authorization: Bearer TOKEN`
(core/admin_tokens.py); failed ones count toward the failed-login back-off of SPEC §11
(core/login_guard.py) under the source IP. Every error is JSON `{"error", "detail"}`.
`/health` and `/metrics` are served here too, by the same code as on the HTTP port.
Handlers reach the store only through core/ (core/admin.py, core/sessions.py).
"""

import json
import logging
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.registry import CollectorRegistry
from pydantic import BaseModel, ValidationError

from ..core.admin import Admin, AdminError
from ..core.admin_tokens import AdminTokens, TokenRefused
from ..core.health import HealthCheck
from ..core.login_guard import LoginGuard
from ..core.ports import StoreError
from ..core.sessions import Sessions
from ..core.throughput import Throughput
from . import admin_views as views
from .admin_dashboard import add_dashboard
from .admin_models import (
    AccountCreate,
    AccountOut,
    AccountUpdate,
    BalanceOut,
    ConnectorIn,
    ConnectorOut,
    CoverageOut,
    CreditIn,
    ImportedOut,
    KickOut,
    LedgerEntryOut,
    LedgerQuery,
    MessagePage,
    MessageQueryIn,
    NodeOut,
    NumberIn,
    NumberOut,
    RouteIn,
    RouteOut,
    SessionOut,
    StatsOut,
    StatsQuery,
    ThroughputOut,
    ThroughputQuery,
    TimelineOut,
)
from .admin_openapi import Endpoint, document
from .metrics import health_response, metrics_response

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
GUARD_KEY = "\0admin-token"  # the login guard's "system_id" for admin tokens
MAX_BODY = 8 * 1024 * 1024  # a coverage CSV of every network in the world fits
STATUS = {"not_found": 404, "exists": 409, "in_use": 409, "invalid": 422}
S, INT = "string", "integer"

E = Endpoint
ENDPOINTS: list[Endpoint] = [
    E("GET", "/accounts", "list_accounts", "list accounts", list[AccountOut]),
    E("POST", "/accounts", "create_account", "create an account", AccountOut,
      body=AccountCreate, status=201),
    E("GET", "/accounts/{system_id}", "get_account", "one account", AccountOut,
      path_types=(("system_id", S),)),
    E("PATCH", "/accounts/{system_id}", "update_account",
      "change an account: password, tps, max_tx, senders, allowed IPs, expiry, enabled...",
      AccountOut, body=AccountUpdate, path_types=(("system_id", S),)),
    E("POST", "/accounts/{system_id}/credit", "credit_account",
      "top up (negative: debit) with a ledger entry", BalanceOut, body=CreditIn,
      path_types=(("system_id", S),)),
    E("GET", "/accounts/{system_id}/ledger", "account_ledger", "the account's ledger, "
      "newest first", list[LedgerEntryOut], query=LedgerQuery, path_types=(("system_id", S),)),
    E("GET", "/routes", "list_routes", "list routes", list[RouteOut]),
    E("POST", "/routes", "add_route", "add a route", RouteOut, body=RouteIn, status=201),
    E("DELETE", "/routes/{route_id}", "remove_route", "remove a route", RouteOut,
      path_types=(("route_id", INT),)),
    E("GET", "/connectors", "list_connectors", "connectors with their live state",
      list[ConnectorOut]),
    E("POST", "/connectors", "add_connector", "add a connector", ConnectorOut,
      body=ConnectorIn, status=201),
    E("GET", "/connectors/{name}", "get_connector", "one connector and its live state",
      ConnectorOut, path_types=(("name", S),)),
    E("DELETE", "/connectors/{name}", "remove_connector", "remove a connector no route uses",
      ConnectorOut, path_types=(("name", S),)),
    E("POST", "/connectors/{name}/start", "start_connector", "enable: binds within 5 s",
      ConnectorOut, path_types=(("name", S),)),
    E("POST", "/connectors/{name}/stop", "stop_connector", "disable: unbinds once drained",
      ConnectorOut, path_types=(("name", S),)),
    E("GET", "/numbers", "list_numbers", "inbound numbers (MO)", list[NumberOut]),
    E("POST", "/numbers", "add_number", "give an account a number or short code",
      NumberOut, body=NumberIn, status=201),
    E("DELETE", "/numbers/{number}", "remove_number", "remove a number", NumberOut,
      path_types=(("number", S),)),
    E("GET", "/coverage", "list_coverage", "the coverage table", list[CoverageOut]),
    E("PUT", "/coverage", "import_coverage", "replace the coverage table from a CSV body: "
      "country, iso, operator, mcc, mnc, prefix[, price]", ImportedOut, body_type="text/csv"),
    E("GET", "/messages", "search_messages", "search messages, newest first, by pages",
      MessagePage, query=MessageQueryIn),
    E("GET", "/messages/{message_id}", "message_timeline",
      "one message with its timeline", TimelineOut, path_types=(("message_id", INT),)),
    E("GET", "/sessions", "list_sessions", "bound SMPP sessions on every live node",
      list[SessionOut]),
    E("POST", "/sessions/{node}/{session}/kick", "kick_session",
      "unbind a session, on whichever node holds it", KickOut, status=202,
      path_types=(("node", S), ("session", S))),
    E("GET", "/nodes", "list_nodes", "the cluster's nodes", list[NodeOut]),
    E("GET", "/stats", "stats", "messages/s and statuses over time", StatsOut,
      query=StatsQuery),
    E("GET", "/throughput", "throughput", "accepted, delivered and failed messages per "
      "second over the live nodes, one point a second (the dashboard's chart)",
      ThroughputOut, query=ThroughputQuery),
]


class AdminApi:
    def __init__(self, admin: Admin, tokens: AdminTokens, sessions: Sessions,
                 throughput: Throughput, guard: LoginGuard,
                 health: HealthCheck | None = None,
                 metrics: CollectorRegistry | None = None) -> None:
        self.admin, self.tokens, self.sessions = admin, tokens, sessions
        self.throughput_samples = throughput
        self.guard = guard
        self.health, self.metrics = health, metrics
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] = ("", 0)
        self.openapi = document(ENDPOINTS, PREFIX)
        self._body = json.dumps(self.openapi).encode()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        for e in ENDPOINTS:
            app.router.add_route(e.method, PREFIX + e.path, self._handler(e))
        app.router.add_get(PREFIX + "/openapi.json", self.openapi_page)
        if self.health is not None:
            app.router.add_get("/health", self.health_page)
        if self.metrics is not None:
            app.router.add_get("/metrics", self.metrics_page)
        add_dashboard(app)
        return app

    async def health_page(self, request: web.Request) -> web.Response:
        return await health_response(self.health)  # type: ignore[arg-type]

    async def metrics_page(self, request: web.Request) -> web.Response:
        return await metrics_response(self.metrics, request)  # type: ignore[arg-type]

    async def start(self, host: str, port: int,
                    sock: socket.socket | None = None) -> tuple[str, int]:
        """Listen on host:port, or on `sock` (shared by `serve --workers`)."""
        self._runner = web.AppRunner(self.application(), access_log=None,
                                     handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.SockSite(self._runner, sock) if sock is not None else web.TCPSite(
            self._runner, host, port, reuse_address=True)
        await site.start()
        self.address = tuple(self._runner.addresses[0][:2])  # type: ignore[assignment]
        return self.address

    async def stop(self) -> None:
        await self.throughput_samples.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- plumbing -----------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        """Every failure as {"error", "detail"}; the router's 404/405 too."""
        try:
            if request.path.startswith(PREFIX + "/") or request.path == PREFIX:
                await self._authorize(request)
            return await handler(request)
        except AdminError as exc:
            return error(STATUS.get(exc.code, 400), exc.code, exc.detail)
        except ValidationError as exc:
            return error(422, "invalid", _validation_text(exc))
        except web.HTTPMethodNotAllowed as exc:
            return error(405, "method_not_allowed", f"{request.method} {request.path}",
                         {"Allow": ",".join(sorted(exc.allowed_methods))})
        except web.HTTPException as exc:
            if exc.status == 404:
                return error(404, "not_found", f"no path {request.path}")
            return error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or "")
        except StoreError as exc:
            log.error("admin %s %s: store failed: %s", request.method, request.path, exc)
            return error(503, "store_unavailable", "the store failed; try again")
        except Exception:
            log.exception("admin %s %s failed", request.method, request.path)
            return error(500, "internal", "internal error (logged)")

    async def _authorize(self, request: web.Request) -> None:
        ip = request.remote
        if self.guard.blocked(ip, GUARD_KEY):
            raise AdminError("login_backoff", "too many failed logins from this address")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():  # no guess: not counted
            raise AdminError("unauthorized", "Authorization: Bearer TOKEN required")
        try:
            await self.tokens.check(token.strip())
        except TokenRefused as exc:
            self.guard.failed(ip, GUARD_KEY)  # a wrong or revoked token: a failed login
            code = "forbidden" if exc.revoked else "unauthorized"
            raise AdminError(code, str(exc)) from None

    def _handler(self, e: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
        method = getattr(self, e.handler)

        async def handle(request: web.Request) -> web.Response:
            args = [_path_value(request, name, kind) for name, kind in e.path_types]
            if e.query is not None:
                args.append(e.query.model_validate(dict(request.query)))
            if e.body is not None:
                args.append(e.body.model_validate(await _json(request)))
            elif e.body_type == "text/csv":
                args.append(await _text(request))
            result = await method(*args)
            return web.json_response(body=_dump(result), status=e.status)
        return handle

    async def openapi_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._body, content_type="application/json")

    # -- handlers (one per ENDPOINTS row) ------------------------------------------------

    async def list_accounts(self):
        return [views.account(a) for a in await self.admin.accounts()]

    async def create_account(self, body: AccountCreate):
        changes = views.account_changes(body, exclude={"system_id", "password", "credits"})
        account = await self.admin.create_account(body.system_id, body.password,
                                                  views.units(body.credits), changes)
        return views.account(account)

    async def get_account(self, system_id: str):
        return views.account(await self.admin.account(system_id))

    async def update_account(self, system_id: str, body: AccountUpdate):
        changes = views.account_changes(body)
        return views.account(await self.admin.update_account(system_id, changes))

    async def credit_account(self, system_id: str, body: CreditIn):
        balance = await self.admin.credit(system_id, views.units(body.amount), body.reason)
        return BalanceOut(system_id=system_id, balance=views.credits(balance))

    async def account_ledger(self, system_id: str, query: LedgerQuery):
        return [views.ledger_entry(e) for e in await self.admin.ledger(system_id, query.limit)]

    async def list_routes(self):
        names = await self._account_names()
        return [views.route(r, names) for r in await self.admin.routes()]

    async def add_route(self, body: RouteIn):
        route = await self.admin.add_route(views.route_in(body), body.account)
        return views.route(route, await self._account_names())

    async def remove_route(self, route_id: int):
        names = await self._account_names()
        found = [r for r in await self.admin.routes() if r.id == route_id]
        await self.admin.remove_route(route_id)
        return views.route(found[0], names)

    async def list_connectors(self):
        return [views.connector(v) for v in await self.admin.connectors()]

    async def add_connector(self, body: ConnectorIn):
        return views.connector(await self.admin.add_connector(body.name, body.type,
                                                              body.config))

    async def get_connector(self, name: str):
        return views.connector(await self.admin.connector(name))

    async def remove_connector(self, name: str):
        view = await self.admin.connector(name)
        await self.admin.remove_connector(name)
        return views.connector(view)

    async def start_connector(self, name: str):
        return views.connector(await self.admin.set_connector_enabled(name, True))

    async def stop_connector(self, name: str):
        return views.connector(await self.admin.set_connector_enabled(name, False))

    async def list_numbers(self):
        names = await self._account_names()
        return [views.number(n, names) for n in await self.admin.numbers()]

    async def add_number(self, body: NumberIn):
        entry = await self.admin.add_number(body.number, body.account, body.mo_url)
        return views.number(entry, await self._account_names())

    async def remove_number(self, number: str):
        names = await self._account_names()
        digits = number.strip().removeprefix("+")
        found = [n for n in await self.admin.numbers() if n.number == digits]
        await self.admin.remove_number(number)
        return views.number(found[0], names)

    async def list_coverage(self):
        return [views.coverage(c) for c in await self.admin.coverage()]

    async def import_coverage(self, text: str):
        return ImportedOut(imported=await self.admin.import_coverage(text))

    async def search_messages(self, query: MessageQueryIn):
        found = await self.admin.messages(views.message_query(query), query.account)
        names = await self._account_names()
        cursor = found[-1].id if len(found) == query.limit else None
        return MessagePage(messages=[views.message(m, names) for m in found],
                           next_cursor=cursor)

    async def message_timeline(self, message_id: int):
        timeline = await self.admin.timeline(message_id)
        return views.timeline(timeline, await self._account_names())

    async def list_sessions(self):
        return [views.session(s) for s in await self.sessions.list()]

    async def kick_session(self, node: str, session: str):
        if not await self.sessions.kick(node, session):
            raise AdminError("not_found", f"no live session {session!r} on node {node!r}")
        return KickOut(kicked=True)

    async def list_nodes(self):
        return [views.node(n) for n in await self.admin.nodes()]

    async def stats(self, query: StatsQuery):
        since, step, series = await self.admin.status_series(query.window, query.step)
        rate = sum(n.figures.messages_per_second for n in await self.admin.nodes()
                   if n.state == "alive")
        return views.stats(since, step, rate, series)

    async def throughput(self, query: ThroughputQuery):
        samples = await self.throughput_samples.series(query.seconds)
        return views.throughput(self.throughput_samples.interval, samples)

    async def _account_names(self) -> dict[int, str]:
        return {a.id: a.system_id for a in await self.admin.accounts()}


def error(status: int, code: str, detail: str,
          headers: dict[str, str] | None = None) -> web.Response:
    if code == "login_backoff":
        status = 429
    elif code in ("unauthorized", "forbidden"):
        status = 401 if code == "unauthorized" else 403
        if status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return web.json_response({"error": code, "detail": detail}, status=status,
                             headers=headers)


def _path_value(request: web.Request, name: str, kind: str) -> str | int:
    text = request.match_info[name]
    if kind == "string":
        return text
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 2**63 - 1:
        raise AdminError("invalid", f"{name} {text!r} must be a positive integer")
    return int(text)


async def _text(request: web.Request) -> str:
    try:
        return (await request.read()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdminError("bad_body", f"the body is not UTF-8: {exc}") from None


async def _json(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdminError("bad_json", f"the body is not JSON: {exc}") from None


def _dump(result: BaseModel | list[BaseModel]) -> str:
    if isinstance(result, list):
        return "[" + ",".join(item.model_dump_json() for item in result) + "]"
    return result.model_dump_json()


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                     for e in exc.errors()[:10])
