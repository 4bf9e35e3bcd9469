"""cancel_sm against dispatch, over real TCP on both backends: a message is either
cancelled and refunded, or sent, never both. The races are driven deterministically
with an upstream that is not ready (messages wait in the dispatcher's queue) or that
answers later, and with a hook around the store call of the cancel."""

import asyncio

from gated_upstream import DEST, with_upstream
from smpp_harness import PRICE, SENDER, eventually

from smsgate.core.models import DELETED, DELIVRD
from smsgate.smpp.constants import CommandId, Status
from smsgate.smpp.pdu import Pdu
from smsgate.smpp.smpptime import format_relative


def _cancel_sm(message_id: str) -> Pdu:
    return Pdu(CommandId.cancel_sm, fields={"message_id": message_id, "source_addr": SENDER,
                                            "destination_addr": DEST})


async def _refunds(gateway, account_id: int) -> list[int]:
    return [e.message_id for e in await gateway.store.ledger(account_id, 100)
            if e.reason == "refund: cancelled"]


async def test_a_queued_message_cancelled_is_never_sent(gateway):
    account = await gateway.account(credits=10)
    upstream = await with_upstream(gateway)
    client = await gateway.bound("tx")
    queued = (await client.submit(DEST))["message_id"]  # waits: the upstream is closed
    cancel = await client.request(_cancel_sm(queued))
    assert cancel.status == Status.ESME_ROK
    later = (await client.submit(DEST))["message_id"]  # queued behind the cancelled one
    upstream.open = True

    async def later_sent():
        return int(later) in upstream.sent
    await eventually(later_sent, what="the queue to go out")
    assert upstream.sent == [int(later)]
    assert (await gateway.message(queued)).status == DELETED
    assert await _refunds(gateway, account.id) == [int(queued)]
    assert await gateway.balance(account.id) == 9 * PRICE


async def test_nothing_goes_out_while_the_cancel_transaction_runs(gateway):
    account = await gateway.account(credits=10)
    upstream = await with_upstream(gateway)
    client = await gateway.bound("tx")
    queued = (await client.submit(DEST))["message_id"]
    store = gateway.store
    real_cancel = store.cancel_messages

    async def cancel_while_the_upstream_opens(*args, **kwargs):
        # The dispatcher retries its queue while the cancel is on its way to the store.
        upstream.open = True
        await asyncio.wait_for(upstream.asked_while_open.wait(), 10)
        await asyncio.sleep(0)
        return await real_cancel(*args, **kwargs)
    store.cancel_messages = cancel_while_the_upstream_opens
    try:
        cancel = await client.request(_cancel_sm(queued), timeout=15)
    finally:
        store.cancel_messages = real_cancel
    assert cancel.status == Status.ESME_ROK
    probe = (await client.submit(DEST))["message_id"]

    async def probe_sent():
        return int(probe) in upstream.sent
    await eventually(probe_sent, what="the probe to go out")
    assert upstream.sent == [int(probe)]
    assert (await gateway.message(queued)).status == DELETED
    assert await _refunds(gateway, account.id) == [int(queued)]
    assert await gateway.balance(account.id) == 9 * PRICE


async def test_a_message_handed_to_a_slow_upstream_cannot_be_cancelled(gateway):
    account = await gateway.account(credits=10)
    upstream = await with_upstream(gateway)
    upstream.open = upstream.report_later = True
    client = await gateway.bound("tx")
    sent = (await client.submit(DEST))["message_id"]

    async def handed_over():
        return int(sent) in upstream.sent
    await eventually(handed_over, what="the message to reach the upstream")
    cancel = await client.request(_cancel_sm(sent))
    assert cancel.status == Status.ESME_RCANCELFAIL
    upstream.report_all()

    async def delivered():
        return (await gateway.message(sent)).status == DELIVRD
    await eventually(delivered, what="the delivery to be stored")
    assert await _refunds(gateway, account.id) == []
    assert await gateway.balance(account.id) == 9 * PRICE


