"""Messages over real TCP: submit, receipts, query/cancel/replace, submit_multi, data_sm,
throttling, credits and scheduling, checked against the store."""

import asyncio
import time

from smpp_harness import DEST, PRICE, SENDER, eventually, submit_sm

from smsgate.core.models import DELETED, DELIVRD
from smsgate.smpp.constants import ESM_DELIVERY_RECEIPT, CommandId, MessageState, Status, Tag
from smsgate.smpp.layouts import DistributionList, SmeAddress, UnsuccessSme
from smsgate.smpp.pdu import Pdu
from smsgate.smpp.receipt import parse_receipt
from smsgate.smpp.smpptime import format_relative

IN_AN_HOUR = format_relative(3600)


async def _final(gateway, message_id: str, status: str = DELIVRD) -> None:
    async def reached():
        return (await gateway.message(message_id)).status == status
    await eventually(reached, what=f"message {message_id} to become {status}")


def _check_receipt(pdu: Pdu, message_id: str, stat: str = "DELIVRD") -> None:
    assert pdu.command_id == CommandId.deliver_sm
    assert pdu["esm_class"] == ESM_DELIVERY_RECEIPT
    text = pdu["short_message"].decode("latin-1")
    assert text.startswith(f"id:{message_id} "), text
    assert f"stat:{stat}" in text, text
    receipt = parse_receipt(text)
    assert receipt.id == message_id
    assert receipt.stat == stat
    assert pdu.tlv(Tag.receipted_message_id) == message_id
    assert pdu.tlv(Tag.message_state) == MessageState.DELIVERED
    # The receipt comes "from" the handset, "to" the sender.
    assert pdu["source_addr"] == DEST
    assert pdu["destination_addr"] == SENDER


async def test_submit_is_stored_and_charged_before_the_response(gateway):
    account = await gateway.account(credits=10)
    client = await gateway.bound("tx")
    response = await client.submit(text=b"Hello world")
    assert response.command_id == CommandId.submit_sm_resp
    assert response.status == Status.ESME_ROK
    message_id = response["message_id"]
    assert message_id.isdigit() and len(message_id) <= 19
    message = await gateway.message(message_id)  # already there when the answer came
    assert message.account_id == account.id
    assert message.dest_addr == DEST and message.payload == b"Hello world"
    assert message.price == PRICE
    assert await gateway.balance(account.id) == 10 * PRICE - PRICE
    await _final(gateway, message_id)


async def test_receipt_on_the_transceiver_session(gateway):
    await gateway.account()
    client = await gateway.bound("trx")
    response = await client.submit(registered_delivery=1, text=b"Hi there")
    assert response.status == Status.ESME_ROK
    deliver = await client.next_request()
    _check_receipt(deliver, response["message_id"])
    assert "text:Hi there" in deliver["short_message"].decode()
    client.respond(deliver)


async def test_receipt_waits_for_a_receiver_and_is_deleted_only_after_ok(gateway):
    account = await gateway.account()
    transmitter = await gateway.bound("tx")
    response = await transmitter.submit(registered_delivery=1)
    assert response.status == Status.ESME_ROK
    message_id = response["message_id"]
    await _final(gateway, message_id)
    stored = await eventually(lambda: gateway.receipts(account.id), what="a stored receipt")
    assert [r.message_id for r in stored] == [int(message_id)]
    await asyncio.sleep(0.2)  # no receiver: nothing is sent anywhere, the receipt stays
    assert len(await gateway.receipts(account.id)) == 1
    assert transmitter.requests.empty()

    receiver = await gateway.bound("rx")
    deliver = await receiver.next_request()
    _check_receipt(deliver, message_id)
    await asyncio.sleep(0.2)  # sent but unanswered: still stored
    assert len(await gateway.receipts(account.id)) == 1
    receiver.respond(deliver, Status.ESME_RX_T_APPN)  # refused: kept for a retry
    await asyncio.sleep(0.2)
    assert len(await gateway.receipts(account.id)) == 1
    again = await receiver.next_request(timeout=5)  # retried after the first backoff
    _check_receipt(again, message_id)
    receiver.respond(again)
    async def gone():
        return not await gateway.receipts(account.id)
    await eventually(gone, what="the receipt to be deleted")
    await asyncio.sleep(0.3)
    assert receiver.requests.empty()  # and not sent again


