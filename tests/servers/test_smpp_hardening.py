"""Issue 8's SMPP items over real TCP: pipelined binds, one bad PDU among good ones,
priority_flag, data_sm in transaction mode, submit_multi's TON/NPI, unbind with answers
still owed, and sessions whose account changed while bound."""

import asyncio

from smpp_harness import DEST, PASSWORD, SENDER, eventually, submit_sm

from smsgate.core.errors import Err
from smsgate.smpp.constants import CommandId, Status, Tag
from smsgate.smpp.layouts import SmeAddress
from smsgate.smpp.pdu import Pdu
from smsgate.store import open_store


def bind(command: int, system_id: str, sequence: int) -> Pdu:
    return Pdu(command, sequence, fields={
        "system_id": system_id, "password": PASSWORD, "interface_version": 0x34})


# -- item 4: pipelined binds -------------------------------------------------------------------


async def test_a_bind_while_one_is_pending_is_ralybnd_and_takes_no_slot(gateway):
    alice = await gateway.account("alice")
    bob = await gateway.account("bob")
    client = await gateway.client()
    first, second = client.pipeline([bind(CommandId.bind_receiver, "alice", 1),
                                     bind(CommandId.bind_receiver, "bob", 2)])
    second = await asyncio.wait_for(second, 5)
    assert (second.command_id, second.status) == (CommandId.bind_receiver_resp,
                                                  Status.ESME_RALYBND)
    assert (await asyncio.wait_for(first, 5)).status == Status.ESME_ROK
    binds = gateway.app.gateway.binds
    assert binds.count(alice.id) == (1, 0) and binds.count(bob.id) == (0, 0)
    # Bound: a third bind is refused the same way, and the session goes on.
    assert (await client.bind("tx", "bob")).status == Status.ESME_RALYBND
    assert (await client.request(Pdu(CommandId.enquire_link))).status == Status.ESME_ROK
    await client.close()
    await eventually(lambda: _no_connections(gateway), what="the server to see the close")
    assert binds.count(alice.id) == (0, 0)  # free at once: no sleep, no timer
    assert gateway.app.receipts._receivers == {}
    again = await gateway.client()
    assert (await again.bind("rx", "alice")).status == Status.ESME_ROK


async def _no_connections(gateway) -> bool:
    return not gateway.app.smpp.connections


# -- item 8: one bad PDU among good ones -------------------------------------------------------


async def test_a_60_kb_message_payload_is_rinvmsglen_and_the_others_are_answered(gateway):
    await gateway.account()
    client = await gateway.bound("tx")
    huge = submit_sm(text=b"", data_coding=0)
    huge.tlvs.append((Tag.message_payload, b"x" * 60_000))  # 400 parts: TooManyParts
    futures = client.pipeline([submit_sm(text=b"first"), huge, submit_sm(text=b"third")])
    first, second, third = [await asyncio.wait_for(f, 5) for f in futures]
    assert first.status == third.status == Status.ESME_ROK
    assert second.status == Status.ESME_RINVMSGLEN
    assert (await gateway.message(third["message_id"])).payload == b"third"
    assert (await client.submit()).status == Status.ESME_ROK  # the session lives on


async def test_a_handler_that_fails_costs_only_its_own_answer(gateway, monkeypatch, caplog):
    await gateway.account()
    client = await gateway.bound("tx")
    pipeline = gateway.app.pipeline
    prepare_one = pipeline.prepare_one

    def failing(request, *args):
        if request.destinations == ["447700900666"]:
            raise RuntimeError("a bug, for the test")
        return prepare_one(request, *args)

    monkeypatch.setattr(pipeline, "prepare_one", failing)
    futures = client.pipeline([submit_sm(), submit_sm("447700900666"), submit_sm()])
    statuses = [(await asyncio.wait_for(f, 5)).status for f in futures]
    assert statuses == [Status.ESME_ROK, Status.ESME_RSYSERR, Status.ESME_ROK]
    assert "a bug, for the test" in caplog.text  # logged with its traceback


