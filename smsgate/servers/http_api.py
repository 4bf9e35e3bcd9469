"""The HTTP API of the seed document: `/websmpp/` on aiohttp (SPEC §3).

Every answer is `text/plain; charset=utf-8` with status 200, `Response: ...` or one of
the error table's `ERROR - HTTPnn --> ...` lines (clients parse the body), except the
coverage download. Parameters come from the query string and, for POST, from a form
body. Submits go through the core pipeline's `submit_all`: all destinations are stored
and charged in one group commit, or none; the answer is written only after the commit.
"""

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from aiohttp import web
from prometheus_client.registry import CollectorRegistry

from ..core.coverage import account_coverage
from ..core.errors import Err, GatewayError
from ..core.gateway import Gateway
from ..core.health import HealthCheck
from ..core.models import ALL_STATUSES, UNKNOWN, Account, format_credits
from ..core.ports import StoreError
from ..core.routing import RoutingTable
from ..core.throttle import Throttle
from . import log_redaction
from .connection_limits import ConnectionCaps, ConnectionLimiter
from .coverage_files import FORMATS
from .http_callbacks import CallbackConfig, HttpCallbacks
from .http_connections import LINGER_SECONDS, ConnectionGuard, GuardedAppRunner
from .http_dlr import DlrEndpoint
from .http_params import Params, SubmitFields, submit_request
from .metrics import health_response, metrics_response

log = logging.getLogger(__name__)

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
METHODS = frozenset({"GET", "POST"})
REPLACEMENT = "\ufffd"  # what yarl and parse_qsl make of bytes that are not UTF-8
MAX_RATE_KEYS = 100_000  # source IPs whose status-query bucket is remembered


@dataclass
class HttpApiConfig:
    max_get_destinations: int = 100  # seed: GET up to 100 numbers
    max_post_destinations: int = 10_000  # seed: POST up to 10,000
    max_body: int = 2 * 1024 * 1024  # a 10,000-number POST is ~160 KB
    status_requires_auth: bool = False  # SPEC §3.2: a global setting may demand user/pass
    # credential-less status queries per second per source IP (bucket of one second);
    # 0 = unlimited. Past it: HTTP11. Guessing ids is then slow as well as hopeless.
    anonymous_status_rate: float = 50.0
    # SPEC §11, a deadline at each step (servers/http_connections.py), in seconds
    header_timeout: float = 10.0  # from a request head's first byte to its end
    keepalive_timeout: float = 30.0  # from connect / the last response to the next head
    body_timeout: float = 30.0  # to receive a POST body
    write_timeout: float = 30.0  # the client reads nothing of an answer (or of a close)
    max_line_size: int = 16 * 1024  # request line: a 100-number GET with long text fits
    max_field_size: int = 8190  # one header line
    max_headers: int = 100
    connections: ConnectionCaps = field(default_factory=ConnectionCaps)
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    metrics: bool = True  # GET /metrics for Prometheus (the App builds the registry)


def text_response(line: str) -> web.Response:
    return web.Response(text=line, content_type="text/plain", charset="utf-8")


def error_response(error: Err | GatewayError) -> web.Response:
    return text_response(error.http_line)


