"""Delivery reports from HTTP providers: `GET|POST /connectors/NAME/dlr` (SPEC §8).

An HTTP connector's provider calls this URL for each report, with `id` (the upstream
id its answer gave us), `status` (a word or code) and optionally `err` or `error` (a
numeric error code), in the query string or a form body. The status is mapped with the
connector's `dlr_status` table (upper-cased first) and the report handed to the core
(`Gateway.upstream_report`), which matches it to its message by the upstream id.

Answers are for the provider's retry logic, not for people, so they are plain HTTP:
200 `OK` once the report is stored; 503 when it could not be (the provider tries
again later); 404 for a name that is no HTTP connector; 403 without the connector's
`dlr_token` (when it has one); 400 for a missing, repeated, oversized or unknown
parameter value, with the reason in the body; 413 for a body past MAX_BODY.

The endpoint faces the internet and takes no customer credentials: the HTTP port's
connection caps and deadlines apply (http_connections.py), every parameter is bounded,
a token is compared in constant time, and no token reaches a log line (log_redaction
masks `token=` wherever a library logs a request line). Connectors' settings are read
from the store, not from the running connectors: a provider's reports for messages
sent before its connector was disabled still count. They are re-read at most every
CONFIG_TTL seconds (an unknown name at most every MISS_TTL): a flood of reports costs
no store reads.
"""

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol
from urllib.parse import parse_qsl

from aiohttp import web

from ..core.models import UpstreamReport
from .log_budget import LogBudget

log = logging.getLogger(__name__)

MAX_ID = 128  # the HTTP connector takes upstream ids up to this length (MAX_UPSTREAM_ID)
MAX_WORD = 32  # a status word or code
MAX_ERROR = 32  # an err/error value
MAX_TOKEN = 128
MAX_BODY = 8 * 1024  # a form body: a report is a few dozen bytes
MAX_FIELDS = 50  # form fields parsed at most
MAX_ERROR_CODE = 2**31 - 1
CONFIG_TTL = 5.0  # seconds between two reads of the connectors' settings
MISS_TTL = 1.0  # ... when asked for a name not known at the last read
FORM_TYPE = "application/x-www-form-urlencoded"


class DlrSettings(Protocol):
    """What the endpoint needs of an HTTP connector's settings (HttpSettings has it)."""

    dlr_status: Mapping[str, str]  # provider's word, upper case -> our status
    dlr_token: str  # "" = none asked


# The HTTP connectors' settings by name, as the store has them (the App wires it).
SettingsLoader = Callable[[], Awaitable[Mapping[str, DlrSettings]]]


class DlrRefused(Exception):
    """A report that is not taken: the HTTP status and the reason (the body)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_report(name: str, settings: DlrSettings, pairs: Iterable[tuple[str, str]],
                 now: float) -> UpstreamReport:
    """The report that the parameters `pairs` (query, then form body) give for the
    connector `name`; DlrRefused when they do not make one."""
    values = _single_values(pairs)
    _check_token(settings.dlr_token, values.get("token"))
    upstream_id = _required(values, "id", MAX_ID)
    word = _required(values, "status", MAX_WORD).upper()
    status = settings.dlr_status.get(word)
    if status is None:
        raise DlrRefused(400, f"unknown status {word!r} for connector {name} (known: "
                         f"{' '.join(sorted(settings.dlr_status))})")
    return UpstreamReport(connector=name, upstream_ids=(upstream_id,), status=status,
                          at=now, error_code=_error_code(values))


def _single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The parameters the endpoint reads, each given once; others are ignored."""
    values: dict[str, str] = {}
    for key, value in pairs:
        if key not in ("id", "status", "err", "error", "token"):
            continue
        if key in values:
            raise DlrRefused(400, f"{key} given more than once")
        values[key] = value
    if "err" in values and "error" in values:
        raise DlrRefused(400, "err and error both given")
    return values


def _check_token(expected: str, given: str | None) -> None:
    if not expected:
        return
    candidate = (given or "")[:MAX_TOKEN + 1].encode("utf-8", "replace")
    if not hmac.compare_digest(candidate, expected.encode("ascii")):
        raise DlrRefused(403, "missing or wrong token")


def _required(values: Mapping[str, str], key: str, limit: int) -> str:
    value = values.get(key, "").strip()
    if not value:
        raise DlrRefused(400, f"{key} missing")
    if len(value) > limit:
        raise DlrRefused(400, f"{key} longer than {limit} characters")
    if any(c < " " or "\x7f" <= c < "\xa0" for c in value):
        raise DlrRefused(400, f"{key} has control characters")
    return value


