"""A submit_sm whose group commit's answer is lost on its way back from PostgreSQL: the
message is stored and charged, so the customer must hear ESME_ROK, not RSYSERR (and
not resubmit and pay twice). A real TCP proxy between the gateway and the server cuts
the connection at that COMMIT (tests/pg_commit_cutter.py)."""

import pytest
from gated_upstream import DEST, with_upstream
from pg_commit_cutter import CommitCutter
from smpp_harness import PRICE, SENDER, Harness, eventually, fast_settings, prepare_database

from smsgate.app import App
from smsgate.core.models import DELETED
from smsgate.smpp.constants import CommandId, Status
from smsgate.smpp.pdu import Pdu


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


async def test_a_cancel_of_unknown_outcome_never_lets_its_message_out(cut_gateway):
    # The cancel's COMMIT is executed, its answer lost, and the server cannot be asked
    # (new connections refused): the customer hears RSYSERR, and the message, which the
    # store did cancel and refund, must not go out either.
    gateway, cutter = cut_gateway
    account = await gateway.account(credits=10)
    upstream = await with_upstream(gateway)
    client = await gateway.bound("tx")
    queued = (await client.submit(DEST))["message_id"]  # waits: the upstream is closed
    cutter.cut_next_commit("deliver")
    cutter.refuse_new = True
    cancel = await client.request(Pdu(CommandId.cancel_sm, fields={
        "message_id": queued, "source_addr": SENDER, "destination_addr": DEST}), timeout=30)
    assert cutter.cuts == 1
    assert cancel.status == Status.ESME_RSYSERR
    cutter.refuse_new = False
    upstream.open = True
    probe = (await client.submit(DEST))["message_id"]

    async def probe_sent():
        return int(probe) in upstream.sent
    await eventually(probe_sent, what="the probe to go out")
    assert upstream.sent == [int(probe)]
    assert (await gateway.message(queued)).status == DELETED
    assert await gateway.balance(account.id) == 9 * PRICE  # the probe; the other refunded