async def test_a_scheduled_message_cancelled_during_its_last_read_is_not_sent(gateway):
    # The scheduler re-reads a due message before sending it; a whole cancel_sm runs
    # between that read and its answer, which is then stale.
    account = await gateway.account(credits=10)
    upstream = await with_upstream(gateway)
    upstream.open = True
    client = await gateway.bound("tx")
    due = (await client.submit(DEST, schedule_delivery_time=format_relative(1)))["message_id"]
    store = gateway.store
    real_get = store.get_message
    cancelled = asyncio.Event()

    async def cancel_during_the_read(message_id: int):
        message = await real_get(message_id)
        if message_id == int(due) and not cancelled.is_set():
            cancelled.set()  # the cancel's own read (find_message) passes straight on
            cancel = await client.request(_cancel_sm(due))
            assert cancel.status == Status.ESME_ROK
        return message
    store.get_message = cancel_during_the_read
    try:
        await asyncio.wait_for(cancelled.wait(), 10)
        probe = (await client.submit(DEST))["message_id"]

        async def probe_sent():
            return int(probe) in upstream.sent
        await eventually(probe_sent, what="the probe to go out")
        await asyncio.sleep(0.5)  # a scheduler retry would come within its poll (0.25 s)
    finally:
        store.get_message = real_get
    assert upstream.sent == [int(probe)]
    assert (await gateway.message(due)).status == DELETED
    assert await _refunds(gateway, account.id) == [int(due)]


async def test_cancels_leave_nothing_behind_in_the_dispatcher(gateway):
    await gateway.account(credits=100)
    await with_upstream(gateway)
    client = await gateway.bound("tx")
    in_an_hour = format_relative(3600)
    for _ in range(20):  # scheduled: never queued in the dispatcher
        message_id = (await client.submit(DEST, schedule_delivery_time=in_an_hour))["message_id"]
        assert (await client.request(_cancel_sm(message_id))).status == Status.ESME_ROK
    queued = (await client.submit(DEST))["message_id"]  # and one queued (upstream closed)
    assert (await client.request(_cancel_sm(queued))).status == Status.ESME_ROK
    assert (await client.request(_cancel_sm(queued))).status == Status.ESME_RCANCELFAIL
    dispatcher = gateway.app.dispatcher
    assert dispatcher.holds_pending == 0
    assert dispatcher.queued == 0


def _replace_sm(message_id: str, text: bytes, **fields) -> Pdu:
    return Pdu(CommandId.replace_sm, fields={"message_id": message_id, "source_addr": SENDER,
                                             "short_message": text, **fields})


async def test_a_queued_message_replaced_goes_out_with_its_new_text(gateway):
    await gateway.account(credits=100)
    upstream = await with_upstream(gateway)
    client = await gateway.bound("tx")
    message_id = (await client.submit(DEST, b"old text"))["message_id"]
    await asyncio.sleep(0.1)  # queued in the dispatcher: the upstream is closed
    reply = await client.request(_replace_sm(message_id, b"new text"))
    assert reply.status == Status.ESME_ROK
    upstream.open = True

    async def sent():
        return int(message_id) in upstream.sent
    await eventually(sent, what="the message to go out")
    assert upstream.payloads[int(message_id)] == b"new text"
    assert (await gateway.message(message_id)).payload == b"new text"
    assert gateway.app.dispatcher.holds_pending == 0


async def test_a_queued_message_replaced_with_a_later_time_waits_for_it(gateway):
    await gateway.account(credits=100)
    upstream = await with_upstream(gateway)
    client = await gateway.bound("tx")
    message_id = (await client.submit(DEST, b"now"))["message_id"]
    await asyncio.sleep(0.1)
    reply = await client.request(_replace_sm(message_id, b"later",
                                             schedule_delivery_time=format_relative(3600)))
    assert reply.status == Status.ESME_ROK
    upstream.open = True
    await asyncio.sleep(0.7)  # the dispatcher and a scheduler poll had their chance
    assert upstream.sent == []
    assert gateway.app.dispatcher.queued == 0
