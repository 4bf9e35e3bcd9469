"""A COMMIT whose answer is lost (PostgreSQL): the store learns what became of the
transaction before it answers. A real TCP proxy (tests/pg_commit_cutter.py) sits between
asyncpg and the server and cuts the connection at the COMMIT. SQLite commits in-process:
there is no answer to lose, so these run on PostgreSQL only."""

import asyncio
import time

import pytest
from pg_commit_cutter import CommitCutter
from store_helpers import funded, message, receipt

from smsgate.core.models import ATES, CREDIT_SCALE, DELETED, DELIVRD, StatusUpdate, WriteBatch
from smsgate.core.ports import CommitUnknown, StoreError
from smsgate.store import open_store

C = CREDIT_SCALE


@pytest.fixture
async def cut(store_url: str):
    """(a store used directly, a store behind the proxy, the proxy), on one database."""
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite commits in-process: no COMMIT answer can be lost")
    direct = open_store(store_url)
    await direct.open()
    await direct.migrate()
    cutter = CommitCutter(store_url)
    proxied = open_store(await cutter.start())
    await proxied.open()
    try:
        yield direct, proxied, cutter
    finally:
        await proxied.close()
        await cutter.close()
        await direct.close()


async def test_a_batch_that_committed_is_reported_stored(cut) -> None:
    direct, store, cutter = cut
    account = await funded(direct, credits=10)
    messages = [message(account.id, price=C) for _ in range(3)]
    now = time.time()
    cutter.cut_next_commit("deliver")
    result = await store.write(WriteBatch(new_messages=messages,
                                          new_receipts=[receipt(account.id, 1, now)]))
    assert cutter.cuts == 1
    assert result.refused == set()
    for m in messages:
        assert await direct.get_message(m.id) is not None
    assert (await direct.get_account_by_id(account.id)).balance == 7 * C
    # The receipt id drawn from the sequence inside the transaction is the stored one.
    assert [r.id for r in await direct.pending_receipts(account.id, now + 1, 10)] \
        == result.receipt_ids
    # and the store carries on with fresh connections
    assert (await store.write(WriteBatch(new_messages=[message(account.id)]))).refused == set()


async def test_a_batch_of_statuses_alone_learns_its_commit(cut) -> None:
    # No account to lock: the transaction's id comes from the opening statement's one row
    # without an account (store/pg_write.py OPEN_COMMIT).
    direct, store, cutter = cut
    account = await funded(direct, credits=10)
    m = message(account.id, price=C)
    await direct.write(WriteBatch(new_messages=[m]))
    cutter.cut_next_commit("deliver")
    await store.write(WriteBatch(statuses=[StatusUpdate(m.id, DELIVRD, time.time())]))
    assert cutter.cuts == 1
    assert (await direct.get_message(m.id)).status == DELIVRD
    other = message(account.id, price=C)
    await direct.write(WriteBatch(new_messages=[other]))
    cutter.cut_next_commit("drop")
    with pytest.raises(StoreError) as failed:
        await store.write(WriteBatch(statuses=[StatusUpdate(other.id, DELIVRD, time.time())]))
    assert not isinstance(failed.value, CommitUnknown)  # known: rolled back
    assert (await direct.get_message(other.id)).status == ATES


async def test_a_batch_whose_commit_never_arrived_is_reported_failed(cut) -> None:
    direct, store, cutter = cut
    account = await funded(direct, credits=10)
    m = message(account.id, price=C)
    cutter.cut_next_commit("drop")
    with pytest.raises(StoreError) as failed:
        await store.write(WriteBatch(new_messages=[m]))
    assert not isinstance(failed.value, CommitUnknown)  # known: rolled back
    assert cutter.cuts == 1
    assert await direct.get_message(m.id) is None
    assert (await direct.get_account_by_id(account.id)).balance == 10 * C


async def test_cancels_and_top_ups_learn_their_commit_too(cut) -> None:
    direct, store, cutter = cut
    account = await funded(direct, credits=10)
    m = message(account.id, price=C)
    await direct.write(WriteBatch(new_messages=[m]))
    cutter.cut_next_commit("deliver")
    assert [c.id for c in await store.cancel_messages(account.id, [m.id], time.time())] \
        == [m.id]
    assert (await direct.get_message(m.id)).status == DELETED
    cutter.cut_next_commit("deliver")
    assert await store.adjust_balance(account.id, 5 * C, "top-up") == 15 * C
    assert cutter.cuts == 2
    assert (await direct.get_account_by_id(account.id)).balance == 15 * C
    # Not delivered: the cancel is known not to have happened.
    other = message(account.id, price=C)
    await direct.write(WriteBatch(new_messages=[other]))
    cutter.cut_next_commit("drop")
    with pytest.raises(StoreError):
        await store.cancel_messages(account.id, [other.id], time.time())
    assert (await direct.get_message(other.id)).status == ATES


async def test_a_backend_that_never_notices_is_terminated_and_rolls_back(cut) -> None:
    # The server keeps its end of the connection: its backend stays in the transaction
    # until the store terminates it (matched by pid and transaction id).
    direct, store, cutter = cut
    account = await funded(direct, credits=10)
    m = message(account.id, price=C)
    cutter.cut_next_commit("hold")
    with pytest.raises(StoreError) as failed:
        await store.write(WriteBatch(new_messages=[m]))
    assert not isinstance(failed.value, CommitUnknown)
    assert await direct.get_message(m.id) is None
    assert (await direct.get_account_by_id(account.id)).balance == 10 * C
    # The balance row it had locked is free again: a write does not wait for it.
    result = await asyncio.wait_for(direct.write(WriteBatch(new_messages=[message(account.id)])),
                                    10)
    assert result.refused == set()
