"""SIGTERM drain of a node under load (SPEC §9, issue 10 "Must show"): the draining node
stops accepting, ends each customer session with an unbind, hands its unsent work to
the other node and exits; every acknowledged message reaches the upstream exactly once
(a drain is graceful: nothing is resent) and is charged once.
"""

import asyncio
from collections import Counter

from e2e_harness import FLOOD_CUSTOMER, FLOOD_PASSWORD, Flood, eventually, recorded, start_sink

CREDITS, PRICE_UNITS = 1_000_000, 10  # the route's 0.001 credit, in 1/10,000 units
SESSIONS = 2  # customer transmitters per node


async def test_sigterm_drain_of_one_node_under_load(gateway_at, pg_url, tmp_path, processes):
    record = tmp_path / "sink.txt"
    sink_port = await start_sink(processes, "--record", str(record))
    nodes = {name: gateway_at(name, pg_url) for name in ("a", "b")}
    await nodes["a"].cli(
        ["migrate"],
        ["account", "add", FLOOD_CUSTOMER, "--password", FLOOD_PASSWORD, "--credits",
         str(CREDITS), "--max-tx", str(2 * SESSIONS)],
        ["connector", "add", "sink", "--type", "smpp", "--host", "127.0.0.1", "--port",
         str(sink_port), "--system-id", "gw", "--password", "pw", "--binds", "2",
         "--window", "10"],
        ["route", "add", "4477", "sink", "--price", "0.001"])
    await asyncio.gather(*(node.start() for node in nodes.values()))

    def at_sink() -> Counter[bytes]:
        return recorded(record)

    floods = {name: Flood(sessions=SESSIONS, prefix=name.encode()) for name in nodes}
    flooding = {name: asyncio.ensure_future(floods[name].run(node.smpp_port))
                for name, node in nodes.items()}
    await eventually(lambda: len(at_sink()) > 300, timeout=30, what="traffic at the sink")
    await asyncio.sleep(1.0)
    await nodes["b"].terminate()  # exits 0 within 20 s, or the test fails
    assert nodes["b"].proc.returncode == 0, nodes["b"].log.read_text()[-3000:]
    await asyncio.wait_for(flooding["b"], 10)  # its customers were let go...
    assert floods["b"].unbinds == SESSIONS  # ...each with an unbind
    await asyncio.sleep(1.0)  # A goes on taking traffic meanwhile
    floods["a"].stop()
    await asyncio.wait_for(flooding["a"], 30)
    assert all(not flood.refused for flood in floods.values()), [f.refused for f in floods.values()]
    acked = {text for flood in floods.values() for text in flood.acked.values()}
    assert any(text.startswith(b"b") for text in acked)

    await eventually(lambda: acked <= set(at_sink()), timeout=60,
                     what=f"all {len(acked)} acknowledged messages at the sink")
    a = nodes["a"]
    [(stored, balance)] = await a.rows(
        "SELECT (SELECT count(*) FROM messages), balance FROM accounts "
        f"WHERE system_id = '{FLOOD_CUSTOMER}'")
    assert stored == len(acked)  # a drain acknowledges all it stored
    assert balance == CREDITS * 10_000 - stored * PRICE_UNITS  # each charged once
    await asyncio.sleep(1.0)  # anything sent twice would have arrived
    counts = at_sink()
    assert len(counts) == stored and max(counts.values()) == 1, \
        {text: n for text, n in counts.items() if n > 1}
    [(stopped,)] = await a.rows("SELECT stopped_at IS NOT NULL FROM nodes WHERE id = 'b'")
    assert stopped  # B said it left: A took over at once, without waiting 5 s
    await a.terminate()
