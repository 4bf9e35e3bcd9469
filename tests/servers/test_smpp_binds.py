"""Binds over real TCP: credentials, the bind policy, session states, framing errors."""

import asyncio
import time

from smpp_harness import DEST, PASSWORD, eventually, submit_sm

from smsgate.smpp.constants import CommandId, Status, Tag
from smsgate.smpp.pdu import Pdu


async def test_bind_response_carries_system_id_and_interface_version(gateway):
    await gateway.account()
    client = await gateway.client()
    response = await client.bind("trx", "acme")
    assert response.command_id == CommandId.bind_transceiver_resp
    assert response.status == Status.ESME_ROK
    assert response["system_id"] == "smsgate"
    assert response.tlv(Tag.sc_interface_version) == 0x34


async def test_wrong_password_and_unknown_system_id(gateway):
    await gateway.account()
    wrong = await gateway.client()
    assert (await wrong.bind("tx", "acme", "nope")).status == Status.ESME_RINVPASWD
    await wrong.wait_closed()
    unknown = await gateway.client()
    assert (await unknown.bind("tx", "nobody")).status == Status.ESME_RINVSYSID
    await unknown.wait_closed()
    # A password longer than SMPP 3.4's 8 characters is compared in full, not cut.
    await gateway.account("longpw", password="a-long-password-1")
    cut = await gateway.client()
    assert (await cut.bind("tx", "longpw", "a-long-p")).status == Status.ESME_RINVPASWD
    full = await gateway.client()
    assert (await full.bind("tx", "longpw", "a-long-password-1")).status == Status.ESME_ROK


async def test_disabled_and_expired_accounts_are_refused_with_bindfail(gateway):
    await gateway.account("off", enabled=False)
    await gateway.account("old", expires_at=time.time() - 60)
    for system_id in ("off", "old"):
        client = await gateway.client()
        assert (await client.bind("trx", system_id)).status == Status.ESME_RBINDFAIL


async def test_one_receiver_and_up_to_max_tx_transmitters(gateway):
    await gateway.account(max_tx=3)
    receiver = await gateway.bound("rx")
    for kind in ("rx", "trx"):  # a second receiver-capable session is refused
        refused = await gateway.client()
        assert (await refused.bind(kind, "acme")).status == Status.ESME_RBINDFAIL
        await refused.wait_closed()
    transmitters = [await gateway.bound("tx") for _ in range(3)]
    fourth = await gateway.client()
    assert (await fourth.bind("tx", "acme")).status == Status.ESME_RBINDFAIL
    # The sessions that were accepted all work.
    for client in transmitters:
        assert (await client.submit()).status == Status.ESME_ROK
    assert (await receiver.request(Pdu(CommandId.enquire_link))).status == Status.ESME_ROK
    # Once the receiver unbinds, another one may bind.
    assert (await receiver.request(Pdu(CommandId.unbind))).status == Status.ESME_ROK
    await receiver.wait_closed()
    await eventually(lambda: _rebinds(gateway), what="a new receiver bind")


async def _rebinds(gateway) -> bool:
    client = await gateway.client()
    status = (await client.bind("trx", "acme")).status
    return status == Status.ESME_ROK


async def test_requests_before_bind_get_invbndsts(gateway):
    await gateway.account()
    client = await gateway.client()
    response = await client.request(submit_sm())
    assert response.command_id == CommandId.submit_sm_resp
    assert response.status == Status.ESME_RINVBNDSTS
    # enquire_link is fine in any state, and the connection is still usable for a bind.
    assert (await client.request(Pdu(CommandId.enquire_link))).status == Status.ESME_ROK
    assert (await client.bind("tx", "acme")).status == Status.ESME_ROK
    assert (await client.submit()).status == Status.ESME_ROK


async def test_receiver_may_not_submit_and_second_bind_is_refused(gateway):
    await gateway.account()
    receiver = await gateway.bound("rx")
    assert (await receiver.submit()).status == Status.ESME_RINVBNDSTS
    again = await receiver.bind("rx", "acme")
    assert again.status == Status.ESME_RALYBND


async def test_enquire_link_and_unbind(gateway):
    await gateway.account()
    client = await gateway.bound("trx")
    response = await client.request(Pdu(CommandId.enquire_link))
    assert response.command_id == CommandId.enquire_link_resp
    assert response.status == Status.ESME_ROK
    response = await client.request(Pdu(CommandId.unbind))
    assert response.command_id == CommandId.unbind_resp
    assert response.status == Status.ESME_ROK
    await client.wait_closed(2.0)  # the server closes after unbind_resp


