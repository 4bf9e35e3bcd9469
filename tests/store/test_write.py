"""write(): the group commit's one transaction, identical on both backends."""

import asyncio
import dataclasses
import time

import pytest
from store_helpers import funded, message, next_id, receipt

from smsgate.core.models import (
    ACCEPTD,
    ATES,
    CREDIT_SCALE,
    DELIVRD,
    REJECTD,
    UNDELIV,
    UNKNOWN,
    Message,
    Refund,
    SentUpdate,
    StatusUpdate,
    WriteBatch,
)
from smsgate.core.ports import StoreError
from smsgate.store import open_store

C = CREDIT_SCALE


async def balance(store, account) -> int:
    return (await store.get_account_by_id(account.id)).balance


async def test_charges_and_inserts(store) -> None:
    account = await funded(store, credits=10)
    messages = [message(account.id, price=C), message(account.id, price=2 * C, parts=2)]
    result = await store.write(WriteBatch(new_messages=messages))
    assert result.refused == set()
    assert await balance(store, account) == 7 * C
    for m in messages:
        assert await store.get_message(m.id) == m
    [charge, _initial] = await store.ledger(account.id)
    assert (charge.amount, charge.reason, charge.message_id) == (
        -3 * C, "charge: 2 messages", messages[0].id)


async def test_every_field_round_trips(store) -> None:
    account = await funded(store)
    m = message(account.id, price=1234, payload=bytes(range(256)), data_coding=8,
                esm_class=0x40, parts=3, source_ton=5, source_npi=0, dest_ton=1, dest_npi=1,
                protocol_id=0x7F, priority=2, registered_delivery=1, service_type="CMT",
                options=b"\x02\x0c\x00\x02\x00\x07", channel="http", ref="order-7",
                dlr_url="https://example.com/dlr?x=1", status=ATES, error_code=0,
                upstream_id="", schedule_at=1_900_000_000.25, expires_at=1_900_086_400.5,
                node="node-a")
    many = [message(account.id, price=1, expires_at=None) for _ in range(60)]  # via COPY
    assert (await store.write(WriteBatch(new_messages=[m, *many]))).refused == set()
    assert await store.get_message(m.id) == m
    for other in many:
        assert await store.get_message(other.id) == other
    assert await store.get_message(42) is None


def request(account_id: int, count: int, **fields) -> list[Message]:
    """A many-number request's messages, as SubmitPipeline.prepare makes them: the
    request's fields shared, a destination, price and connector of their own."""
    shared = message(account_id, **fields)
    connectors = ["sim-a", "up 'b'", 'up "c" \\ é', ""]
    return [dataclasses.replace(shared, id=next_id(), dest_addr=f"{447700000000 + n}",
                                price=n * 7, connector=connectors[n % 4])
            for n in range(count)]


async def test_many_number_requests_are_stored_exactly(store) -> None:
    """SQLite writes a request's run of messages by one statement (sqlite_write's
    INSERT_RUN): every column of every message must come back as given, runs broken by
    a paced request's send times, by refusals and by single messages in between."""
    account = await funded(store, credits=1_000_000)
    big = request(account.id, 40, payload=bytes(range(256)), data_coding=8, parts=2,
                  options=b"\x02\x0c\x00\x02\x00\x07", channel="http", ref="ö'\"",
                  dlr_url="https://x.example/?a=1&b='2'", schedule_at=1_900_000_000.25,
                  expires_at=1_900_086_400.5, node="node-a")
    paced = [dataclasses.replace(m, schedule_at=1_900_000_000 + n / 3)
             for n, m in enumerate(request(account.id, 20))]
    singles = [message(account.id, dest_addr=str(n)) for n in range(3)]
    messages = [singles[0], *big, singles[1], *paced, singles[2]]
    result = await store.write(WriteBatch(
        new_messages=messages, atomic=[[m.id for m in big], [m.id for m in paced]]))
    assert result.refused == set()
    for m in messages:
        assert await store.get_message(m.id) == m


async def test_a_refused_request_leaves_no_row_beside_one_taken(store) -> None:
    account = await funded(store, credits=1)
    cheap = [dataclasses.replace(m, price=0) for m in request(account.id, 20)]
    dear = [dataclasses.replace(m, price=C) for m in request(account.id, 20)]
    result = await store.write(WriteBatch(
        new_messages=[*dear, *cheap], atomic=[[m.id for m in dear], [m.id for m in cheap]]))
    assert result.refused == {m.id for m in dear}
    for m in dear:
        assert await store.get_message(m.id) is None
    for m in cheap:
        assert await store.get_message(m.id) == m


