"""Accounts, balances and the ledger; connectors, routes and coverage."""

import dataclasses

import pytest
from store_helpers import funded

from smsgate.core.models import CREDIT_SCALE, Account, Connector, CoverageEntry, Route
from smsgate.core.ports import Conflict, StoreError


async def test_add_get_list_account(store) -> None:
    account = Account("acme", "scrypt$hash", credit_limit=5, expires_at=1_900_000_000.5,
                      enabled=False, allowed_senders=("Acme", "12345"),
                      allowed_ips=("10.0.0.0/8",), tps=50, max_tx=3, smpp_enabled=False,
                      http_enabled=True, max_parts=4, status_auth=True)
    added = await store.add_account(account)
    assert added.id > 0
    assert added.created_at > 0
    assert added == dataclasses.replace(account, id=added.id, created_at=added.created_at)
    assert await store.get_account("acme") == added
    assert await store.get_account_by_id(added.id) == added
    assert await store.get_account("nobody") is None
    assert await store.get_account_by_id(added.id + 1000) is None
    other = await store.add_account(Account("beta", "h"))
    assert other.status_auth is False  # the default
    assert [a.system_id for a in await store.list_accounts()] == ["acme", "beta"]
    assert [a.status_auth for a in await store.list_accounts()] == [True, False]
    assert other.id != added.id


async def test_duplicate_system_id_is_a_conflict(store) -> None:
    await store.add_account(Account("acme", "h"))
    with pytest.raises(Conflict):
        await store.add_account(Account("acme", "other"))


async def test_update_account_writes_all_but_balance(store) -> None:
    account = await funded(store, credits=3)
    changed = dataclasses.replace(account, password_hash="new", enabled=False,
                                  allowed_senders=("X",), tps=9, balance=999_999,
                                  status_auth=True)
    await store.update_account(changed)
    stored = await store.get_account_by_id(account.id)
    assert stored == dataclasses.replace(changed, balance=3 * CREDIT_SCALE)


async def test_update_account_conflict_and_unknown(store) -> None:
    await store.add_account(Account("acme", "h"))
    beta = await store.add_account(Account("beta", "h"))
    with pytest.raises(Conflict):
        await store.update_account(dataclasses.replace(beta, system_id="acme"))
    with pytest.raises(StoreError):
        await store.update_account(dataclasses.replace(beta, id=beta.id + 1000))


async def test_adjust_balance_writes_the_ledger(store) -> None:
    account = await funded(store, credits=2)
    assert await store.adjust_balance(account.id, 5 * CREDIT_SCALE, "top-up") == 7 * CREDIT_SCALE
    assert await store.adjust_balance(account.id, -CREDIT_SCALE, "fee") == 6 * CREDIT_SCALE
    entries = await store.ledger(account.id)
    assert [(e.amount, e.reason) for e in entries] == [
        (-CREDIT_SCALE, "fee"), (5 * CREDIT_SCALE, "top-up"),
        (2 * CREDIT_SCALE, "initial balance")]
    assert all(e.account_id == account.id and e.id and e.created_at for e in entries)
    assert sum(e.amount for e in entries) == (await store.get_account("acme")).balance
    assert len(await store.ledger(account.id, limit=1)) == 1
    with pytest.raises(StoreError):
        await store.adjust_balance(account.id + 1000, 1, "nobody")


async def test_connectors(store) -> None:
    sim = Connector("simulator", "simulator", {"latency_ms": [1, 2], "mix": {"DELIVRD": 1}})
    up = Connector("upstream", "smpp", {"host": "10.0.0.1", "port": 2775}, enabled=False)
    await store.add_connector(up)
    await store.add_connector(sim)
    assert await store.list_connectors() == [sim, up]
    with pytest.raises(Conflict):
        await store.add_connector(Connector("simulator", "http"))


async def test_routes(store) -> None:
    account = await funded(store)
    catch_all = await store.add_route(Route("", "simulator", CREDIT_SCALE))
    special = await store.add_route(Route("44", "upstream", 2500, account.id, priority=3))
    assert catch_all.id and special.id and catch_all.id != special.id
    assert await store.list_routes() == [catch_all, special]


async def test_replace_coverage(store) -> None:
    first = [CoverageEntry("United Kingdom", "GB", "EE", "234", "30", "447", 900),
             CoverageEntry("Germany", "DE", "Telekom", "262", "01", "4915", None)]
    await store.replace_coverage(first)
    assert await store.list_coverage() == first
    second = [CoverageEntry("France", "FR", "Orange", "208", "01", "336", 700)]
    await store.replace_coverage(second)
    assert await store.list_coverage() == second
    big = [CoverageEntry("C", "CC", f"op{i}", "001", f"{i:02}", f"99{i}", i) for i in range(300)]
    await store.replace_coverage(big)
    assert await store.list_coverage() == big
    await store.replace_coverage([])
    assert await store.list_coverage() == []
