"""HTTP providers' delivery reports over real HTTP to a real App (SPEC §8):
`GET|POST /connectors/NAME/dlr` maps the provider's word with the connector's table and
hands the report to the core; unknown connectors, unknown words, tokens, sizes."""

import logging

import aiohttp
import pytest
from aiohttp import web
from http_harness import api_fixture, eventually, ids_of  # noqa: F401

from smsgate.connectors.settings import HttpSettings
from smsgate.core.models import CREDIT_SCALE, Connector, Route

TOKEN = "s3cr3t-t0ken-0123456789"


async def add_http_connector(api, name: str = "prov", **config) -> None:
    settings = HttpSettings(url="https://provider.example/send?to={to}", **config)
    await api.app.store.add_connector(Connector(name, "http", settings.to_config()))


async def call(api, method: str, path: str, **kwargs) -> tuple[int, str]:
    async with api.session.request(method, api.base + path, **kwargs) as response:
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        return response.status, await response.text()


async def test_an_unknown_or_non_http_connector_is_404(api):
    await add_http_connector(api)
    for name in ("nobody", "simulator", "PROV", "x" * 200):
        assert await call(api, "GET", f"/connectors/{name}/dlr",
                          params={"id": "1", "status": "DELIVRD"}) == \
            (404, "no such HTTP connector")


async def test_an_unknown_word_is_400_with_the_reason(api):
    await add_http_connector(api, dlr_status={"delivered": "DELIVRD"})
    status, text = await call(api, "GET", "/connectors/prov/dlr",
                              params={"id": "ab1", "status": "great"})
    assert (status, text) == (400, "unknown status 'GREAT' for connector prov "
                                   "(known: DELIVERED)")
    assert await call(api, "POST", "/connectors/prov/dlr", data={"status": "delivered"}) \
        == (400, "id missing")


async def test_a_connector_added_while_running_is_found_within_seconds(api):
    path = "/connectors/late/dlr?id=1&status=nonsense"
    assert (await call(api, "GET", path))[0] == 404
    await add_http_connector(api, "late")
    api.app.http.dlr.settings._loaded_at -= 2  # the last read was a while ago
    assert (await call(api, "GET", path))[0] == 400  # known now: the word is wrong


async def test_the_token_is_required_when_set(api, caplog):
    await add_http_connector(api, dlr_token=TOKEN)
    params = {"id": "ab1", "status": "nonsense"}
    with caplog.at_level(logging.DEBUG):
        for token in (None, "", "wrong-" + TOKEN, TOKEN[:-1]):
            extra = {} if token is None else {"token": token}
            assert await call(api, "GET", "/connectors/prov/dlr", params={**params, **extra}) \
                == (403, "missing or wrong token")
        assert await call(api, "POST", "/connectors/prov/dlr",
                          data={**params, "token": "x" * 100_000}) == \
            (413, "body longer than 8192 bytes")
        # with the right token the request gets as far as the status word
        assert (await call(api, "POST", "/connectors/prov/dlr",
                           data={**params, "token": TOKEN}))[0] == 400
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "missing or wrong token" in logged and TOKEN[:-1] not in logged