async def test_refuses_in_order_what_the_balance_does_not_cover(store) -> None:
    account = await funded(store, credits=5)
    prices = [2, 2, 2, 1, 3]
    messages = [message(account.id, price=p * C) for p in prices]
    result = await store.write(WriteBatch(new_messages=messages))
    # One at a time: 2 (3 left), 2 (1 left), 2 refused, 1 (0 left), 3 refused.
    assert result.refused == {messages[2].id, messages[4].id}
    assert await balance(store, account) == 0
    for n, m in enumerate(messages):
        assert (await store.get_message(m.id) is None) == (n in (2, 4))
    [charge, _initial] = await store.ledger(account.id)
    assert (charge.amount, charge.reason, charge.message_id) == (
        -5 * C, "charge: 3 messages", messages[0].id)


async def test_everything_refused_charges_nothing(store) -> None:
    account = await funded(store, credits=1)
    messages = [message(account.id, price=2 * C) for _ in range(3)]
    result = await store.write(WriteBatch(new_messages=messages))
    assert result.refused == {m.id for m in messages}
    assert await balance(store, account) == C
    assert len(await store.ledger(account.id)) == 1  # only the initial balance


async def test_credit_limit(store) -> None:
    account = await funded(store, credits=1, credit_limit=2)
    messages = [message(account.id, price=2 * C), message(account.id, price=2 * C),
                message(account.id, price=C)]
    result = await store.write(WriteBatch(new_messages=messages))
    assert result.refused == {messages[1].id}  # would reach -3 credits; -2 is the floor
    assert await balance(store, account) == -2 * C
    exact = message(account.id, price=0)  # free messages always pass
    assert (await store.write(WriteBatch(new_messages=[exact]))).refused == set()


async def test_accounts_are_charged_independently(store) -> None:
    rich = await funded(store, "rich", credits=100)
    poor = await funded(store, "poor", credits=1)
    messages = [message(rich.id), message(poor.id), message(rich.id), message(poor.id)]
    result = await store.write(WriteBatch(new_messages=messages))
    assert result.refused == {messages[3].id}
    assert await balance(store, rich) == 98 * C
    assert await balance(store, poor) == 0


async def test_unknown_account_is_refused(store) -> None:
    priced, free = message(999_999, price=C), message(999_999, price=0)
    result = await store.write(WriteBatch(new_messages=[priced, free]))
    assert result.refused == {priced.id}


async def test_sent_updates(store) -> None:
    account = await funded(store)
    a, b = message(account.id), message(account.id, upstream_id="old")
    await store.write(WriteBatch(new_messages=[a, b]))
    now = time.time()
    await store.write(WriteBatch(sent=[SentUpdate(a.id, "up1", now, "U-1"),
                                       SentUpdate(b.id, "up2", now + 1)]))
    got_a, got_b = await store.get_message(a.id), await store.get_message(b.id)
    assert (got_a.sent_at, got_a.connector, got_a.upstream_id, got_a.status) == (
        now, "up1", "U-1", ATES)
    assert (got_b.sent_at, got_b.connector, got_b.upstream_id) == (now + 1, "up2", "old")


