"""The configured connectors, kept running as the store says (SPEC §8).

The connectors table is the truth: the CLI and the admin API change it, and every
`poll` seconds the registry reads it and makes the running set match. A new or enabled
connector starts (an SMPP one binds); a disabled or removed one stops (it takes nothing
more, lets its window drain and unbinds; what it still held goes back to the dispatcher,
which sends it by the next route or keeps it); a connector whose settings changed is
restarted with them. So a change reaches a running gateway within `poll` seconds.

Each connector's live state (`UpstreamConnector.state()`) is written to the store at
the same pace (`connector_states`, one row per connector and node), for `connector
list` and the admin API.

An SMPP connector's `binds`, `rx_binds` and `tps` are cluster-wide totals (SPEC §9): each
node runs its share, spread evenly over the live nodes by node id (the first ones take
the remainder). A node joining or dying changes the shares, and the connectors whose
share changed restart with theirs at the next look. Every node keeps at least one
sending bind (its own messages must go out); a receiver share may be none.
"""

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable

from ..core.dispatcher import Dispatcher
from ..core.models import ALIVE, BROKEN, DISABLED, RUNNING, Connector, ConnectorState
from ..core.ports import Store, UpstreamConnector

log = logging.getLogger(__name__)

Factory = Callable[[Connector], UpstreamConnector]


class ConnectorRegistry:
    def __init__(self, store: Store, dispatcher: Dispatcher, factory: Factory, node: str,
                 poll: float = 2.0) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._factory = factory
        self.node = node
        self.poll = poll
        self._rows: dict[str, Connector] = {}  # as running (or refused), by name
        self._status: dict[str, str] = {}  # name -> RUNNING | DISABLED | BROKEN
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    def status(self, name: str) -> str | None:
        """RUNNING, DISABLED (by the operator), BROKEN (its settings cannot run), or None
        for a name the store does not have (unless it runs anyway: added to the
        dispatcher directly)."""
        status = self._status.get(name)
        if status is None and name in self._dispatcher.connectors:
            return RUNNING
        return status

    def states(self) -> dict[str, str]:
        """Each configured connector's state in a word, for GET /health: up (running
        and able to send), down (running, but not bound / reachable / backing off),
        disabled, or broken (its settings cannot run)."""
        states = {}
        for name, status in sorted(self._status.items()):
            connector = self._dispatcher.connectors.get(name)
            if status == RUNNING:
                status = "up" if connector is not None and _available(connector) else "down"
            states[name] = status
        return states

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._loop(), name="connector-registry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        async with self._lock:
            for name in list(self._dispatcher.connectors):
                await self._stop(name)

    async def reload(self) -> None:
        """Make the running connectors match the table."""
        nodes = await self._live_nodes()
        rows = {c.name: node_share(c, nodes, self.node)
                for c in await self._store.list_connectors()}
        async with self._lock:
            for name, status in list(self._status.items()):
                row = rows.get(name)
                wanted = row is not None and row.enabled
                changed = row is None or _changed(self._rows.get(name), row)
                if status == RUNNING and wanted and changed:
                    await self._restart(row)  # type: ignore[arg-type]
                elif changed or (status == DISABLED) == wanted:
                    await self._stop(name)
            for name, row in rows.items():
                if name in self._status:
                    continue
                if row.enabled:
                    await self._start(row)
                else:
                    self._rows[name], self._status[name] = row, DISABLED

    async def _live_nodes(self) -> list[str]:
        return sorted({n.id for n in await self._store.list_nodes() if n.state == ALIVE}
                      | {self.node})

    async def _start(self, row: Connector) -> None:
        """A connector that cannot start must not keep the gateway down: it is logged
        and left out (BROKEN) until its settings change."""
        self._rows[row.name] = row
        try:
            connector = self._factory(row)
            await self._dispatcher.add_connector(connector)
        except Exception as exc:
            log.error("connector %s not started: %s", row.name, exc)
            self._status[row.name] = BROKEN
            return
        self._status[row.name] = RUNNING
        # at start-up quietly: `serve` prints its own lines; later a change is news
        log.log(logging.INFO if self._task else logging.DEBUG, "connector %s (%s) started",
                row.name, row.type)

    async def _restart(self, row: Connector) -> None:
        """New settings (or a new share of the cluster's binds): the old connector goes,
        the new one comes, and the connector stays RUNNING for the routing meanwhile, so
        that no submit is refused for it (the dispatcher holds its messages)."""
        try:
            await self._dispatcher.remove_connector(row.name)
        except Exception:
            log.exception("connector %s did not stop cleanly", row.name)
        await self._start(row)
        log.info("connector %s restarted with its new settings", row.name)

    async def _stop(self, name: str) -> None:
        self._rows.pop(name, None)
        if self._status.pop(name, None) == RUNNING:
            try:
                await self._dispatcher.remove_connector(name)
            except Exception:
                log.exception("connector %s did not stop cleanly", name)
            log.info("connector %s stopped", name)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.reload()
                await self.report()
            except Exception:  # the store may be back at the next look
                log.exception("connector reload failed")

    async def report(self) -> None:
        """Write each running connector's live state for `connector list`."""
        now = time.time()
        for name, connector in list(self._dispatcher.connectors.items()):
            try:
                state = connector.state()
            except Exception:
                log.exception("connector %s could not tell its state", name)
                continue
            await self._store.report_connector_state(ConnectorState(name, self.node, state,
                                                                    now))


def _available(connector: UpstreamConnector) -> bool:
    try:
        return bool(connector.available)
    except Exception:  # a connector that cannot even say is not one to count on
        return False


def node_share(row: Connector, nodes: list[str], node: str) -> Connector:
    """`row` with this node's share of its cluster-wide bind and tps totals (SMPP)."""
    if row.type != "smpp" or len(nodes) < 2:
        return row
    config = dict(row.config)
    binds = int(config.get("binds", 1))
    sending = max(1, _share(binds, nodes, node))
    config["binds"] = sending
    config["rx_binds"] = _share(int(config.get("rx_binds", 1)), nodes, node)
    if tps := int(config.get("tps", 0)):
        config["tps"] = max(1, math.ceil(tps * sending / binds))
    return dataclasses.replace(row, config=config)


def _share(total: int, nodes: list[str], node: str) -> int:
    index = nodes.index(node)
    return total // len(nodes) + (1 if index < total % len(nodes) else 0)


def _changed(running: Connector | None, row: Connector) -> bool:
    return running is None or (running.type, running.config) != (row.type, row.config)
