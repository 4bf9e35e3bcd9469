"""The admin REST API (SPEC §10) against the real App over TCP: every endpoint needs a
token (401 without or unknown, 403 revoked), validation errors are JSON, and each
endpoint's happy path changes or reads what it says, as the store and the customer
ports then show."""

import asyncio
import contextlib
import re
import time

import aiohttp
import pytest
from http_harness import LEBANON, PASSWORD, USER, ids_of, running_api
from smpp_harness import eventually

from smsgate.core.admin_tokens import AdminTokens
from smsgate.servers.admin_api import ENDPOINTS, PREFIX


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/smsgate.db"


class Admin:
    """An HTTP client of the admin port with a token."""

    def __init__(self, harness, token: str) -> None:
        self.harness = harness
        self.token = token
        host, port = harness.app.admin_api.address
        self.base = f"http://{host}:{port}"
        self.session = aiohttp.ClientSession()

    async def call(self, method: str, path: str, json=None, token: str | None = "",
                   data=None, params=None) -> tuple[int, object]:
        headers = {}
        token = self.token if token == "" else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.base + path, json=json, data=data,
                                        headers=headers, params=params) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json()

    async def ok(self, method: str, path: str, status: int = 200, **kwargs) -> object:
        got, body = await self.call(method, PREFIX + path, **kwargs)
        assert got == status, (got, body)
        return body


@contextlib.asynccontextmanager
async def admin_api(url: str, configure=None):
    async with running_api(url, configure) as harness:
        token = await AdminTokens(harness.store).issue("tests")
        client = Admin(harness, token)
        try:
            yield client
        finally:
            await client.session.close()


@pytest.fixture
async def admin(sqlite_url):
    async with admin_api(sqlite_url) as client:
        yield client


def concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", lambda m: "1" if m.group(0).endswith("id}") else "x", path)


def assert_error(status: int, body, code: str, expected: int) -> None:
    assert status == expected, (status, body)
    assert set(body) == {"error", "detail"} and body["error"] == code, body


async def test_every_endpoint_needs_a_valid_unrevoked_token(sqlite_url):
    def configure(settings):
        settings.login.max_failures = 0  # many wrong tokens here: no back-off

    async with admin_api(sqlite_url, configure) as admin:
        await _every_endpoint_needs_a_token(admin)


async def _every_endpoint_needs_a_token(admin) -> None:
    revoked = await AdminTokens(admin.harness.store).issue("old")
    assert await AdminTokens(admin.harness.store).revoke("old")
    paths = [(e.method, PREFIX + concrete(e.path)) for e in ENDPOINTS]
    paths.append(("GET", PREFIX + "/openapi.json"))
    for method, path in paths:
        assert_error(*await admin.call(method, path, token=None), "unauthorized", 401)
        assert_error(*await admin.call(method, path, token="not-a-token"), "unauthorized",
                     401)
        assert_error(*await admin.call(method, path, token=revoked), "forbidden", 403)
    # a wrong scheme is no token
    async with admin.session.get(admin.base + PREFIX + "/accounts",
                                 headers={"Authorization": f"Basic {admin.token}"}) as r:
        assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"


async def test_failed_tokens_count_toward_the_login_back_off(sqlite_url):
    def configure(settings):
        settings.login.max_failures = 3

    async with admin_api(sqlite_url, configure) as admin:
        for _ in range(3):
            assert_error(*await admin.call("GET", PREFIX + "/nodes", token="guess"),
                         "unauthorized", 401)
        # now even the right token is refused from this address, unchecked
        assert_error(*await admin.call("GET", PREFIX + "/nodes"), "login_backoff", 429)


async def test_errors_are_json(admin):
    assert_error(*await admin.call("GET", PREFIX + "/nothing"), "not_found", 404)
    assert_error(*await admin.call("DELETE", PREFIX + "/accounts"), "method_not_allowed", 405)
    assert_error(*await admin.call("POST", PREFIX + "/accounts", data=b"{not json"),
                 "bad_json", 400)
    assert_error(*await admin.call("POST", PREFIX + "/accounts", json={"system_id": "x"}),
                 "invalid", 422)  # no password
    assert_error(*await admin.call("POST", PREFIX + "/accounts",
                                   json={"system_id": "x", "password": "p", "typo": 1}),
                 "invalid", 422)
    assert_error(*await admin.call("GET", PREFIX + "/messages/abc"), "invalid", 422)
    assert_error(*await admin.call("GET", PREFIX + "/messages", params={"limit": "0"}),
                 "invalid", 422)
    assert_error(*await admin.call("GET", PREFIX + "/accounts/nobody"), "not_found", 404)


