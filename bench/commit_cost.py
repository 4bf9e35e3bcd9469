"""The SQLite group commit alone: CPU and wall time of one `SqliteStore.write` of the
peak's shape (new messages, and the DELIVRD statuses of the batch before, sent marks
folded in), on a real store, with nothing else running and then beside busy
neighbours in the same process: a pure-Python thread, and an asyncio loop doing
socket round trips (what the event loop of `serve` is to the store thread).

    .venv/bin/python bench/commit_cost.py [--messages 200] [--commits 240] [--runs 3]

Prints the median per commit, and per message. `bench/smpp_ingest.py` prints the store
thread's CPU a response in the server ("by thread"): the distance between the two is
what the server's surroundings add (docs/performance.md, issue 12's seventh pass).
"""

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import tempfile
import threading
import time

import uvloop

from smsgate.core.models import Account, Message, StatusUpdate, WriteBatch
from smsgate.store.sqlite import SqliteStore
from smsgate.store.sqlite_write import write

TEXT = b"Your code is 123456. It expires in ten minutes."


def batches(account_id: int, size: int, commits: int) -> list[WriteBatch]:
    """`commits` batches of `size` new messages, each with the statuses of the messages
    of the batch before (as the simulator's answers arrive a commit later)."""
    now = time.time()
    out, previous = [], []
    for c in range(commits):
        messages = [Message(c * size + n + 1, account_id, "Bench", f"4917{c * size + n:08d}",
                            TEXT, price=1, connector="sim", created_at=now,
                            expires_at=now + 3600) for n in range(size)]
        statuses = [StatusUpdate(m.id, "DELIVRD", now, upstream_id=f"sim-{m.id}",
                                 sent_at=now, connector="sim") for m in previous]
        out.append(WriteBatch(new_messages=messages, statuses=statuses))
        previous = messages
    return out


def spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(200))


async def ping_pong(stop: asyncio.Event) -> None:
    """Socket round trips and a little Python between them, yielding each time."""
    a, b = socket.socketpair()
    loop = asyncio.get_running_loop()
    _reader, writer = await asyncio.open_connection(sock=a)
    b.setblocking(False)
    while not stop.is_set():
        writer.write(b"x" * 200)
        await loop.sock_recv(b, 4096)
        {i: str(i) for i in range(50)}
        await asyncio.sleep(0)
    writer.close()
    b.close()


async def one_run(size: int, commits: int, beside: str) -> tuple[float, float]:
    """Median CPU (the store thread's) and wall seconds of a commit."""
    store = SqliteStore(os.path.join(tempfile.mkdtemp(), "bench.db"))
    await store.open()
    await store.migrate()
    account = await store.add_account(Account("bench", "x", balance=10**15))
    work = batches(account.id, size, commits)
    stop_thread, stop_loop = threading.Event(), asyncio.Event()
    neighbour: threading.Thread | asyncio.Future | None = None
    if beside == "thread":
        neighbour = threading.Thread(target=spin, args=(stop_thread,))
        neighbour.start()
    elif beside == "loop":
        neighbour = asyncio.ensure_future(ping_pong(stop_loop))
    cpu, wall = [], []

    def timed(c: sqlite3.Connection, batch: WriteBatch) -> None:
        """What the store's write runs in its thread, timed there."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        c.execute("BEGIN IMMEDIATE")
        write(c, batch)
        c.execute("COMMIT")
        cpu.append(time.thread_time() - cpu_started)
        wall.append(time.perf_counter() - started)

    for batch in work:
        await store._run(timed, batch)
    stop_thread.set()
    stop_loop.set()
    if isinstance(neighbour, threading.Thread):
        neighbour.join()
    elif neighbour is not None:
        await neighbour
    await store.close()
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="new messages a commit")
    parser.add_argument("--commits", type=int, default=240)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"commits of {args.messages} new messages and {args.messages} statuses, "
          f"{args.commits} a run, uvloop; medians of a commit (store thread's CPU / wall)")
    for beside in ("nothing", "thread", "loop"):
        results = [uvloop.run(one_run(args.messages, args.commits, beside))
                   for _ in range(args.runs)]
        cpu = statistics.median(r[0] for r in results) * 1e3
        wall = statistics.median(r[1] for r in results) * 1e3
        runs = " / ".join(f"{r[0] * 1e3:.2f}" for r in results)
        print(f"beside {beside:8s} CPU {cpu:5.2f} ms (runs {runs}), wall {wall:5.2f} ms; "
              f"{cpu * 1e3 / args.messages:5.1f} µs CPU a message")


if __name__ == "__main__":
    main()
