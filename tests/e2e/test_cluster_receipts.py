"""Receipts reach the receiver on whichever node holds it (SPEC §9, issue 10 "Must
show"): three `serve` processes on one PostgreSQL, the customer's Rx bound on A, its
messages submitted on B and on C; every receipt arrives at A, within about a second of
its status being stored on B or C.
"""

import asyncio
import time

from e2e_harness import next_receipt, receipted_id
from smpp_harness import RawClient, submit_sm

from smsgate.smpp.constants import Status

CUSTOMER, PASSWORD = "spread", "spread-pw-1"
PER_NODE = 20


async def test_receipts_go_to_the_node_holding_the_receiver(gateway_at, pg_url):
    a, b, c = (gateway_at(name, pg_url) for name in ("a", "b", "c"))
    await a.cli(["migrate"], ["account", "add", CUSTOMER, "--password", PASSWORD,
                              "--credits", "1000", "--max-tx", "4"])
    await asyncio.gather(a.start(), b.start(), c.start())
    rx = await RawClient.connect("127.0.0.1", a.smpp_port)
    senders = [await RawClient.connect("127.0.0.1", node.smpp_port) for node in (b, c)]
    try:
        assert (await rx.bind("rx", CUSTOMER, PASSWORD)).status == Status.ESME_ROK
        sent: set[str] = set()
        for tx in senders:
            assert (await tx.bind("tx", CUSTOMER, PASSWORD)).status == Status.ESME_ROK
            for n in range(PER_NODE):
                answer = await tx.request(submit_sm(f"4477009{n:05d}", b"where am I",
                                                   registered_delivery=1))
                assert answer.status == Status.ESME_ROK
                sent.add(answer["message_id"])

        got: dict[str, float] = {}  # id -> when it reached A
        while set(got) != sent:
            receipt = await next_receipt(rx, timeout=10)
            got[receipted_id(receipt)] = time.time()
        [(ours,)] = await a.rows("SELECT count(*) FROM messages WHERE node = 'a'")
        assert ours == 0  # none of them went through A: the receipts crossed nodes
        final = dict(await a.rows("SELECT id, done_at FROM messages"))
        late = {m: got[m] - final[int(m)] for m in got if got[m] - final[int(m)] > 1.0}
        assert not late, f"receipts later than 1 s after their status: {late}"
    finally:
        for client in (rx, *senders):
            await client.close()
    await asyncio.gather(a.terminate(), b.terminate(), c.terminate())
