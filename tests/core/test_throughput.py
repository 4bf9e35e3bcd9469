"""core/throughput.py on a real store: the sum of the live nodes' heartbeat rates,
sampled only while someone asks, and the window a caller asks for."""

import asyncio

from smsgate.core.models import NodeFigures
from smsgate.core.throughput import Throughput


def rates(accepted: float, delivered: float, failed: float) -> NodeFigures:
    return NodeFigures(messages_per_second=accepted, delivered_per_second=delivered,
                       failed_per_second=failed)


async def test_live_nodes_are_summed_and_stopped_ones_left_out(store):
    for node in ("a", "b", "c"):
        await store.claim_node(node, "run")
    await store.node_heartbeat("a", "run", "", rates(10.5, 8, 1))
    await store.node_heartbeat("b", "run", "", rates(4, 2, 0.5))
    await store.node_heartbeat("c", "run", "", rates(100, 100, 100))
    await store.stop_node("c", "run")  # a stopped node reports nothing
    throughput = Throughput(store, interval=60)
    try:
        [sample] = await throughput.series(60)  # sampled at once, not a second later
        assert (sample.accepted, sample.delivered, sample.failed, sample.nodes) == \
            (14.5, 10, 1.5, 2)
    finally:
        await throughput.stop()


async def test_it_samples_while_asked_and_stops_when_nobody_asks(store):
    await store.claim_node("a", "run")
    throughput = Throughput(store, interval=0.05, idle=0.3)
    try:
        await throughput.series(60)
        await asyncio.sleep(0.2)
        assert throughput.sampling
        samples = await throughput.series(60)
        assert 3 <= len(samples) <= 8  # one now, then about one per interval
        assert [s.at for s in samples] == sorted(s.at for s in samples)
        assert len(await throughput.series(0.03)) <= 1  # the window asked for only
        await asyncio.sleep(0.6)  # nobody asked for 0.3 s: it stopped
        assert not throughput.sampling
        assert len(await throughput.series(60)) <= len(samples) + 8
        assert throughput.sampling  # asked again: sampling again
    finally:
        await throughput.stop()


async def test_a_quiet_node_counts_as_zero(store):
    await store.claim_node("a", "run")
    throughput = Throughput(store, interval=60)
    try:
        [sample] = await throughput.series(5)
        assert (sample.accepted, sample.delivered, sample.failed, sample.nodes) == \
            (0, 0, 0, 1)
    finally:
        await throughput.stop()
