"""The simulator's status path, alone: event-loop CPU a message from dispatch to its
status written (sent mark held, outcome, held status released, group commit), on a real
SQLite store. The writer thread's CPU is not counted.

    .venv/bin/python bench/status_path.py --messages 40000 --runs 3
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import uvloop

from smsgate.connectors.simulator import SimulatorConnector
from smsgate.core.dispatcher import Dispatcher
from smsgate.core.models import Account, Message, WriteBatch
from smsgate.store.sqlite import SqliteStore
from smsgate.store.writer import BatchWriter

BATCH = 200  # messages dispatched a loop turn, as a group commit's worth at the peak


async def one_run(count: int) -> float:
    """Loop CPU seconds a message."""
    store = SqliteStore(os.path.join(tempfile.mkdtemp(), "bench.db"))
    await store.open()
    await store.migrate()
    account = await store.add_account(Account("bench", "x", balance=10**15))
    writer = BatchWriter(store)
    writer.start()
    dispatcher = Dispatcher(writer, store=store)
    dispatcher.book.status_hold = 0.05  # released soon after the outcome: a short run
    await dispatcher.add_connector(SimulatorConnector(
        "sim", {"min_latency_ms": 1, "max_latency_ms": 20}, seed=1))
    now = time.time()
    messages = [Message(n + 1, account.id, "Bench", f"4917{n:08d}", b"hi", price=1,
                        connector="sim", created_at=now, expires_at=now + 3600)
                for n in range(count)]
    for n in range(0, count, 5000):
        await store.write(WriteBatch(new_messages=messages[n:n + 5000]))
    started = time.thread_time()
    for n in range(0, count, BATCH):
        for message in messages[n:n + BATCH]:
            dispatcher.dispatch(message)
        await asyncio.sleep(0.004)
    while dispatcher.book.unstored():
        await asyncio.sleep(0.01)
    await writer.flush()
    cpu = time.thread_time() - started
    last = await store.get_message(count)
    assert last is not None and last.status == "DELIVRD", last
    await dispatcher.stop()
    await writer.close()
    await store.close()
    return cpu / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = []
    for run in range(args.runs):
        results.append(uvloop.run(one_run(args.messages)))
        print(f"run {run + 1}: loop CPU {1e6 * results[-1]:6.2f} us a message")
    print(f"median of {args.runs}: loop CPU {1e6 * statistics.median(results):6.2f} us a message")


if __name__ == "__main__":
    main()