class HttpApi:
    def __init__(self, gateway: Gateway, config: HttpApiConfig,
                 routing: Callable[[], RoutingTable], callbacks: HttpCallbacks,
                 metrics: CollectorRegistry | None = None,
                 dlr: DlrEndpoint | None = None, health: HealthCheck | None = None) -> None:
        self.gw = gateway
        self.config = config
        self._routing = routing
        self.callbacks = callbacks  # attached and recording (app.py); sending from start()
        self.metrics = metrics  # None: no /metrics route
        self.dlr = dlr  # HTTP providers' delivery reports; None: no such route
        self.health = health  # None: no /health route
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] = ("", 0)
        self.guard = ConnectionGuard(ConnectionLimiter(config.connections),
                                     config.header_timeout, config.write_timeout)
        self._anonymous_status = Throttle(max_keys=MAX_RATE_KEYS)
        log_redaction.install()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body)
        add = app.router.add_route
        add("*", "/websmpp/websms", self.websms)
        add("*", "/websmpp/websmsstatus", self.status)
        add("*", "/websmpp/balanceReport", self.balance)
        add("*", "/websmpp/downloadcoverage", self.coverage)
        if self.metrics is not None:
            add("GET", "/metrics", self.metrics_page)
        if self.health is not None:
            add("GET", "/health", self.health_page)
        if self.dlr is not None:
            add("*", "/connectors/{name}/dlr", self.dlr.handle)
        add("*", "/{path:.*}", self.unknown_path)
        return app

    async def start(self, host: str, port: int,
                    sock: socket.socket | None = None) -> tuple[str, int]:
        """Listen on host:port, or on `sock` (shared by `serve --workers`)."""
        await self.callbacks.start()
        config = self.config
        options = {"access_log": None, "keepalive_timeout": config.keepalive_timeout,
                   "max_line_size": config.max_line_size,
                   "max_field_size": config.max_field_size,
                   "max_headers": config.max_headers, "lingering_time": LINGER_SECONDS}
        self._runner = GuardedAppRunner(self.application(), self.guard, options,
                                        handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.SockSite(self._runner, sock) if sock is not None else web.TCPSite(
            self._runner, host, port, reuse_address=True, backlog=1024)
        await site.start()
        self.address = tuple(self._runner.addresses[0][:2])  # type: ignore[assignment]
        return self.address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.callbacks.stop()

    # -- common ------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> Params:
        """The query's and a form body's parameters. HTTP16 for a body over `max_body`
        (by its Content-Length, before reading any of it; a chunked one is cut at the
        limit), one not received within `body_timeout`, and text that is not UTF-8."""
        if request.method not in METHODS:
            raise GatewayError(Err.UNKNOWN_PATH, f"method {request.method}")
        length = request.content_length
        if length is not None and length > self.config.max_body:
            raise GatewayError(Err.BAD_REQUEST, f"body of {length} bytes")
        query = request.query
        if _replaced(query.items()):
            _check_utf8(request.rel_url.raw_query_string)
        if request.method == "POST" and request.content_type in FORM_TYPES:
            return Params(query.items(), await self._form(request))
        return Params(query.items())

    async def _form(self, request: web.Request) -> list[tuple[str, str]]:
        try:
            async with asyncio.timeout(self.config.body_timeout):
                form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise GatewayError(Err.BAD_REQUEST, "body too large") from None
        except UnicodeDecodeError:
            raise GatewayError(Err.BAD_REQUEST, "form body is not UTF-8") from None
        except TimeoutError:
            raise GatewayError(Err.BAD_REQUEST, "body not received in time") from None
        fields = [(k, v) for k, v in form.items() if isinstance(v, str)]
        if _replaced(fields) and request.content_type != "multipart/form-data":
            _check_utf8(await request.read())  # the body, kept by post(): no new read
        return fields

    async def _authenticate(self, request: web.Request, params: Params) -> Account:
        user, password = params.credentials()
        return await self.gw.authenticate(user, password, channel="http",
                                          peer_ip=request.remote)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return await metrics_response(self.metrics, request)  # type: ignore[arg-type]

    async def health_page(self, request: web.Request) -> web.Response:
        return await health_response(self.health)  # type: ignore[arg-type]

    async def unknown_path(self, request: web.Request) -> web.Response:
        return error_response(Err.UNKNOWN_PATH)

    # -- submit ------------------------------------------------------------------------

    async def websms(self, request: web.Request) -> web.Response:
        context: dict = {}  # the account named, once read, for the log lines
        try:
            params = await self._params(request)
            # HTTP02 for every parameter before any auth error
            context["account"] = params.credentials()[0]
            fields = SubmitFields.read(params)
            account = await self._authenticate(request, params)
            limit = (self.config.max_post_destinations if request.method == "POST"
                     else self.config.max_get_destinations)
            submit = submit_request(fields, account, limit,
                                    private_callbacks=self.config.callbacks.allow_private)
            ids = await self.gw.pipeline.submit_all(submit)
        except GatewayError as exc:
            self.gw.refused["http", exc.error] += 1
            log.debug("http submit refused: %s", exc, extra=context)
            return error_response(exc)
        except StoreError as exc:  # nothing was stored nor charged
            log.error("http submit failed: %s", exc, extra=context)
            return error_response(Err.INTERNAL)
        except Exception:
            log.exception("http submit failed", extra=context)
            return error_response(Err.INTERNAL)
        answer = ",".join(map(str, ids))
        if log.isEnabledFor(logging.DEBUG):  # the hot path: no dict per request otherwise
            log.debug("http submit stored as %s", answer,
                      extra={**context, "message_id": ids[0] if len(ids) == 1 else ids})
        return text_response("Response: " + answer)

    # -- queries -----------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        try:
            params = await self._params(request)
            message_id = params.one("respId", "respid")
            account = await self._status_account(request, params)
            message = await self.gw.find_message(None, message_id.strip())
            if account is None and await self._owner_requires_auth(message.account_id):
                # SPEC §3.2: the owner's setting makes user/pass mandatory parameters
                raise GatewayError(Err.BAD_REQUEST_PARAMS, "user/pass required by the owner")
            if account is not None and message.account_id != account.id:
                raise GatewayError(Err.NOT_AUTHORIZED, "not the message's owner")
        except GatewayError as exc:
            return error_response(exc)
        except Exception:
            log.exception("http status query failed")
            return error_response(Err.QUERY_FAILED)
        status = message.status if message.status in ALL_STATUSES else UNKNOWN
        return text_response(f"Response: {status}")

    async def _status_account(self, request: web.Request, params: Params) -> Account | None:
        """The querying account, or None for a query without credentials: those are
        limited per source IP (each may be a guess at someone's id)."""
        if params.has_credentials() or self.config.status_requires_auth:
            return await self._authenticate(request, params)
        if not self._anonymous_status.allow(request.remote, self.config.anonymous_status_rate):
            raise GatewayError(Err.THROTTLED, "credential-less status queries")
        return None

    async def _owner_requires_auth(self, account_id: int) -> bool:
        owner = self.gw.accounts.by_id(account_id)
        if owner is None:  # added since the directory's last reload
            owner = await self.gw.fresh_account(account_id)
        return owner is not None and owner.status_auth

    async def balance(self, request: web.Request) -> web.Response:
        try:
            params = await self._params(request)
            account = await self._authenticate(request, params)
            fresh = await self.gw.fresh_account(account.id)  # the cache may lag
            if fresh is None:
                raise GatewayError(Err.UNKNOWN_ACCOUNT, "account removed")
        except GatewayError as exc:
            return error_response(exc)
        except Exception:
            log.exception("http balance query failed")
            return error_response(Err.QUERY_FAILED)
        return text_response(f"Response: {format_credits(fresh.balance)}")

    async def coverage(self, request: web.Request) -> web.StreamResponse:
        try:
            params = await self._params(request)
            params.credentials()
            file_format = (params.optional("format") or "1").strip() or "1"
            account = await self._authenticate(request, params)
            render = FORMATS.get(file_format)
            if render is None:
                raise GatewayError(Err.BAD_REQUEST, f"format {file_format!r}")
            rows = account_coverage(await self.gw.coverage_entries(), self._routing(),
                                    account.id, set(self.gw.dispatcher.connectors))
            loop = asyncio.get_running_loop()  # XLS/PDF take CPU: keep the loop free
            document = await loop.run_in_executor(None, render, rows, account.system_id)
        except GatewayError as exc:
            return error_response(exc)
        except Exception:
            log.exception("http coverage download failed")
            return error_response(Err.QUERY_FAILED)
        return web.Response(
            body=document.body, content_type=document.content_type, charset=document.charset,
            headers={"Content-Disposition": f'attachment; filename="{document.filename}"'})


def _replaced(items: Iterable[tuple[str, str]]) -> bool:
    """Whether decoding replaced something: either bytes that were not UTF-8, or a
    genuine U+FFFD (then the strict check below lets it pass)."""
    return any(REPLACEMENT in key or REPLACEMENT in value for key, value in items)


def _check_utf8(raw: str | bytes) -> None:
    """HTTP16 for a query or form body whose %-escapes are not UTF-8: decoding would
    turn them into U+FFFD, and a message would go out with text the client never sent."""
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise GatewayError(Err.BAD_REQUEST, "parameters are not UTF-8") from None
