"""An upstream connector the test opens and closes, for the dispatch and cancel tests."""

import asyncio
import time

from smpp_harness import PRICE

from smsgate.core.models import ATES, DELIVRD, Message, Route, StatusUpdate
from smsgate.core.ports import StatusCallback

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
        self.asked_while_open = asyncio.Event()  # the dispatcher looked while open
        self._unreported: list[Message] = []
        self._on_status: StatusCallback | None = None

    async def start(self, on_status: StatusCallback) -> None:
        self._on_status = on_status

    async def stop(self) -> None:
        pass

    @property
    def ready(self) -> bool:
        if self.open:
            self.asked_while_open.set()
        return self.open

    def send(self, messages) -> None:
        for message in messages:
            self.sent.append(message.id)
            if self.report_later:
                self._unreported.append(message)
            else:
                self._report(message)

    def report_all(self) -> None:
        for message in self._unreported:
            self._report(message)
        self._unreported.clear()

    def _report(self, message: Message) -> None:
        assert self._on_status is not None
        now = time.time()
        self._on_status(message, StatusUpdate(message.id, ATES, now, upstream_id="g"))
        self._on_status(message, StatusUpdate(message.id, DELIVRD, now))


async def with_upstream(gateway) -> GatedUpstream:
    upstream = GatedUpstream()
    await gateway.app.dispatcher.add_connector(upstream)
    await gateway.store.add_route(Route(prefix=GATED, connector=upstream.name, price=PRICE))
    await gateway.app.reload_routes()
    return upstream