async def test_unknown_command_gets_generic_nack_and_session_goes_on(gateway):
    await gateway.account()
    client = await gateway.bound("trx")
    header = (16).to_bytes(4, "big") + (0x00000666).to_bytes(4, "big") + bytes(4)
    nack = await asyncio.wait_for(client.send_raw(header + (77).to_bytes(4, "big"), 77), 5)
    assert nack.command_id == CommandId.generic_nack
    assert nack.status == Status.ESME_RINVCMDID
    assert nack.sequence == 77
    assert (await client.submit()).status == Status.ESME_ROK


async def test_two_gigabyte_command_length_is_refused_at_once(gateway):
    await gateway.account()
    other = await gateway.bound("trx")
    client = await gateway.bound("tx", "acme")
    started = time.monotonic()
    header = ((2**31).to_bytes(4, "big") + int(CommandId.submit_sm).to_bytes(4, "big")
              + bytes(4) + (9).to_bytes(4, "big"))
    nack = await asyncio.wait_for(client.send_raw(header + b"x" * 100, 9), 2)
    assert nack.command_id == CommandId.generic_nack
    assert nack.status == Status.ESME_RINVCMDLEN
    await client.wait_closed(2.0)
    assert time.monotonic() - started < 1.0  # did not wait for 2 GB to arrive
    assert (await other.submit()).status == Status.ESME_ROK


async def test_command_length_below_header_size_closes_the_connection(gateway):
    await gateway.account()
    client = await gateway.bound("tx")
    data = (8).to_bytes(4, "big") + int(CommandId.enquire_link).to_bytes(4, "big") + bytes(8)
    nack = await asyncio.wait_for(client.send_raw(data, 0), 2)
    assert nack.command_id == CommandId.generic_nack
    assert nack.status == Status.ESME_RINVCMDLEN
    await client.wait_closed(2.0)


