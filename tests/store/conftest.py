"""`store`: an opened, migrated store on a fresh database, once per backend."""

import pytest

from smsgate.store import open_store


@pytest.fixture
async def store(store_url: str):
    s = open_store(store_url)
    await s.open()
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()
