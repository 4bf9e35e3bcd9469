"""`dlrurl` callbacks reach a real local aiohttp server: on delivery, after the server
answered 5xx, after it was down for a while, across a restart of the gateway, and past
the in-memory bound. The kill -9 case is in test_http_callbacks_crash.py."""

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web
from http_harness import PASSWORD, USER, api_fixture, eventually, ids_of  # noqa: F401
from smpp_harness import free_port, reserve_port

from smsgate.smpp.constants import CommandId, Status
from smsgate.smpp.pdu import Pdu


class Receiver:
    """A customer's DLR endpoint: records every GET; the first `fail` answers are 503."""

    def __init__(self, fail: int = 0, sock: socket.socket | None = None) -> None:
        self.port = 0
        self.fail = fail
        self.sock = sock  # a port held by smpp_harness.reserve_port, to listen on
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
        site = web.SockSite(self._runner, self.sock) if self.sock is not None \
            else web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/dlr") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


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
    sock = reserve_port()  # nothing listens there yet: connections are refused
    port = sock.getsockname()[1]
    ids = ids_of(await api.submit(mno="447700900001,447700900002",
                                  dlrurl=f"http://127.0.0.1:{port}/dlr"))
    callbacks = api.app.http.callbacks

    async def retrying():
        statuses = [(await api.message(i)).status for i in ids]
        return statuses == ["DELIVRD"] * 2 and callbacks.retried >= 2

    await eventually(retrying, what="delivered messages with callbacks retried")
    await asyncio.sleep(1.0)  # down for a while: several failed attempts
    assert await api.store.count_callbacks() == 2
    assert callbacks.delivered == 0
    receiver = await Receiver(sock=sock).start()
    try:
        async def called():
            return len(receiver.calls) == 2

        await eventually(called, timeout=10, what="callbacks after the receiver came back")
        assert sorted(int(c["id"]) for c in receiver.calls) == sorted(ids)
        assert {c["status"] for c in receiver.calls} == {"DELIVRD"}

        async def deleted():
            return await api.store.count_callbacks() == 0

        await eventually(deleted, what="the delivered callbacks' rows deleted")
    finally:
        await receiver.stop()


async def test_no_callback_without_dlrurl(api):
    await api.seed_account()
    [message_id] = ids_of(await api.submit())

    async def delivered():
        return (await api.message(message_id)).status == "DELIVRD"

    await eventually(delivered, what="DELIVRD")
    await api.app.http.callbacks.flush()
    assert await api.store.count_callbacks() == 0
    assert api.app.http.callbacks.delivered == 0


async def test_callback_of_a_cancelled_message(api):
    """cancel_sm stores DELETED itself; the callback is recorded after it."""
    await api.seed_account()
    receiver = await Receiver().start()
    try:
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y%m%d%H%M")
        [message_id] = ids_of(await api.submit(schtime=tomorrow, dlrurl=receiver.url()))
        client = await api.bound("tx", USER, PASSWORD)
        cancel = await client.request(Pdu(CommandId.cancel_sm,
                                          fields={"message_id": str(message_id)}))
        assert cancel.status == Status.ESME_ROK

        async def called():
            return receiver.calls

        [call] = await eventually(called, what="the DELETED callback")
        assert (call["id"], call["status"]) == (str(message_id), "DELETED")
    finally:
        await receiver.stop()


def slow_callback_commits(store, delay: float) -> None:
    """Every commit that writes new callback rows takes `delay` seconds longer."""
    write = store.write

    async def slow_write(batch):
        if batch.new_callbacks:
            await asyncio.sleep(delay)
        return await write(batch)
    store.write = slow_write


