"""The HTTP upstream connector (SPEC §8): one HTTP request per message to a provider.

The request is made from the connector's templates (`connectors/templates.py`): the URL
with its placeholders URL-encoded, for POST a body escaped for its content type. The
provider's answer decides:

- 2xx, `ok` matches the body ("" = any body) and `id`'s first group is found in it
  ("" = no id regex: our own message id is the upstream id) -> `sent`;
- no answer (refused, reset, timeout), 5xx, 408, 429 -> `failed`, temporary: the
  dispatcher sends it again, by the next route while this one is unavailable;
- anything else (4xx, 3xx: redirects are not followed, a 2xx without `ok` or without
  an id) -> `failed`, permanent, with the HTTP status kept: the message is REJECTD.

At most `tps` requests start a second (a token bucket of 50 ms worth, so that the
starts are paced, not bunched at each second's start) and at most `concurrency` are in
flight. At most MAX_ANSWER bytes of an answer are read: a provider's bug must not eat
our memory, and `ok` and `id` look at the start of an answer anyway.

A circuit breaker: `circuit_failures` temporary failures in a row make the connector
unavailable for `circuit_cooldown` seconds (what it holds is handed back at once, so
the dispatcher fails over to the next route); then one request probes the provider,
and its answer closes the circuit or opens it again. Any answer of the provider, a
permanent refusal included, shows that it is up and resets the count.

The provider's URL is the operator's choice: private addresses are allowed (unlike a
customer's dlrurl, servers/outbound_http.py).
"""

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiohttp
from yarl import URL

from ..core.models import Connector, Message, UpstreamFailure
from ..core.ports import ConnectorEvents
from ..smpp.constants import ESM_UDHI
from ..text import decode_payload, strip_udh
from .flow_control import Circuit, Pacer, RateMeter
from .settings import HttpSettings, SettingsError, mask_secrets
from .templates import body_escape, render, url_escape

log = logging.getLogger(__name__)

MAX_ANSWER = 64 * 1024  # bytes of an answer read; the rest is dropped with the connection
MAX_UPSTREAM_ID = 128  # characters; the DLR endpoint takes ids up to this length
TEMPORARY_STATUSES = frozenset({408, 429})  # and every 5xx
STOP_GRACE = 5.0  # seconds stop() waits for requests in flight (at most the timeout)
SNIPPET = 80  # characters of an answer quoted in a failure's detail
USER_AGENT = "smsgate"


def message_text(message: Message) -> str:
    """The text a provider gets for {text}: the message decoded; for a part the
    customer sent with its own UDH, the part's text without the header."""
    payload = message.payload
    if message.esm_class & ESM_UDHI:
        with contextlib.suppress(ValueError):  # checked at submit; else send it whole
            payload = strip_udh(payload)[1]
    return decode_payload(message.data_coding, payload)


def template_values(message: Message) -> dict[str, str]:
    """The values of the template placeholders for one message (not yet escaped)."""
    text = message_text(message)
    return {"to": message.dest_addr, "from": message.source_addr, "text": text,
            "text_hex_ucs2": text.encode("utf-16-be", "surrogatepass").hex().upper(),
            "coding": str(message.data_coding), "id": str(message.id),
            "parts": str(message.parts)}


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    method: str
    url: str
    body: bytes | None
    headers: dict[str, str]


def build_request(settings: HttpSettings, message: Message) -> ProviderRequest:
    """The request for one message: templates rendered, values escaped where they stand."""
    values = template_values(message)
    url = render(settings.url, values, url_escape)
    if settings.method != "POST":
        return ProviderRequest("GET", url, None, dict(settings.headers))
    body = render(settings.body, values, body_escape(settings.content_type))
    headers = {**settings.headers, "Content-Type": settings.content_type}
    return ProviderRequest("POST", url, body.encode("utf-8"), headers)


class AnswerRules:
    """What a provider's answer means: an upstream id, or why it is a failure."""

    def __init__(self, settings: HttpSettings) -> None:
        self.ok = re.compile(settings.ok) if settings.ok else None
        self.id = re.compile(settings.id) if settings.id else None

    def judge(self, status: int, text: str, message_id: int) -> str | UpstreamFailure:
        if not 200 <= status < 300:
            temporary = status >= 500 or status in TEMPORARY_STATUSES
            return UpstreamFailure(status, temporary, f"HTTP {status}{_quote(text)}")
        if self.ok is not None and not self.ok.search(text):
            return UpstreamFailure(status, False, f"answer does not match ok{_quote(text)}")
        if self.id is None:
            return str(message_id)
        match = self.id.search(text)
        upstream_id = match.group(1) if match else None
        if not upstream_id:
            return UpstreamFailure(status, False, f"no upstream id in the answer{_quote(text)}")
        if len(upstream_id) > MAX_UPSTREAM_ID:
            return UpstreamFailure(status, False,
                                   f"upstream id longer than {MAX_UPSTREAM_ID} characters")
        return upstream_id


