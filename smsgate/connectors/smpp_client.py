"""The SMPP client connector (SPEC §8): binds to an upstream SMSC and sends it messages.

It keeps `binds` sessions (TRx, or Tx plus `rx_binds` Rx in tx+rx mode), each a link
(smpp_link.py) over the shared sans-I/O session core, reconnecting with backoff
(reconnect_min doubling to reconnect_max, reset by a bind that succeeded). Messages
become submit_sm parts (smpp_parts.py) in a queue that is pumped once per loop turn
into the links' free windows, at most `tps` a second over all of them (a shared pacer),
one socket write per link per turn, no timer or Future per message.

What each answer means:
- ESME_ROK: the part's upstream id is kept; `sent(message, ids)` once every part has one.
  The part keeps its window slot until the core has stored the ids (`_settle`): what a
  crash can send twice stays within the window.
- ESME_RTHROTTLED / ESME_RMSGQFUL: that link pauses (0.1 s, doubling while it goes on,
  at most 2 s) and the same part is sent again; nothing is reported.
- No answer within response_timeout, the link lost before the answer, or another
  temporary status (smpp.constants.TEMPORARY_STATUSES): `failed(temporary)`, and the
  core dispatches the message again, maybe by another route. A multipart message some
  of whose parts the SMSC took already only has the failed part sent again (a few
  times), so that the handset does not get the other parts twice.
- Anything else: `failed(permanent)` with the SMSC's status.

`available` is False while no transmitting session is bound, and for a cool-down after
`CIRCUIT_FAILURES` temporary failures in a row, so that the dispatcher fails over;
messages queued here then go back (`failed`, temporary). Receipts and MO that the SMSC
sends are handed to the core and answered ESME_ROK only once it stored them.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ..core.models import Message, UpstreamFailure
from ..core.ports import ConnectorEvents
from ..smpp.constants import TEMPORARY_STATUSES, CommandId, Status
from ..smpp.pdu import Pdu
from .flow_control import Pacer, RateMeter
from .settings import SmppSettings
from .smpp_inbound import BadReport, is_report, read_inbound, read_report
from .smpp_link import SmppLink, client_tls_context, status_name
from .smpp_parts import PartsError, SubmitBuilder
from .smpp_queue import PartQueue, Pump, Submission, Ticket

log = logging.getLogger(__name__)

SLOW_DOWN = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})
THROTTLE_PAUSE = 0.1  # seconds a throttled link waits, doubling while it is throttled
THROTTLE_PAUSE_MAX = 2.0
CIRCUIT_FAILURES = 5  # temporary failures in a row that make the connector unavailable
COOL_DOWN = 5.0  # seconds it then stays unavailable (one more failure: again)
PART_RETRIES = 3  # resends of one part of a multipart message the SMSC took in part
STOP_GRACE = 5.0  # stop(): at most this long for answers in flight (and response_timeout)
UNBIND_GRACE = 1.0  # stop(): for the SMSC to answer unbind


@dataclass
class Counts:
    """What `state()` reports besides the live figures (plain ints: JSON as they are)."""

    sent: int = 0  # messages every part of which the SMSC took
    refused: int = 0  # permanent refusals (of a part, or of a message we cannot send)
    failed_temporary: int = 0  # messages handed back to be sent again
    throttled: int = 0  # ESME_RTHROTTLED / ESME_RMSGQFUL answers
    timeouts: int = 0  # parts unanswered within response_timeout
    reconnects: int = 0  # connection attempts after the first, per session
    reports: int = 0  # receipts handed to the core
    inbound: int = 0  # MO handed to the core
    bad_reports: int = 0  # receipts without any id (answered ESME_ROK, logged)


class SmppConnector:
    resend_safe = False  # a message sent twice is an SMS twice

    def __init__(self, name: str, config: dict | SmppSettings) -> None:
        """`config` is the connector row's JSON (checked here: SettingsError, a
        ValueError, when bad) or settings already checked."""
        self.name = name
        self.settings = s = config if isinstance(config, SmppSettings) \
            else SmppSettings.from_config(config)
        self._tls = client_tls_context(s)
        self._builder = SubmitBuilder(s)
        self._pacer = Pacer(s.tps)
        self._meter = RateMeter()
        self._kinds = ["trx"] * s.binds if s.mode == "trx" else \
            ["tx"] * s.binds + ["rx"] * s.rx_binds
        self._events: ConnectorEvents | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._links: list[SmppLink] = []  # connected, bound or not
        self._senders: list[SmppLink] = []  # bound and able to send
        self._queue = PartQueue()
        self._pump = Pump(self._queue, self._pacer, self._senders, self._unencodable)
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._failures = 0  # temporary failures since the last success
        self._cool_until = 0.0
        self.counts = Counts()
        self.last_error = ""

    # -- the UpstreamConnector port ----------------------------------------------------

    async def start(self, events: ConnectorEvents) -> None:
        self._events = events
        self._loop = loop = asyncio.get_running_loop()
        self._pump.start(loop)
        for number, kind in enumerate(self._kinds, 1):
            self._tasks.append(loop.create_task(self._keep_bound(number, kind),
                                                name=f"smpp-{self.name}-{number}"))

    @property
    def available(self) -> bool:
        return bool(self._senders) and not self._stopping and \
            self._loop is not None and self._loop.time() >= self._cool_until

    @property
    def room(self) -> int:
        if not self.available:
            return 0
        now = self._loop.time()  # type: ignore[union-attr]
        free = sum(link.free for link in self._senders if link.ready(now))
        return max(0, min(free, self._pacer.available(now)) - self._queue.parts)

    def send(self, messages: Sequence[Message]) -> None:
        if self._stopping or self._events is None:
            for message in messages:
                self._report_failed(message, UpstreamFailure(0, True, "connector stopped"))
            return
        for message in messages:
            try:
                pdus = self._builder.submits(message)
            except PartsError as exc:
                self.counts.refused += 1
                self._report_failed(message, UpstreamFailure(
                    Status.ESME_RINVMSGLEN, False, f"cannot split the text: {exc}"))
                continue
            self._queue.add(Submission(message, pdus))
        self._pump.schedule()

    def state(self) -> dict:
        now = self._loop.time() if self._loop is not None else 0.0
        return {
            "binds_up": sum(1 for link in self._links if link.bound),
            "binds_wanted": len(self._kinds),
            "transmitters_up": len(self._senders),
            "window_in_use": sum(len(link.inflight) for link in self._senders),
            "window": self.settings.window * len(self._senders),
            "queued": self._queue.parts,
            "sent_per_second": round(self._meter.rate(now), 1),
            "available": self.available,
            "errors": self.counts.refused + self.counts.failed_temporary + self.counts.timeouts,
            **asdict(self.counts),
            "last_error": self.last_error,
        }

    async def stop(self) -> None:
        """Take nothing more; hand back what is queued; give the answers in flight a
        moment; unbind; anything still unanswered is handed back by its link."""
        if self._stopping:
            return
        self._stopping = True
        self._pump.stop()
        self._hand_back("connector stopping")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(self.settings.response_timeout, STOP_GRACE)
        while any(link.inflight for link in self._links) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        links = list(self._links)
        for link in links:
            link.unbind()
        await _wait_finished(links, UNBIND_GRACE)
        for link in links:
            link.abort()
        await _wait_finished(links, UNBIND_GRACE)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- sessions: connect, bind, reconnect --------------------------------------------

    async def _keep_bound(self, number: int, kind: str) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        delay = s.reconnect_min
        label = f"{self.name}#{number} {kind}"
        while not self._stopping:
            link = SmppLink(self, s, label, kind, loop)
            try:
                await asyncio.wait_for(loop.create_connection(
                    lambda link=link: link, s.host, s.port, ssl=self._tls,
                    server_hostname=s.host if self._tls else None), s.response_timeout)
            except (OSError, TimeoutError) as exc:
                why = f"connect to {s.host}:{s.port} failed: {exc or type(exc).__name__}"
            except Exception as exc:  # a bug: logged, and the session is tried again
                log.exception("smpp %s: connecting failed", label)
                why = f"connect failed: {exc!r}"
            else:
                self._links.append(link)
                try:
                    await asyncio.shield(link.finished)
                finally:
                    self._links.remove(link)
                why = link.end_reason
                if link.was_bound:
                    delay = s.reconnect_min
            if self._stopping:
                return
            self.last_error = f"{label}: {why}"
            self.counts.reconnects += 1
            log.warning("smpp %s: %s; reconnecting in %g s", label, why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.reconnect_max)

    # -- LinkOwner: what the links tell -------------------------------------------------

    def link_bound(self, link: SmppLink) -> None:
        if link.sends:
            self._senders.append(link)
            self._pump.schedule()

    def link_ready(self, link: SmppLink) -> None:
        self._pump.schedule()

    def link_lost(self, link: SmppLink) -> None:
        """One failure for the circuit, however many submit_sm it took along."""
        if link in self._senders:
            self._senders.remove(link)
        if link.was_bound and not self._stopping:
            self._note_failure(UpstreamFailure(0, True, f"{link.label}: {link.end_reason}"))
        if not self._senders:
            self._hand_back("no session bound")

    def answered(self, link: SmppLink, ticket: Ticket, response: Pdu) -> None:
        submission, part = ticket
        status = response.status
        if response.command_id == CommandId.generic_nack and not status:
            status = Status.ESME_RSYSERR  # a nack without a reason: try again
        if not status:
            link.throttles = 0
            self._failures = 0
            if not submission.finished:  # its slot stays taken until the mark is stored
                link.unsettled += 1
                submission.unsettled.append(link)
            self._part_sent(submission, part, response.get("message_id", ""))
        elif status in SLOW_DOWN:
            self.counts.throttled += 1
            link.slow_down(self._loop.time(), THROTTLE_PAUSE, THROTTLE_PAUSE_MAX)  # type: ignore[union-attr]
            self._queue.again(submission, part)
        elif status in TEMPORARY_STATUSES:
            failure = UpstreamFailure(status, True, status_name(status))
            self._note_failure(failure)
            self._part_failed(submission, part, failure)
        else:
            self.counts.refused += 1
            self._finish_failed(submission, UpstreamFailure(status, False,
                                                            status_name(status)))
        self._pump.schedule()

    def unanswered(self, link: SmppLink, ticket: Ticket, why: str,
                   timed_out: bool) -> None:
        failure = UpstreamFailure(0, True, why)
        if timed_out:  # a lost link counts once, in link_lost
            self.counts.timeouts += 1
            self._note_failure(failure)
        self._part_failed(*ticket, failure)

    def received(self, link: SmppLink, pdu: Pdu) -> None:
        """A receipt or an MO: to the core, answered when it says it stored it."""
        events = self._events
        now = time.time()
        try:
            if is_report(pdu):
                try:
                    report = read_report(pdu, self.name, self.settings.id_format, now)
                except BadReport as exc:
                    self.counts.bad_reports += 1
                    log.warning("smpp %s: a receipt without an id, dropped: %s",
                                link.label, exc)
                    return link.answer_later(pdu)(True)
                self.counts.reports += 1
                events.report(report, link.answer_later(pdu))  # type: ignore[union-attr]
            else:
                self.counts.inbound += 1
                events.inbound(read_inbound(pdu, self.name, now),  # type: ignore[union-attr]
                               link.answer_later(pdu))
        except Exception:  # the core failed: let the SMSC send it again
            log.exception("smpp %s: handing %s to the core failed", link.label, pdu.name)
            link.answer_later(pdu)(False)

    # -- outcomes ----------------------------------------------------------------------

    def _part_sent(self, submission: Submission, part: int, upstream_id: str) -> None:
        self._meter.add(1, self._loop.time())  # type: ignore[union-attr]
        if submission.finished:
            return  # reported failed meanwhile: nothing more to say
        ids = submission.ids
        if ids is None:
            ids = [upstream_id]
        else:
            ids[part] = upstream_id
            submission.acked += 1
            if submission.acked < len(ids):
                return
        submission.finished = True
        self.counts.sent += 1
        stored = None
        try:
            stored = self._events.sent(submission.message, ids)  # type: ignore[union-attr]
        except Exception:
            log.exception("smpp %s: sent() failed for message %s", self.name,
                          submission.message.id)
        if stored is None or stored.done():
            self._settle(submission)
        else:
            stored.add_done_callback(lambda _f: self._settle(submission))

    def _settle(self, submission: Submission) -> None:
        """Free the window slots of a message's answered parts: its sent mark is stored
        (or it failed). Until then a crash would send it again, so it counts as in
        flight: what a kill -9 can send twice stays within binds x window."""
        if submission.unsettled:
            for link in submission.unsettled:
                link.unsettled -= 1
            submission.unsettled.clear()
            self._pump.schedule()

    def _part_failed(self, submission: Submission, part: int,
                     failure: UpstreamFailure) -> None:
        if submission.finished:
            return
        if submission.acked and submission.retries < PART_RETRIES and not self._stopping:
            submission.retries += 1  # the other parts went: send only this one again
            return self._queue.again(submission, part)
        self._finish_failed(submission, failure)

    def _finish_failed(self, submission: Submission, failure: UpstreamFailure) -> None:
        if not submission.finished:
            submission.finished = True
            self._settle(submission)
            self._report_failed(submission.message, failure)

    def _report_failed(self, message: Message, failure: UpstreamFailure) -> None:
        if failure.temporary:
            self.counts.failed_temporary += 1
        try:
            self._events.failed(message, failure)  # type: ignore[union-attr]
        except Exception:
            log.exception("smpp %s: failed() failed for message %s", self.name, message.id)

    def _note_failure(self, failure: UpstreamFailure) -> None:
        """Temporary failures in a row open the circuit: unavailable for a cool-down."""
        self._failures += 1
        self.last_error = failure.detail or status_name(failure.status)
        now = self._loop.time()  # type: ignore[union-attr]
        if self._failures >= CIRCUIT_FAILURES and now >= self._cool_until \
                and not self._stopping:
            self._cool_until = now + COOL_DOWN
            log.warning("smpp %s: %d temporary failures in a row (%s): unavailable for "
                        "%g s", self.name, self._failures, self.last_error, COOL_DOWN)
            self._hand_back("upstream failing")
            self._pump.hold(self._cool_until)

    def _unencodable(self, submission: Submission, exc: Exception) -> None:
        self.counts.refused += 1
        self._finish_failed(submission, UpstreamFailure(
            Status.ESME_RSYSERR, False, f"cannot encode submit_sm: {exc}"))

    def _hand_back(self, why: str) -> None:
        """Every queued message goes back to the core (failed, temporary)."""
        failure = UpstreamFailure(0, True, why)
        for submission in self._queue.take_all():
            self._finish_failed(submission, failure)


async def _wait_finished(links: list[SmppLink], timeout: float) -> None:
    pending = [link.finished for link in links if not link.finished.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
