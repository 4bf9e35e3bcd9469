"""GET /health over real HTTP (SPEC §10): 200 while the store takes a write, 503 with a
reason (within ~2 s) when it cannot, on SQLite and PostgreSQL, with no mock of either:
another connection holds the lock the probe's write needs, the store is closed, or
(PostgreSQL) the server stops being reachable."""

import asyncio
import contextlib
import sqlite3
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from http_harness import api_fixture, running_api  # noqa: F401
from smpp_harness import eventually

from smsgate.core.models import Connector


async def health(api) -> tuple[int, dict]:
    async with api.session.get(api.base + "/health") as response:
        return response.status, await response.json()


async def timed_health(api) -> tuple[int, dict, float]:
    started = time.monotonic()
    status, body = await health(api)
    return status, body, time.monotonic() - started


async def test_health_is_ok_with_the_node_store_and_connectors(api):
    status, body = await health(api)
    assert status == 200, body
    assert body["status"] == "ok"
    assert "reason" not in body
    assert body["node"] == "test"
    assert body["store"] == api.store.backend
    assert body["store_ms"] >= 0
    assert body["connectors"] == {"simulator": "up"}


async def test_health_lists_disabled_and_broken_connectors(api):
    api.app.connectors.poll = 0.1
    await api.store.add_connector(Connector("sleepy", "simulator", {}, enabled=False))
    await api.store.add_connector(Connector("bad", "smpp", {"port": "not a port"}))
    await api.app.connectors.reload()
    await asyncio.sleep(0.6)  # past the cached answer

    status, body = await health(api)
    assert status == 200
    assert body["connectors"] == {"bad": "broken", "simulator": "up", "sleepy": "disabled"}


async def test_health_needs_no_credentials_and_is_not_a_customer_path(api):
    async with api.session.post(api.base + "/health") as response:
        assert response.status == 200  # POST is an unknown path, as for /metrics
        assert "HTTP" in await response.text()
    # many monitors at once: each gets an answer, and they share one store write
    writes = 0
    set_setting = api.store.set_setting

    async def counting(key: str, value: str) -> None:
        nonlocal writes
        writes += 1
        await set_setting(key, value)

    api.store.set_setting = counting
    await asyncio.sleep(0.6)  # past the cached answer
    started = time.monotonic()
    answers = await asyncio.gather(*(health(api) for _ in range(50)))
    took = time.monotonic() - started
    assert {status for status, _ in answers} == {200}
    assert 1 <= writes <= 1 + took / api.app.health.cache_seconds  # not one per request


@contextlib.asynccontextmanager
async def write_locked(api):
    """Another connection holds the lock every write needs, until the block ends."""
    url = urlsplit(api.url)
    if url.scheme == "sqlite":
        conn = sqlite3.connect(url.path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def test_health_fails_within_two_seconds_while_the_store_cannot_write(api):
    assert (await health(api))[0] == 200
    await asyncio.sleep(0.6)  # past the cached answer
    async with write_locked(api):
        status, body, took = await timed_health(api)
        assert status == 503, body
        assert body["status"] == "fail"
        assert body["reason"] == "store did not answer within 2 s"
        assert body["connectors"] == {"simulator": "up"}
        assert took < 3.0
        # the probe still waits for the lock: later checks do not pile more on the store
        status, body, took = await timed_health(api)
        assert status == 503 and took < 3.0

    async def ok_again():
        return (await health(api))[0] == 200

    await eventually(ok_again, timeout=10, interval=0.2, what="health ok after the lock")


async def test_health_fails_when_the_store_is_closed(api):
    assert (await health(api))[0] == 200
    await api.store.close()
    await asyncio.sleep(0.6)
    status, body = await health(api)
    assert status == 503
    assert body == {"status": "fail", "reason": "store write failed", "node": "test",
                    "store": api.store.backend, "store_ms": None,
                    "connectors": {"simulator": "up"}}


class TcpProxy:
    """Forwards connections to PostgreSQL; `cut()` drops them and stops listening, as a
    server that went away would; `resume()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def resume(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer),
                             return_exceptions=True)
        self._writers -= {writer, up_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


async def test_health_fails_while_postgresql_is_unreachable(store_url):
    url = urlsplit(store_url)
    if url.scheme != "postgresql":
        pytest.skip("a PostgreSQL server that goes away")
    proxy = TcpProxy((url.hostname or "127.0.0.1", url.port or 5432))
    await proxy.resume()
    through_proxy = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}"))
    async with running_api(through_proxy) as api:
        assert (await health(api))[0] == 200
        await proxy.cut()
        await asyncio.sleep(0.6)
        status, body, took = await timed_health(api)
        assert status == 503, body
        assert body["reason"] in ("store write failed", "store did not answer within 2 s")
        assert took < 3.0
        await proxy.resume()

        async def ok_again():
            return (await health(api))[0] == 200

        await eventually(ok_again, timeout=10, interval=0.2, what="health ok again")
