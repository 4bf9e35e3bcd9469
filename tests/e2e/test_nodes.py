"""Nodes (SPEC §9) with real `smsgate serve` processes: SQLite is one node only (a
second serve on the file is refused; kill -9 frees it); on PostgreSQL several nodes
run, `smsgate nodes` lists them with their sessions, a killed one reads as dead within
~7 s, and one node id cannot run twice."""

import asyncio
import signal
import sys
import time

import pytest
from e2e_harness import ROOT, Gateway, cli, eventually
from smpp_harness import RawClient
from upstreams import Smpp34Smsc

from smsgate.smpp.constants import Status

CUSTOMER, PASSWORD = "cust", "cust-pw-1"


async def refused_serve(url: str, node_id: str) -> str:
    """Start a serve that must refuse to run: returns its last stderr line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgate.cli", "serve", "--database", url, "--smpp-port", "0",
        "--http-port", "0", "--admin-port", "0", "--node-id", node_id, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the second serve did not refuse to start") from None
    assert proc.returncode != 0
    assert b"listening on" not in out
    return err.decode().strip().splitlines()[-1]


async def nodes(url: str) -> dict[str, dict]:
    """`smsgate nodes` as {id: {state, address, sessions, binds}}."""
    found = {}
    for line in (await cli(url, ["nodes"])).splitlines()[1:]:
        words = line.split()
        found[words[0]] = {"state": words[1], "address": " ".join(words[2:5]),
                           "sessions": int(words[-3]), "binds": int(words[-2])}
    return found


async def test_sqlite_is_one_node(gateway_at) -> None:
    smsc = await Smpp34Smsc().start()
    solo = gateway_at("solo")
    assert "no nodes" in await solo.cli(["nodes"])
    await solo.cli(["connector", "add", "up", "--type", "smpp", "--host", "127.0.0.1",
                    "--port", str(smsc.port), "--system-id", "gwa", "--password", "pw"])
    try:
        await _one_node_on_sqlite(solo)
    finally:
        await smsc.stop()


async def _one_node_on_sqlite(solo: Gateway) -> None:
    await solo.start()
    line = await refused_serve(solo.url, "other")
    assert line.startswith("smsgate: error: another smsgate serve is running on"), line
    assert "SQLite is one node only" in line

    # the CLI still works beside the running serve
    await solo.cli(["account", "add", CUSTOMER, "--password", PASSWORD])
    async def bound_upstream():
        listed = await nodes(solo.url)
        return listed["solo"]["binds"] == 1 and listed
    listed = await eventually(bound_upstream, timeout=10, what="the upstream bind listed")
    assert listed["solo"]["state"] == "alive"
    assert listed["solo"]["address"] == f"127.0.0.1 smpp:{solo.smpp_port} http:{solo.http_port}"

    await solo.kill()  # kill -9: the OS lets the file's lock go with the process
    started = time.monotonic()
    await solo.start()
    assert time.monotonic() - started < 15
    await solo.terminate()  # right after its listening lines: a clean stop all the same
    assert solo.proc is not None and solo.proc.returncode == 0, solo.log.read_text()
    assert (await nodes(solo.url))["solo"]["state"] == "stopped"


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_nodes_on_postgres(gateway_at, store_url) -> None:
    await cli(store_url, ["migrate"],
              ["account", "add", CUSTOMER, "--password", PASSWORD, "--credits", "10"])
    a: Gateway = await gateway_at("node-a", store_url).start()
    b: Gateway = await gateway_at("node-b", store_url).start()
    client = await RawClient.connect("127.0.0.1", b.smpp_port)
    try:
        assert (await client.bind("trx", CUSTOMER, PASSWORD)).status == Status.ESME_ROK

        async def both_alive_with_one_session_on_b():
            listed = await nodes(store_url)
            return [listed.get(n, {}).get("state") for n in ("node-a", "node-b")] == \
                ["alive", "alive"] and listed["node-b"]["sessions"] == 1 and listed
        listed = await eventually(both_alive_with_one_session_on_b, timeout=10,
                                  what="both nodes alive, one session on node-b")
        assert listed["node-a"]["sessions"] == 0
        assert listed["node-a"]["address"] == f"127.0.0.1 smpp:{a.smpp_port} http:{a.http_port}"

        line = await refused_serve(store_url, "node-a")
        assert line.startswith("smsgate: error: node 'node-a' is already running"), line

        await a.kill()
        killed = time.monotonic()

        async def a_dead():
            return (await nodes(store_url))["node-a"]["state"] == "dead"
        await eventually(a_dead, timeout=9, interval=0.5, what="node-a listed dead")
        assert time.monotonic() - killed < 8
        assert (await nodes(store_url))["node-b"]["state"] == "alive"

        await a.start()  # its lock went with the killed process: the id is free again
        await b.terminate()
        listed = await nodes(store_url)
        assert (listed["node-a"]["state"], listed["node-b"]["state"]) == ("alive", "stopped")
    finally:
        await client.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_a_node_whose_id_is_taken_over_stops(gateway_at, store_url) -> None:
    """Its lock's connection cut (as by a network failure) and another process claiming
    the id meanwhile: the first learns it at its next heartbeat, stops, and says why."""
    first: Gateway = await gateway_at("node-x", store_url).start()
    assert first.proc is not None
    # Frozen meanwhile, so that it cannot take its lock back before the second claims
    # the id (it would, at its next heartbeat: the second would then be refused).
    first.proc.send_signal(signal.SIGSTOP)
    [[cut]] = await first.rows("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE application_name = 'smsgate node node-x'")
    assert cut == 1
    second: Gateway = await gateway_at("node-x", store_url).start()
    first.proc.send_signal(signal.SIGCONT)
    assert await asyncio.wait_for(first.proc.wait(), 10) != 0
    assert "was taken over by another process" in first.log.read_text()
    assert (await nodes(store_url))["node-x"]["state"] == "alive"
    await second.terminate()