async def test_unanswered_receipt_goes_to_the_next_receiver(gateway):
    account = await gateway.account()
    first = await gateway.bound("trx")
    response = await first.submit(registered_delivery=1)
    deliver = await first.next_request()
    _check_receipt(deliver, response["message_id"])
    await first.close()  # goes away without deliver_sm_resp
    second = await eventually(lambda: _try_bind(gateway), what="a new receiver bind")
    again = await second.next_request(timeout=5)
    _check_receipt(again, response["message_id"])
    second.respond(again)
    async def gone():
        return not await gateway.receipts(account.id)
    await eventually(gone, what="the receipt to be deleted")


async def _try_bind(gateway):
    client = await gateway.client()
    if (await client.bind("rx", "acme")).status == Status.ESME_ROK:
        return client
    return None


async def test_bad_destination_and_sender(gateway):
    account = await gateway.account(credits=5)
    client = await gateway.bound("tx")
    for destination in ("12", "abcdefghij", "+44 7700 900001", "1234567890123456"):
        response = await client.submit(destination)
        assert response.status == Status.ESME_RINVDSTADR, destination
    response = await client.request(submit_sm(source_addr="TooLongSenderName"))
    assert response.status == Status.ESME_RINVSRCADR
    assert await gateway.balance(account.id) == 5 * PRICE  # nothing charged
    assert (await client.submit("+447700900002")).status == Status.ESME_ROK


async def test_long_message_in_message_payload_is_charged_per_part(gateway):
    account = await gateway.account(credits=10)
    client = await gateway.bound("tx")
    text = b"x" * 300  # two GSM-7 parts of 153
    response = await client.request(Pdu(CommandId.submit_sm, fields={
        "source_addr": SENDER, "source_addr_ton": 5, "destination_addr": DEST,
        "dest_addr_ton": 1, "dest_addr_npi": 1}, tlvs=[(Tag.message_payload, text)]))
    assert response.status == Status.ESME_ROK
    message = await gateway.message(response["message_id"])
    assert message.parts == 2 and message.price == 2 * PRICE
    assert await gateway.balance(account.id) == 8 * PRICE
    too_long = await client.submit(text=b"y" * 200)  # short_message over one SMS
    assert too_long.status == Status.ESME_RINVMSGLEN


async def test_query_sm(gateway):
    await gateway.account()
    await gateway.account("other")
    client = await gateway.bound("tx")
    response = await client.submit()
    message_id = response["message_id"]
    await _final(gateway, message_id)
    query = await client.request(Pdu(CommandId.query_sm, fields={
        "message_id": message_id, "source_addr": SENDER}))
    assert query.status == Status.ESME_ROK
    assert query["message_id"] == message_id
    assert query["message_state"] == MessageState.DELIVERED
    assert len(query["final_date"]) == 16
    scheduled = await client.submit(schedule_delivery_time=IN_AN_HOUR)
    query = await client.request(Pdu(CommandId.query_sm, fields={
        "message_id": scheduled["message_id"]}))
    assert query["message_state"] == MessageState.ENROUTE and query["final_date"] == ""
    unknown = await client.request(Pdu(CommandId.query_sm, fields={"message_id": "12345"}))
    assert unknown.status == Status.ESME_RQUERYFAIL
    malformed = await client.request(Pdu(CommandId.query_sm, fields={"message_id": "x1"}))
    assert malformed.status == Status.ESME_RINVMSGID
    # Another account cannot see the message.
    other = await gateway.bound("tx", "other")
    foreign = await other.request(Pdu(CommandId.query_sm, fields={"message_id": message_id}))
    assert foreign.status == Status.ESME_RQUERYFAIL


async def test_cancel_scheduled_message_refunds_it(gateway):
    account = await gateway.account(credits=10)
    client = await gateway.bound("tx")
    response = await client.submit(schedule_delivery_time=IN_AN_HOUR)
    assert response.status == Status.ESME_ROK
    message_id = response["message_id"]
    assert await gateway.balance(account.id) == 9 * PRICE
    cancel = await client.request(Pdu(CommandId.cancel_sm, fields={
        "message_id": message_id, "source_addr": SENDER, "destination_addr": DEST}))
    assert cancel.command_id == CommandId.cancel_sm_resp
    assert cancel.status == Status.ESME_ROK
    message = await gateway.message(message_id)
    assert message.status == DELETED and message.sent_at is None
    assert await gateway.balance(account.id) == 10 * PRICE  # refunded
    ledger = await gateway.store.ledger(account.id, 100)
    assert sum(e.amount for e in ledger) == 10 * PRICE
    query = await client.request(Pdu(CommandId.query_sm, fields={"message_id": message_id}))
    assert query["message_state"] == MessageState.DELETED
    again = await client.request(Pdu(CommandId.cancel_sm, fields={"message_id": message_id}))
    assert again.status == Status.ESME_RCANCELFAIL
    # A message already delivered cannot be cancelled.
    sent = await client.submit()
    await _final(gateway, sent["message_id"])
    late = await client.request(Pdu(CommandId.cancel_sm, fields={
        "message_id": sent["message_id"]}))
    assert late.status == Status.ESME_RCANCELFAIL


