"""Message queries: what to dispatch, schedule, expire; cancel, replace, find."""

import time

from store_helpers import funded, message

from smsgate.core.models import (
    ACCEPTD,
    ATES,
    CREDIT_SCALE,
    DELETED,
    DELIVRD,
    SentUpdate,
    StatusUpdate,
    WriteBatch,
)

C = CREDIT_SCALE


async def stored(store, *messages) -> None:
    result = await store.write(WriteBatch(new_messages=list(messages)))
    assert result.refused == set()


async def test_undispatched(store) -> None:
    account = await funded(store, credits=100)
    now = time.time()
    ready = [message(account.id) for _ in range(4)]
    due = message(account.id, schedule_at=now - 5)
    future = message(account.id, schedule_at=now + 60)
    sent, final = message(account.id), message(account.id)
    await stored(store, *ready, due, future, sent, final)
    await store.write(WriteBatch(sent=[SentUpdate(sent.id, "sim", now)],
                                 statuses=[StatusUpdate(final.id, DELIVRD, now)]))
    want = sorted([*ready, due], key=lambda m: m.id)
    assert await store.undispatched(now, 100) == want
    assert await store.undispatched(now, 2) == want[:2]
    assert await store.undispatched(now, 100, after_id=want[1].id) == want[2:]
    assert future in await store.undispatched(now + 60, 100)


async def test_scheduled_until(store) -> None:
    account = await funded(store, credits=100)
    now = time.time()
    later, soon, far = (message(account.id, schedule_at=now + d) for d in (30, 10, 3600))
    unscheduled = message(account.id)
    await stored(store, later, soon, far, unscheduled)
    assert await store.scheduled_until(now + 60, 10) == [soon, later]
    assert await store.scheduled_until(now + 60, 1) == [soon]
    await store.write(WriteBatch(sent=[SentUpdate(soon.id, "sim", now)]))
    assert await store.scheduled_until(now + 60, 10) == [later]


async def test_expire_due(store) -> None:
    account = await funded(store, credits=100)
    now = time.time()
    old, older, fresh, forever = (message(account.id, expires_at=e)
                                  for e in (now - 10, now - 20, now + 10, None))
    done = message(account.id, expires_at=now - 30)
    accepted = message(account.id, expires_at=now - 5)
    await stored(store, old, older, fresh, forever, done, accepted)
    await store.write(WriteBatch(statuses=[StatusUpdate(done.id, DELIVRD, now),
                                           StatusUpdate(accepted.id, ACCEPTD, now)]))
    assert [m.id for m in await store.expire_due(now, 10)] == [older.id, old.id, accepted.id]
    assert [m.id for m in await store.expire_due(now, 1)] == [older.id]


async def test_cancel_messages_refunds_unsent_ones_of_the_account(store) -> None:
    account = await funded(store, credits=10)
    other = await funded(store, "other", credits=10)
    a, b = message(account.id, price=2 * C), message(account.id, price=3 * C)
    sent, free = message(account.id, price=C), message(account.id, price=0)
    foreign = message(other.id, price=C)
    await stored(store, a, b, sent, free, foreign)
    await store.write(WriteBatch(sent=[SentUpdate(sent.id, "sim", time.time())]))
    at = time.time()
    cancelled = await store.cancel_messages(
        account.id, [b.id, a.id, sent.id, free.id, foreign.id, 12345], at)
    assert [m.id for m in cancelled] == [b.id, a.id, free.id]
    assert all(m.status == DELETED and m.done_at == at for m in cancelled)
    assert (await store.get_message(a.id)).status == DELETED
    assert (await store.get_message(sent.id)).status == ATES
    assert (await store.get_message(foreign.id)).status == ATES
    assert (await store.get_account_by_id(account.id)).balance == 9 * C  # 10 - 6 + 5
    refunds = [(e.amount, e.message_id) for e in await store.ledger(account.id)
               if e.reason == "refund: cancelled"]
    assert sorted(refunds) == [(2 * C, a.id), (3 * C, b.id)]
    # Cancelling again does nothing (and refunds nothing).
    assert await store.cancel_messages(account.id, [a.id, b.id], at) == []
    assert await store.cancel_messages(account.id, [], at) == []
    assert (await store.get_account_by_id(account.id)).balance == 9 * C


async def test_cancelled_messages_are_not_dispatched(store) -> None:
    account = await funded(store)
    m = message(account.id)
    await stored(store, m)
    await store.cancel_messages(account.id, [m.id], time.time())
    assert await store.undispatched(time.time(), 10) == []


async def test_replace_message(store) -> None:
    account = await funded(store, credits=100)
    now = time.time()
    m = message(account.id, schedule_at=now + 60, expires_at=now + 600,
                registered_delivery=1)
    await stored(store, m)
    assert await store.replace_message(account.id, m.id, b"new text", None, None, None)
    got = await store.get_message(m.id)
    assert (got.payload, got.schedule_at, got.expires_at, got.registered_delivery) == (
        b"new text", now + 60, now + 600, 1)
    assert await store.replace_message(account.id, m.id, b"again", now + 5, now + 50, 0)
    got = await store.get_message(m.id)
    assert (got.payload, got.schedule_at, got.expires_at, got.registered_delivery) == (
        b"again", now + 5, now + 50, 0)
    assert not await store.replace_message(account.id + 1, m.id, b"x", None, None, None)
    assert not await store.replace_message(account.id, 777, b"x", None, None, None)
    await store.write(WriteBatch(sent=[SentUpdate(m.id, "sim", now)]))
    assert not await store.replace_message(account.id, m.id, b"late", None, None, None)
    assert (await store.get_message(m.id)).payload == b"again"


async def test_find_pending(store) -> None:
    account = await funded(store, credits=100)
    other = await funded(store, "other", credits=100)
    a = message(account.id, source_addr="Acme", dest_addr="447700900001", service_type="")
    b = message(account.id, source_addr="Acme", dest_addr="447700900001", service_type="CMT")
    c = message(account.id, source_addr="Acme", dest_addr="447700900002")
    d = message(account.id, source_addr="Other", dest_addr="447700900001")
    sent = message(account.id, source_addr="Acme", dest_addr="447700900001")
    foreign = message(other.id, source_addr="Acme", dest_addr="447700900001")
    await stored(store, a, b, c, d, sent, foreign)
    await store.write(WriteBatch(sent=[SentUpdate(sent.id, "sim", time.time())]))
    assert await store.find_pending(account.id, "Acme", "447700900001", "") == [a.id, b.id]
    assert await store.find_pending(account.id, "Acme", "447700900001", "CMT") == [b.id]
    assert await store.find_pending(account.id, "Acme", "", "") == [a.id, b.id, c.id]
    assert await store.find_pending(account.id, "Nobody", "", "") == []
