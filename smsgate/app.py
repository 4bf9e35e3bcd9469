"""Wiring: builds the gateway from a store and settings, seeds empty databases, and
runs `serve` until SIGTERM/SIGINT."""

import asyncio
import gc
import logging
import secrets
import signal
import socket
import ssl
import time

from .cluster.nodes import NodeHeartbeat
from .config import Settings
from .connectors.http_client import HttpConnector, http_settings
from .connectors.registry import ConnectorRegistry
from .connectors.settings import (
    HttpSettings,
    SettingsError,
    SimulatorSettings,
    SmppSettings,
    settings_for,
)
from .connectors.simulator import SimulatorConnector
from .connectors.smpp_client import SmppConnector
from .core.accounts import AccountDirectory, Authenticator, hash_password
from .core.admin import Admin
from .core.admin_tokens import AdminTokens
from .core.binds import BindLeases, BindRegistry
from .core.coverage import default_coverage
from .core.dispatcher import Dispatcher
from .core.gateway import Gateway
from .core.health import HealthCheck
from .core.ids import MessageIdGenerator
from .core.inbound import InboundService
from .core.login_guard import LoginGuard
from .core.models import (
    ATES,
    CREDIT_SCALE,
    DELIVRD,
    FAILED_STATUSES,
    Account,
    Connector,
    Message,
    NodeFigures,
    Route,
)
from .core.ports import Conflict, NodeInUse, Store
from .core.receipts import ReceiptService
from .core.retention import Retention
from .core.routing import RoutingTable
from .core.scheduler import Scheduler
from .core.sessions import Sessions
from .core.status_history import StatusHistory
from .core.submit import SubmitPipeline
from .core.throughput import Throughput
from .servers.admin_api import AdminApi
from .servers.http_api import HttpApi
from .servers.http_callbacks import HttpCallbacks
from .servers.http_dlr import DlrEndpoint
from .servers.metrics import GatewayCollector, metrics_registry
from .servers.smpp_server import SmppServer
from .servers.tls import TlsConfigError, server_context
from .smpp.constants import ESM_UDHI
from .store import open_store
from .store.writer import BatchWriter
from .text import segments
from .text.message_types import decode_payload

log = logging.getLogger("smsgate")

DEMO_SYSTEM_ID = "demo"
DEMO_CREDITS = 1000


SEEDED_CONNECTORS = "seeded_connectors"  # settings key: the simulator was seeded once


async def seed(store: Store) -> list[str]:
    """A new database without connectors gets the simulator and a catch-all route to it
    at 1 credit per part, and an empty coverage table the default one (SPEC §7).
    Returns what was created.

    Connectors are seeded once in a database's life: an operator who removed every
    connector (`connector remove`) must not find the simulator and a catch-all route
    to it back after the next command, silently "delivering" real traffic."""
    created = []
    if await store.get_setting(SEEDED_CONNECTORS) is None:
        if not await store.list_connectors():
            try:
                await store.add_connector(Connector("simulator", "simulator", {}))
            except Conflict:  # another node starting on the same new database seeds it
                return created
            await store.add_route(Route(prefix="", connector="simulator", price=CREDIT_SCALE))
            created.append("connector 'simulator' and a catch-all route at 1 credit per part")
        await store.set_setting_if_absent(SEEDED_CONNECTORS, "1")
    if not await store.list_coverage():
        entries = default_coverage()
        await store.replace_coverage(entries)
        created.append(f"a default coverage table of {len(entries)} countries and territories")
    return created


async def create_demo_account(store: Store) -> tuple[str, str] | None:
    """On a database without accounts, a demo account; returns (system_id, password)."""
    if await store.list_accounts():
        return None
    password = secrets.token_urlsafe(6)[:8]
    try:
        account = await store.add_account(Account(
            system_id=DEMO_SYSTEM_ID, password_hash=hash_password(password),
            created_at=time.time()))
    except Conflict:  # another node starting on the same new database made it first
        return None
    await store.adjust_balance(account.id, DEMO_CREDITS * CREDIT_SCALE, "demo account credit")
    return DEMO_SYSTEM_ID, password


