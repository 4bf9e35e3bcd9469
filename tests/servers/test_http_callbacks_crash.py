"""kill -9 of a real `smsgate serve` while a dlrurl callback waits for the customer's
server, then a restart on the same database: once the server is up the callback arrives,
and its row is deleted."""

import asyncio
import os
import signal
import time

import aiohttp
from http_harness import PASSWORD, USER, eventually, ids_of, submit_params
from serve_process import start_serve
from smpp_harness import password_hash, prepare_database, reserve_port
from test_http_callbacks import Receiver

from smsgate.core.models import CREDIT_SCALE, Account
from smsgate.store import open_store

# Quick retries, so that the test need not wait for the default 1 s, 5 s, 15 s, ...
CONFIG = """
node_id = "dlr-crash"
[http.callbacks]
backoff = [0.3, 0.6, 1.0]
poll = 0.2
allow_private = true  # the customer's server listens on loopback
"""


async def test_callback_survives_kill_9_and_arrives_after_the_restart(store_url, tmp_path):
    await prepare_database(store_url)
    store = open_store(store_url)
    await store.open()
    try:
        account = await store.add_account(Account(
            system_id=USER, password_hash=password_hash(PASSWORD), created_at=time.time()))
        await store.adjust_balance(account.id, 100 * CREDIT_SCALE, "opening balance")
        config = tmp_path / "smsgate.toml"
        config.write_text(CONFIG)
        log = tmp_path / "serve.log"
        sock = reserve_port()  # the customer's server: down for now
        port = sock.getsockname()[1]

        proc, http_port = await start_serve(store_url, log, "HTTP", "--config", str(config))
        try:
            params = submit_params(dlrurl=f"http://127.0.0.1:{port}/dlr", ref="kill-9")
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://127.0.0.1:{http_port}/websmpp/websms", params=params) as response:
                [message_id] = ids_of(await response.text())

            async def pending():
                message = await store.get_message(message_id)
                return message is not None and message.status == "DELIVRD" \
                    and await store.count_callbacks() == 1

            await eventually(pending, what="DELIVRD with its callback stored")
            await asyncio.sleep(0.8)  # a few failed attempts
            os.kill(proc.pid, signal.SIGKILL)
            assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert await store.count_callbacks() == 1

        proc, _ = await start_serve(store_url, log, "HTTP", "--config", str(config))
        receiver = None
        try:
            await asyncio.sleep(0.5)  # restarted, still failing: the server is down
            receiver = await Receiver(sock=sock).start()

            async def called():
                return receiver.calls

            [call] = await eventually(called, timeout=15,
                                      what="the callback after the restart")
            assert (call["id"], call["status"], call["ref"]) \
                == (str(message_id), "DELIVRD", "kill-9")

            async def deleted():
                return await store.count_callbacks() == 0

            await eventually(deleted, what="the callback's row deleted")
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0, log.read_text()
            assert len(receiver.calls) == 1
        finally:
            if receiver is not None:
                await receiver.stop()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        await store.close()
