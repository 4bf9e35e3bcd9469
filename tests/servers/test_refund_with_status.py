"""A refund and the status that earns it are one transaction, on both backends.

A message submitted with a `dlrurl` has its status stored only after its callback row
is committed (servers/http_callbacks.py). Its refund once went to the writer at once:
for the length of that callback commit the store held the refund without the status,
and a crash then (kill -9) left a refunded message that was still pending; sent again
after the restart and rejected again, it was refunded twice. Here that callback commit
is held open: the store must show neither the refund nor the status, then both.
"""

import asyncio

from http_harness import LEBANON, api_fixture, eventually, ids_of  # noqa: F401
from smpp_harness import PRICE

from smsgate.connectors.simulator import SimulatorConnector
from smsgate.core.models import ATES, REJECTD, Route


async def test_a_refund_is_never_stored_without_its_status(api):
    account = await api.seed_account(credits=10)
    rejecting = SimulatorConnector("rejecting", {"outcomes": {REJECTD: 1},
                                                 "min_latency_ms": 5, "max_latency_ms": 20})
    await api.app.dispatcher.add_connector(rejecting)
    await api.store.add_route(Route(prefix=LEBANON[:5], connector="rejecting", price=PRICE))
    await api.app.reload_routes()
    store = api.store
    real_write_callbacks = store.write_callbacks
    held, gate = asyncio.Event(), asyncio.Event()

    async def slow_callback_commit(new, done, retry):
        if new:  # the REJECTD's callback row: its status waits for this commit
            held.set()
            await gate.wait()
        return await real_write_callbacks(new, done, retry)
    store.write_callbacks = slow_callback_commit
    try:
        [message_id] = ids_of(await api.submit(dlrurl="http://127.0.0.1:9/dlr"))
        await asyncio.wait_for(held.wait(), 10)
        await api.app.writer.flush()  # whatever the writer was given is committed
        assert (await api.message(message_id)).status == ATES
        assert await api.balance(account.id) == 9 * PRICE  # charged, not yet refunded
    finally:
        gate.set()
        store.write_callbacks = real_write_callbacks

    async def rejected():
        return (await api.message(message_id)).status == REJECTD
    await eventually(rejected, what="the rejection to be stored")
    assert await api.balance(account.id) == 10 * PRICE
    refunds = [e.message_id for e in await store.ledger(account.id, 100)
               if e.reason == "refund: rejected upstream"]
    assert refunds == [message_id]
