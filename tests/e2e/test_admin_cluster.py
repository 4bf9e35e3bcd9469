"""The admin API across a cluster (SPEC §9, §10): two real `serve` processes on one
PostgreSQL. An account made through node A's API binds on node B; A's API lists the
session B holds, and a kick asked on A unbinds it on B."""

import time

import aiohttp
import pytest
from e2e_harness import Gateway, eventually
from smpp_harness import RawClient

from smsgate.smpp.constants import Status

CUSTOMER, PASSWORD = "kickme", "kick-pw-1"


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_a_kick_on_one_node_unbinds_the_session_on_another(gateway_at, store_url):
    a: Gateway = gateway_at("node-a", store_url)
    out = await a.cli(["admin", "token", "add", "ops"])
    token = out.split()[2]
    await a.start()
    b: Gateway = await gateway_at("node-b", store_url).start()
    headers = {"Authorization": f"Bearer {token}"}
    api = f"http://127.0.0.1:{a.admin_port}/api/v1"
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(api + "/accounts", json={"system_id": CUSTOMER,
                                                      "password": PASSWORD}) as r:
            assert r.status == 201, await r.text()
        client = await RawClient.connect("127.0.0.1", b.smpp_port)
        try:
            async def bound() -> bool:  # B learns of the account from the store
                response = await client.bind("trx", CUSTOMER, PASSWORD)
                return response.status == Status.ESME_ROK
            assert await bound() or await eventually(bound, timeout=5)

            async def listed() -> list:
                async with http.get(api + "/sessions") as r:
                    return [s for s in await r.json() if s["account"] == CUSTOMER]
            [session] = await eventually(listed, timeout=5)
            assert session["node"] == "node-b"
            started = time.monotonic()
            async with http.post(api + f"/sessions/node-b/{session['session']}/kick") as r:
                assert r.status == 202, await r.text()
            unbind = await client.next_request(timeout=5)
            assert unbind.name == "unbind"
            assert time.monotonic() - started < 3
            client.respond(unbind)
            await client.wait_closed()

            async def gone() -> bool:
                return await listed() == []
            await eventually(gone, timeout=5)
        finally:
            await client.close()
