"""Migrations, settings and the id sequence."""

import asyncio

import pytest

from smsgate.store import open_store
from smsgate.store.migrations import MIGRATIONS


async def test_migrate_is_idempotent(store) -> None:
    # The fixture migrated once already.
    assert await store.migrate() == []
    assert await store.migrate() == []


async def test_migrate_applies_all_on_a_fresh_database(store_url: str) -> None:
    store = open_store(store_url)
    await store.open()
    try:
        assert await store.migrate() == [m.name for m in MIGRATIONS]
        assert await store.migrate() == []
    finally:
        await store.close()


async def test_concurrent_migrate_from_two_nodes(store_url: str) -> None:
    nodes = [open_store(store_url) for _ in range(2)]
    for node in nodes:
        await node.open()
    try:
        applied = await asyncio.gather(*(node.migrate() for node in nodes))
        assert sorted(applied, key=len) == [[], [m.name for m in MIGRATIONS]]
    finally:
        for node in nodes:
            await node.close()


async def test_settings(store) -> None:
    assert await store.get_setting("key") is None
    assert await store.set_setting_if_absent("key", "first") == "first"
    assert await store.set_setting_if_absent("key", "second") == "first"
    assert await store.get_setting("key") == "first"
    await store.set_setting("key", "third")
    await store.set_setting("other", "new")
    assert (await store.get_setting("key"), await store.get_setting("other")) == ("third", "new")


async def test_allocate_ids_gives_consecutive_blocks(store) -> None:
    first = await store.allocate_ids(10)
    assert first >= 1
    assert await store.allocate_ids(5) == first + 10
    assert await store.allocate_ids(1) == first + 15


async def test_allocate_ids_needs_a_positive_count(store) -> None:
    with pytest.raises(ValueError):
        await store.allocate_ids(0)


async def test_allocate_ids_unique_under_concurrency(store) -> None:
    firsts = await asyncio.gather(*(store.allocate_ids(100) for _ in range(200)))
    _assert_disjoint(firsts, 100)


async def test_allocate_ids_unique_across_two_store_instances(store, store_url: str) -> None:
    # Two processes (or nodes) on one database: a second store on the same URL.
    other = open_store(store_url)
    await other.open()
    try:
        firsts = await asyncio.gather(*(s.allocate_ids(7) for _ in range(100)
                                        for s in (store, other)))
    finally:
        await other.close()
    _assert_disjoint(firsts, 7)


def _assert_disjoint(firsts: list[int], count: int) -> None:
    values = [v for first in firsts for v in range(first, first + count)]
    assert len(set(values)) == len(values)
