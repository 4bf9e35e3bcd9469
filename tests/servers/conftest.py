"""Fixtures for the SMPP server tests: a real `App` on an ephemeral port, in the test's
event loop, on a fresh database of each backend (`store_url`, tests/conftest.py: SQLite,
and PostgreSQL when reachable). Helpers live in smpp_harness.py."""

import pytest
from smpp_harness import Harness, fast_settings, prepare_database

from smsgate.app import App


@pytest.fixture
async def gateway(store_url: str):
    """The gateway running in this event loop on a fresh database of each backend."""
    await prepare_database(store_url)
    app = App(fast_settings(store_url))
    app.receipts._poll_seconds = 0.1  # retry stored receipts quickly
    await app.start()
    harness = Harness(app, store_url)
    try:
        yield harness
    finally:
        await harness.close_clients()
        await app.stop()