async def test_a_status_is_stored_only_after_its_callback(api):
    """The crash window: the store never shows a status whose callback row is not
    stored yet (both go in one commit; commits with callback rows are slowed down here
    to make a window wide if there were one)."""
    await api.seed_account()
    slow_callback_commits(api.store, 0.4)
    [message_id] = ids_of(await api.submit(dlrurl=f"http://127.0.0.1:{free_port()}/dlr"))
    started = time.monotonic()
    while True:
        status = (await api.message(message_id)).status
        stored = await api.store.count_callbacks()
        if status == "DELIVRD":
            assert stored == 1
            break
        assert status == "ATES"
        await asyncio.sleep(0.01)
    assert time.monotonic() - started >= 0.35  # the status waited for the callback


async def test_pending_callback_survives_a_restart(api):
    """Receiver down, gateway stopped and started again (new process state, same
    database), then the receiver comes up: the callback arrives, once, and its row goes."""
    await api.seed_account()
    sock = reserve_port()
    port = sock.getsockname()[1]
    [message_id] = ids_of(await api.submit(dlrurl=f"http://127.0.0.1:{port}/dlr",
                                           ref="restart"))
    callbacks = api.app.http.callbacks

    async def failing():
        return callbacks.retried >= 1 and await api.store.count_callbacks() == 1

    await eventually(failing, what="a failed first attempt")
    await api.restart()
    assert api.app.http.callbacks is not callbacks
    await asyncio.sleep(0.5)  # the new run tries and fails too
    receiver = await Receiver(sock=sock).start()
    try:
        async def called():
            return receiver.calls

        [call] = await eventually(called, timeout=10, what="the callback after the restart")
        assert (call["id"], call["status"], call["ref"]) \
            == (str(message_id), "DELIVRD", "restart")

        async def deleted():
            return await api.store.count_callbacks() == 0

        await eventually(deleted, what="the callback's row deleted")
        await asyncio.sleep(0.3)
        assert len(receiver.calls) == 1
    finally:
        await receiver.stop()


async def test_callbacks_beyond_the_memory_bound_wait_in_the_store(api):
    await api.seed_account()
    callbacks = api.app.http.callbacks
    callbacks.config.max_in_memory = 2
    callbacks.config.page = 1
    seen_in_memory: list[int] = []
    receiver = Receiver()
    handle = receiver.handle

    async def watching(request: web.Request) -> web.Response:
        seen_in_memory.append(callbacks.in_memory)
        await asyncio.sleep(0.1)  # slow: memory fills while the statuses come in
        return await handle(request)

    receiver.handle = watching  # type: ignore[method-assign]
    claimed: list[int] = []
    store = callbacks.store
    claim = store.claim_callbacks

    async def counting_claim(*args):
        rows = await claim(*args)
        claimed.extend(c.id for c in rows)
        return rows

    store.claim_callbacks = counting_claim
    await receiver.start()
    try:
        ids = ids_of(await api.submit(mno=",".join(f"4477009000{n:02d}" for n in range(12)),
                                      dlrurl=receiver.url()))

        async def called():
            return len(receiver.calls) == 12

        await eventually(called, timeout=10, what="12 callbacks through a memory of 2")
        assert sorted(int(c["id"]) for c in receiver.calls) == sorted(ids)
        assert max(seen_in_memory) <= 2
        assert len(claimed) >= 8  # those beyond the bound came from the store
    finally:
        await receiver.stop()


async def test_a_status_and_its_callback_are_one_commit(api):
    """The recorder queues the callback row in the status's own loop turn: the writer
    puts both into one WriteBatch, one transaction."""
    await api.seed_account()
    batches = []
    write = api.store.write

    async def watching(batch):
        batches.append(batch)
        return await write(batch)
    api.store.write = watching
    [message_id] = ids_of(await api.submit(dlrurl=f"http://127.0.0.1:{free_port()}/dlr"))

    async def delivered():
        return (await api.message(message_id)).status == "DELIVRD"
    await eventually(delivered, what="DELIVRD")
    [batch] = [b for b in batches if any(u.message_id == message_id for u in b.statuses)]
    assert [(c.message_id, c.status) for c in batch.new_callbacks] \
        == [(message_id, "DELIVRD")]
