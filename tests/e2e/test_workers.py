"""`serve --workers N` (cluster/workers.py): N processes sharing the ports, each the
cluster node NAME-1..N. Over real sockets: one set of `… listening on …` lines, both
workers take connections and are nodes, a killed worker is started again, SIGTERM stops
them all; SQLite refuses workers (one node only)."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
from e2e_harness import ROOT, eventually, ids_of, rows
from smpp_harness import RawClient, submit_sm

from smsgate.smpp.constants import CommandId, Status
from smsgate.store.migrations import ADVISORY_LOCK_KEY

CUSTOMER, PASSWORD = "cust", "cust-pw-1"


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


async def submit_on_a_new_connection(port: int, number: int) -> str:
    """One GET submit on a connection of its own (the kernel picks the worker)."""
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/websmpp/websms",
            params={"user": CUSTOMER, "pass": PASSWORD, "sid": "Test",
                    "mno": str(447700900000 + number), "type": "1", "text": "hi"}) as answer:
        [message_id] = ids_of(await answer.text())
        return message_id


async def test_workers_share_the_ports_and_are_restarted(gateway_at, pg_url):
    gateway = gateway_at("w", pg_url, "--workers", "2")
    await gateway.cli(["migrate"], ["account", "add", CUSTOMER, "--password", PASSWORD,
                                    "--credits", "1000", "--max-tx", "4"])
    await gateway.start()  # the supervisor's lines: one SMPP, HTTP and Admin port
    workers = children(gateway.proc.pid)
    assert len(workers) == 2

    async def both_alive() -> bool:
        return {node for (node,) in await gateway.rows(
            "SELECT id FROM nodes WHERE stopped_at IS NULL AND "
            "extract(epoch from clock_timestamp()) - heartbeat_at < 3")} == {"w-1", "w-2"}

    await eventually(both_alive, timeout=20, what="both workers heartbeating as nodes")

    # New connections land on either worker; both store and answer.
    number = 0
    while len(await _nodes_of_messages(gateway)) < 2:
        number += 1
        assert number <= 200, "every connection went to one worker"
        await submit_on_a_new_connection(gateway.http_port, number)

    # /metrics says which worker answered.
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{gateway.http_port}/metrics") as answer:
        text = await answer.text()
    assert 'smsgate_node_info{node="w-1"} 1.0' in text \
        or 'smsgate_node_info{node="w-2"} 1.0' in text

    # SMPP on the shared port: a bind and a submit_sm answered by whichever took it.
    client = await RawClient.connect("127.0.0.1", gateway.smpp_port)
    assert (await client.bind("trx", CUSTOMER, PASSWORD)).status == Status.ESME_ROK
    answer = await client.request(submit_sm("447700900999", b"over smpp"), timeout=10)
    assert answer.command_id == CommandId.submit_sm_resp and answer.status == Status.ESME_ROK
    await client.close()

    # kill -9 one worker: the supervisor starts it again, its node comes back.
    victim = sorted(workers)[0]
    os.kill(victim, signal.SIGKILL)
    assert await eventually(lambda: len(children(gateway.proc.pid) - workers) == 1,
                            timeout=30, what="the killed worker started again")
    await eventually(both_alive, timeout=30, what="both nodes heartbeating again")
    await submit_on_a_new_connection(gateway.http_port, 999)

    survivors = children(gateway.proc.pid)
    await gateway.terminate()  # every worker unbinds and stops; the supervisor exits 0
    assert gateway.proc.returncode == 0, gateway.log.read_text()[-3000:]
    assert not any(Path(f"/proc/{pid}").exists() for pid in survivors)
    rows = await gateway.rows("SELECT id, run_id, stopped_at, heartbeat_at FROM nodes")
    assert all(stopped is not None for _, _, stopped, _ in rows), rows


async def _nodes_of_messages(gateway) -> set[str]:
    return {node for (node,) in await gateway.rows("SELECT DISTINCT node FROM messages")}


async def test_sqlite_refuses_workers(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgate.cli", "serve", "--database",
        f"sqlite:///{tmp_path}/one.db", "--workers", "2", "--smpp-port", "0",
        "--http-port", "0", "--admin-port", "0", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"listening on" not in out
    assert err.decode().strip() == \
        "smsgate: error: --workers needs PostgreSQL: SQLite is one node only (SPEC §9)"


async def test_a_stop_while_the_workers_start_stops_them_cleanly(pg_url, processes):
    """SIGTERM before the workers listen: each still stops cleanly (a stop waits until
    serve handles it), none is left running, and no node row is left alive. The test
    holds the lock that serializes migrate, so the workers cannot listen before the stop
    (on a fast machine they otherwise did, and the supervisor rightly announced them)."""
    import asyncpg
    holder = await asyncpg.connect(pg_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        proc = processes.add(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgate.cli", "serve", "--database", pg_url,
            "--workers", "2", "--node-id", "early", "--smpp-port", "0", "--http-port",
            "0", "--admin-port", "0", cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE))
        workers = await eventually(lambda: len(children(proc.pid)) == 2 and children(proc.pid),
                                   timeout=30, interval=0.01, what="the workers forked")
        await eventually(lambda: _waiting_for_migrate(holder), timeout=30,
                         what="both workers waiting to migrate")
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)  # the supervisor handles it before the workers go on
    finally:
        await holder.close()  # releases the lock
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert b"listening on" not in out
    assert b"stopped while the workers were starting" in err, err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    alive = await rows(pg_url, "SELECT id FROM nodes WHERE stopped_at IS NULL")
    assert alive == [], alive


async def _waiting_for_migrate(conn) -> bool:
    return await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") == 2
