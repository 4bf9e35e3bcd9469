"""Takeover (SPEC §9, issue 10): node A accepts messages while the upstream is down,
one of them scheduled, and is killed with -9; node B takes them over within seconds
and sends each exactly once when the upstream is back, the scheduled one at its time.
"""

import asyncio
import time
from collections import Counter

from e2e_harness import eventually, recorded, reserve_port, start_sink
from smpp_harness import RawClient

from smsgate.smpp.constants import Status

CUSTOMER, PASSWORD = "owned", "owned-pw-1"
COUNT, SCHEDULED_IN = 20, 12  # messages; seconds until the scheduled one is due


async def test_a_dead_nodes_messages_are_sent_once_by_another(gateway_at, pg_url,
                                                               tmp_path, processes):
    held = reserve_port()  # the upstream's port: down until A is dead
    port = held.getsockname()[1]
    a, b = gateway_at("a", pg_url), gateway_at("b", pg_url)
    await a.cli(["migrate"],
                ["account", "add", CUSTOMER, "--password", PASSWORD, "--credits", "100"],
                ["connector", "add", "up", "--type", "smpp", "--host", "127.0.0.1",
                 "--port", str(port), "--system-id", "gw", "--password", "pw"],
                ["route", "add", "4477", "up", "--price", "1"])
    await asyncio.gather(a.start(), b.start())
    tx = await RawClient.connect("127.0.0.1", a.smpp_port)
    assert (await tx.bind("tx", CUSTOMER, PASSWORD)).status == Status.ESME_ROK
    texts = [b"owned %02d" % n for n in range(COUNT)]
    for n, text in enumerate(texts):
        assert (await tx.submit(f"4477009{n:05d}", text)).status == Status.ESME_ROK
    due = time.time() + SCHEDULED_IN
    later = f"0000000000{SCHEDULED_IN:02d}000R"  # relative: SCHEDULED_IN s from now
    answer = await tx.submit("447700999999", b"owned later", schedule_delivery_time=later)
    assert answer.status == Status.ESME_ROK
    await tx.close()

    await a.kill()
    record = tmp_path / "sink.txt"
    await start_sink(processes, "--record", str(record), reserved=held)
    held.close()  # the sink listens on the port now

    def at_sink() -> Counter[bytes]:
        return recorded(record)
    await eventually(lambda: set(texts) <= set(at_sink()), timeout=60,
                     what="A's messages sent by B")
    await eventually(lambda: b"owned later" in at_sink(), timeout=30,
                     what="the scheduled message sent by B")
    assert time.time() >= due - 0.5  # not before its time
    await asyncio.sleep(1.0)
    counts = at_sink()
    assert all(counts[text] == 1 for text in (*texts, b"owned later")), counts
    [(owner, total)] = await b.rows("SELECT min(node), count(*) FROM messages")
    assert (owner, total) == ("b", COUNT + 1)
    await b.terminate()