async def test_statuses_and_the_final_guard(store) -> None:
    account = await funded(store)
    a, b, c = (message(account.id) for _ in range(3))
    await store.write(WriteBatch(new_messages=[a, b, c]))
    t = time.time()
    await store.write(WriteBatch(statuses=[
        StatusUpdate(a.id, ACCEPTD, t, upstream_id="UA"),
        # b: several in one batch, applied in order; the final one sticks
        StatusUpdate(b.id, ACCEPTD, t),
        StatusUpdate(b.id, DELIVRD, t + 1, upstream_id="UB"),
        StatusUpdate(b.id, UNKNOWN, t + 2, error_code=9),
        StatusUpdate(c.id, UNDELIV, t + 3, error_code=11),
    ]))
    got_a, got_b, got_c = [await store.get_message(m.id) for m in (a, b, c)]
    assert (got_a.status, got_a.accepted_at, got_a.done_at, got_a.upstream_id) == (
        ACCEPTD, t, None, "UA")
    assert (got_b.status, got_b.accepted_at, got_b.done_at, got_b.error_code,
            got_b.upstream_id) == (DELIVRD, t, t + 1, 0, "UB")
    assert (got_c.status, got_c.done_at, got_c.error_code) == (UNDELIV, t + 3, 11)
    # A later batch never overwrites a final status.
    await store.write(WriteBatch(statuses=[StatusUpdate(c.id, DELIVRD, t + 9),
                                           StatusUpdate(c.id, ACCEPTD, t + 9),
                                           StatusUpdate(a.id, DELIVRD, t + 5, 3)]))
    assert await store.get_message(c.id) == got_c
    got_a = await store.get_message(a.id)
    assert (got_a.status, got_a.accepted_at, got_a.done_at, got_a.error_code,
            got_a.upstream_id) == (DELIVRD, t, t + 5, 3, "UA")


async def test_refunds_ride_on_the_status_that_ends_the_message(store) -> None:
    account = await funded(store, credits=10)
    other = await funded(store, "other", credits=1)
    a, b = message(account.id, price=2 * C), message(account.id, price=3 * C)
    c, d = message(other.id, price=C), message(account.id, price=C)
    await store.write(WriteBatch(new_messages=[a, b, c, d]))
    t = time.time()
    await store.write(WriteBatch(statuses=[
        StatusUpdate(a.id, REJECTD, t, refund=Refund(account.id, 2 * C, a.id)),
        StatusUpdate(b.id, ACCEPTD, t),
        StatusUpdate(b.id, REJECTD, t, refund=Refund(account.id, 3 * C, b.id, "refund: x")),
        StatusUpdate(c.id, REJECTD, t, refund=Refund(other.id, C, c.id)),
        StatusUpdate(d.id, DELIVRD, t),  # ended first: the refund after it is not paid
        StatusUpdate(d.id, REJECTD, t, refund=Refund(account.id, C, d.id))]))
    assert await balance(store, account) == 9 * C
    assert await balance(store, other) == C
    entries = await store.ledger(account.id)
    assert sorted((e.amount, e.reason, e.message_id) for e in entries
                  if e.amount > 0 and e.message_id) == [
        (2 * C, "refund", a.id), (3 * C, "refund: x", b.id)]
    # A status of a message that has ended already pays nothing, in a later batch too.
    await store.write(WriteBatch(statuses=[
        StatusUpdate(a.id, REJECTD, t, refund=Refund(account.id, 2 * C, a.id)),
        StatusUpdate(d.id, REJECTD, t, refund=Refund(account.id, C, d.id))]))
    assert await balance(store, account) == 9 * C
    assert len(await store.ledger(account.id)) == len(entries)


async def test_charge_and_refund_in_one_batch(store) -> None:
    account = await funded(store, credits=1)
    old = message(account.id, price=C)
    await store.write(WriteBatch(new_messages=[old]))
    new = message(account.id, price=C)
    # Charging is decided on the balance before this batch's refunds.
    result = await store.write(WriteBatch(new_messages=[new], statuses=[
        StatusUpdate(old.id, REJECTD, time.time(), refund=Refund(account.id, C, old.id))]))
    assert result.refused == {new.id}
    assert await balance(store, account) == C


async def test_receipts_insert_retry_delete(store) -> None:
    account = await funded(store)
    now = time.time()
    receipts = [receipt(account.id, 100 + n, now) for n in range(3)]
    result = await store.write(WriteBatch(new_receipts=receipts))
    ids = result.receipt_ids
    assert len(ids) == 3 and len(set(ids)) == 3
    due = await store.pending_receipts(account.id, now, 10)
    assert [r.id for r in due] == ids
    assert [r.message_id for r in due] == [100, 101, 102]
    assert due[0] == dataclasses.replace(receipts[0], id=ids[0])
    await store.write(WriteBatch(done_receipts=[ids[0]], retry_receipts=[(ids[1], now + 60)]))
    assert [r.id for r in await store.pending_receipts(account.id, now, 10)] == [ids[2]]
    later = await store.pending_receipts(account.id, now + 60, 10)
    assert [(r.id, r.attempts, r.next_attempt_at) for r in later] == [
        (ids[1], 1, now + 60), (ids[2], 0, now)]
    assert await store.pending_receipts(account.id + 1, now + 60, 10) == []
    assert len(await store.pending_receipts(account.id, now + 60, 1)) == 1


