"""Receipt notices between nodes (PostgreSQL LISTEN/NOTIFY, SPEC §9): another node's
are heard, this node's own are not, and a payload that is not ours does no harm."""

import asyncio

import asyncpg

from smsgate.store.postgres import RECEIPTS_CHANNEL


async def test_notices_of_other_nodes_are_heard_and_bad_ones_are_harmless(store, store_url):
    if not store_url.startswith("postgresql"):
        assert not await store.listen_receipts(lambda ids: None)  # one node: no notices
        return
    await store.claim_node("a", "run-a")
    heard: list = []
    assert await store.listen_receipts(heard.append)
    sender = await asyncpg.connect(store_url)
    try:
        for payload in ("b|3,4", "a|5", "b|x,y", "garbage", "b|"):
            await sender.execute("SELECT pg_notify($1, $2)", RECEIPTS_CHANNEL, payload)
    finally:
        await sender.close()
    for _ in range(50):
        if len(heard) == 4:
            break
        await asyncio.sleep(0.05)
    assert heard == [[3, 4], None, None, None]  # own "a|5" skipped; the rest: look at all
    assert await store.listen_receipts(heard.append)  # still listening