def _error_code(values: Mapping[str, str]) -> int:
    """A decimal (or 0x hex) error code; anything else is not kept (0): a report with
    a provider's own error text must not be refused, and so lost, for it."""
    text = values.get("err", values.get("error", "")).strip()
    if len(text) > MAX_ERROR:
        raise DlrRefused(400, f"err longer than {MAX_ERROR} characters")
    try:
        code = int(text[2:], 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        return 0
    return min(max(code, 0), MAX_ERROR_CODE)


class ConnectorSettingsCache:
    """The HTTP connectors' DLR settings, read through `load` at most every
    CONFIG_TTL seconds (MISS_TTL for a name not found); one read at a time. If a
    read fails, the last table serves on (none yet: the error goes to the caller)."""

    def __init__(self, load: SettingsLoader) -> None:
        self._load = load
        self._table: Mapping[str, DlrSettings] | None = None
        self._loaded_at = -float("inf")
        self._loading: asyncio.Future | None = None

    async def get(self, name: str) -> DlrSettings | None:
        age = time.monotonic() - self._loaded_at
        table = self._table
        if table is None or age > CONFIG_TTL or (name not in table and age > MISS_TTL):
            table = await self._reload()
        return table.get(name)

    async def _reload(self) -> Mapping[str, DlrSettings]:
        """Callers that come while a read runs share it; a caller that goes away does
        not cancel it for the others."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._read())
        return await asyncio.shield(self._loading)

    async def _read(self) -> Mapping[str, DlrSettings]:
        try:
            self._table = await self._load()
        except Exception:
            if self._table is None:
                raise
            log.exception("reading the connectors' settings failed; the last ones serve")
        self._loaded_at = time.monotonic()
        return self._table


# Handing a report to the core: True once it is stored (Gateway.upstream_report).
ReportSink = Callable[[UpstreamReport], Awaitable[bool]]


class DlrEndpoint:
    """The request handler (HttpApi routes `/connectors/{name}/dlr` here)."""

    def __init__(self, load: SettingsLoader, report: ReportSink, body_timeout: float) -> None:
        self.settings = ConnectorSettingsCache(load)
        self._report = report
        self._body_timeout = body_timeout
        self._log_budget = LogBudget(lines=20)  # refusals logged a minute, all names
        self.stored = 0  # counters, for metrics and tests
        self.refused = 0
        self.not_stored = 0

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            if request.method not in ("GET", "POST"):
                raise DlrRefused(405, "use GET or POST")
            settings = await self._settings_of(name)
            pairs = [*request.query.items(), *await self._form(request)]
            report = parse_report(name, settings, pairs, time.time())
        except DlrRefused as exc:
            self.refused += 1
            self._log_refusal(request, name, exc)
            return _answer(exc.status, exc.reason)
        return await self._store(report)

    async def _settings_of(self, name: str) -> DlrSettings:
        try:
            settings = await self.settings.get(name)
        except Exception:
            log.exception("reading the connectors' settings failed")
            raise DlrRefused(503, "connector settings unavailable, try again") from None
        if settings is None:
            raise DlrRefused(404, "no such HTTP connector")
        return settings

    async def _form(self, request: web.Request) -> list[tuple[str, str]]:
        """A form body's parameters, read up to MAX_BODY (a longer body's declared
        length is refused before reading it) within the body deadline."""
        if request.method != "POST" or request.content_type != FORM_TYPE:
            return []
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise DlrRefused(413, f"body longer than {MAX_BODY} bytes")
        body = b""
        try:
            async with asyncio.timeout(self._body_timeout):
                while len(body) <= MAX_BODY:
                    chunk = await request.content.read(MAX_BODY + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
        except TimeoutError:
            raise DlrRefused(408, "body not received in time") from None
        if len(body) > MAX_BODY:
            raise DlrRefused(413, f"body longer than {MAX_BODY} bytes")
        try:
            return parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                             max_num_fields=MAX_FIELDS)
        except UnicodeDecodeError:
            raise DlrRefused(400, "form body is not UTF-8") from None
        except ValueError:
            raise DlrRefused(400, f"more than {MAX_FIELDS} form fields") from None

    async def _store(self, report: UpstreamReport) -> web.Response:
        try:
            stored = await self._report(report)
        except Exception:
            log.exception("delivery report of connector %s not stored", report.connector)
            stored = False
        if not stored:
            self.not_stored += 1
            return _answer(503, "not stored, try again")
        self.stored += 1
        return _answer(200, "OK")

    def _log_refusal(self, request: web.Request, name: str, refusal: DlrRefused) -> None:
        """Refusals are what an operator needs to see when a provider is set up
        wrong; a budget keeps a flood of bad requests from flooding the log."""
        if refusal.status == 503 or not self._log_budget.take(time.monotonic()):
            return
        suppressed = self._log_budget.take_suppressed()
        log.warning("delivery report for connector %r from %s refused (%d): %s%s",
                    name[:40], request.remote, refusal.status, refusal.reason,
                    f" ({suppressed} more refused since the last line)" if suppressed else "")


def _answer(status: int, text: str) -> web.Response:
    headers = {"Allow": "GET, POST"} if status == 405 else None
    return web.Response(status=status, text=text, content_type="text/plain",
                        charset="utf-8", headers=headers)
