"""Retention (SPEC §10) against a real store, both backends: what goes, what stays."""

import time

from store_helpers import funded, message

from smsgate.core import retention
from smsgate.core.models import DELIVRD, WriteBatch
from smsgate.store.retention import BY_NAME

DAY = retention.DAY


def test_every_table_core_names_is_one_the_store_knows():
    assert set(retention.TABLES) == set(BY_NAME)


async def test_old_final_messages_go_young_and_waiting_ones_stay(store):
    account = await funded(store)
    now = time.time()
    old_final = [message(account.id, price=0, status=DELIVRD, created_at=now - 100 * DAY)
                 for _ in range(23)]
    old_waiting = message(account.id, price=0, created_at=now - 100 * DAY,
                          schedule_at=now + DAY)  # scheduled long ago for tomorrow
    young = [message(account.id, price=0, status=DELIVRD, created_at=now - DAY)
             for _ in range(5)]
    await store.write(WriteBatch(new_messages=[*old_final, old_waiting, *young]))

    steps: list[tuple[str, int]] = []
    deleted = await retention.purge(store, now - 90 * DAY, step_rows=4,
                                    progress=lambda table, n: steps.append((table, n)))
    assert deleted["messages"] == len(old_final)
    assert sum(1 for table, _ in steps if table == "messages") >= len(old_final) // 4
    for gone in old_final:
        assert await store.get_message(gone.id) is None
    for kept in (old_waiting, *young):
        assert await store.get_message(kept.id) is not None
    # a second pass finds nothing more
    assert (await retention.purge(store, now - 90 * DAY))["messages"] == 0


async def test_ledger_details_go_and_the_balance_stays(store):
    account = await funded(store, credits=10)
    for _ in range(3):
        await store.adjust_balance(account.id, 10_000, "top-up")
    before_purge = (await store.get_account_by_id(account.id)).balance
    deleted = await retention.purge(store, time.time() + 1)  # everything up to now
    assert deleted["ledger"] >= 3
    assert await store.ledger(account.id) == []
    assert (await store.get_account_by_id(account.id)).balance == before_purge


async def test_a_purge_keeps_nothing_it_should_not_on_an_empty_store(store):
    assert set(await retention.purge(store, time.time())) == set(retention.TABLES)


async def test_the_background_purge_runs_a_pass_and_counts(store):
    account = await funded(store)
    now = time.time()
    await store.write(WriteBatch(new_messages=[
        message(account.id, price=0, status=DELIVRD, created_at=now - 10 * DAY)]))
    background = retention.Retention(store, days=5, first_after=0.0, interval=3600)
    deleted = await background.pass_once()
    assert deleted["messages"] == 1 and background.purged >= 1
    off = retention.Retention(store, days=0)
    off.start()  # 0 days: nothing is ever purged, no task runs
    assert off._task is None
