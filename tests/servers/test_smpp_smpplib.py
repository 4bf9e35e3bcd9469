"""An independent SMPP client (PyPI smpplib, blocking) against the real server.

smpplib runs in a worker thread (`asyncio.to_thread`) while the server runs in the test's
event loop.
"""

import asyncio
import time

import smpplib.client
import smpplib.exceptions
from smpp_harness import DEST, PASSWORD, SENDER

from smsgate.smpp.constants import ESM_DELIVERY_RECEIPT, MessageState, Status


def _client(gateway) -> smpplib.client.Client:
    return smpplib.client.Client(gateway.host, gateway.port, timeout=5,
                                 allow_unknown_opt_params=True)


def _submit_and_wait_for_receipt(client: smpplib.client.Client, text: bytes) -> tuple:
    sent, received = [], []
    client.set_message_sent_handler(lambda pdu, **_: sent.append(pdu))
    client.set_message_received_handler(lambda pdu, **_: received.append(pdu))
    client.send_message(source_addr_ton=5, source_addr_npi=0, source_addr=SENDER,
                        dest_addr_ton=1, dest_addr_npi=1, destination_addr=DEST,
                        short_message=text, registered_delivery=1)
    deadline = time.monotonic() + 10
    while not (sent and received) and time.monotonic() < deadline:
        client.read_once()  # answers deliver_sm with deliver_sm_resp ESME_ROK
    return sent, received


def _round_trip(gateway) -> tuple:
    client = _client(gateway)
    client.connect()
    try:
        bind = client.bind_transceiver(system_id="acme", password=PASSWORD)
        sent, received = _submit_and_wait_for_receipt(client, b"Hello from smpplib")
        unbind = client.unbind()
    finally:
        client.disconnect()
    return bind, sent, received, unbind


async def test_smpplib_binds_submits_and_gets_the_receipt(gateway):
    account = await gateway.account()
    bind, sent, received, unbind = await asyncio.to_thread(_round_trip, gateway)
    assert bind.status == 0 and bind.system_id == b"smsgate"
    [resp] = sent
    assert resp.status == 0
    message_id = resp.message_id.decode()
    assert message_id.isdigit()
    [deliver] = received
    assert deliver.esm_class == ESM_DELIVERY_RECEIPT
    text = deliver.short_message.decode()
    assert text.startswith(f"id:{message_id} ") and "stat:DELIVRD" in text
    assert deliver.receipted_message_id.decode() == message_id
    assert deliver.message_state == MessageState.DELIVERED
    assert unbind.command == "unbind_resp" and unbind.status == 0
    message = await gateway.message(message_id)
    assert message.payload == b"Hello from smpplib"

    async def deleted():  # smpplib answered deliver_sm_resp OK: the receipt is gone
        return not await gateway.receipts(account.id)
    for _ in range(100):
        if await deleted():
            break
        await asyncio.sleep(0.02)
    assert await deleted()


def _bind_status(gateway, kind: str, system_id: str, password: str = PASSWORD):
    """Bind with smpplib; returns (status, client still connected or None)."""
    client = _client(gateway)
    client.connect()
    try:
        getattr(client, f"bind_{kind}")(system_id=system_id, password=password)
    except smpplib.exceptions.PDUError as exc:
        client.disconnect()
        return exc.args[1], None
    return 0, client


async def test_smpplib_bind_errors_and_policy(gateway):
    await gateway.account(max_tx=2)

    def scenario() -> dict:
        results = {}
        results["wrong password"], _ = _bind_status(gateway, "transmitter", "acme", "wrong")
        results["unknown id"], _ = _bind_status(gateway, "transmitter", "ghost")
        results["rx"], rx = _bind_status(gateway, "receiver", "acme")
        results["second rx"], _ = _bind_status(gateway, "receiver", "acme")
        results["trx while rx"], _ = _bind_status(gateway, "transceiver", "acme")
        results["tx1"], tx1 = _bind_status(gateway, "transmitter", "acme")
        results["tx2"], tx2 = _bind_status(gateway, "transmitter", "acme")
        results["tx3"], _ = _bind_status(gateway, "transmitter", "acme")
        for client in (rx, tx1, tx2):
            if client is not None:
                client.unbind()
                client.disconnect()
        return results

    results = await asyncio.to_thread(scenario)
    assert results == {
        "wrong password": Status.ESME_RINVPASWD, "unknown id": Status.ESME_RINVSYSID,
        "rx": 0, "second rx": Status.ESME_RBINDFAIL, "trx while rx": Status.ESME_RBINDFAIL,
        "tx1": 0, "tx2": 0, "tx3": Status.ESME_RBINDFAIL,
    }
