"""The HTTP API of the seed document: `/websmpp/` on aiohttp (SPEC §3).

Every answer is `text/plain; charset=utf-8` with status 200, `Response: ...` or one of
the error table's `ERROR - HTTPnn --> ...` lines (clients parse the body), except the
coverage download. Parameters come from the query string and, for POST, from a form
body. Submits go through the core pipeline's `submit_all`: all destinations are stored
and charged in one group commit, or none; the answer is written only after the commit.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client.registry import CollectorRegistry

from ..core.coverage import account_coverage
from ..core.errors import Err, GatewayError
from ..core.gateway import Gateway
from ..core.models import ALL_STATUSES, UNKNOWN, Account, format_credits
from ..core.ports import StoreError
from ..core.routing import RoutingTable
from .coverage_files import FORMATS
from .http_callbacks import CallbackConfig, DlrCallbacks
from .http_params import Params, SubmitFields, submit_request
from .metrics import exposition

log = logging.getLogger(__name__)

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
METHODS = frozenset({"GET", "POST"})


@dataclass
class HttpApiConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_get_destinations: int = 100  # seed: GET up to 100 numbers
    max_post_destinations: int = 10_000  # seed: POST up to 10,000
    max_body: int = 2 * 1024 * 1024  # a 10,000-number POST is ~160 KB
    status_requires_auth: bool = False  # SPEC §3.2: a global setting may demand user/pass
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    metrics: bool = True  # GET /metrics for Prometheus (the App builds the registry)


def text_response(line: str) -> web.Response:
    return web.Response(text=line, content_type="text/plain", charset="utf-8")


def error_response(error: Err | GatewayError) -> web.Response:
    return text_response(error.http_line)


class HttpApi:
    def __init__(self, gateway: Gateway, config: HttpApiConfig,
                 routing: Callable[[], RoutingTable], callbacks: DlrCallbacks,
                 metrics: CollectorRegistry | None = None) -> None:
        self.gw = gateway
        self.config = config
        self._routing = routing
        self.callbacks = callbacks
        self.metrics = metrics  # None: no /metrics route
        # From now on, not only once started: statuses of messages recovered at start
        # must have their callbacks recorded too (they are sent once we have started).
        callbacks.attach(gateway.store, gateway.node)
        gateway.dispatcher.set_recorder(callbacks.record)
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] = ("", 0)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body)
        add = app.router.add_route
        add("*", "/websmpp/websms", self.websms)
        add("*", "/websmpp/websmsstatus", self.status)
        add("*", "/websmpp/balanceReport", self.balance)
        add("*", "/websmpp/downloadcoverage", self.coverage)
        if self.metrics is not None:
            add("GET", "/metrics", self.metrics_page)
        add("*", "/{path:.*}", self.unknown_path)
        return app

    async def start(self) -> tuple[str, int]:
        await self.callbacks.start()
        self._runner = web.AppRunner(self.application(), access_log=None,
                                     handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port,
                           reuse_address=True, backlog=1024)
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
        if request.method not in METHODS:
            raise GatewayError(Err.UNKNOWN_PATH, f"method {request.method}")
        if request.method == "POST" and request.content_type in FORM_TYPES:
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise GatewayError(Err.BAD_REQUEST, "body too large") from None
            fields = ((k, v) for k, v in form.items() if isinstance(v, str))
            return Params(request.query.items(), fields)
        return Params(request.query.items())

    async def _authenticate(self, request: web.Request, params: Params) -> Account:
        user, password = params.credentials()
        return await self.gw.authenticate(user, password, channel="http",
                                          peer_ip=request.remote)

    async def metrics_page(self, request: web.Request) -> web.Response:
        # Collected on the loop: reading counters and /proc takes well under a millisecond.
        body, content_type = exposition(self.metrics, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def unknown_path(self, request: web.Request) -> web.Response:
        return error_response(Err.UNKNOWN_PATH)

    # -- submit ------------------------------------------------------------------------

    async def websms(self, request: web.Request) -> web.Response:
        try:
            params = await self._params(request)
            params.credentials()  # HTTP02 for every parameter before any auth error
            fields = SubmitFields.read(params)
            account = await self._authenticate(request, params)
            limit = (self.config.max_post_destinations if request.method == "POST"
                     else self.config.max_get_destinations)
            ids = await self.gw.pipeline.submit_all(submit_request(fields, account, limit))
        except GatewayError as exc:
            self.gw.refused["http", exc.error] += 1
            return error_response(exc)
        except StoreError as exc:  # nothing was stored nor charged
            log.error("http submit failed: %s", exc)
            return error_response(Err.INTERNAL)
        except Exception:
            log.exception("http submit failed")
            return error_response(Err.INTERNAL)
        return text_response("Response: " + ",".join(map(str, ids)))

    # -- queries -----------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        try:
            params = await self._params(request)
            message_id = params.one("respId", "respid")
            account = None
            if params.has_credentials() or self.config.status_requires_auth:
                account = await self._authenticate(request, params)
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

    async def _owner_requires_auth(self, account_id: int) -> bool:
        owner = self.gw.accounts.by_id(account_id)
        if owner is None:  # added since the directory's last reload
            owner = await self.gw.store.get_account_by_id(account_id)
        return owner is not None and owner.status_auth

    async def balance(self, request: web.Request) -> web.Response:
        try:
            params = await self._params(request)
            account = await self._authenticate(request, params)
            fresh = await self.gw.store.get_account_by_id(account.id)  # the cache may lag
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
            rows = account_coverage(await self.gw.store.list_coverage(), self._routing(),
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
