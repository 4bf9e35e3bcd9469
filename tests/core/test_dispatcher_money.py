"""The dispatcher's refunds against a real store, on both backends: a refund is granted
only when the status write really moves its message into the final state."""

import time

import pytest

from smsgate.core.dispatcher import Dispatcher
from smsgate.core.models import (
    ATES,
    CREDIT_SCALE,
    DELIVRD,
    REJECTD,
    Account,
    Message,
    StatusUpdate,
    WriteBatch,
)
from smsgate.store.writer import BatchWriter

C = CREDIT_SCALE



@pytest.fixture
async def writer(store):
    w = BatchWriter(store)
    w.start()
    try:
        yield w
    finally:
        await w.close()


async def _stored_message(store, credits: int = 10, message_id: int = 7_000_001) -> Message:
    account = await store.add_account(Account("acme", "hash", balance=credits * C))
    message = Message(id=message_id, account_id=account.id, source_addr="Acme",
                      dest_addr="447700900001", payload=b"hi", price=C,
                      connector="simulator", created_at=time.time())
    assert (await store.write(WriteBatch(new_messages=[message]))).refused == set()
    return message


async def _balance(store, account_id: int) -> int:
    return (await store.get_account_by_id(account_id)).balance


async def _refund_rows(store, account_id: int) -> list:
    return [e for e in await store.ledger(account_id) if e.reason.startswith("refund")]


@pytest.mark.parametrize("sent", [False, True], ids=["unsent", "sent"])
async def test_repeated_rejections_refund_once(store, writer, sent) -> None:
    message = await _stored_message(store)
    dispatcher = Dispatcher(writer, sent_hold=0)
    if sent:
        dispatcher.on_status(message, StatusUpdate(message.id, ATES, time.time(), 0, "up-1"))
    for _ in range(3):  # in one group commit
        dispatcher.on_status(message, StatusUpdate(message.id, REJECTD, time.time(), 2))
    await writer.flush()
    dispatcher.on_status(message, StatusUpdate(message.id, REJECTD, time.time(), 2))
    await writer.flush()  # and in a later one
    assert await _balance(store, message.account_id) == 10 * C
    assert [(e.amount, e.message_id) for e in await _refund_rows(store, message.account_id)] \
        == [(C, message.id)]
    assert (await store.get_message(message.id)).status == REJECTD


async def test_rejection_after_delivery_refunds_nothing(store, writer) -> None:
    message = await _stored_message(store)
    dispatcher = Dispatcher(writer, sent_hold=0)
    dispatcher.on_status(message, StatusUpdate(message.id, ATES, time.time(), 0, "up-1"))
    dispatcher.on_status(message, StatusUpdate(message.id, DELIVRD, time.time()))
    await writer.flush()
    dispatcher.on_status(message, StatusUpdate(message.id, REJECTD, time.time(), 2))
    await writer.flush()
    # and DELIVRD then REJECTD within one group commit
    second = await _second_message(store, message)
    dispatcher.on_status(second, StatusUpdate(second.id, DELIVRD, time.time()))
    dispatcher.on_status(second, StatusUpdate(second.id, REJECTD, time.time(), 2))
    await writer.flush()
    assert await _balance(store, message.account_id) == 8 * C
    assert await _refund_rows(store, message.account_id) == []
    assert (await store.get_message(message.id)).status == DELIVRD
    assert (await store.get_message(second.id)).status == DELIVRD


async def _second_message(store, first: Message) -> Message:
    second = Message(id=first.id + 1, account_id=first.account_id, source_addr="Acme",
                     dest_addr="447700900002", payload=b"hi", price=C,
                     connector="simulator", created_at=time.time())
    assert (await store.write(WriteBatch(new_messages=[second]))).refused == set()
    return second