async def test_receipt_ids_are_never_reused(store) -> None:
    account = await funded(store)
    now = time.time()
    many = [receipt(account.id, n, now) for n in range(80)]  # the COPY path on PostgreSQL
    first = (await store.write(WriteBatch(new_receipts=many))).receipt_ids
    assert len(set(first)) == 80
    await store.write(WriteBatch(done_receipts=first))
    again = (await store.write(WriteBatch(new_receipts=many[:2]))).receipt_ids
    assert not set(again) & set(first)


async def test_expired_receipts_are_not_due_and_purged(store) -> None:
    account = await funded(store)
    now = time.time()
    result = await store.write(WriteBatch(new_receipts=[
        receipt(account.id, 1, now, expires_at=now - 1),
        receipt(account.id, 2, now, expires_at=now + 60)]))
    assert [r.message_id for r in await store.pending_receipts(account.id, now, 10)] == [2]
    assert await store.purge_expired_receipts(now) == 1
    assert await store.purge_expired_receipts(now) == 0
    await store.write(WriteBatch(done_receipts=result.receipt_ids))


async def test_a_failing_batch_rolls_back_entirely(store) -> None:
    account = await funded(store, credits=10)
    old = message(account.id, price=C)
    await store.write(WriteBatch(new_messages=[old]))
    duplicate = message(account.id, price=C, id=old.id)
    with pytest.raises(StoreError):
        await store.write(WriteBatch(
            new_messages=[message(account.id, price=C), duplicate],
            statuses=[StatusUpdate(old.id, REJECTD, time.time(),
                                   refund=Refund(account.id, 5 * C, old.id))],
            new_receipts=[receipt(account.id, old.id, time.time())]))
    assert await balance(store, account) == 9 * C
    assert (await store.get_message(old.id)).status == ATES
    assert len(await store.ledger(account.id)) == 2
    assert await store.pending_receipts(account.id, time.time() + 1, 10) == []
    # and the store still works afterwards
    assert (await store.write(WriteBatch(new_messages=[message(account.id)]))).refused == set()


async def test_empty_batch(store) -> None:
    result = await store.write(WriteBatch())
    assert (result.refused, result.receipt_ids) == (set(), [])


async def test_two_nodes_writing_at_once_keep_balances_exact(store, store_url: str) -> None:
    # Opposite account orders on each node (each charges one account most and refunds
    # the other): PostgreSQL must not deadlock, SQLite must wait for its lock; either
    # way every charge and refund lands exactly once.
    a = await funded(store, "a", credits=2000)
    b = await funded(store, "b", credits=2000)
    rejected = {account.id: [message(account.id, price=C) for _ in range(20)]
                for account in (a, b)}
    await store.write(WriteBatch(new_messages=rejected[a.id] + rejected[b.id]))
    other = open_store(store_url)
    await other.open()

    async def node(s, first, second) -> None:
        for victim in rejected[second.id]:
            messages = [message(first.id, price=C) for _ in range(60)]
            messages += [message(second.id, price=C) for _ in range(5)]
            refund = Refund(second.id, C, victim.id)
            result = await s.write(WriteBatch(new_messages=messages, statuses=[
                StatusUpdate(victim.id, REJECTD, time.time(), refund=refund)]))
            assert result.refused == set()
    try:
        await asyncio.gather(node(store, a, b), node(other, b, a))
    finally:
        await other.close()
    # Each account: 20 x 60 charged by one node, 20 x 5 by the other; 20 charged, refunded.
    for account in (a, b):
        assert await balance(store, account) == (2000 - 20 * 65) * C
        entries = await store.ledger(account.id, limit=1000)
        assert sum(e.amount for e in entries) == await balance(store, account)


async def test_an_atomic_group_is_accepted_or_refused_whole(store) -> None:
    account = await funded(store, credits=5)
    single = message(account.id, price=C)
    group = [message(account.id, price=2 * C) for _ in range(3)]  # 6 > 4 left
    after = message(account.id, price=3 * C)
    messages = [single, *group, after]
    result = await store.write(WriteBatch(new_messages=messages,
                                          atomic=[[m.id for m in group]]))
    # 1 taken (4 left); the group of 6 refused whole, charging nothing; 3 taken (1 left).
    assert result.refused == {m.id for m in group}
    assert await balance(store, account) == C
    for m in group:
        assert await store.get_message(m.id) is None
    assert await store.get_message(after.id) is not None


