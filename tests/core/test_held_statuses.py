"""Statuses of resend-safe connectors (the simulator) held until their message is
`status_hold` old (core/statuses.py), against a real store and writer on both backends:
written with their sent mark, their listeners told only then, in id order, read through
by queries meanwhile, written at a stop; a real upstream's status never waits."""

import asyncio
import time

from smsgate.core.models import (
    ACCEPTD,
    ATES,
    CREDIT_SCALE,
    DELIVRD,
    REJECTD,
    Account,
    Message,
    SentUpdate,
    StatusUpdate,
    WriteBatch,
)
from smsgate.core.statuses import StatusBook
from smsgate.store.writer import BatchWriter

HOLD = 0.3


async def _stored(store, *ids: int) -> list[Message]:
    account = await store.add_account(Account("acme", "hash", balance=10 * CREDIT_SCALE))
    messages = [Message(id=i, account_id=account.id, source_addr="Acme",
                        dest_addr="447700900001", payload=b"hi", price=CREDIT_SCALE,
                        connector="sim", created_at=time.time()) for i in ids]
    assert (await store.write(WriteBatch(new_messages=messages))).refused == set()
    return messages


def _started(writer: BatchWriter) -> BatchWriter:
    writer.start()
    return writer


def _sent(book: StatusBook, message: Message, hold: bool = True) -> SentUpdate:
    mark = SentUpdate(message.id, "sim", time.time(), f"up-{message.id}")
    book.sent(message, mark, hold=hold)
    return mark


async def test_a_held_status_is_written_with_its_sent_mark_once_its_message_is_old(
        store) -> None:
    writer = _started(BatchWriter(store))
    book = StatusBook(writer, sent_hold=5.0, status_hold=HOLD)
    told, recorded = [], []
    book.add_listener(lambda m, u: told.append(u.status))
    book.set_recorder(lambda m, u: recorded.append(u.status))
    [message] = await _stored(store, 8_000_001)
    mark = _sent(book, message)
    book.apply(message, StatusUpdate(message.id, DELIVRD, time.time()))
    await writer.flush()
    stored = await store.get_message(message.id)
    assert (stored.status, stored.sent_at) == (ATES, None)  # held: nothing written yet
    assert told == recorded == [] and book.sent_not_stored(message.id)
    seen = book.read_through(stored)  # what a query answers meanwhile
    assert (seen.status, seen.sent_at, seen.upstream_id) == (DELIVRD, mark.at, "up-8000001")
    await asyncio.sleep(HOLD + 0.1)
    assert told == recorded == [DELIVRD]  # told at release, in the status's loop turn
    await writer.flush()
    stored = await store.get_message(message.id)
    assert (stored.status, stored.sent_at, stored.connector, stored.upstream_id) == (
        DELIVRD, mark.at, "sim", "up-8000001")
    assert not book.sent_not_stored(message.id)
    await writer.close()


async def test_held_statuses_go_in_id_order_each_message_in_its_own_order(store) -> None:
    writer = _started(BatchWriter(store))
    book = StatusBook(writer, sent_hold=5.0, status_hold=HOLD)
    told = []
    book.add_listener(lambda m, u: told.append((m.id, u.status)))
    first, second = await _stored(store, 8_000_011, 8_000_012)
    for message in (second, first):
        _sent(book, message)
    now = time.time()
    book.apply(second, StatusUpdate(second.id, ACCEPTD, now))
    book.apply(first, StatusUpdate(first.id, REJECTD, now, error_code=2))
    book.apply(second, StatusUpdate(second.id, DELIVRD, now + 0.01))  # after its ACCEPTD
    book.release_statuses()
    assert told == [(first.id, REJECTD), (second.id, ACCEPTD), (second.id, DELIVRD)]
    await writer.flush()
    stored = await store.get_message(second.id)
    assert (stored.status, stored.accepted_at, stored.done_at) == (DELIVRD, now, now + 0.01)
    assert stored.sent_at is not None  # the sent mark rode on the ACCEPTD
    assert (await store.get_message(first.id)).status == REJECTD
    await writer.close()


async def test_a_stop_writes_what_is_held(store) -> None:
    writer = _started(BatchWriter(store))
    book = StatusBook(writer, sent_hold=5.0, status_hold=60.0)
    [message] = await _stored(store, 8_000_021)
    _sent(book, message)
    book.apply(message, StatusUpdate(message.id, DELIVRD, time.time()))
    book.stop()
    await writer.close()
    assert (await store.get_message(message.id)).status == DELIVRD


async def test_a_status_someone_waits_for_is_not_held(store) -> None:
    """A receipt asked for, or a dlrurl: the customer hears of it as it comes."""
    writer = _started(BatchWriter(store))
    book = StatusBook(writer, sent_hold=5.0, status_hold=60.0)
    told = []
    book.add_listener(lambda m, u: told.append(m.id))
    receipt, callback = await _stored(store, 8_000_041, 8_000_042)
    receipt.registered_delivery, callback.dlr_url = 1, "https://example.com/dlr"
    for message in (receipt, callback):
        _sent(book, message)
        book.apply(message, StatusUpdate(message.id, DELIVRD, time.time()))
    assert told == [receipt.id, callback.id]
    await writer.flush()
    for message in (receipt, callback):
        assert (await store.get_message(message.id)).status == DELIVRD
    await writer.close()


async def test_a_real_upstreams_status_is_written_at_once(store) -> None:
    """Its sent mark is not held, and its report waits for the commit (`done`)."""
    writer = _started(BatchWriter(store))
    book = StatusBook(writer, sent_hold=5.0, status_hold=60.0)
    [message] = await _stored(store, 8_000_031)
    _sent(book, message, hold=False)
    stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    book.apply(message, StatusUpdate(message.id, DELIVRD, time.time()), stored.set_result)
    assert await asyncio.wait_for(stored, 5) is True
    assert (await store.get_message(message.id)).status == DELIVRD
    await writer.close()


def test_reading_through_keeps_a_final_status_as_the_store_does() -> None:
    book = StatusBook(writer=None, status_hold=60.0)  # type: ignore[arg-type]
    message = Message(id=1, account_id=1, source_addr="A", dest_addr="1", payload=b"x",
                      status=DELIVRD, done_at=5.0)
    book._held_updates[1] = [StatusUpdate(1, REJECTD, 9.0, error_code=2)]
    assert book.read_through(message) == message
