"""A submit_sm whose group commit's answer is lost on its way back from PostgreSQL: the
message is stored and charged, so the customer must hear ESME_ROK, not RSYSERR (and
not resubmit and pay twice). A real TCP proxy between the gateway and the server cuts
the connection at that COMMIT (tests/pg_commit_cutter.py)."""

import pytest
from pg_commit_cutter import CommitCutter
from smpp_harness import PRICE, Harness, fast_settings, prepare_database

from smsgate.app import App
from smsgate.smpp.constants import Status


@pytest.fixture
async def cut_gateway(store_url: str):
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite commits in-process: no COMMIT answer can be lost")
    await prepare_database(store_url)
    cutter = CommitCutter(store_url)
    url = await cutter.start()
    app = App(fast_settings(url))
    await app.start()
    harness = Harness(app, url)
    try:
        yield harness, cutter
    finally:
        await harness.close_clients()
        await app.stop()
        await cutter.close()


async def test_a_submit_whose_commit_answer_was_lost_is_acknowledged(cut_gateway):
    gateway, cutter = cut_gateway
    account = await gateway.account(credits=10)
    client = await gateway.bound("tx")
    cutter.cut_next_commit("deliver")
    response = await client.submit()
    assert cutter.cuts == 1
    assert response.status == Status.ESME_ROK
    message = await gateway.message(response["message_id"])
    assert message.account_id == account.id
    assert await gateway.balance(account.id) == 9 * PRICE
    # The gateway goes on over fresh connections.
    assert (await client.submit()).status == Status.ESME_ROK
    assert await gateway.balance(account.id) == 8 * PRICE


async def test_a_submit_whose_commit_never_arrived_is_refused(cut_gateway):
    gateway, cutter = cut_gateway
    account = await gateway.account(credits=10)
    client = await gateway.bound("tx")
    cutter.cut_next_commit("drop")
    response = await client.submit()
    assert cutter.cuts == 1
    assert response.status == Status.ESME_RSYSERR
    assert await gateway.balance(account.id) == 10 * PRICE