async def test_an_atomic_group_that_fits_is_taken_whole(store) -> None:
    account = await funded(store, credits=6)
    group = [message(account.id, price=2 * C) for _ in range(3)]
    result = await store.write(WriteBatch(new_messages=group, atomic=[[m.id for m in group]]))
    assert result.refused == set()
    assert await balance(store, account) == 0


async def test_a_status_can_carry_the_held_sent_mark(store) -> None:
    account = await funded(store)
    m = message(account.id)
    await store.write(WriteBatch(new_messages=[m]))
    now = time.time()
    await store.write(WriteBatch(statuses=[
        StatusUpdate(m.id, DELIVRD, now + 1, upstream_id="up-1", sent_at=now,
                     connector="sim-b")]))
    stored = await store.get_message(m.id)
    assert (stored.status, stored.sent_at, stored.connector, stored.upstream_id,
            stored.done_at) == (DELIVRD, now, "sim-b", "up-1", now + 1)


@pytest.mark.parametrize("count", [63, 64, 65, 2 * 64 + 7])
async def test_many_rows_around_a_statement_s_row_count(store, count: int) -> None:
    """SQLite writes the hot path's rows 64 to a statement (sqlite_write's
    ROWS_PER_STATEMENT), the rest by a shorter one: every row lands, with its own
    values, on either side of that boundary."""
    account = await funded(store, credits=1_000_000)
    messages = [message(account.id, price=n + 1, dest_addr=f"{447700000000 + n}")
                for n in range(count)]
    await store.write(WriteBatch(new_messages=messages))
    t = time.time()
    await store.write(WriteBatch(
        sent=[SentUpdate(m.id, f"up{n % 3}", t + n, f"U-{n}" if n % 2 else "")
              for n, m in enumerate(messages)],
        statuses=[StatusUpdate(messages[-1].id, UNDELIV, t, error_code=7)]))
    await store.write(WriteBatch(statuses=[
        StatusUpdate(m.id, DELIVRD if n % 2 else ACCEPTD, t + 100 + n, error_code=n % 5)
        for n, m in enumerate(messages)]))
    for n, m in enumerate(messages):
        got = await store.get_message(m.id)
        assert (got.price, got.dest_addr, got.connector, got.sent_at) == (
            n + 1, f"{447700000000 + n}", f"up{n % 3}", t + n)
        assert got.upstream_id == (f"U-{n}" if n % 2 else m.upstream_id)
        if m is messages[-1]:  # final before: the later status does not move it
            assert (got.status, got.error_code, got.done_at) == (UNDELIV, 7, t)
        elif n % 2:
            assert (got.status, got.error_code, got.done_at) == (DELIVRD, n % 5, t + 100 + n)
        else:
            assert (got.status, got.accepted_at, got.done_at) == (ACCEPTD, t + 100 + n, None)


async def test_runs_of_messages_that_share_their_request_columns_land_whole(store) -> None:
    """SQLite binds what a run of consecutive new messages shares once a statement
    (sqlite_write's INSERT_SHARING), each row's id, number and text after it: runs
    longer than a statement's 64 rows, runs of one, and runs that differ in a single
    column all land with every field their own."""
    account = await funded(store, credits=1_000_000)
    now = time.time()
    shapes = [({}, 70), ({"source_addr": "Other"}, 1), ({}, 2),
              ({"registered_delivery": 1}, 65), ({"schedule_at": now + 60}, 3),
              ({"expires_at": None}, 1), ({}, 64)]
    messages = [message(account.id, price=7, created_at=now, expires_at=now + 3600,
                        dest_addr=f"{447700000000 + n}", payload=f"text {n}".encode())
                for n in range(sum(count for _, count in shapes))]
    start = 0
    for changes, count in shapes:
        for m in messages[start:start + count]:
            for name, value in changes.items():
                setattr(m, name, value)
        start += count
    assert (await store.write(WriteBatch(new_messages=messages))).refused == set()
    for m in messages:
        assert await store.get_message(m.id) == m