async def test_accounts_create_update_credit_and_ledger(admin):
    created = await admin.ok("POST", "/accounts", 201, json={
        "system_id": USER, "password": PASSWORD, "credits": "12.5", "tps": 5,
        "allowed_senders": ["Test"], "allowed_ips": ["127.0.0.0/8"]})
    assert created["balance"] == "12.50" and created["tps"] == 5
    assert created["allowed_ips"] == ["127.0.0.0/8"]
    assert [a["system_id"] for a in await admin.ok("GET", "/accounts")] == ["demo", USER] \
        or USER in [a["system_id"] for a in await admin.ok("GET", "/accounts")]
    status, body = await admin.call("POST", PREFIX + "/accounts",
                                    json={"system_id": USER, "password": "x"})
    assert_error(status, body, "exists", 409)
    assert_error(*await admin.call("POST", PREFIX + "/accounts", json={
        "system_id": "bad", "password": "x", "allowed_ips": ["300.1.1.1"]}), "invalid", 422)

    # the customer port sees it: balance through the HTTP API
    harness = admin.harness
    assert await harness.get("/websmpp/balanceReport",
                             {"userid": USER, "password": PASSWORD}) == "Response: 12.50"
    balance = await admin.ok("POST", f"/accounts/{USER}/credit",
                             json={"amount": 7.5, "reason": "invoice 42"})
    assert balance == {"system_id": USER, "balance": "20.00"}
    assert await harness.get("/websmpp/balanceReport",
                             {"userid": USER, "password": PASSWORD}) == "Response: 20.00"
    assert_error(*await admin.call("POST", PREFIX + f"/accounts/{USER}/credit",
                                   json={"amount": 0}), "invalid", 422)
    assert_error(*await admin.call("POST", PREFIX + f"/accounts/{USER}/credit",
                                   json={"amount": "0.00001"}), "invalid", 422)
    ledger = await admin.ok("GET", f"/accounts/{USER}/ledger")
    assert [(e["amount"], e["reason"]) for e in ledger] == [
        ("7.50", "top-up (admin api): invoice 42"), ("12.50", "opening balance")]

    updated = await admin.ok("PATCH", f"/accounts/{USER}", json={
        "password": "new-pw", "max_tx": 3, "expires_at": time.time() + 86400})
    assert updated["max_tx"] == 3 and updated["expires_at"] > time.time()
    # the running gateway reloads accounts every 2 s (no polling here: each wrong
    # password would count toward the login back-off)
    await asyncio.sleep(2.5)
    assert await harness.get("/websmpp/balanceReport",
                             {"userid": USER, "password": "new-pw"}) == "Response: 20.00"
    disabled = await admin.ok("PATCH", f"/accounts/{USER}", json={"enabled": False})
    assert disabled["enabled"] is False
    assert (await admin.ok("GET", f"/accounts/{USER}"))["enabled"] is False


