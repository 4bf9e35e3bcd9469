"""A node that stalls without dying (SIGSTOP: a long GC pause, a frozen VM) is taken for
dead after 5 s and its unsent messages are taken over by another node, which sends them.
When the stalled node wakes, its dispatcher still holds them: the lease
(cluster/nodes.py) keeps it from sending them again, and it reclaims from the store only
what is still its own. Each message reaches the upstream once.
"""

import asyncio
import signal
from collections import Counter

from e2e_harness import eventually, recorded, reserve_port, start_sink
from smpp_harness import RawClient

from smsgate.smpp.constants import Status

CUSTOMER, PASSWORD = "stalled", "stalled-pw-1"
COUNT = 20


async def test_a_stalled_node_does_not_send_what_was_taken_over(gateway_at, pg_url,
                                                                 tmp_path, processes):
    held = reserve_port()  # the upstream's port: down until B has taken A's messages over
    port = held.getsockname()[1]
    a, b = gateway_at("a", pg_url), gateway_at("b", pg_url)
    await a.cli(["migrate"],
                ["account", "add", CUSTOMER, "--password", PASSWORD, "--credits", "100"],
                ["connector", "add", "up", "--type", "smpp", "--host", "127.0.0.1",
                 "--port", str(port), "--system-id", "gw", "--password", "pw",
                 "--binds", "2"],  # one per node while both live
                ["route", "add", "4477", "up", "--price", "1"])
    await asyncio.gather(a.start(), b.start())
    tx = await RawClient.connect("127.0.0.1", a.smpp_port)
    assert (await tx.bind("tx", CUSTOMER, PASSWORD)).status == Status.ESME_ROK
    texts = [b"stalled %02d" % n for n in range(COUNT)]
    for n, text in enumerate(texts):
        assert (await tx.submit(f"4477009{n:05d}", text)).status == Status.ESME_ROK
    await tx.close()

    a.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        async def taken_by_b() -> bool:
            [(owned,)] = await b.rows("SELECT count(*) FROM messages WHERE node = 'b'")
            return owned == COUNT
        await eventually(taken_by_b, timeout=20, what="A's messages taken over by B")
        record = tmp_path / "sink.txt"
        await start_sink(processes, "--record", str(record), reserved=held)
        held.close()  # the sink listens on the port now

        def at_sink() -> Counter[bytes]:
            return recorded(record)
        await eventually(lambda: set(texts) <= set(at_sink()), timeout=30,
                         what="A's messages sent by B")
    finally:
        a.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]

    async def a_bound_upstream() -> bool:
        [(binds,)] = await b.rows("SELECT upstream_binds FROM nodes WHERE id = 'a'")
        return binds >= 1
    await eventually(a_bound_upstream, timeout=30, what="A awake and bound to the upstream")
    await asyncio.sleep(2.0)  # time enough for A to send what it held, were it to
    counts = at_sink()
    assert all(counts[text] == 1 for text in texts), counts
    await asyncio.gather(a.terminate(), b.terminate())
