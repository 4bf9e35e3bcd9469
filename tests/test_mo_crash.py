"""kill -9 of a real `smsgate serve` with half a concatenated MO received (acknowledged
upstream, so the SMSC will not send it again) and its deliver_sm waiting for a receiver;
a restart on the same database: the second part completes the message (one request,
joined), and a receiver that binds gets both parts."""

import asyncio
import os
import signal

from serve_process import start_serve
from smpp_harness import PASSWORD, RawClient, eventually, password_hash, prepare_database
from test_http_callbacks import Receiver
from test_mo import NUMBER, UDH, Upstream, _async, upstream  # noqa: F401

from smsgate.core.models import Account, Connector, InboundNumber
from smsgate.smpp.constants import CommandId, Status
from smsgate.store import open_store

CONFIG = """
node_id = "mo-crash"
[http.callbacks]
backoff = [0.3, 0.6, 1.0]
poll = 0.2
allow_private = true  # the customer's server listens on loopback
"""


async def _prepare(store_url: str, upstream_port: int, mo_url: str) -> None:
    await prepare_database(store_url)
    store = open_store(store_url)
    await store.open()
    try:
        await store.add_connector(Connector("up", "smpp", {
            "host": "127.0.0.1", "port": upstream_port, "system_id": "gw",
            "password": "secret12", "reconnect_min": 0.1, "reconnect_max": 0.4}))
        account = await store.add_account(Account("acme", password_hash(PASSWORD)))
        await store.add_number(InboundNumber(NUMBER, account.id, mo_url))
    finally:
        await store.close()


async def test_half_an_mo_survives_kill_9(store_url, upstream, tmp_path):  # noqa: F811
    receiver = await Receiver().start()
    await _prepare(store_url, upstream.port, receiver.url("/mo"))
    config = tmp_path / "smsgate.toml"
    config.write_text(CONFIG)
    log = tmp_path / "serve.log"
    proc = None
    try:
        proc, _ = await start_serve(store_url, log, "SMPP", "--config", str(config))
        assert await upstream.mo(UDH + b"\x01Half ", esm_class=0x40) == Status.ESME_ROK
        os.kill(proc.pid, signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL

        proc, smpp_port = await start_serve(store_url, log, "SMPP", "--config", str(config))
        await eventually(_async(lambda: len(upstream.sessions) >= 2), timeout=10,
                         what="the new process bound upstream")
        assert await upstream.mo(UDH + b"\x02and half", esm_class=0x40) == Status.ESME_ROK
        [call] = await eventually(_async(lambda: receiver.calls), timeout=10,
                                  what="the joined request")
        assert (call["text"], call["parts"], call["total"]) == ("Half and half", "2", "2")

        client = await RawClient.connect("127.0.0.1", smpp_port)
        try:
            assert (await client.bind("rx", "acme")).status == Status.ESME_ROK
            got = []
            for _ in range(2):
                pdu = await client.next_request()
                assert pdu.command_id == CommandId.deliver_sm
                client.respond(pdu)
                got.append(pdu["short_message"])
            assert got == [UDH + b"\x01Half ", UDH + b"\x02and half"]
        finally:
            await client.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0, log.read_text()
        assert len(receiver.calls) == 1
    finally:
        await receiver.stop()
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