async def test_replace_scheduled_message(gateway):
    await gateway.account()
    client = await gateway.bound("trx")
    response = await client.submit(schedule_delivery_time=IN_AN_HOUR, text=b"old text")
    message_id = response["message_id"]
    replace = await client.request(Pdu(CommandId.replace_sm, fields={
        "message_id": message_id, "source_addr": SENDER, "short_message": b"new text",
        "schedule_delivery_time": format_relative(1), "registered_delivery": 1}))
    assert replace.command_id == CommandId.replace_sm_resp
    assert replace.status == Status.ESME_ROK
    message = await gateway.message(message_id)
    assert message.payload == b"new text"
    # Moved to one second from now, it goes out then, with the new text and a receipt.
    deliver = await client.next_request(timeout=5)
    _check_receipt(deliver, message_id)
    assert "text:new text" in deliver["short_message"].decode()
    client.respond(deliver)
    unknown = await client.request(Pdu(CommandId.replace_sm, fields={
        "message_id": "99", "short_message": b"x"}))
    assert unknown.status == Status.ESME_RREPLACEFAIL
    done = await client.request(Pdu(CommandId.replace_sm, fields={
        "message_id": message_id, "short_message": b"too late"}))
    assert done.status == Status.ESME_RREPLACEFAIL


async def test_submit_multi_with_one_bad_destination(gateway):
    account = await gateway.account(credits=10)
    client = await gateway.bound("tx")
    response = await client.request(Pdu(CommandId.submit_multi, fields={
        "source_addr": SENDER, "source_addr_ton": 5, "short_message": b"to many",
        "dest_addresses": (SmeAddress(1, 1, "447700900001"), SmeAddress(1, 1, "12"),
                           SmeAddress(1, 1, "447700900002"), DistributionList("friends"))}))
    assert response.command_id == CommandId.submit_multi_resp
    assert response.status == Status.ESME_ROK
    assert response["message_id"].isdigit()
    assert set(response["unsuccess_smes"]) == {
        UnsuccessSme(1, 1, "12", Status.ESME_RINVDSTADR),
        UnsuccessSme(0, 0, "friends", Status.ESME_RINVDLNAME)}
    message = await gateway.message(response["message_id"])
    assert message.dest_addr == "447700900001"
    assert await gateway.balance(account.id) == 8 * PRICE  # two stored, two charged


async def test_data_sm(gateway):
    await gateway.account()
    client = await gateway.bound("trx")
    response = await client.request(Pdu(CommandId.data_sm, fields={
        "source_addr_ton": 5, "source_addr": SENDER, "dest_addr_ton": 1, "dest_addr_npi": 1,
        "destination_addr": DEST, "registered_delivery": 1},
        tlvs=[(Tag.message_payload, b"data_sm text")]))
    assert response.command_id == CommandId.data_sm_resp
    assert response.status == Status.ESME_ROK
    message_id = response["message_id"]
    assert (await gateway.message(message_id)).payload == b"data_sm text"
    deliver = await client.next_request()
    _check_receipt(deliver, message_id)
    client.respond(deliver)


async def test_throttling_past_the_account_tps(gateway):
    await gateway.account(tps=5)
    client = await gateway.bound("tx")
    burst = [client.send(submit_sm()) for _ in range(10)]  # one write, one event-loop turn
    statuses = [r.status for r in await asyncio.wait_for(asyncio.gather(*burst), 5)]
    assert statuses[:5] == [Status.ESME_ROK] * 5
    assert statuses[5:] == [Status.ESME_RTHROTTLED] * 5
    await asyncio.sleep(0.3)  # the bucket refills at 5 per second
    assert (await client.submit()).status == Status.ESME_ROK


async def test_insufficient_credits(gateway):
    account = await gateway.account(credits=2)
    client = await gateway.bound("tx")
    statuses = [(await client.submit()).status for _ in range(3)]
    assert statuses == [Status.ESME_ROK, Status.ESME_ROK, Status.SMSGATE_NO_CREDIT]
    assert statuses[2] == 0x400
    assert await gateway.balance(account.id) == 0
    broke = await gateway.account("broke", credits=0)
    poor = await gateway.bound("tx", "broke")
    assert (await poor.submit()).status == 0x400
    assert await gateway.balance(broke.id) == 0


