"""Issue 8, item 3 / SPEC §11: `dlrurl` callbacks reach only public addresses unless the
operator allows otherwise; no redirects; at most a few KB of an answer read.

Over real sockets: the customer's servers are real aiohttp servers on loopback, which
is exactly what a callback may not reach by default."""

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from http_harness import (  # noqa: F401 - api_fixture is the `api` fixture
    PASSWORD,
    USER,
    api_fixture,
    eventually,
    ids_of,
    running_api,
    submit_params,
)
from serve_process import start_serve
from smpp_harness import password_hash, prepare_database
from test_http_callbacks import Receiver

from smsgate.core.errors import Err
from smsgate.core.models import CREDIT_SCALE, Account
from smsgate.store import open_store

HTTP16 = Err.BAD_REQUEST.http_line


def no_private(settings) -> None:
    settings.http.callbacks.allow_private = False


class ConnectionCounter:
    """A TCP server that counts connections and answers nothing."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aenter__(self) -> "ConnectionCounter":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


INNER_LITERALS = [
    "http://127.0.0.1:{port}/internal-admin?action=delete", "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/", "http://[::ffff:7f00:1]:{port}/",
    "http://2130706433:{port}/", "http://0x7f000001:{port}/", "http://127.1:{port}/",
    "http://017700000001:{port}/", "http://0:{port}/", "http://0.0.0.0:{port}/",
    "http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://224.0.0.1/", "http://240.0.0.1/",
    "http://255.255.255.255/", "http://[fe80::1]/", "http://[fc00::1]/", "http://[ff02::1]/",
    "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "https://[::]/",
]


async def test_inner_literal_targets_are_refused_at_submit(store_url):
    async with running_api(store_url, no_private) as api, ConnectionCounter() as inside:
        await api.seed_account()
        for url in INNER_LITERALS:
            assert await api.submit(dlrurl=url.format(port=inside.port)) == HTTP16, url
        assert inside.connections == 0


async def test_a_name_that_resolves_inside_is_refused_when_called(store_url, caplog):
    """`localhost` passes the submit (it is a name) but the callback is refused where it
    connects, after resolution: not sent, not retried, its row deleted, logged."""
    async with running_api(store_url, no_private) as api, ConnectionCounter() as inside:
        await api.seed_account()
        [message_id] = ids_of(await api.submit(dlrurl=f"http://localhost:{inside.port}/dlr"))
        callbacks = api.app.http.callbacks

        async def refused():
            return callbacks.refused == 1 and await api.store.count_callbacks() == 0

        await eventually(refused, what="the callback refused and its row deleted")
        await asyncio.sleep(1.5)  # longer than all the harness's backoffs (0.2, 0.4, 0.8)
        assert (callbacks.refused, callbacks.retried, callbacks.delivered) == (1, 0, 0)
        assert inside.connections == 0
        assert (await api.message(message_id)).status == "DELIVRD"
        assert any("not sent" in r.getMessage() and r.levelno == logging.WARNING
                   for r in caplog.records)


class Redirecting:
    """A customer's server that answers every callback with 302 to `location`."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.calls = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        raise web.HTTPFound(self.location)

    async def __aenter__(self) -> "Redirecting":
        app = web.Application()
        app.router.add_get("/{path:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_a_redirect_is_not_followed(api):
    await api.seed_account()
    target = await Receiver().start()
    try:
        async with Redirecting(target.url("/internal")) as redirecting:
            url = f"http://127.0.0.1:{redirecting.port}/dlr"
            ids_of(await api.submit(dlrurl=url))
            callbacks = api.app.http.callbacks

            async def answered():
                return callbacks.delivered == 1 and await api.store.count_callbacks() == 0

            await eventually(answered, what="the 302 ending the callback")
            await asyncio.sleep(0.5)
            assert redirecting.calls == 1
            assert target.calls == []
    finally:
        await target.stop()


class Flood:
    """A customer's server whose answer is 200 MB; counts what it could write."""

    SIZE = 200 * 1024 * 1024

    def __init__(self) -> None:
        self.written = 0
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(self.SIZE)})
        await response.prepare(request)
        chunk = b"x" * (1024 * 1024)
        try:
            while self.written < self.SIZE:
                await response.write(chunk)
                self.written += len(chunk)
        except (ConnectionError, RuntimeError):  # the gateway hung up
            pass
        finally:
            self.done.set()
        return response


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _submit(port: int, dlrurl: str) -> str:
    params = submit_params(dlrurl=dlrurl)
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/websmpp/websms", params=params) as response:
        return await response.text()


@contextlib.asynccontextmanager
async def serve(url: str, log: Path, *options: str):
    proc, port = await start_serve(url, log, "HTTP", *options)
    try:
        yield proc, port
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGTERM)
            await proc.wait()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_huge_answer_is_read_only_to_the_cap(store_url, tmp_path):
    """A real `smsgate serve --callbacks-allow-private` (without the flag the same URL is
    HTTP16) calls a server answering 200 MB: it reads a few KB and hangs up, and its RSS
    stays flat."""
    await prepare_database(store_url)
    store = open_store(store_url)
    await store.open()
    account = await store.add_account(Account(
        system_id=USER, password_hash=password_hash(PASSWORD), created_at=time.time()))
    await store.adjust_balance(account.id, 100 * CREDIT_SCALE, "opening balance")
    await store.close()
    flood = Flood()
    app = web.Application()
    app.router.add_get("/dlr", flood.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    dlrurl = f"http://127.0.0.1:{runner.addresses[0][1]}/dlr"
    try:
        async with serve(store_url, tmp_path / "a.log") as (_, port):
            assert await _submit(port, dlrurl) == HTTP16  # not allowed by default
        async with serve(store_url, tmp_path / "b.log", "--callbacks-allow-private") \
                as (proc, port):
            before = rss_mib(proc.pid)
            ids_of(await _submit(port, dlrurl))
            await asyncio.wait_for(flood.done.wait(), 30)
            await asyncio.sleep(0.5)
            growth = rss_mib(proc.pid) - before
        assert flood.written < 32 * 1024 * 1024, flood.written  # socket buffers, no more
        assert growth < 40, f"RSS grew by {growth:.0f} MiB"
    finally:
        await runner.cleanup()


async def test_the_session_refuses_inner_targets_where_it_connects():
    """servers/outbound_http.py on its own, as MO URLs will use it: every form of an
    inner target fails as refused, and nothing reaches the listening socket; with
    allow_private the same URL is fetched."""
    from smsgate.servers import outbound_http
    async with ConnectionCounter() as inside:
        urls = [f"http://{host}:{inside.port}/dlr" for host in (
            "127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433", "127.1")]
        session = outbound_http.client_session(allow_private=False, timeout=5,
                                               connections=4, user_agent="test")
        async with session:
            for url in urls:
                with pytest.raises(aiohttp.ClientError) as refused:
                    await outbound_http.get(session, url, 4096)
                assert outbound_http.is_refused(refused.value), (url, refused.value)
        assert inside.connections == 0
    receiver = await Receiver().start()
    try:
        session = outbound_http.client_session(allow_private=True, timeout=5,
                                               connections=4, user_agent="test")
        async with session:
            answer = await outbound_http.get(session, receiver.url("/dlr"), 4096)
        assert (answer.status, answer.body) == (200, b"OK")
    finally:
        await receiver.stop()