# -- item 14 -----------------------------------------------------------------------------------


async def test_priority_flag_over_3_is_rinvprtflg(gateway):
    await gateway.account()
    client = await gateway.bound("tx")
    response = await client.submit(priority_flag=4)
    assert response.status == Status.ESME_RINVPRTFLG == Err.BAD_PRIORITY.smpp_status
    assert (await client.submit(priority_flag=3)).status == Status.ESME_ROK


async def test_data_sm_in_transaction_mode_is_accepted_submit_sm_is_not(gateway):
    await gateway.account()
    client = await gateway.bound("trx")
    response = await client.request(Pdu(CommandId.data_sm, fields={
        "source_addr_ton": 5, "source_addr": SENDER, "dest_addr_ton": 1, "dest_addr_npi": 1,
        "destination_addr": DEST, "esm_class": 0x02},
        tlvs=[(Tag.message_payload, b"transaction")]))
    assert response.status == Status.ESME_ROK
    assert (await gateway.message(response["message_id"])).esm_class == 0x02
    assert (await client.submit(esm_class=0x02)).status == Status.ESME_RINVESMCLASS


async def test_submit_multi_keeps_each_destinations_ton_and_npi(gateway):
    await gateway.account()
    client = await gateway.bound("tx")
    response = await client.request(Pdu(CommandId.submit_multi, fields={
        "source_addr": SENDER, "source_addr_ton": 5, "short_message": b"hello",
        "dest_addresses": (SmeAddress(2, 8, "447700900001"),)}))
    assert response.status == Status.ESME_ROK
    message = await gateway.message(response["message_id"])
    assert (message.dest_ton, message.dest_npi) == (2, 8)


# -- unbind with answers still owed ------------------------------------------------------------


async def test_unbind_is_answered_after_the_submits_before_it(gateway):
    await gateway.account()
    client = await gateway.bound("tx")
    futures = client.pipeline([submit_sm(), Pdu(CommandId.unbind)])
    stored, unbound = [await asyncio.wait_for(f, 5) for f in futures]
    assert stored.status == Status.ESME_ROK and stored["message_id"].isdigit()
    assert unbound.command_id == CommandId.unbind_resp
    await client.wait_closed(2.0)


# -- item 11: the account changes while bound --------------------------------------------------


async def _change_account(url: str, system_id: str, **changes) -> None:
    """What the CLI does: its own connection to the database, one update."""
    store = open_store(url)
    await store.open()
    try:
        account = await store.get_account(system_id)
        for name, value in changes.items():
            setattr(account, name, value)
        await store.update_account(account)
    finally:
        await store.close()


async def test_sessions_are_unbound_when_their_account_no_longer_allows_them(gateway):
    await gateway.account("acme")
    await gateway.account("other")
    polite = await gateway.bound("trx", "acme")
    silent = await gateway.bound("tx", "acme")
    silent.answer_enquire_link = False
    untouched = await gateway.bound("tx", "other")
    await _change_account(gateway.url, "acme", allowed_ips=("10.0.0.0/8",))
    unbind = await polite.next_request(timeout=10)  # the directory reloads every 2 s
    assert unbind.command_id == CommandId.unbind
    assert (await polite.submit()).status == Status.ESME_RINVBNDSTS  # unbinding
    polite.respond(unbind)
    await polite.wait_closed(2.0)
    # The one that does not answer the unbind is dropped after response_timeout.
    assert (await silent.next_request(timeout=5)).command_id == CommandId.unbind
    await silent.wait_closed(gateway.app.smpp.config.response_timeout + 3)
    assert (await untouched.submit()).status == Status.ESME_ROK
    assert gateway.app.gateway.binds.count(1) == (0, 0)


async def test_withdrawn_smpp_access_unbinds_too(gateway):
    await gateway.account()
    client = await gateway.bound("trx")
    await _change_account(gateway.url, "acme", smpp_enabled=False)
    assert (await client.next_request(timeout=10)).command_id == CommandId.unbind