async def test_one_read_of_submits_is_answered_each_in_its_own_right(gateway):
    """Submits that arrive in one read are checked one by one and stored together:
    each gets its own answer (a refusal at once, the rest after their commit)."""
    account = await gateway.account(credits=3)
    client = await gateway.bound("trx")
    data_sm = Pdu(CommandId.data_sm, fields={
        "source_addr_ton": 5, "source_addr": SENDER, "dest_addr_ton": 1,
        "dest_addr_npi": 1, "destination_addr": DEST}, tlvs=[(Tag.message_payload, b"d")])
    pdus = [submit_sm(), submit_sm("12"), submit_sm(text=b"second"), data_sm,
            submit_sm(), submit_sm(text=b"last")]
    answers = await asyncio.wait_for(asyncio.gather(*client.pipeline(pdus)), 5)  # one write
    assert [a.status for a in answers] == [
        Status.ESME_ROK, Status.ESME_RINVDSTADR, Status.ESME_ROK, Status.ESME_ROK,
        Status.SMSGATE_NO_CREDIT, Status.SMSGATE_NO_CREDIT]
    assert answers[3].command_id == CommandId.data_sm_resp
    stored = [answers[n]["message_id"] for n in (0, 2, 3)]
    assert [(await gateway.message(i)).payload for i in stored] == [b"Hello", b"second", b"d"]
    assert await gateway.balance(account.id) == 0


async def test_scheduled_message_goes_out_within_a_second_of_its_time(gateway):
    await gateway.account()
    client = await gateway.bound("trx")
    before = time.time()
    response = await client.submit(schedule_delivery_time="000000000002000R",
                                   registered_delivery=1)
    after = time.time()
    assert response.status == Status.ESME_ROK
    message_id = response["message_id"]
    message = await gateway.message(message_id)
    assert before + 2 - 0.01 <= message.schedule_at <= after + 2 + 0.01
    assert message.sent_at is None
    deliver = await client.next_request(timeout=6)
    assert time.time() >= before + 2
    _check_receipt(deliver, message_id)
    client.respond(deliver)
    message = await gateway.message(message_id)
    assert message.sent_at is not None
    assert before + 2 <= message.sent_at <= message.schedule_at + 1.0


async def test_receipts_respect_the_deliver_sm_window(gateway):
    await gateway.account()
    window = gateway.app.smpp.config.window
    receiver = await gateway.bound("rx")
    transmitter = await gateway.bound("tx")
    ids = [(await transmitter.submit(registered_delivery=1))["message_id"]
           for _ in range(window + 5)]
    first = [await receiver.next_request() for _ in range(window)]
    await asyncio.sleep(0.3)
    assert receiver.requests.empty()  # the window is full until deliver_sm_resp
    for deliver in first:
        receiver.respond(deliver)
    rest = [await receiver.next_request() for _ in range(5)]
    for deliver in rest:
        receiver.respond(deliver)
    got = [d.tlv(Tag.receipted_message_id) for d in first + rest]
    assert sorted(got) == sorted(ids)


async def test_replace_postponing_a_message_about_to_go_out(gateway):
    await gateway.account()
    client = await gateway.bound("tx")
    response = await client.submit(schedule_delivery_time=format_relative(1))
    message_id = response["message_id"]
    await asyncio.sleep(0.5)  # the scheduler has armed its timer by now
    replace = await client.request(Pdu(CommandId.replace_sm, fields={
        "message_id": message_id, "short_message": b"later",
        "schedule_delivery_time": IN_AN_HOUR}))
    assert replace.status == Status.ESME_ROK
    await asyncio.sleep(1.0)
    message = await gateway.message(message_id)
    assert message.sent_at is None and message.status == "ATES"
    assert message.schedule_at > time.time() + 3000


async def test_cancel_right_after_sending_fails_and_refunds_nothing(gateway):
    # The dispatcher holds a message's sent mark for a moment before storing it: cancel
    # must still see the message as sent, not cancel (and refund) what went upstream.
    account = await gateway.account(credits=10)
    client = await gateway.bound("tx")
    sent = await client.submit()
    cancel = await client.request(Pdu(CommandId.cancel_sm, fields={
        "message_id": sent["message_id"], "source_addr": SENDER, "destination_addr": DEST}))
    assert cancel.status == Status.ESME_RCANCELFAIL
    await _final(gateway, sent["message_id"])
    assert (await gateway.message(sent["message_id"])).status == DELIVRD
    assert await gateway.balance(account.id) == 9 * PRICE