async def test_routes_connectors_numbers_and_coverage(admin):
    harness = admin.harness
    await harness.seed_account()
    connector = await admin.ok("POST", "/connectors", 201, json={
        "name": "sim2", "type": "simulator", "config": {"min_latency_ms": 1,
                                                       "max_latency_ms": 2}})
    assert connector["enabled"] and connector["routes"] == []
    assert_error(*await admin.call("POST", PREFIX + "/connectors", json={
        "name": "bad", "type": "smpp", "config": {"port": "not a port"}}), "invalid", 422)
    route = await admin.ok("POST", "/routes", 201, json={
        "prefix": "961", "connector": "sim2", "price": "0.5", "account": USER, "priority": 1})
    assert route["account"] == USER and route["price"] == "0.50"
    assert route["id"] in [r["id"] for r in await admin.ok("GET", "/routes")]
    assert_error(*await admin.call("POST", PREFIX + "/routes", json={
        "prefix": "1", "connector": "nowhere"}), "invalid", 422)
    assert_error(*await admin.call("DELETE", PREFIX + "/connectors/sim2"), "in_use", 409)
    # live state: the running gateway reports the new connector
    async def reported() -> bool:
        [view] = [c for c in await admin.ok("GET", "/connectors") if c["name"] == "sim2"]
        return bool(view["states"]) and view["states"][0]["node"] == "test"
    await eventually(reported, timeout=15)
    stopped = await admin.ok("POST", "/connectors/sim2/stop")
    assert stopped["enabled"] is False
    assert (await admin.ok("POST", "/connectors/sim2/start"))["enabled"] is True
    await admin.ok("DELETE", f"/routes/{route['id']}")
    assert_error(*await admin.call("DELETE", PREFIX + f"/routes/{route['id']}"),
                 "not_found", 404)
    assert (await admin.ok("DELETE", "/connectors/sim2"))["name"] == "sim2"
    assert "sim2" not in [c["name"] for c in await admin.ok("GET", "/connectors")]

    number = await admin.ok("POST", "/numbers", 201, json={
        "number": "+4477009001", "account": USER, "mo_url": "https://example.com/mo"})
    assert number == {"number": "4477009001", "account": USER,
                      "mo_url": "https://example.com/mo"}
    assert_error(*await admin.call("POST", PREFIX + "/numbers", json={
        "number": "4477009001", "account": USER}), "exists", 409)
    assert await admin.ok("GET", "/numbers") == [number]
    await admin.ok("DELETE", "/numbers/4477009001")
    assert await admin.ok("GET", "/numbers") == []

    csv = "country,iso,operator,mcc,mnc,prefix,price\nLebanon,LB,Alfa,415,01,96170,0.25\n"
    assert await admin.ok("PUT", "/coverage", data=csv.encode()) == {"imported": 1}
    assert await admin.ok("GET", "/coverage") == [{
        "country": "Lebanon", "iso": "LB", "operator": "Alfa", "mcc": "415", "mnc": "01",
        "prefix": "96170", "price": "0.25"}]
    assert_error(*await admin.call("PUT", PREFIX + "/coverage", data=b"a,b\n"), "invalid", 422)
    assert_error(*await admin.call("PUT", PREFIX + "/coverage", data=b"\xff\xfe"),
                 "bad_body", 400)
    assert_error(*await admin.call("PUT", PREFIX + "/coverage", data=b'"a\x00,b'),
                 "invalid", 422)


async def test_messages_search_paging_and_timeline(store_url):
    async with admin_api(store_url) as admin:
        harness = admin.harness
        await harness.seed_account()
        ids = []
        for n in range(5):
            ids += ids_of(await harness.submit(mno=f"{LEBANON[:-1]}{n}"))
        ids += ids_of(await harness.submit(mno="4477001122"))

        page = await admin.ok("GET", "/messages", params={"account": USER, "limit": "4"})
        assert [m["id"] for m in page["messages"]] == sorted(ids, reverse=True)[:4]
        rest = await admin.ok("GET", "/messages", params={
            "account": USER, "limit": "4", "cursor": str(page["next_cursor"])})
        assert [m["id"] for m in rest["messages"]] == sorted(ids, reverse=True)[4:]
        assert rest["next_cursor"] is None
        by_dest = await admin.ok("GET", "/messages", params={"dest": "+447"})
        assert [m["dest_addr"] for m in by_dest["messages"]] == ["4477001122"]
        window = await admin.ok("GET", "/messages", params={"until": str(time.time() - 3600)})
        assert window["messages"] == []

        async def delivered() -> bool:
            found = await admin.ok("GET", "/messages", params={"status": "DELIVRD"})
            return len(found["messages"]) == len(ids)
        await eventually(delivered, timeout=10)
        timeline = await admin.ok("GET", f"/messages/{ids[0]}")
        assert timeline["message"]["account"] == USER
        assert timeline["message"]["connector"] == "simulator"
        assert timeline["events"][0]["event"] == "accepted"
        assert "DELIVRD" in [e["event"] for e in timeline["events"]]
        assert_error(*await admin.call("GET", PREFIX + f"/messages/{ids[-1] + 10**6}"),
                     "not_found", 404)

        async def counted() -> dict:  # written every 2 s (core/status_history.py)
            stats = await admin.ok("GET", "/stats", params={"window": "600", "step": "60"})
            return stats if stats["totals"].get("DELIVRD") == len(ids) else None
        stats = await eventually(counted, timeout=10)
        assert stats["totals"]["ATES"] == len(ids) and stats["step"] == 60
        assert sum(b["counts"].get("DELIVRD", 0) for b in stats["series"]) == len(ids)
        [node] = await admin.ok("GET", "/nodes")
        assert node["id"] == "test" and node["state"] == "alive"


