"""kill -9 of a real `smsgate serve` during full-speed submission, then a restart on the
same database: every acknowledged message is stored, and charged exactly once."""

import asyncio
import contextlib
import os
import signal
import time

from serve_process import start_serve
from smpp_harness import PASSWORD, RawClient, password_hash, submit_sm

from smsgate.app import seed
from smsgate.core.models import CREDIT_SCALE, Account
from smsgate.smpp.constants import Status
from smsgate.store import open_store, sqlite_path

OPENING = 1_000_000 * CREDIT_SCALE
CONNECTIONS = 4
WINDOW = 64


async def _flood(port: int, acked: set[str], refused: list[int], stop: asyncio.Event) -> None:
    """One transmitter keeping WINDOW submit_sm outstanding until the server dies."""
    client = await RawClient.connect("127.0.0.1", port)
    try:
        assert (await client.bind("tx", "flood")).status == Status.ESME_ROK
        slots = asyncio.Semaphore(WINDOW)

        def answered(future: asyncio.Future) -> None:
            slots.release()
            if future.cancelled() or future.exception() is not None:
                return
            response = future.result()
            if response.status == Status.ESME_ROK:
                acked.add(response["message_id"])
            else:
                refused.append(response.status)

        while not client.eof.is_set() and not stop.is_set():
            await slots.acquire()
            client.send(submit_sm(f"4477009{len(acked) % 100000:05d}")).add_done_callback(
                answered)
        await client.eof.wait()
    finally:
        await client.close()


async def _verify(url: str, acked: set[str]) -> int:
    """Every acked id stored; balance = opening - sum(price); ledger sums to the balance."""
    store = open_store(url)
    await store.open()
    try:
        account = await store.get_account("flood")
        assert account is not None
        missing = [mid for mid in acked if await store.get_message(int(mid)) is None]
        assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
        count, charged = await _messages_of(url, account.id)
        assert count >= len(acked)
        assert account.balance == OPENING - charged
        ledger = await store.ledger(account.id, 10_000_000)
        assert sum(entry.amount for entry in ledger) == account.balance
        return count
    finally:
        await store.close()


async def _messages_of(url: str, account_id: int) -> tuple[int, int]:
    """(count, sum of price) of the account's stored messages, read with plain SQL."""
    query = "SELECT count(*), coalesce(sum(price), 0) FROM messages WHERE account_id = "
    if url.startswith("sqlite:"):
        import sqlite3
        path = sqlite_path(url)
        with contextlib.closing(sqlite3.connect(path)) as db:
            count, total = db.execute(query + "?", (account_id,)).fetchone()
    else:
        import asyncpg
        db = await asyncpg.connect(url)
        try:
            count, total = await db.fetchrow(query + "$1", account_id)
        finally:
            await db.close()
    return int(count), int(total)


async def test_kill_9_during_submission_loses_nothing_and_charges_once(store_url, tmp_path):
    store = open_store(store_url)
    await store.open()
    try:
        await store.migrate()
        await seed(store)
        account = await store.add_account(Account(
            system_id="flood", password_hash=password_hash(PASSWORD), created_at=time.time()))
        await store.adjust_balance(account.id, OPENING, "opening balance")
    finally:
        await store.close()
    log = tmp_path / "serve.log"

    proc, port = await start_serve(store_url, log)
    acked: set[str] = set()
    refused: list[int] = []
    stop = asyncio.Event()
    try:
        floods = [asyncio.create_task(_flood(port, acked, refused, stop))
                  for _ in range(CONNECTIONS)]
        deadline = time.monotonic() + 10
        while len(acked) < 3000 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            for task in floods:
                if task.done():
                    task.result()  # a client failure: raise it here
        os.kill(proc.pid, signal.SIGKILL)  # mid-flight: every window is full
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
        await asyncio.wait_for(asyncio.gather(*floods), 10)
    finally:
        stop.set()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert len(acked) >= 1000, f"only {len(acked)} acked before the kill:\n{log.read_text()}"
    assert not refused, f"refusals during the flood: {sorted(set(refused))}"
    stored = await _verify(store_url, acked)

    # Restart on the same database: it comes up, takes traffic, and still nothing is lost.
    proc, port = await start_serve(store_url, log)
    try:
        client = await RawClient.connect("127.0.0.1", port)
        try:
            assert (await client.bind("tx", "flood")).status == Status.ESME_ROK
            response = await client.submit()
            assert response.status == Status.ESME_ROK
            acked.add(response["message_id"])
        finally:
            await client.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0, log.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert await _verify(store_url, acked) == stored + 1


async def test_sigterm_unbinds_sessions_and_exits_cleanly(tmp_path):
    url = f"sqlite:///{tmp_path / 'term.db'}"
    store = open_store(url)
    await store.open()
    try:
        await store.migrate()
        await seed(store)
        await store.add_account(Account(system_id="term", password_hash=password_hash(PASSWORD),
                                        created_at=time.time()))
    finally:
        await store.close()
    log = tmp_path / "serve.log"
    proc, port = await start_serve(url, log)
    try:
        client = await RawClient.connect("127.0.0.1", port)
        assert (await client.bind("trx", "term")).status == Status.ESME_ROK
        proc.send_signal(signal.SIGTERM)
        unbind = await client.next_request(timeout=10)
        assert unbind.name == "unbind"
        client.respond(unbind)
        await client.wait_closed()
        assert await asyncio.wait_for(proc.wait(), 15) == 0, log.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
