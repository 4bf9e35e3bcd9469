"""Cluster benchmark: SMPP ingest through 1, 2 and 3 nodes on one PostgreSQL.

    .venv/bin/python bench/cluster.py [--nodes 1,2,3] [--binds 6] [--window 100]
                                      [--seconds 8] [--runs 3]
                                      [--database postgresql://postgres@127.0.0.1/]

For each node count, a fresh database (`smsgate_bench_cluster` on the given server,
dropped at the end) gets the bench account and the seeded simulator; N `smsgate serve
--node-id nK` processes start on it, and the load generator of bench/smpp_ingest.py
(`--binds` transmitters, each keeping `--window` submit_sm outstanding) spreads its
binds round-robin over the nodes. Every run is measured alone, one after another, on the
same machine, so the figure that means something is the ratio: N nodes' rate over the
1-node rate of the same invocation (the coordination overhead).

Printed per run: submit_sm/s, latency p50/p99, and where the CPU went during the load
(percent of one core for each node, for all PostgreSQL processes together, and for this
bench client), then per node count the median rate, its efficiency, and the CPU spent per
message in the nodes and in PostgreSQL; from those, what N nodes would do on machines of
their own (each node its own core, PostgreSQL its own): nodes give N x 1e6 / (node CPU-us
per message); PostgreSQL gives 1e6 / (its CPU-us per message) per core it has.
"""

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from serverproc import banner, cpu_seconds, percentile, prepare, run, start_server, stop_server
from smpp_ingest import run_load, submit_template

DATABASE = "smsgate_bench_cluster"


@dataclass
class Run:
    nodes: int
    rate: float
    p50: float
    p99: float
    node_cpu: list[float]  # CPU seconds of each node during the load
    postgres_cpu: float
    client_cpu: float
    seconds: float

    def line(self) -> str:
        share = " ".join(f"{c / self.seconds:4.0%}" for c in self.node_cpu)
        return (f"{self.nodes} node(s) {self.rate:>9,.0f} /s  p50 {self.p50:5.1f} ms  "
                f"p99 {self.p99:5.1f} ms   CPU: nodes [{share}]  postgres "
                f"{self.postgres_cpu / self.seconds:4.0%}  bench client "
                f"{self.client_cpu / self.seconds:4.0%}")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL process now (backends, WAL writer, checkpointer)."""
    seconds = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        if "(postgres)" in text:
            seconds[int(stat.parent.name)] = cpu_seconds(int(stat.parent.name))
    return seconds


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings; processes started meanwhile count from zero."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


async def fresh_database(server: str) -> str:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await conn.close()
    return urlsplit(server)._replace(path=f"/{DATABASE}").geturl()


async def drop_database(server: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    finally:
        await conn.close()


async def one_run(server: str, nodes: int, args: argparse.Namespace) -> Run:
    url = await fresh_database(server)
    await prepare(url, max_tx=args.binds)
    procs, ports = [], []
    try:
        for n in range(nodes):
            proc, port = await start_server(url, "SMPP", "--node-id", f"n{n + 1}")
            procs.append(proc)
            ports.append(port)
        if nodes == 1 or args.verbose:
            print(banner(procs[0], url, f"{args.binds} binds x window {args.window}"))
        await asyncio.sleep(3.0)  # heartbeats seen, upstream shares settled
        node_before = [cpu_seconds(p.pid) for p in procs]
        pg_before, client_before = postgres_cpu(), time.process_time()
        started = time.perf_counter()
        rate, latencies, errors = await run_load(ports, submit_template(), args.binds,
                                                 args.window, args.seconds)
        wall = time.perf_counter() - started  # warm-up and drain included, as the CPU
        if errors:
            print(f"  errors: {errors}")
        ms = [x * 1000 for x in latencies]
        return Run(nodes, rate, percentile(ms, 50), percentile(ms, 99),
                   [cpu_seconds(p.pid) - b for p, b in zip(procs, node_before, strict=True)],
                   spent(pg_before, postgres_cpu()), time.process_time() - client_before,
                   wall)
    finally:
        await asyncio.gather(*(stop_server(p) for p in procs))


def summary(runs: list[Run], base: float) -> str:
    rate = statistics.median(r.rate for r in runs)
    node_us = statistics.median(sum(r.node_cpu) / (r.rate * r.seconds) * 1e6 for r in runs)
    pg_us = statistics.median(r.postgres_cpu / (r.rate * r.seconds) * 1e6 for r in runs)
    nodes = runs[0].nodes
    return (f"{nodes} node(s): median {rate:>9,.0f} /s  efficiency {rate / base:.2f} of "
            f"1 node   CPU per message: nodes {node_us:.0f} us, postgres {pg_us:.0f} us   "
            f"on machines of their own: nodes ~{nodes * 1e6 / node_us:,.0f} /s, "
            f"postgres ~{1e6 / pg_us:,.0f} /s per core")


async def main_async(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.nodes.split(",")]
    results: dict[int, list[Run]] = {n: [] for n in counts}
    try:
        for number in range(args.runs):  # interleaved: a slow spell hits every count
            for nodes in counts:
                result = await one_run(args.database, nodes, args)
                results[nodes].append(result)
                print(f"run {number + 1}: {result.line()}", flush=True)
    finally:
        await drop_database(args.database)
    base = statistics.median(r.rate for r in results[counts[0]])
    print()
    for nodes in counts:
        print(summary(results[nodes], base))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1,2,3", help="node counts, first is the base")
    parser.add_argument("--binds", type=int, default=6, help="transmitters, over all nodes")
    parser.add_argument("--window", type=int, default=100, help="outstanding per session")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured submit time")
    parser.add_argument("--runs", type=int, default=3, help="runs per node count")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1/postgres",
                        help="a PostgreSQL server (its database is only used to connect)")
    parser.add_argument("--verbose", action="store_true", help="a banner for every run")
    run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