def _quote(text: str) -> str:
    """A short, credential-masked piece of an answer for a failure's detail."""
    clean = " ".join(text.split())
    if not clean:
        return ""
    return ": " + mask_secrets(clean[:SNIPPET]) + ("..." if len(clean) > SNIPPET else "")


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most `limit` bytes of the answer; a longer answer's connection is closed
    rather than drained."""
    body = b""
    while len(body) < limit:
        chunk = await response.content.read(limit - len(body))
        if not chunk:
            return body
        body += chunk
    if not response.content.at_eof():
        response.close()
    return body


def answer_text(response: aiohttp.ClientResponse, body: bytes) -> str:
    """The answer as text, in its declared charset (UTF-8 when none or unknown)."""
    try:
        return body.decode(response.charset or "utf-8", "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def describe(exc: BaseException, timeout: float) -> str:
    """A one-line reason for a request without an answer, fit for logs and state()."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return mask_secrets(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def http_settings(connectors: Iterable[Connector]) -> dict[str, HttpSettings]:
    """The settings of the HTTP connectors among `connectors`, by name, enabled or not
    (for the DLR endpoint: a disabled connector's reports still count). One whose
    stored settings are bad is left out: it is logged when it fails to start."""
    settings = {}
    for connector in connectors:
        if connector.type == HttpSettings.TYPE:
            with contextlib.suppress(SettingsError):
                settings[connector.name] = HttpSettings.from_config(connector.config)
    return settings


Outcome = str | UpstreamFailure  # the upstream id, or why the provider did not take it