async def test_sizes_and_methods(api):
    await add_http_connector(api)
    path = "/connectors/prov/dlr"
    status, text = await call(api, "GET", path, params={"id": "1" * 129, "status": "1"})
    assert (status, text) == (400, "id longer than 128 characters")
    status, _ = await call(api, "POST", path, data="id=1&status=1&pad=" + "x" * 9000,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413

    async def chunked():  # no Content-Length: cut at the limit while reading
        yield b"id=1&status=1&pad="
        for _ in range(20):
            yield b"x" * 1000
    status, _ = await call(api, "POST", path, data=chunked(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413
    assert await call(api, "POST", path, data=b"id=\xff&status=1",
                      headers={"Content-Type": "application/x-www-form-urlencoded"}) \
        == (400, "form body is not UTF-8")
    assert await call(api, "POST", path, data="&".join(["a=1"] * 60),
                      headers={"Content-Type": "application/x-www-form-urlencoded"}) \
        == (400, "more than 50 form fields")
    async with api.session.put(api.base + path) as response:
        assert (response.status, response.headers["Allow"]) == (405, "GET, POST")


# -- reports handed to the core (Gateway.upstream_report) -------------------------------

@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_report_is_stored_and_answered_ok(api, method):
    await add_http_connector(api, dlr_status={"delivered": "DELIVRD", "2": "UNDELIV"})
    fields = {"id": "ab1", "status": "2", "err": "34"}
    kwargs = {"params": fields} if method == "GET" else {"data": fields}
    assert await call(api, method, "/connectors/prov/dlr", **kwargs) == (200, "OK")
    assert api.app.http.dlr.stored == 1


async def test_a_report_not_stored_is_503(api):
    await add_http_connector(api)
    assert (await call(api, "GET", "/connectors/prov/dlr?id=ab0&status=DELIVRD"))[0] == 200
    await api.app.store.close()  # the store fails under the gateway
    try:
        assert await call(api, "GET", "/connectors/prov/dlr",
                          params={"id": "ab1", "status": "DELIVRD"}) == \
            (503, "not stored, try again")
        api.app.http.dlr.settings._table = None  # nor can the settings be read now
        assert await call(api, "GET", "/connectors/prov/dlr",
                          params={"id": "ab1", "status": "DELIVRD"}) == \
            (503, "connector settings unavailable, try again")
    finally:
        await api.app.store.open()


async def test_no_customer_credentials_are_needed_nor_looked_at(api):
    await add_http_connector(api)
    async with aiohttp.ClientSession() as session:
        url = api.base + "/connectors/prov/dlr?id=1&status=DELIVRD&user=x&pass=y"
        async with session.get(url) as response:
            assert response.status == 200


# -- the whole way: customer -> gateway -> provider -> report -> customer -----------------

class Provider:
    """A provider on a real port: answers `OK id=P<our id>` (or `refusal`), and
    remembers each request's query."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.refusal: tuple[int, str] | None = None
        self.runner: web.AppRunner | None = None

    async def send(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        if self.refusal:
            return web.Response(status=self.refusal[0], text=self.refusal[1])
        return web.Response(text=f"OK id=P{request.query['ref']}")

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_get("/send", self.send)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def __aexit__(self, *exc) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def route_to_provider(api, base: str, **config) -> None:
    """Destinations starting 44 go to the provider (running at once, not in 2 s), and
    to the simulator when it fails."""
    settings = HttpSettings(url=base + "/send?to={to}&text={text}&ref={id}", ok="^OK",
                            id=r"id=(\S+)", dlr_token=TOKEN, **config)
    await api.app.store.add_connector(Connector("prov", "http", settings.to_config()))
    await api.app.store.add_route(Route("44", "prov", CREDIT_SCALE))
    await api.app.store.add_route(Route("44", "simulator", CREDIT_SCALE, priority=1))
    await api.app.connectors.reload()
    await api.app.reload_routes()


async def status_of(api, message_id: int) -> str:
    return await api.get("/websmpp/websmsstatus", {"respId": message_id})


async def test_a_message_goes_to_the_provider_and_its_report_comes_back(api):
    provider = Provider()
    async with provider as base:
        await route_to_provider(api, base)
        await api.seed_account()
        [message_id] = ids_of(await api.submit(mno="447700900123", text="Tom & Jerry #1"))

        async def requested():
            return provider.queries
        await eventually(requested, what="the provider's request")
        assert provider.queries == [{"to": "447700900123", "text": "Tom & Jerry #1",
                                     "ref": str(message_id)}]
        report = {"id": f"P{message_id}", "status": "1", "token": TOKEN}
        assert await call(api, "GET", "/connectors/prov/dlr", params=report) == (200, "OK")

        async def delivered():
            return await status_of(api, message_id) == "Response: DELIVRD"
        await eventually(delivered, what="DELIVRD")


async def test_a_providers_refusal_makes_the_message_rejected(api):
    provider = Provider()
    provider.refusal = (400, "invalid destination")
    async with provider as base:
        await route_to_provider(api, base)
        await api.seed_account()
        [message_id] = ids_of(await api.submit(mno="447700900124"))

        async def rejected():
            return await status_of(api, message_id) == "Response: REJECTD"
        await eventually(rejected, what="REJECTD")
        message = await api.app.store.get_message(message_id)
        assert message.error_code == 400


async def test_a_failing_provider_opens_its_circuit_and_messages_fail_over(api):
    provider = Provider()
    provider.refusal = (503, "maintenance")
    async with provider as base:
        await route_to_provider(api, base, circuit_failures=2, circuit_cooldown=60)
        await api.seed_account()
        [message_id] = ids_of(await api.submit(mno="447700900125"))

        async def delivered():  # by the simulator, the next route
            return await status_of(api, message_id) == "Response: DELIVRD"
        await eventually(delivered, what="DELIVRD by the next route")
        assert len(provider.queries) == 2  # tried twice, then the circuit opened
        assert api.app.dispatcher.connectors["prov"].state()["circuit"] == "open"
        # the simulator's status (with its sent mark) reaches the store within its hold
        async def stored_as_sent_by_the_simulator():
            return (await api.app.store.get_message(message_id)).connector == "simulator"
        await eventually(stored_as_sent_by_the_simulator, what="the row written")
