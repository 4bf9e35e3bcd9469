"""An upstream connector the test opens and closes, for the dispatch and cancel tests."""

import asyncio
import time

from smpp_harness import PRICE

from smsgate.core.models import DELIVRD, Message, Route, StatusUpdate
from smsgate.core.ports import ConnectorEvents

GATED = "449900"  # destinations routed to the gated upstream
DEST = GATED + "000001"


class GatedUpstream:
    """An upstream the test opens and closes. Records what it was sent; reports it sent
    at once, or only when told (`report_later`), as an SMPP upstream would."""

    def __init__(self, name: str = "gated") -> None:
        self.name = name
        self.open = False
        self.report_later = False
        self.sent: list[int] = []
        self.payloads: dict[int, bytes] = {}  # what went out, by message id
        self.asked_while_open = asyncio.Event()  # the dispatcher looked while open
        self._unreported: list[Message] = []
        self._events: ConnectorEvents | None = None

    resend_safe = False

    async def start(self, events: ConnectorEvents) -> None:
        self._events = events

    async def stop(self) -> None:
        pass

    @property
    def available(self) -> bool:
        if self.open:
            self.asked_while_open.set()
        return self.open

    @property
    def room(self) -> int:
        return 1000

    def state(self) -> dict:
        return {}

    def send(self, messages) -> None:
        for message in messages:
            self.sent.append(message.id)
            self.payloads[message.id] = message.payload
            if self.report_later:
                self._unreported.append(message)
            else:
                self._report(message)

    def report_all(self) -> None:
        for message in self._unreported:
            self._report(message)
        self._unreported.clear()

    def _report(self, message: Message) -> None:
        assert self._events is not None
        self._events.sent(message, ["g"])
        self._events.status(message, StatusUpdate(message.id, DELIVRD, time.time()))


async def with_upstream(gateway) -> GatedUpstream:
    upstream = GatedUpstream()
    await gateway.app.dispatcher.add_connector(upstream)
    await gateway.store.add_route(Route(prefix=GATED, connector=upstream.name, price=PRICE))
    await gateway.app.reload_routes()
    return upstream