class HttpConnector:
    """An HTTP provider as an UpstreamConnector (core/ports.py); see the module doc."""

    resend_safe = False  # a request that reached the provider may have sent an SMS

    def __init__(self, name: str, config: dict | HttpSettings) -> None:
        """`config` is the connector row's JSON (checked here: SettingsError, a
        ValueError, when bad) or settings already checked."""
        settings = config if isinstance(config, HttpSettings) else \
            HttpSettings.from_config(config)
        self.name = name
        self.settings = settings
        self.rules = AnswerRules(settings)
        self._events: ConnectorEvents | None = None
        self._session: aiohttp.ClientSession | None = None
        self._queue: deque[Message] = deque()
        self._in_flight: dict[asyncio.Task, Message] = {}
        self._pacer = Pacer(settings.tps)
        self._circuit = Circuit(settings.circuit_failures, settings.circuit_cooldown)
        self._wake: asyncio.TimerHandle | None = None
        self._stopping = False
        self._rate = RateMeter()
        self.sent = 0
        self.temporary_failures = 0
        self.permanent_failures = 0
        self.last_error = ""
        self.last_error_at: float | None = None

    # -- UpstreamConnector -------------------------------------------------------------

    async def start(self, events: ConnectorEvents) -> None:
        self._events = events
        self._stopping = False
        settings = self.settings
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.concurrency),
            timeout=aiohttp.ClientTimeout(total=settings.timeout),
            headers={"User-Agent": USER_AGENT}, trust_env=False)

    async def stop(self) -> None:
        """Stop taking; hand back the queue; give requests in flight a short while
        (then they are cancelled and handed back too: they may have reached the
        provider, and will be sent again); close the session."""
        self._stopping = True
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        self._hand_back("connector stopped")
        tasks = list(self._in_flight)
        if tasks:
            _done, pending = await asyncio.wait(
                tasks, timeout=min(STOP_GRACE, self.settings.timeout))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def send(self, messages: Sequence[Message]) -> None:
        """Queue the messages and start what the limits allow. Refused ones (not
        running, circuit open) are reported on the next loop turn, never from inside
        this call: the caller may be iterating its own queues."""
        assert self._events is not None, "start() first"
        if not self.available:
            why = "circuit open" if self._session is not None and not self._stopping \
                else "connector not running"
            loop = asyncio.get_running_loop()
            for message in messages:
                loop.call_soon(self._report, message, UpstreamFailure(0, True, why))
            return
        self._queue.extend(messages)
        self._start_ready()

    @property
    def available(self) -> bool:
        return self._session is not None and not self._stopping \
            and not self._circuit.is_open(time.monotonic())

    @property
    def room(self) -> int:
        """What can start now (a free slot and a TPS token each), plus a queue of about
        as many as start in a second (at most `concurrency`): enough to stay busy
        between two dispatches, not so many that they wait here rather than by another
        route. While the circuit is half-open: one probe."""
        if not self.available:
            return 0
        now = time.monotonic()
        if self._circuit.probing(now):
            return 0 if self._in_flight or self._queue else 1
        concurrency, tps = self.settings.concurrency, self.settings.tps
        startable = concurrency - len(self._in_flight)
        tokens = self._pacer.available(now)
        if tokens < startable:
            startable = int(tokens)
        queue_limit = min(concurrency, tps) if tps else concurrency
        return max(0, startable + queue_limit - len(self._queue))

    def state(self) -> dict:
        now = time.time()
        return {"in_flight": len(self._in_flight), "queued": len(self._queue),
                "sent": self.sent, "sent_per_second": self._rate.rate(now),
                "available": self.available,
                "errors": self.temporary_failures + self.permanent_failures,
                "temporary_failures": self.temporary_failures,
                "permanent_failures": self.permanent_failures,
                "circuit": self._circuit.describe(time.monotonic()),
                "last_error": self.last_error, "last_error_at": self.last_error_at}

    # -- sending ---------------------------------------------------------------------

    def _start_ready(self) -> None:
        """Start queued requests while a slot and a TPS token are free; when only a
        token is missing, wake up when the next one comes."""
        loop = asyncio.get_running_loop()
        while self._queue and len(self._in_flight) < self.settings.concurrency \
                and not self._stopping:
            now = time.monotonic()
            if self._circuit.probing(now) and self._in_flight:
                return
            if not self._pacer.available(now):
                if self._wake is None:
                    self._wake = loop.call_later(self._pacer.next_at(now) - now,
                                                 self._on_wake)
                return
            self._pacer.take(1, now)
            message = self._queue.popleft()
            task = loop.create_task(self._attempt(message), name=f"http-{self.name}")
            self._in_flight[task] = message
            task.add_done_callback(self._finished)

    def _on_wake(self) -> None:
        self._wake = None
        self._start_ready()

    def _finished(self, task: asyncio.Task) -> None:
        """Every request ends here, and its message gets its one sent or failed."""
        message = self._in_flight.pop(task)
        if task.cancelled():
            self._report(message, UpstreamFailure(0, True, "stopped while in flight"))
        elif task.exception() is not None:  # a bug of ours: log it, try again later
            log.error("connector %s: request for message %s failed", self.name, message.id,
                      exc_info=task.exception())
            self._judged(message, UpstreamFailure(0, True, "internal error"))
        else:
            self._judged(message, task.result())
        self._start_ready()

    def _judged(self, message: Message, outcome: Outcome) -> None:
        """The outcome of a request: counted, told to the circuit, reported."""
        if not isinstance(outcome, UpstreamFailure):
            self._circuit.answered()
            self.sent += 1
            self._rate.add(1, time.time())
            assert self._events is not None
            self._events.sent(message, (outcome,))
            return
        if outcome.temporary:
            self.temporary_failures += 1
        else:
            self.permanent_failures += 1
            self._circuit.answered()  # the provider answered: it is up
        self.last_error, self.last_error_at = outcome.detail, time.time()
        if outcome.temporary and self._circuit.failed(time.monotonic()):
            log.warning("connector %s: %d temporary failures in a row (last: %s); "
                        "unavailable for %g s", self.name, self._circuit.failures_in_row,
                        outcome.detail, self._circuit.cooldown)
            self._hand_back("circuit open")
        self._report(message, outcome)

    async def _attempt(self, message: Message) -> Outcome:
        """One request; its answer judged. Never raises for what the network or the
        provider does."""
        request = build_request(self.settings, message)
        session = self._session
        assert session is not None
        try:
            async with session.request(request.method, URL(request.url), data=request.body,
                                       headers=request.headers,
                                       allow_redirects=False) as response:
                body = await read_capped(response, MAX_ANSWER)
                return self.rules.judge(response.status, answer_text(response, body),
                                        message.id)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return UpstreamFailure(0, True, describe(exc, self.settings.timeout))

    # -- handing back ------------------------------------------------------------------

    def _report(self, message: Message, failure: UpstreamFailure) -> None:
        assert self._events is not None
        self._events.failed(message, failure)

    def _hand_back(self, why: str) -> None:
        """Everything queued goes back to the dispatcher (temporary: sent again,
        maybe by another route). Not a failure of the provider: not counted."""
        queued, self._queue = self._queue, deque()
        for message in queued:
            self._report(message, UpstreamFailure(0, True, why))
