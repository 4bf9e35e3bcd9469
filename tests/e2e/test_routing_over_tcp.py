"""Routing between real upstreams over TCP (SPEC §8): failover past a connector whose SMSC
is down, least-cost choice between equal priorities, and weighted sharing between equal
priority and cost. Gateway A has three SMPP connectors: `down` (nothing listens on its
port), `y` and `z` (two smpp34 SMSCs in the test, which count what they receive).

    4470  down  priority 0  price 0.05   |  y  priority 1  price 0.09
    4471  y     cost 0.02   price 0.03   |  z  cost 0.01   price 0.035
    4472  y     weight 3    price 0.04   |  z  weight 1    price 0.04
"""

import aiohttp
import pytest
from e2e_harness import eventually, ids_of
from upstreams import Smpp34Smsc, free_port

from smsgate.core.models import CREDIT_SCALE

pytest.importorskip("smpp34")

CUSTOMER, PASSWORD = "cust", "cust-pw-1"
FAILOVER, CHEAPEST, SHARED = 40, 40, 400  # messages per prefix


def connector(name: str, port: int) -> list[str]:
    return ["connector", "add", name, "--type", "smpp", "--host", "127.0.0.1", "--port",
            str(port), "--system-id", "gwa", "--password", "pw", "--window", "20"]


async def test_failover_least_cost_and_weights(gateway_at):
    y, z = await Smpp34Smsc().start(), await Smpp34Smsc().start()
    a = gateway_at("a")
    await a.cli(
        ["migrate"],
        ["account", "add", CUSTOMER, "--password", PASSWORD, "--credits", "1000"],
        connector("down", free_port()), connector("y", y.port), connector("z", z.port),
        ["route", "add", "4470", "down", "--price", "0.05"],
        ["route", "add", "4470", "y", "--price", "0.09", "--priority", "1"],
        ["route", "add", "4471", "y", "--price", "0.03", "--cost", "0.02"],
        ["route", "add", "4471", "z", "--price", "0.035", "--cost", "0.01"],
        ["route", "add", "4472", "y", "--price", "0.04", "--weight", "3"],
        ["route", "add", "4472", "z", "--price", "0.04", "--weight", "1"])
    await a.start()
    session = aiohttp.ClientSession()
    try:
        numbers = {prefix: [f"{prefix}{n:08d}" for n in range(count)]
                   for prefix, count in (("4470", FAILOVER), ("4471", CHEAPEST),
                                         ("4472", SHARED))}
        for batch in numbers.values():
            form = {"user": CUSTOMER, "pass": PASSWORD, "sid": "Acme", "type": "1",
                    "text": "hello", "mno": ",".join(batch)}
            async with session.post(f"{a.base}/websmpp/websms", data=form) as response:
                assert len(ids_of(await response.text())) == len(batch)
        total = FAILOVER + CHEAPEST + SHARED
        await eventually(lambda: len(y.accepted) + len(z.accepted) == total, timeout=60,
                         what=f"{total} messages at the SMSCs")
        at_y, at_z = set(y.destinations), set(z.destinations)
        assert set(y.accepted.values()) | set(z.accepted.values()) == {1}

        # Failover: every 4470 message by y, at the first route's price.
        assert set(numbers["4470"]) <= at_y
        # Least cost: z carries all of 4471, and its price is what the customer pays.
        assert set(numbers["4471"]) <= at_z
        # Weights 3:1: y's share of 4472 about 3/4 (expected 300 of 400, sd ~9).
        shared_y = len(set(numbers["4472"]) & at_y)
        assert 0.6 * SHARED <= shared_y <= 0.9 * SHARED, shared_y
        prices = dict(await a.rows("SELECT substr(dest_addr, 1, 4), group_concat("
                                   "DISTINCT price) FROM messages GROUP BY 1"))
        assert prices == {"4470": str(CREDIT_SCALE * 5 // 100),
                          "4471": str(CREDIT_SCALE * 35 // 1000),
                          "4472": str(CREDIT_SCALE * 4 // 100)}
        carried = dict(await a.rows("SELECT substr(dest_addr, 1, 4) || connector, count(*) "
                                    "FROM messages GROUP BY 1"))
        assert carried == {"4470y": FAILOVER, "4471z": CHEAPEST, "4472y": shared_y,
                           "4472z": SHARED - shared_y}
        print(f"\nfailover {FAILOVER}/{FAILOVER} by y; least cost {CHEAPEST}/{CHEAPEST} "
              f"by z; weights 3:1 -> y {shared_y}, z {SHARED - shared_y} of {SHARED}")
    finally:
        await session.close()
        await a.terminate()
        await y.stop()
        await z.stop()