async def test_truncated_pdus_are_answered_and_other_sessions_carry_on(gateway):
    await gateway.account()
    other = await gateway.bound("trx")
    client = await gateway.bound("tx")
    # A submit_sm whose body stops inside its mandatory fields (command_length matches).
    pdu = submit_sm()
    pdu.sequence = 21
    whole = client.codec.encode(pdu)
    end = whole.index(DEST.encode() + b"\0") + len(DEST) + 1  # stop before esm_class
    cut = end.to_bytes(4, "big") + whole[4:end]
    response = await asyncio.wait_for(client.send_raw(cut, 21), 2)
    assert response.command_id == CommandId.submit_sm_resp
    assert response.status == Status.ESME_RINVCMDLEN
    # A C-string cut before its NUL: the field's own error.
    cut = (30).to_bytes(4, "big") + whole[4:30]
    response = await asyncio.wait_for(client.send_raw(cut, 21), 2)
    assert response.status == Status.ESME_RINVDSTADR
    # sm_length running past the end of the PDU.
    pdu = submit_sm(text=b"hello world")
    pdu.sequence = 22
    bad = bytearray(client.codec.encode(pdu))
    bad[-12] = 200
    response = await asyncio.wait_for(client.send_raw(bytes(bad), 22), 2)
    assert response.status == Status.ESME_RINVMSGLEN
    assert (await client.submit()).status == Status.ESME_ROK
    # Half a PDU, then the peer goes away: nothing breaks.
    half = await gateway.bound("tx")
    half.send_raw(whole[: len(whole) // 2])
    await asyncio.sleep(0.05)
    await half.close()
    # Garbage that is not SMPP at all.
    junk = await gateway.client()
    junk.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await junk.wait_closed(2.0)
    assert (await other.submit()).status == Status.ESME_ROK
    assert (await other.request(Pdu(CommandId.enquire_link))).status == Status.ESME_ROK


async def test_wrong_password_sessions_do_not_disturb_a_bound_one(gateway):
    await gateway.account()
    other = await gateway.bound("trx")
    attempts = []
    for _ in range(5):
        client = await gateway.client()
        attempts.append(client.bind("tx", "acme", PASSWORD + "x"))
    statuses = {r.status for r in await asyncio.gather(*attempts)}
    assert statuses == {Status.ESME_RINVPASWD}
    assert (await other.submit()).status == Status.ESME_ROK


async def test_peer_gone_during_bind_does_not_keep_the_receiver_slot(gateway):
    await gateway.account()
    client = await gateway.client()
    client.send(Pdu(CommandId.bind_receiver, fields={
        "system_id": "acme", "password": PASSWORD, "interface_version": 0x34}))
    await client.close()  # before the password check (scrypt, tens of ms) is done
    await asyncio.sleep(0.3)
    assert gateway.app.gateway.binds.count(1) == (0, 0)
    receiver = await gateway.client()
    assert (await receiver.bind("rx", "acme")).status == Status.ESME_ROK


async def test_server_enquire_link_and_timeouts(gateway):
    await gateway.account()
    config = gateway.app.smpp.config
    config.enquire_link_interval, config.response_timeout, config.bind_timeout = 0.5, 1.0, 1.0
    alive = await gateway.bound("trx")
    silent = await gateway.bound("tx")
    silent.answer_enquire_link = False
    idle = await gateway.client()  # never binds
    await silent.wait_closed(5.0)  # enquire_link unanswered: closed
    await idle.wait_closed(5.0)  # no bind within bind_timeout: closed
    assert silent.enquire_links >= 1
    assert alive.enquire_links >= 1 and not alive.eof.is_set()
    assert (await alive.submit()).status == Status.ESME_ROK


async def test_the_link_check_after_bind_does_not_wait_for_the_bind_timeout(gateway):
    """Found by tests/abuse (a bound client that never reads): the timer armed at
    connect for bind_timeout was not re-armed after the bind, so with an
    enquire_link_interval shorter than bind_timeout the first link check came only at
    bind_timeout, and a silent client stayed up to bind_timeout + response_timeout."""
    await gateway.account()
    config = gateway.app.smpp.config
    config.enquire_link_interval, config.response_timeout, config.bind_timeout = 0.5, 1.0, 30
    silent = await gateway.bound("tx")
    silent.answer_enquire_link = False
    await silent.wait_closed(5.0)  # 0.5 + 1.0 s, far from 30
    assert silent.enquire_links == 1


async def test_our_unbind_answered_at_once_still_sends_the_answers_owed(gateway):
    """Stopping a node unbinds its customers while their submits wait for the group
    commit. A client that answers the unbind at once still gets an answer to every
    submit the server took (SMPP 3.4 §2.3: the unbind ends the session, not the
    requests already in it): those messages are stored and charged."""
    await gateway.account()
    client = await gateway.bound("tx")
    connection = gateway.connection(client)
    answers = client.pipeline([submit_sm(text=b"m%d" % n) for n in range(50)])
    while not connection.session.pending_in:  # the server has read them...
        await asyncio.sleep(0)
    connection.unbind()  # ...and unbinds before their commit returns
    unbind = await client.next_request()
    assert unbind.command_id == CommandId.unbind
    client.respond(unbind)
    statuses = [(await asyncio.wait_for(a, 5)).status for a in answers]
    assert statuses == [Status.ESME_ROK] * 50
    await client.wait_closed(2.0)


async def test_an_account_expired_or_disabled_since_the_last_reload_has_each_submit_refused(
        gateway):
    """SPEC's error table: 0x402 (HTTP26) for a bound account that has expired since
    (the directory's reload would unbind it; until then each submit checks), and a
    disabled one is no longer authorized: every submit_sm of a read is answered so, and
    none is stored."""
    account = await gateway.account()
    client = await gateway.bound("tx")
    assert (await client.submit()).status == Status.ESME_ROK
    directory = gateway.app.accounts
    await directory.stop()  # no reload meanwhile: it would unbind the session
    cached = directory.by_id(account.id)
    for change, status in (({"expires_at": time.time() - 1}, Status.SMSGATE_EXPIRED),
                           ({"enabled": False}, Status.ESME_RBINDFAIL)):
        for name, value in change.items():
            setattr(cached, name, value)
        futures = client.pipeline([submit_sm(), submit_sm(), submit_sm()])
        answers = [await asyncio.wait_for(f, 5) for f in futures]
        assert [a.status for a in answers] == [status] * 3
        for name in change:
            setattr(cached, name, getattr(account, name))
    assert (await client.submit()).status == Status.ESME_ROK
    assert gateway.app.pipeline.accepted == {"smpp": 2}