def message_text(message: Message) -> str:
    """The message's text, for the receipt's text: field."""
    payload = message.payload
    if message.esm_class & ESM_UDHI:
        try:
            payload = segments.strip_udh(payload)[1]
        except ValueError:
            return ""
    return decode_payload(message.data_coding, payload)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The SMPP TLS port's context, or None when the port is off. Loaded before anything
    starts, so that a bad certificate or key stops `serve` with one line."""
    if settings.smpp_tls_port is None:
        if settings.tls_cert or settings.tls_key:
            log.warning("tls_cert/tls_key are set but smpp_tls_port is not: no TLS port")
        return None
    if not 0 <= settings.smpp_tls_port <= 65535:
        raise TlsConfigError(f"smpp_tls_port {settings.smpp_tls_port} is not a port number")
    return server_context(settings.tls_cert, settings.tls_key)


def make_connector(connector: Connector):
    """The running connector of a stored one; ValueError (one line) when its settings
    are bad or its type cannot run yet."""
    settings = settings_for(connector.type, connector.config)
    if isinstance(settings, SimulatorSettings):
        return SimulatorConnector(connector.name, settings)
    if isinstance(settings, HttpSettings):
        return HttpConnector(connector.name, settings)
    if isinstance(settings, SmppSettings):
        return SmppConnector(connector.name, settings)
    raise ValueError(f"connector type {connector.type!r} is unknown")


def check_connector(type_: str, config: dict) -> tuple[str, dict, dict]:
    """(summary, masked settings, config to store) of a connector's settings, for the
    admin API (core/admin.py); ValueError with the reason."""
    try:
        settings = settings_for(type_, config)
    except SettingsError as exc:
        raise ValueError(exc.render()) from None
    return settings.summary(), settings.masked(), settings.to_config()


class App:
    """The running gateway: store, writer, core services, connectors and servers."""

    def __init__(self, settings: Settings, store: Store | None = None,
                 sockets: "dict[str, socket.socket] | None" = None) -> None:
        self.settings = settings
        # Listening sockets made by `serve --workers` (smpp, smpp_tls, http, admin),
        # shared by its worker processes; none: each server binds its own port.
        self.sockets = sockets or {}
        self.store = store or open_store(settings.database_url)
        self.writer = BatchWriter(self.store, gather_seconds=settings.commit_gather_ms / 1000,
                                  gather_below=settings.commit_gather_below)
        self.ids = MessageIdGenerator(self.store)
        self.routing = RoutingTable([])
        self.dispatcher = Dispatcher(self.writer, settings.refund_upstream_rejections,
                                     store=self.store, routing=lambda: self.routing,
                                     max_queued=settings.dispatch_max_queued,
                                     park_seconds=settings.receipt_park_seconds)
        self.dispatcher.set_refill(self._refill)
        self.accounts = AccountDirectory(self.store)
        self.receipts = ReceiptService(self.store, self.writer,
                                       settings.receipt_expiry_hours * 3600, message_text)
        self.pipeline = SubmitPipeline(
            routing=lambda: self.routing,
            connector_status=lambda name: self.connectors.status(name),
            next_id=self._next_id, writer=self.writer, dispatch=self.dispatcher.dispatch,
            settings=settings.submit, node=settings.node_id, reserve_ids=self.ids.reserve)
        self.connectors = ConnectorRegistry(self.store, self.dispatcher, make_connector,
                                            settings.node_id)
        self.retention = Retention(self.store, settings.retention_days,
                                   first_after=settings.retention_first_pass)
        self.scheduler = Scheduler(
            self.store, self.dispatcher.dispatch, self.dispatcher.on_status,
            hold_generation=lambda: self.dispatcher.hold_generation, node=settings.node_id)
        self.stop_requested = asyncio.Event()  # a signal, or this node id lost
        self.node = NodeHeartbeat(self.store, settings.node_id, self._node_figures,
                                  self._message_counts, on_lost=self.stop_requested.set,
                                  on_lease_regained=self._lease_regained)
        self.dispatcher.set_lease(self.node.holds_lease)
        binds = BindRegistry(BindLeases(self.store, settings.node_id, self.node.run_id))
        self.admin = Admin(self.store, check_connector)
        self.gateway = Gateway(self.store, self.accounts, Authenticator(), binds,
                               self.pipeline, self.dispatcher, self.receipts, settings.node_id,
                               LoginGuard(settings.login), genuine_id=self.ids.is_genuine)
        self.sessions = Sessions(self.store, binds)
        self.status_history = StatusHistory(self.store, settings.node_id,
                                            self._status_counts)
        self.smpp = SmppServer(self.gateway, settings.smpp)
        self.tls = tls_context(settings)
        # The callback outbox records from now on, not only once the HTTP API started:
        # statuses of messages recovered at start, and MO, must have their callbacks
        # stored too (sent once it has started).
        callbacks = HttpCallbacks(settings.http.callbacks)
        callbacks.attach(self.store, self.writer, settings.node_id)
        self.dispatcher.set_recorder(callbacks.record)
        self.inbound = InboundService(self.store, self.writer, self.receipts, callbacks,
                                      self._next_id, settings.receipt_expiry_hours * 3600,
                                      settings.inbound)
        self.dispatcher.set_inbound(self.inbound.handle)
        self.dispatcher.add_listener(self.pipeline.stats.on_status)  # metrics
        metrics = collector = None
        if settings.http.metrics:
            collector = GatewayCollector(self.gateway, self.writer, self.smpp, callbacks)
            collector.connector_states = self.connectors.states
            metrics = metrics_registry(collector)
        self.health = HealthCheck(self.store, self.writer, settings.node_id,
                                  self.connectors.states)
        self.http = HttpApi(self.gateway, settings.http, lambda: self.routing, callbacks,
                            metrics, self._dlr_endpoint(), self.health)
        if collector is not None:
            collector.http_guard = self.http.guard
        self.admin_api = AdminApi(self.admin, AdminTokens(self.store), self.sessions,
                                  Throughput(self.store), self.gateway.login_guard,
                                  self.health, metrics)
        self._tasks: list[asyncio.Task] = []

    def _dlr_endpoint(self) -> DlrEndpoint:
        """HTTP providers' delivery reports, with the HTTP connectors' stored settings."""
        async def load() -> dict[str, HttpSettings]:
            return http_settings(await self.store.list_connectors())
        return DlrEndpoint(load, lambda report: self.gateway.upstream_report(report),
                           self.settings.http.body_timeout)

    def _node_figures(self) -> NodeFigures:
        """This node's live figures for its heartbeat (`smsgate nodes`)."""
        sessions = sum(1 for c in self.smpp.connections if c.account is not None)
        binds = 0
        for name, connector in list(self.dispatcher.connectors.items()):
            try:
                binds += int(connector.state().get("binds_up", 0))
            except Exception:
                log.debug("connector %s could not tell its state", name, exc_info=True)
        return NodeFigures(smpp_sessions=sessions, upstream_binds=binds)

    def _message_counts(self) -> tuple[int, int, int]:
        """Messages accepted, DELIVRD and failed on this node so far (its heartbeat
        turns them into rates for `smsgate nodes` and the dashboard's chart)."""
        statuses = self.dispatcher.statuses
        return (sum(self.pipeline.accepted.values()), statuses.get(DELIVRD, 0),
                sum(statuses.get(s, 0) for s in FAILED_STATUSES))

    def _status_counts(self) -> dict[str, int]:
        """Status changes on this node so far, ATES counting the messages accepted."""
        return {ATES: sum(self.pipeline.accepted.values()), **self.dispatcher.statuses}

    def _node_address(self) -> str:
        """Where this node listens, for `smsgate nodes`: host smpp:N http:N [tls:N]."""
        host, smpp_port = self.smpp.address
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        address = f"{host} smpp:{smpp_port} http:{self.http.address[1]}"
        if self.smpp.tls_address is not None:
            address += f" tls:{self.smpp.tls_address[1]}"
        return address

    async def _lease_regained(self) -> None:
        """This node was silent long enough to be taken for dead (cluster/nodes.py):
        its dispatcher keeps only what the store says is still its own."""
        self.dispatcher.begin_reload(forget_queued=True)
        try:
            await self.writer.flush()
            await self.scheduler.recover(self.dispatcher.not_here)
        finally:
            self.dispatcher.end_reload()

    def _refill(self) -> None:
        self._spawn_once("dispatch-refill", self._refill_from_store())

    async def _refill_from_store(self) -> None:
        """A dispatcher queue that spilled has room again (core/dispatcher.py): queue
        the stored messages it does not hold, until one spills again."""
        spilled = self.dispatcher.spilled  # changes with every message spilled
        self.dispatcher.begin_reload()
        try:
            await self.writer.flush()
            count = await self.scheduler.recover(
                self.dispatcher.not_here,
                lambda: self.dispatcher.spilled != spilled)
        except Exception:
            log.exception("refilling the dispatcher from the store failed")
            self.dispatcher.refill_again()
            return
        finally:
            self.dispatcher.end_reload()
        log.info("refilled the dispatcher with %d stored messages", count)
        if self.dispatcher.spilled != spilled:
            self.dispatcher.refill_again()

    def _next_id(self) -> int:
        message_id = self.ids.next_id()
        if self.ids.low:
            self._spawn_once("id-refill", self.ids.refill())
        return message_id

    def _spawn_once(self, name: str, coro) -> None:
        if any(t.get_name() == name and not t.done() for t in self._tasks):
            coro.close()
            return
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def start(self) -> None:
        await self.store.open()
        try:
            await self.store.migrate()
            # Before any per-node work (callbacks held by this node id are released
            # below): raises NodeInUse while another live process is this node.
            await self.node.claim()
        except BaseException:
            await self.store.close()
            raise
        for line in await seed(self.store):
            log.info("seeded %s", line)
        await self.ids.start()
        await self.reload_routes()
        self.writer.start()
        await self.inbound.start()  # before the connectors: MO can come at once
        await self.connectors.start()
        self.dispatcher.add_listener(self.receipts.on_status)
        await self.accounts.start()
        await self.receipts.start()
        await self.scheduler.start()
        self.retention.start()
        self.status_history.start()
        self._tasks.append(asyncio.create_task(self._route_refresh(), name="route-refresh"))
        host, sockets = self.settings.host, self.sockets
        await self.smpp.start(host, self.settings.smpp_port, sockets.get("smpp"))
        if self.tls is not None:
            await self.smpp.start_tls(self.tls, host, self.settings.smpp_tls_port or 0,
                                      sockets.get("smpp_tls"))
        await self.http.start(host, self.settings.http_port, sockets.get("http"))
        await self.admin_api.start(host, self.settings.admin_port, sockets.get("admin"))
        self.sessions.start()
        self.node.start(self._node_address())

    async def reload_routes(self) -> None:
        self.routing = RoutingTable(await self.store.list_routes())

    async def _route_refresh(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            try:
                await self.reload_routes()
            except Exception:
                log.exception("route reload failed")

    async def stop(self) -> None:
        """Unbind sessions, stop timers, flush the writer, close the store."""
        await self.admin_api.stop()
        await self.sessions.stop()
        await self.http.stop()
        await self.smpp.stop()
        for task in self._tasks:
            task.cancel()
        await self.scheduler.stop()
        await self.retention.stop()
        await self.receipts.stop()
        await self.accounts.stop()
        await self.connectors.stop()
        await self.inbound.stop()
        await self.dispatcher.stop()
        await self.writer.close()
        await self.status_history.stop()  # the last seconds' statuses too
        await self.node.stop()  # its lock is let go by store.close()
        await self.store.close()
        self.gateway.authenticator.close()


async def serve(settings: Settings, ready: asyncio.Event | None = None,
                sockets: "dict[str, socket.socket] | None" = None,
                announce: bool = True) -> None:
    """Run the gateway until SIGTERM/SIGINT. A worker of `serve --workers` gets the
    listening sockets, and its supervisor prints the `… listening on …` lines."""
    app = App(settings, sockets=sockets)
    await app.start()
    # Objects alive after start-up live as long as the process: keep them out of the
    # cyclic GC's scans, and collect young objects less often (the hot path makes many
    # short-lived ones, nearly all freed by reference counting).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    # Before the lines below: a script may signal as soon as it reads them.
    stop = app.stop_requested
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    demo = await create_demo_account(app.store)
    if demo:
        print(f"Demo account created: system_id={demo[0]} password={demo[1]} "
              f"(credits: {DEMO_CREDITS}). It is shown only once.", flush=True)
    if announce:
        host, port = app.smpp.address
        print(f"SMPP listening on {host}:{port}", flush=True)
        host, port = app.http.address
        print(f"HTTP listening on {host}:{port}", flush=True)
        if app.smpp.tls_address is not None:
            host, port = app.smpp.tls_address
            print(f"SMPP TLS listening on {host}:{port}", flush=True)
        host, port = app.admin_api.address
        print(f"Admin listening on {host}:{port}", flush=True)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down")
    await app.stop()
    if app.node.lost:
        raise NodeInUse(f"node {settings.node_id!r} was taken over by another process")
