"""Prometheus metrics, read at scrape time from the plain int counters the components
keep already.

The hot path runs ~20,000 messages/s on one core, so nothing there touches
prometheus_client: components count with `+= 1` and `GatewayCollector.collect` turns
the counts into metric families when Prometheus asks. The registry is private (not
prometheus_client's global one), so that tests and several gateways in one process each
see their own numbers.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from aiohttp import web
from prometheus_client import (
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from ..core.binds import RX, TRX, TX
from ..core.gateway import Gateway
from ..core.health import HealthCheck
from ..core.traffic import LatencyHistogram
from .http_callbacks import HttpCallbacks
from .http_connections import ConnectionGuard
from .smpp_server import SmppServer

BIND_KINDS = (TX, RX, TRX)


class WriterCounters(Protocol):
    """What metrics read of store.writer.BatchWriter (servers/ do not import store/)."""

    batches: int
    items: int
    last_batch_size: int
    failed_batches: int
    commit_seconds: LatencyHistogram

    @property
    def queued(self) -> int: ...


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def labelled(family: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str,
             documentation: str, labels: Sequence[str],
             values: Mapping[tuple[str, ...], float]) -> Metric:
    metric = family(name, documentation, labels=labels)
    for label_values, value in sorted(values.items()):
        metric.add_metric(label_values, value)
    return metric


def histogram(name: str, documentation: str, label: str,
              histograms: Mapping[str, LatencyHistogram]) -> HistogramMetricFamily:
    metric = HistogramMetricFamily(name, documentation, labels=[label])
    for value, observed in sorted(histograms.items()):
        metric.add_metric([value], observed.cumulative(), observed.sum)
    return metric


class GatewayCollector(Collector):
    """The gateway's own metrics, named smsgate_*."""

    def __init__(self, gateway: Gateway, writer: WriterCounters, smpp: SmppServer,
                 callbacks: HttpCallbacks) -> None:
        self.gw = gateway
        self.writer = writer
        self.smpp = smpp
        self.callbacks = callbacks
        self.http_guard: ConnectionGuard | None = None  # set once the HTTP API is built
        self.connector_states: Callable[[], Mapping[str, str]] = dict  # name -> state

    def collect(self) -> Iterable[Metric]:
        # Which node answered: with `serve --workers N` each scrape reads one worker.
        yield labelled(GaugeMetricFamily, "smsgate_node_info",
                       "1, labelled with the node id of the process that answered.",
                       ["node"], {(self.gw.node,): 1})
        yield from self._submits()
        yield from self._accounts()
        yield from self._dispatch()
        yield from self._connectors()
        yield from self._store()
        yield from self._receipts()
        yield from self._callbacks()
        yield from self._smpp()
        yield from self._http()

    def _submits(self) -> Iterable[Metric]:
        pipeline = self.gw.pipeline
        yield labelled(CounterMetricFamily, "smsgate_messages_accepted_total",
                       "Messages stored and charged, by the channel they came in on.",
                       ["channel"], {(c,): n for c, n in pipeline.accepted.items()})
        yield labelled(CounterMetricFamily, "smsgate_submits_refused_total",
                       "Submissions refused, by channel, error and the error's HTTP code.",
                       ["channel", "error", "code"],
                       {(channel, e.name, e.http_code): n
                        for (channel, e), n in self.gw.refused.items()})

    def _accounts(self) -> Iterable[Metric]:
        stats = self.gw.pipeline.stats
        system_ids = {}
        for account_id in {*stats.accepted_by_account, *(k[0] for k in stats.statuses)}:
            account = self.gw.accounts.by_id(account_id)
            system_ids[account_id] = account.system_id if account else f"#{account_id}"
        yield labelled(CounterMetricFamily, "smsgate_account_messages_accepted_total",
                       "Messages stored and charged, by account.", ["account"],
                       {(system_ids[a],): n for a, n in stats.accepted_by_account.items()})
        by_account: dict[tuple[str, str], int] = {}
        for (account_id, _connector, status), n in stats.statuses.items():
            key = (system_ids[account_id], status)
            by_account[key] = by_account.get(key, 0) + n
        yield labelled(CounterMetricFamily, "smsgate_account_message_statuses_total",
                       "Final message statuses, by account and status.", ["account", "status"],
                       by_account)
        yield histogram("smsgate_submit_ack_seconds",
                        "From a submission's arrival to its answer (stored and charged), "
                        "by channel.", "channel", stats.submit_to_ack)

    def _connectors(self) -> Iterable[Metric]:
        stats = self.gw.pipeline.stats
        by_connector: dict[tuple[str, str], int] = {}
        for (_account, connector, status), n in stats.statuses.items():
            by_connector[connector, status] = by_connector.get((connector, status), 0) + n
        yield labelled(CounterMetricFamily, "smsgate_connector_message_statuses_total",
                       "Final message statuses, by connector and status.", ["connector", "status"],
                       by_connector)
        yield labelled(GaugeMetricFamily, "smsgate_connector_up",
                       "1 for a connector up on this node (running, able to send), else 0.",
                       ["connector", "state"],
                       {(name, state): float(state == "up")
                        for name, state in self.connector_states().items()})
        yield histogram("smsgate_submit_final_seconds",
                        "From a message's arrival to its final status, by connector.",
                        "connector", stats.submit_to_final)

    def _dispatch(self) -> Iterable[Metric]:
        dispatcher = self.gw.dispatcher
        yield counter("smsgate_messages_dispatched_total",
                      "Messages handed to their upstream connector.", dispatcher.dispatched)
        yield gauge("smsgate_dispatch_queued",
                    "Messages waiting for their connector to become ready.", dispatcher.queued)
        yield counter("smsgate_dispatch_spilled_total",
                      "Messages left in the store, not memory, for a connector that had "
                      "dispatch_max_queued waiting (sent once it drains).", dispatcher.spilled)
        yield labelled(CounterMetricFamily, "smsgate_message_statuses_total",
                       "Message statuses reported by upstreams (and expiry), by status.",
                       ["status"], {(s,): n for s, n in dispatcher.statuses.items()})
        sent = {(name,): connector.sent for name, connector in dispatcher.connectors.items()
                if isinstance(getattr(connector, "sent", None), int)}  # not every type counts
        yield labelled(CounterMetricFamily, "smsgate_connector_sent_total",
                       "Messages sent upstream, by connector.", ["connector"], sent)

    def _store(self) -> Iterable[Metric]:
        writer = self.writer
        yield counter("smsgate_store_commits_total",
                      "Group commits started by the batch writer.", writer.batches)
        yield counter("smsgate_store_commit_items_total",
                      "Items (messages, statuses, receipts, ...) in those commits.", writer.items)
        yield counter("smsgate_store_failed_commits_total",
                      "Group commit transactions that failed (on PostgreSQL a batch's new "
                      "messages and the rest of it are two).", writer.failed_batches)
        commits = HistogramMetricFamily(
            "smsgate_store_commit_seconds",
            "Time each group commit took (the store's write: 1 ms to 5 s).")
        commits.add_metric([], writer.commit_seconds.cumulative(), writer.commit_seconds.sum)
        yield commits
        yield gauge("smsgate_store_last_commit_items",
                    "Items in the latest group commit.", writer.last_batch_size)
        yield gauge("smsgate_store_queued",
                    "Items waiting for the next group commit.", writer.queued)

    def _receipts(self) -> Iterable[Metric]:
        yield counter("smsgate_receipts_delivered_total",
                      "Receipts and MO (deliver_sm) acknowledged by SMPP receivers.",
                      self.gw.receipts.delivered)

    def _callbacks(self) -> Iterable[Metric]:
        callbacks = self.callbacks
        yield counter("smsgate_callbacks_delivered_total",
                      "HTTP callbacks (dlrurl, mo-url) answered by the customer's server.",
                      callbacks.delivered)
        yield counter("smsgate_callbacks_retried_total",
                      "HTTP callback attempts that failed and were rescheduled.",
                      callbacks.retried)
        yield counter("smsgate_callbacks_failed_total",
                      "HTTP callbacks given up after max_age.", callbacks.failed)
        yield counter("smsgate_callbacks_unstored_total",
                      "HTTP callbacks whose commit failed (with what they report).",
                      callbacks.unstored)
        yield counter("smsgate_callbacks_refused_total",
                      "HTTP callbacks not sent: the target is not a public address.",
                      callbacks.refused)
        yield gauge("smsgate_callbacks_in_memory",
                    "HTTP callbacks queued or in flight on this node.", callbacks.in_memory)

    def _smpp(self) -> Iterable[Metric]:
        connections = self.smpp.connections
        binds = dict.fromkeys(BIND_KINDS, 0)
        for connection in connections:
            if connection.account is not None:
                binds[connection.bind_kind] = binds.get(connection.bind_kind, 0) + 1
        yield gauge("smsgate_smpp_connections",
                    "Open SMPP connections, bound or not (plain and TLS ports).",
                    len(connections))
        yield labelled(GaugeMetricFamily, "smsgate_smpp_binds",
                       "Bound SMPP sessions, by bind kind.", ["kind"],
                       {(kind,): n for kind, n in binds.items()})

    def _http(self) -> Iterable[Metric]:
        guard = self.http_guard
        if guard is None:
            return
        yield gauge("smsgate_http_connections", "Open HTTP API connections.",
                    guard.limiter.total)
        yield counter("smsgate_http_connections_refused_total",
                      "HTTP connections refused by the caps per source IP and in all.",
                      guard.limiter.refused)
        yield counter("smsgate_http_connections_timed_out_total",
                      "HTTP connections dropped for a missed deadline (head, write).",
                      guard.timed_out)
        yield counter("smsgate_http_malformed_requests_total",
                      "HTTP requests refused by the parser (syntax, sizes).", guard.malformed)


def metrics_registry(collector: GatewayCollector) -> CollectorRegistry:
    """A private registry: the gateway's metrics plus the process's (RSS, CPU, open
    fds), Python's version and the garbage collector's counts."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The scrape's body and content type: Prometheus text, or OpenMetrics if asked."""
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


# The two pages both HTTP ports serve (the customer API's and the admin API's)

async def metrics_response(registry: CollectorRegistry, request: web.Request) -> web.Response:
    # Collected on the loop: reading counters and /proc takes well under a millisecond.
    body, content_type = exposition(registry, request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def health_response(health: HealthCheck) -> web.Response:
    # No credentials and no per-IP budget: a monitor must always get an answer, and
    # HealthCheck shares one store probe among all askers (core/health.py).
    report = await health.report()
    return web.json_response(report.body(), status=200 if report.ok else 503)