async def test_sessions_are_listed_and_kicked(store_url):
    async with admin_api(store_url) as admin:
        harness = admin.harness
        await harness.account()
        client = await harness.bound("trx")
        [session] = await admin.ok("GET", "/sessions")
        assert (session["node"], session["account"], session["kind"]) == ("test", "acme", "trx")
        kicked = await admin.ok("POST", f"/sessions/test/{session['session']}/kick", 202)
        assert kicked == {"kicked": True}
        unbind = await client.next_request(timeout=5)  # the gateway unbinds it
        assert unbind.name == "unbind"
        client.respond(unbind)
        await client.wait_closed()
        await eventually(lambda: _no_sessions(admin), timeout=5)
        assert_error(*await admin.call("POST", PREFIX + "/sessions/test/999/kick"),
                     "not_found", 404)


async def _no_sessions(admin) -> bool:
    return await admin.ok("GET", "/sessions") == []


async def test_health_metrics_and_openapi_on_the_admin_port(admin):
    async with admin.session.get(admin.base + "/health") as response:
        assert response.status == 200 and (await response.json())["status"] == "ok"
    async with admin.session.get(admin.base + "/metrics") as response:
        assert response.status == 200 and "smsgate" in await response.text()
    document = await admin.ok("GET", "/openapi.json")
    assert document["openapi"].startswith("3.")
    routes = {(m, PREFIX + e.path) for e in ENDPOINTS for m in [e.method.lower()]}
    assert routes == {(m, p) for p, ops in document["paths"].items() for m in ops}
    # the schemas are pydantic's: a request model's constraints are in the document
    create = document["components"]["schemas"]["AccountCreate"]
    assert create["properties"]["system_id"]["maxLength"] == 16
    assert set(create["required"]) == {"system_id", "password"}


async def test_kicks_wait_for_the_owning_node(store_url):
    """The kick is a flag in the store: a node that does not own the lease leaves it."""
    async with admin_api(store_url) as admin:
        await admin.harness.account()
        await admin.harness.bound("tx")
        [session] = await admin.ok("GET", "/sessions")
        store = admin.harness.store
        # another run of this node id would not see it as its own
        assert await store.kicked_sessions("test", "another-run") == []
        assert await store.kick_session("other-node", session["session"]) is False
        await asyncio.sleep(0)


async def test_timeline_shows_receipts_and_callbacks_sent(store_url):
    """A receipt delivered to the customer's SMPP receiver and a dlrurl callback both
    leave the outbox: the message's timeline still shows them, with their outcome."""
    from aiohttp import web

    calls: list[str] = []

    async def dlr(request: web.Request) -> web.Response:
        calls.append(request.query_string)
        return web.Response(text="OK")

    site_app = web.Application()
    site_app.router.add_get("/dlr", dlr)
    runner = web.AppRunner(site_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with admin_api(store_url) as admin:
            harness = admin.harness
            await harness.account()
            client = await harness.bound("trx")
            response = await client.submit(registered_delivery=1)
            message_id = int(response.fields["message_id"])
            receipt = await client.next_request(timeout=10)
            assert receipt.name == "deliver_sm"
            client.respond(receipt)
            await harness.seed_account()
            [http_id] = ids_of(await harness.submit(dlrurl=f"http://127.0.0.1:{port}/dlr"))

            async def logged(mid: int, event: str) -> bool:
                timeline = await admin.ok("GET", f"/messages/{mid}")
                return event in [e["event"] for e in timeline["events"]]
            await eventually(lambda: logged(message_id, "receipt delivered"), timeout=10)
            await eventually(lambda: logged(http_id, "callback delivered"), timeout=10)
            assert calls
            timeline = await admin.ok("GET", f"/messages/{message_id}")
            assert timeline["receipts_waiting"] == []
            [event] = [e for e in timeline["events"] if e["event"] == "receipt delivered"]
            assert event["detail"].startswith("DELIVRD")
    finally:
        await runner.cleanup()
