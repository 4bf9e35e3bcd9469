"""`dlrurl` callbacks reach a real local aiohttp server: on delivery, after the server
answered 5xx, and after it was down for a while."""

import asyncio
import socket
import time
from datetime import UTC, datetime

from aiohttp import web
from http_harness import api_fixture, eventually, ids_of  # noqa: F401


class Receiver:
    """A customer's DLR endpoint: records every GET; the first `fail` answers are 503."""

    def __init__(self, port: int = 0, fail: int = 0) -> None:
        self.port = port
        self.fail = fail
        self.calls: list[dict[str, str]] = []
        self.answered_503 = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        if self.answered_503 < self.fail:
            self.answered_503 += 1
            return web.Response(status=503, text="busy")
        self.calls.append({"path": request.path, **request.query})
        return web.Response(text="OK")

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_get("/{path:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/dlr") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_callback_on_delivery(api):
    await api.seed_account()
    receiver = await Receiver().start()
    try:
        answer = await api.submit(dlrurl=receiver.url("/dlr?customer=42"), ref="order-7")
        [message_id] = ids_of(answer)
        before = time.time()

        async def called():
            return receiver.calls

        [call] = await eventually(called, what="the DLR callback")
        assert call["path"] == "/dlr"
        assert call["customer"] == "42"  # the customer's own parameters are kept
        assert (call["status"], call["id"], call["ref"], call["error"]) \
            == ("DELIVRD", str(message_id), "order-7", "0")
        at = datetime.strptime(call["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert abs(at.timestamp() - before) < 5
        # the status the callback announced is already the stored one
        assert await api.get("/websmpp/websmsstatus", {"respId": message_id}) \
            == "Response: DELIVRD"
    finally:
        await receiver.stop()


async def test_callback_retried_after_server_errors(api):
    await api.seed_account()
    receiver = await Receiver(fail=2).start()
    try:
        [message_id] = ids_of(await api.submit(dlrurl=receiver.url()))

        async def called():
            return receiver.calls

        [call] = await eventually(called, what="the DLR callback after two 503s")
        assert (call["id"], call["status"], receiver.answered_503) \
            == (str(message_id), "DELIVRD", 2)
    finally:
        await receiver.stop()


async def test_callback_after_the_receiver_was_down(api):
    await api.seed_account()
    port = free_port()  # nothing listens there yet: connections are refused
    ids = ids_of(await api.submit(mno="447700900001,447700900002",
                                  dlrurl=f"http://127.0.0.1:{port}/dlr"))
    callbacks = api.app.http.callbacks

    async def retrying():
        statuses = [(await api.message(i)).status for i in ids]
        return statuses == ["DELIVRD"] * 2 and callbacks.pending == 2 \
            and callbacks.delivered == 0

    await eventually(retrying, what="delivered messages with callbacks pending")
    await asyncio.sleep(1.0)  # down for a while: several failed attempts
    assert callbacks.pending == 2
    receiver = await Receiver(port=port).start()
    try:
        async def called():
            return len(receiver.calls) == 2

        await eventually(called, timeout=10, what="callbacks after the receiver came back")
        assert sorted(int(c["id"]) for c in receiver.calls) == sorted(ids)
        assert {c["status"] for c in receiver.calls} == {"DELIVRD"}
        assert callbacks.pending == 0
    finally:
        await receiver.stop()


async def test_no_callback_without_dlrurl(api):
    await api.seed_account()
    [message_id] = ids_of(await api.submit())

    async def delivered():
        return (await api.message(message_id)).status == "DELIVRD"

    await eventually(delivered, what="DELIVRD")
    assert api.app.http.callbacks.pending == 0
    assert api.app.http.callbacks.delivered == 0
