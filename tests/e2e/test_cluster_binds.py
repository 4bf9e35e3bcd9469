"""The bind policy across nodes (SPEC §9, issue 10 "Must show"): one receiver per
system_id and max_tx transmitters in all, over two `serve` processes on one PostgreSQL;
a receiver's slot is free again within 10 s of its node's kill -9.
"""

import asyncio
import contextlib
import time

from e2e_harness import eventually
from smpp_harness import RawClient

from smsgate.smpp.constants import Status

CUSTOMER, PASSWORD = "bound", "bound-pw-1"


class Sessions:
    def __init__(self) -> None:
        self.open: list[RawClient] = []

    async def bind(self, node, kind: str) -> tuple[RawClient, int]:
        client = await RawClient.connect("127.0.0.1", node.smpp_port)
        self.open.append(client)
        return client, (await client.bind(kind, CUSTOMER, PASSWORD)).status

    async def close(self) -> None:
        for client in self.open:
            with contextlib.suppress(Exception):
                await client.close()


async def test_one_receiver_and_max_tx_hold_across_nodes(gateway_at, pg_url):
    a, b = gateway_at("a", pg_url), gateway_at("b", pg_url)
    await a.cli(["migrate"], ["account", "add", CUSTOMER, "--password", PASSWORD,
                              "--max-tx", "2"])
    await asyncio.gather(a.start(), b.start())
    sessions = Sessions()
    try:
        rx_a, status = await sessions.bind(a, "rx")
        assert status == Status.ESME_ROK
        _, status = await sessions.bind(b, "trx")
        assert status != Status.ESME_ROK  # the receiver is on A
        assert (await sessions.bind(a, "tx"))[1] == Status.ESME_ROK
        assert (await sessions.bind(b, "tx"))[1] == Status.ESME_ROK
        _, status = await sessions.bind(b, "tx")
        assert status != Status.ESME_ROK  # max_tx 2, summed over the nodes

        await rx_a.close()  # A gives the receiver's lease back

        async def rx_on_b() -> bool:
            _, status = await sessions.bind(b, "rx")
            return status == Status.ESME_ROK
        await eventually(rx_on_b, timeout=5, interval=0.3, what="an Rx bind on B")

        await b.kill()  # B dies holding the receiver
        killed = time.monotonic()

        async def rx_on_a() -> bool:
            _, status = await sessions.bind(a, "rx")
            return status == Status.ESME_ROK
        await eventually(rx_on_a, timeout=12, interval=0.5, what="an Rx bind on A")
        assert time.monotonic() - killed < 10
    finally:
        await sessions.close()
    await a.terminate()
