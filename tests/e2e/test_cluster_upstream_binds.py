"""An upstream's binds are the cluster's total (SPEC §9, issue 10 item 6): two nodes run
two of four binds each, and the survivor runs all four once the other is killed."""

import asyncio

from e2e_harness import eventually, start_sink

BINDS = 4


async def test_binds_are_shared_and_rebalanced(gateway_at, pg_url, processes):
    sink_port = await start_sink(processes)
    a, b = gateway_at("a", pg_url), gateway_at("b", pg_url)
    await a.cli(["migrate"],
                ["connector", "add", "up", "--type", "smpp", "--host", "127.0.0.1",
                 "--port", str(sink_port), "--system-id", "gw", "--password", "pw",
                 "--binds", str(BINDS)])
    await asyncio.gather(a.start(), b.start())

    async def binds() -> dict[str, int]:
        return dict(await a.rows("SELECT id, upstream_binds FROM nodes WHERE id IN ('a', 'b')"
                                 " AND stopped_at IS NULL"))
    await eventually(lambda: _equal(binds(), {"a": 2, "b": 2}), timeout=20,
                     what="two binds on each node")
    await a.kill()
    await eventually(lambda: _at_least(binds(), "b", BINDS), timeout=20,
                     what="all four binds on the survivor")
    await b.terminate()


async def _equal(found, expected) -> bool:
    return await found == expected


async def _at_least(found, node: str, count: int) -> bool:
    return (await found).get(node, 0) >= count
