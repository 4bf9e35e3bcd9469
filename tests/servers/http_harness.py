"""Fixture and helpers for the HTTP API tests: the real `App` (SMPP and HTTP servers) on
ephemeral ports in the test's event loop, on a fresh database of each backend, and an
aiohttp client talking to it over TCP.

Test modules import the fixture function (`from http_harness import api_fixture`); it is
registered under the name `api`.
"""

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import pytest
from smpp_harness import Harness, fast_settings, prepare_database
from smpp_harness import eventually as eventually  # re-exported for the HTTP tests

from smsgate.app import App, Settings
from smsgate.servers.http_callbacks import CallbackConfig

USER = "testUser"  # the seed's examples
PASSWORD = "12345"
SENDER = "Test"
LEBANON = "96170123456"  # the seed's 961xxxxx, made a real-looking number


def http_settings(url: str) -> Settings:
    settings = fast_settings(url)
    # callbacks retried quickly, so that a test can watch a receiver come back; the
    # receivers listen on loopback, which callbacks may reach only when allowed
    settings.http.callbacks = CallbackConfig(workers=4, timeout=2.0, backoff=(0.2, 0.4, 0.8),
                                             poll=0.1, allow_private=True)
    return settings


class HttpHarness(Harness):
    """A running gateway plus an HTTP client for its /websmpp/ API."""

    def __init__(self, app: App, url: str,
                 configure: Callable[[Settings], None] | None = None) -> None:
        super().__init__(app, url)
        self.session = aiohttp.ClientSession()
        self.configure = configure

    @property
    def base(self) -> str:
        host, port = self.app.http.address
        return f"http://{host}:{port}"

    async def raw_get(self, path_and_query: str) -> aiohttp.ClientResponse:
        """GET a URL written as a customer would type it (spaces and all)."""
        async with self.session.get(self.base + path_and_query) as response:
            await response.read()
            return response

    async def get(self, path: str, params: Mapping[str, Any] | list | None = None) -> str:
        async with self.session.get(self.base + path, params=params) as response:
            assert response.status == 200, response.status
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
            return await response.text()

    async def post(self, path: str, data: Mapping[str, Any] | list | str,
                   params: Mapping[str, Any] | None = None) -> str:
        async with self.session.post(self.base + path, data=data, params=params) as response:
            assert response.status == 200, response.status
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
            return await response.text()

    async def submit(self, **params: Any) -> str:
        """GET /websmpp/websms with the seed's credentials unless overridden."""
        return await self.get("/websmpp/websms", submit_params(**params))

    async def seed_account(self, **fields: Any):
        return await self.account(USER, password=PASSWORD, **fields)

    async def restart(self) -> None:
        """Stop the gateway and start a new one on the same database (new ports)."""
        await self.app.stop()
        settings = http_settings(self.url)
        if self.configure is not None:
            self.configure(settings)
        self.app = App(settings)
        await self.app.start()
        self.host, self.port = self.app.smpp.address

    async def close(self) -> None:
        await self.session.close()
        await self.close_clients()


def submit_params(**params: Any) -> dict[str, Any]:
    base = {"user": USER, "pass": PASSWORD, "sid": SENDER, "mno": LEBANON, "type": "1",
            "text": "hello"}
    base.update(params)
    return {k: v for k, v in base.items() if v is not None}


def ids_of(answer: str) -> list[int]:
    assert answer.startswith("Response: "), answer
    return [int(i) for i in answer.removeprefix("Response: ").split(",")]


@contextlib.asynccontextmanager
async def running_api(store_url: str, configure: Callable[[Settings], None] | None = None
                      ) -> AsyncIterator[HttpHarness]:
    """The gateway on a fresh database, its settings changed by `configure` first."""
    await prepare_database(store_url)
    settings = http_settings(store_url)
    if configure is not None:
        configure(settings)
    app = App(settings)
    await app.start()
    harness = HttpHarness(app, store_url, configure)
    try:
        yield harness
    finally:
        await harness.close()
        await harness.app.stop()


@pytest.fixture(name="api")
async def api_fixture(store_url: str):
    async with running_api(store_url) as harness:
        yield harness
