"""SMPP ingest benchmark: submit_sm/s and latency of a real `smsgate serve`.

    .venv/bin/python bench/smpp_ingest.py [--binds 4] [--window 100] [--seconds 10]
        [--database postgresql://user@host/db] [--ceiling] [--runs 3] [--receipts]

The server runs as a subprocess (`python -m smsgate.cli serve`, uvloop, dispatcher and
simulator running) on an ephemeral port, by default on a fresh SQLite file (the store
sets synchronous=NORMAL). An account with plenty of credits and no throughput limit is
created first. Then `--binds` transmitter sessions each keep `--window` submit_sm
outstanding (registered_delivery 0) for `--seconds`, after a one-second warm-up. The
clients speak raw SMPP (pre-encoded PDUs, header-only parsing of the responses) in this
process, on its own core, so that the figures measure the server rather than the client.

Printed: submit_sm/s, latency p50/p99/max (ms, from write to response), the server's
RSS at start and end and its CPU time, and a do-nothing baseline: enquire_link round trips
at the same concurrency on the same server (the ceiling the protocol layer allows).

`--ceiling` runs the same load first against `../shared/bench/ceiling_smpp.py` (a lean
SMPP server that stores each submit_sm durably with a group commit: the limit for a
durable Python process on this machine; SQLite, or PostgreSQL COPY into a table `mt` of
`--database`) and prints smsgate's ratio to it. `--runs N` alternates N rounds and
prints the medians. `--receipts` sends registered_delivery 1 and binds a receiver of
the same account that answers and counts the receipts (receipts/s over the same seconds).

`--preload N` stores N delivered messages of the last day before the server starts
(then VACUUM ANALYZE on PostgreSQL; flat with size: compare with a run on an empty
store). `--rate R` caps the submits at R a second (a soak at a fraction of the peak,
with `--every`). `--workers N` starts
`serve --workers N` (PostgreSQL): CPU and RSS are then the supervisor's and its workers'.
`--burst` has each bind send its whole window in one write once every answer of the
last is in: the server then reads ~window PDUs at a time whatever the rate, which makes
its CPU a response a steady yardstick for work done per read or per batch.

`--purge-rows N` stores N final messages 200 days old first, and has the server's
background retention (retention_days 100) start its pass one second into the submit
load: the figures then show what a purge of that size costs live traffic. With
`--purge-cli`, `smsgate purge --older-than 100` runs instead, as another process.
"""

import argparse
import asyncio
import math
import socket
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from serverproc import (
    PASSWORD,
    SYSTEM_ID,
    banner,
    cpu_seconds,
    metrics,
    open_files,
    percentile,
    prepare,
    rss_mib,
    run,
    start_server_ports,
    stop_server,
    thread_cpu,
)

from smsgate.smpp.codec import Codec
from smsgate.smpp.constants import CommandId, Status
from smsgate.smpp.pdu import Pdu
from smsgate.store import sqlite_path

_HEADER = struct.Struct(">IIII")
CEILING = Path(__file__).resolve().parents[2] / "shared" / "bench" / "ceiling_smpp.py"


def bind_pdu(command_id: int) -> bytes:
    """The bench account's bind (sequence 1) of the kind `command_id` says."""
    return Codec(field_limits={"password": 65}).encode(Pdu(
        command_id, 1, 0,
        {"system_id": SYSTEM_ID, "password": PASSWORD, "interface_version": 0x34}))


class Client(asyncio.Protocol):
    """One bound transmitter keeping `window` copies of one request outstanding."""

    def __init__(self, template: bytes, window: int, pace: float = 0.0,
                 burst: bool = False) -> None:
        self.template = bytearray(template)
        self.window = window
        self.pace = pace  # submits a second at most (0: as fast as answers come)
        self.burst = burst  # refill only an empty window, in one write
        self.allowance, self.paced_at = 0.0, time.perf_counter()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent_at: dict[int, float] = {}
        self.sequence = 1
        self.running = False
        self.recording = False
        self.ok = 0
        self.acked = 0  # every ESME_ROK, warm-up included (the soak's loss check)
        self.errors: dict[int, int] = {}
        self.latencies: list[float] = []
        self.bound = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(bind_pdu(CommandId.bind_transmitter))

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.bound.done():
            self.bound.set_exception(ConnectionError("closed before bind"))

    def fill(self) -> None:
        """Top the window up, in one socket write."""
        missing = self.window - len(self.sent_at)
        if missing <= 0 or not self.running or (self.burst and self.sent_at):
            return
        now = time.perf_counter()
        if self.pace:
            self.allowance = min(self.window, self.allowance + (now - self.paced_at) * self.pace)
            self.paced_at = now
            missing = min(missing, int(self.allowance))
            if missing <= 0:
                return
            self.allowance -= missing
        out = bytearray()
        template = self.template
        for _ in range(missing):
            self.sequence += 1
            struct.pack_into(">I", template, 12, self.sequence)
            out += template
            self.sent_at[self.sequence] = now
        assert self.transport is not None
        self.transport.write(out)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end = 0, len(buf)
        now = time.perf_counter()
        while end - pos >= 16:
            length, command_id, status, sequence = _HEADER.unpack_from(buf, pos)
            if end - pos < length:
                break
            pos += length
            if command_id == CommandId.bind_transmitter_resp:
                if status:
                    self.bound.set_exception(RuntimeError(f"bind refused: 0x{status:x}"))
                else:
                    self.bound.set_result(None)
                continue
            sent = self.sent_at.pop(sequence, None)
            if sent is not None and status == Status.ESME_ROK:
                self.acked += 1
            if sent is None or not self.recording:
                continue
            if status == Status.ESME_ROK:
                self.ok += 1
                self.latencies.append(now - sent)
            else:
                self.errors[status] = self.errors.get(status, 0) + 1
        del buf[:pos]
        self.fill()


class Receiver(asyncio.Protocol):
    """The account's Rx session: answers every deliver_sm, counts them while recording."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.recording = False
        self.counted = 0
        self.bound = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(cls, port: int) -> "Receiver":
        """A receiver bound on `port`."""
        _transport, receiver = await asyncio.get_running_loop().create_connection(
            cls, "127.0.0.1", port)
        await receiver.bound
        return receiver

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(bind_pdu(CommandId.bind_receiver))

    def connection_lost(self, exc) -> None:
        if not self.bound.done():
            self.bound.set_exception(ConnectionError("closed before bind"))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end, answers = 0, len(buf), bytearray()
        while end - pos >= 16:
            length, command_id, status, sequence = _HEADER.unpack_from(buf, pos)
            if end - pos < length:
                break
            pos += length
            if command_id == CommandId.deliver_sm:
                self.counted += self.recording
                answers += _HEADER.pack(17, CommandId.deliver_sm_resp, 0, sequence) + b"\0"
            elif command_id == CommandId.enquire_link:
                answers += _HEADER.pack(16, CommandId.enquire_link_resp, 0, sequence)
            elif command_id == CommandId.bind_receiver_resp and not self.bound.done():
                if status:
                    self.bound.set_exception(RuntimeError(f"bind refused: 0x{status:x}"))
                else:
                    self.bound.set_result(self)
        del buf[:pos]
        if answers and self.transport is not None:
            self.transport.write(answers)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def submit_template(registered_delivery: int = 0) -> bytes:
    """The submit_sm every bench client sends (its sequence rewritten each time)."""
    return Codec().encode(Pdu(CommandId.submit_sm, 0, 0, {
        "source_addr_ton": 5, "source_addr": "Bench", "dest_addr_ton": 1,
        "dest_addr_npi": 1, "destination_addr": "447700900123",
        "registered_delivery": registered_delivery,
        "short_message": b"The quick brown fox jumps over the lazy dog 0123456789"}))


async def run_load(port: int | list[int], template: bytes, binds: int, window: int,
                   seconds: float, warmup: float = 1.0, progress: "Progress | None" = None,
                   receiver: Receiver | None = None, rate: float = 0.0,
                   burst: bool = False) -> tuple[float, list[float], dict]:
    """The load on one server, or spread round-robin over several (bench/cluster.py);
    `receiver` counts receipts over the same measured seconds; `rate` caps the submits
    a second (all binds together; 0: as fast as the server answers); `burst` sends each
    window whole once it is empty."""
    loop = asyncio.get_running_loop()
    ports = port if isinstance(port, list) else [port]
    clients = []
    for n in range(binds):
        _transport, client = await loop.create_connection(
            lambda: Client(template, window, rate / binds, burst), "127.0.0.1",
            ports[n % len(ports)])
        clients.append(client)
    await asyncio.gather(*(c.bound for c in clients))
    for client in clients:
        client.running = True
        client.fill()
    pacing = asyncio.ensure_future(_pace(clients)) if rate else None
    await asyncio.sleep(warmup)
    for client in (*clients, *([receiver] if receiver else [])):
        client.recording = True
    started = time.perf_counter()
    if progress is None:
        await asyncio.sleep(seconds)
    else:
        await report_progress(clients, started, seconds, progress)
    for client in clients:
        client.recording = client.running = False
    if pacing is not None:
        pacing.cancel()
    if receiver is not None:
        receiver.recording = False
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.5)  # let the outstanding ones come back
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    latencies = [x for c in clients for x in c.latencies]
    errors: dict[int, int] = {}
    for client in clients:
        for status, count in client.errors.items():
            errors[status] = errors.get(status, 0) + count
    acked = sum(c.acked for c in clients)
    if progress is not None:
        progress.acked = acked
    return sum(c.ok for c in clients) / elapsed, latencies, errors


async def _pace(clients: list[Client]) -> None:
    """Paced clients send as their allowance grows, not only when answers come."""
    while True:
        await asyncio.sleep(0.005)
        for client in clients:
            client.fill()


@dataclass
class Progress:
    """A line every `every` seconds on a long run: the rate and tail of that interval,
    the server's memory and open files, its group commits (from the
    `smsgate_store_commit_seconds` histogram: how many, their mean, how many took over
    25 and 100 ms, and the bucket of the slowest: a tail in the store or not), and
    (SQLite) the sizes of its database and WAL files (bloat: the database should grow
    with the rows stored, no faster)."""

    every: float
    pid: int
    wal: Path | None
    http_port: int  # its /metrics: the group commits' times
    acked: int = 0  # set at the end: every submit_sm answered ESME_ROK


async def report_progress(clients: list[Client], started: float, seconds: float,
                          progress: Progress) -> None:
    seen = [0] * len(clients)
    commits = await metrics(progress.http_port, "smsgate_store_commit_seconds")
    elapsed = 0.0
    while elapsed < seconds:
        step = min(progress.every, seconds - elapsed)
        await asyncio.sleep(step)
        elapsed = time.perf_counter() - started
        recent = [x * 1000 for n, c in enumerate(clients) for x in c.latencies[seen[n]:]]
        seen = [len(c.latencies) for c in clients]
        line = (f"  {elapsed:6.0f} s  {len(recent) / step:>9,.0f} /s  p99 "
                f"{percentile(recent, 99):6.1f} ms  RSS {rss_mib(progress.pid):5.0f} MiB  "
                f"fds {open_files(progress.pid):4d}")
        now = await metrics(progress.http_port, "smsgate_store_commit_seconds")
        line += "  " + commit_times(commits, now, step)
        commits = now
        wal = progress.wal
        if wal is not None:
            db = wal.with_name(wal.name.removesuffix("-wal"))
            line += (f"  DB {_mib(db):7.1f} MiB  WAL {_mib(wal):6.1f} MiB  "
                     f"acked {sum(c.acked for c in clients):,}")
        print(line, flush=True)


def commit_times(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float],
                 seconds: float) -> str:
    """The group commits between two readings of smsgate_store_commit_seconds."""
    def delta(key: tuple[str, str]) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    count = delta(("smsgate_store_commit_seconds_count", ""))
    if not count:
        return "commits 0"
    within = {float(le): delta((name, le)) for name, le in after
              if name == "smsgate_store_commit_seconds_bucket"}  # at or under le
    slowest = min((bound for bound, n in within.items() if n == count), default=math.inf)
    return (f"commits {count / seconds:5,.0f}/s mean "
            f"{delta(('smsgate_store_commit_seconds_sum', '')) / count * 1000:5.1f} ms "
            f">25 ms {count - within.get(0.025, count):3,.0f} "
            f">100 ms {count - within.get(0.1, count):3,.0f} "
            f"slowest <= {slowest * 1000:,.0f} ms")


def _mib(path: Path) -> float:
    return path.stat().st_size / 2**20 if path.exists() else 0.0


def report(label: str, rate: float, latencies: list[float], errors: dict) -> None:
    ms = [x * 1000 for x in latencies]
    line = (f"{label:<22} {rate:>10,.0f} /s   latency ms p50 {percentile(ms, 50):6.1f}  "
            f"p99 {percentile(ms, 99):6.1f}  max {max(ms, default=float('nan')):6.1f}")
    if errors:
        line += "   errors " + ", ".join(f"0x{s:x}: {n}" for s, n in sorted(errors.items()))
    print(line, flush=True)


@dataclass
class Outcome:
    """One measured run of smsgate."""

    rate: float
    p99_ms: float
    receipts: float = 0.0  # receipts/s read by the Rx session (--receipts)


async def main_async(args: argparse.Namespace) -> None:
    ceilings: list[float] = []
    outcomes: list[Outcome] = []
    for run_number in range(1, args.runs + 1):
        if args.runs > 1:
            print(f"-- run {run_number} of {args.runs}", flush=True)
        if args.ceiling:
            ceilings.append(await measure_ceiling(args))
        outcomes.append(await measure_smsgate(args))
        if args.ceiling:
            print(f"ratio to the ceiling: {outcomes[-1].rate / ceilings[-1]:.3f}", flush=True)
    if args.runs > 1 or args.ceiling:
        summarize(ceilings, outcomes, args.receipts)


def summarize(ceilings: list[float], outcomes: list[Outcome], receipts: bool) -> None:
    """Medians over the runs; the ratio is each run's own, then their median."""
    median = statistics.median
    line = (f"median of {len(outcomes)}: smsgate {median(o.rate for o in outcomes):,.0f} "
            f"submit_sm/s, p99 {median(o.p99_ms for o in outcomes):.1f} ms")
    if receipts:
        line += f", receipts {median(o.receipts for o in outcomes):,.0f}/s"
    if ceilings:
        ratios = [o.rate / c for o, c in zip(outcomes, ceilings, strict=True)]
        line += (f"; ceiling {median(ceilings):,.0f}/s; ratio {median(ratios):.3f} "
                 f"(runs: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(line, flush=True)


async def measure_smsgate(args: argparse.Namespace) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="smsgate-bench-") as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        await prepare(url, max_tx=max(args.binds, 10))
        options: list[str] = ["--workers", str(args.workers)] if args.workers > 1 else []
        if args.preload:
            await preload_history(url, args.preload)
        if args.purge_rows:
            await store_old_history(url, args.purge_rows)
            if not args.purge_cli:  # the background pass, about a second into the load
                first_pass = 0.5 + args.baseline_seconds + 1.0 + 1.5  # see the sleeps below
                config = Path(tmp) / "retention.toml"
                config.write_text(f"retention_days = 100\nretention_first_pass = {first_pass}\n")
                options += ["--config", str(config)]
        proc, ports = await start_server_ports(url, *options)
        try:
            return await measure_server(args, url, proc, ports, Path(tmp))
        finally:
            await stop_server(proc)


async def measure_server(args: argparse.Namespace, url: str, proc, ports: dict[str, int],
                         tmp: Path) -> Outcome:
    port = ports["SMPP"]
    await asyncio.sleep(0.5)
    rss_start = rss_mib(proc.pid)
    submit = submit_template(registered_delivery=1 if args.receipts else 0)
    enquire = Codec().encode(Pdu(CommandId.enquire_link))
    print(banner(proc, url, f"{args.binds} binds x window {args.window}"
                 + (", registered_delivery 1, one Rx session" if args.receipts else "")),
          flush=True)
    if args.baseline_seconds:
        rate, lat, err = await run_load(port, enquire, args.binds, args.window,
                                        args.baseline_seconds)
        report("enquire_link baseline", rate, lat, err)
    receiver = await Receiver.connect(port) if args.receipts else None
    client_cpu = time.process_time()
    server_cpu = cpu_seconds(proc.pid)
    threads_cpu = thread_cpu(proc.pid)
    wal = None if args.database else tmp / "bench.db-wal"
    progress = Progress(args.every, proc.pid, wal, ports["HTTP"]) if args.every else None
    purging = (asyncio.ensure_future(purge_during_load(url))
               if args.purge_rows and args.purge_cli else None)
    rate, lat, err = await run_load(port, submit, args.binds, args.window, args.seconds,
                                    progress=progress, receiver=receiver, rate=args.rate,
                                    burst=args.burst)
    if purging is not None:
        print(await purging, flush=True)
    elif args.purge_rows:
        print(f"background purge: {await old_rows_left(url):,} of the "
              f"{args.purge_rows:,} old messages left after the load", flush=True)
    server_cpu = cpu_seconds(proc.pid) - server_cpu
    threads_after = thread_cpu(proc.pid)
    client_cpu = time.process_time() - client_cpu
    if progress is not None and not args.preload:
        print(await nothing_lost(url, progress.acked), flush=True)
    report("submit_sm", rate, lat, err)
    receipts = 0.0
    if receiver is not None:
        receipts = receiver.counted / args.seconds
        print(f"receipts read by the Rx session: {receipts:,.0f}/s "
              f"({receipts / rate if rate else 0:.2f} of the submit rate)", flush=True)
        receiver.close()
    await asyncio.sleep(1.0)  # the simulator finishes the last messages
    rss_end = rss_mib(proc.pid)
    wall = args.seconds + 1.5
    print(f"server RSS start {rss_start:.0f} MiB, end {rss_end:.0f} MiB; "
          f"CPU during the submit load: server {server_cpu / wall:.0%} of a core, "
          f"bench clients {client_cpu / wall:.0%}")
    if lat:
        print(f"submit_sm responses: {len(lat):,} in {args.seconds:g} s; "
              f"latency mean {statistics.fmean(lat) * 1000:.1f} ms")
        print("server CPU a response, by thread: " + ", ".join(
            f"{name} {(threads_after[name] - threads_cpu.get(name, 0.0)) / len(lat) * 1e6:.0f} µs"
            for name in sorted(threads_after, key=lambda n: n != "loop")
            if threads_after[name] - threads_cpu.get(name, 0.0) >= 0.01))
    return Outcome(rate, percentile([x * 1000 for x in lat], 99), receipts)


async def measure_ceiling(args: argparse.Namespace) -> float:
    """The same load against ../shared/bench/ceiling_smpp.py (a lean durable server:
    the limit for Python on this machine), on the same backend."""
    with tempfile.TemporaryDirectory(prefix="smsgate-ceiling-") as tmp:
        store = (["--store", "pg-copy", "--dsn", args.database] if args.database
                 else ["--store", "sqlite", "--db", f"{tmp}/ceiling.db"])
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(CEILING), "--loop", "uvloop", "--flush", "group",
            "--port", str(port), *store, stdout=asyncio.subprocess.PIPE)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            if not line.startswith(b"READY"):
                raise SystemExit(f"the ceiling did not start: {line!r}")
            rate, lat, err = await run_load(port, submit_template(), args.binds,
                                            args.window, args.seconds)
            report("ceiling submit_sm", rate, lat, err)
            return rate
        finally:
            await stop_server(proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def store_old_history(url: str, rows: int) -> None:
    """`rows` DELIVRD messages of the bench account, 200 days old."""
    from smsgate.core.models import DELIVRD, Message, WriteBatch
    from smsgate.store import open_store
    store = open_store(url)
    await store.open()
    try:
        account = await store.get_account(SYSTEM_ID)
        assert account is not None
        first = await store.allocate_ids(rows)
        old = time.time() - 200 * 86_400
        started = time.perf_counter()
        for start in range(0, rows, 20_000):
            await store.write(WriteBatch(new_messages=[
                Message(id=(first + n) << 23, account_id=account.id, source_addr="Bench",
                        dest_addr="447700900123", payload=b"old", price=0,
                        connector="simulator", status=DELIVRD, created_at=old + n * 0.001)
                for n in range(start, min(rows, start + 20_000))]))
        print(f"stored {rows:,} messages 200 days old in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    finally:
        await store.close()


async def preload_history(url: str, rows: int, step: int = 1_000_000) -> None:
    """`rows` DELIVRD messages of the bench account spread over the last day, as a
    gateway that has been busy for a while holds them: one stored through the store,
    copied by SQL in steps of `step` (minutes for 20 million, not hours)."""
    from smsgate.core.models import DELIVRD, Message, WriteBatch
    from smsgate.store import open_store
    from smsgate.store.rows import MESSAGE_COLUMNS
    store = open_store(url)
    await store.open()
    try:
        account = await store.get_account(SYSTEM_ID)
        assert account is not None
        first = await store.allocate_ids(rows + 1)
        now = time.time()
        await store.write(WriteBatch(new_messages=[Message(
            id=first << 23, account_id=account.id, source_addr="Bench",
            dest_addr="447700900123", payload=b"The quick brown fox jumps over the lazy dog",
            price=0, connector="simulator", status=DELIVRD, created_at=now - 86_400,
            done_at=now - 86_400)]))
    finally:
        await store.close()
    started = time.perf_counter()
    for start in range(0, rows, step):
        count = min(step, rows - start)
        await _copy_template(url, first, start, count, rows, now, MESSAGE_COLUMNS)
        print(f"  preloaded {start + count:,} of {rows:,} messages "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    if sqlite_path(url) is None:
        # A store busy for a while has had its rows vacuumed (hint bits, visibility
        # map) by autovacuum; right after a bulk load, autovacuum's pass over the new
        # rows would share the machine with the measured load. (The first runs after a
        # load are still slower than later ones: docs/performance.md, "Flat with size".)
        await _pg_execute(url, "VACUUM ANALYZE messages")
        # ... and its checkpoints have long written the load's pages; right after it,
        # the first checkpoint writes gigabytes under the measured load.
        await _pg_execute(url, "CHECKPOINT")
        print(f"  vacuumed, analyzed, checkpointed ({time.perf_counter() - started:.0f} s)",
              flush=True)


async def _copy_template(url: str, first: int, start: int, count: int, rows: int,
                         now: float, columns: tuple[str, ...]) -> None:
    """Rows first+1+start ... of the template row first, created over the last day."""
    spread = 86_400.0 / rows
    made = {"id": f"(CAST({first} + 1 + n AS BIGINT) << 23)",
            "created_at": f"({now - 86_400} + n * {spread})",
            "done_at": f"({now - 86_400} + n * {spread} + 1)"}
    select = ", ".join(made.get(c, f"m.{c}") for c in columns)
    insert = f"INSERT INTO messages ({', '.join(columns)}) SELECT {select} FROM "
    path = sqlite_path(url)
    if path is not None:
        with sqlite3.connect(path) as db:
            db.execute(f"WITH RECURSIVE s(n) AS (SELECT {start} UNION ALL SELECT n + 1 "
                       f"FROM s WHERE n < {start + count - 1}) "
                       + insert + f"messages m, s WHERE m.id = {first << 23}")
        return
    await _pg_execute(url, insert + f"messages m, generate_series({start}, "
                      f"{start + count - 1}) AS n WHERE m.id = {first << 23}")


async def _pg_execute(url: str, sql: str) -> None:
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def nothing_lost(url: str, acked: int, wait: float = 60.0) -> str:
    """After a long run on a fresh store: every acknowledged submit_sm is stored, and
    each reaches its final state (the simulator delivers them all) within `wait` s."""
    started = time.perf_counter()
    while True:
        stored, final = await _counts(url, "SELECT count(*), count(done_at) FROM messages")
        if final == stored or time.perf_counter() - started > wait:
            break
        await asyncio.sleep(1.0)
    verdict = "nothing lost" if stored >= acked and final == stored else "LOST OR STUCK"
    return (f"acknowledged {acked:,}, stored {stored:,}, final {final:,} "
            f"({time.perf_counter() - started:.0f} s after the load): {verdict}")


async def _counts(url: str, sql: str) -> tuple:
    path = sqlite_path(url)
    if path is not None:
        with sqlite3.connect(path) as db:
            return db.execute(sql).fetchone()
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        return tuple(await conn.fetchrow(sql))
    finally:
        await conn.close()


async def old_rows_left(url: str) -> int:
    """Messages over 100 days old still stored."""
    sql = f"SELECT count(*) FROM messages WHERE created_at < {time.time() - 100 * 86_400}"
    return (await _counts(url, sql))[0]


async def purge_during_load(url: str) -> str:
    await asyncio.sleep(1.0)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgate.cli", "purge", "--older-than", "100", "--database", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    lines = [line for line in out.decode().splitlines() if "so far" not in line]
    return (f"purge (from 1 s into the load): {time.perf_counter() - started:.1f} s, exit "
            f"{proc.returncode}: " + "; ".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binds", type=int, default=4, help="transmitter sessions")
    parser.add_argument("--window", type=int, default=100, help="outstanding per session")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured submit time")
    parser.add_argument("--baseline-seconds", type=float, default=3.0,
                        help="measured enquire_link time")
    parser.add_argument("--database", help="postgresql://... (default: a fresh SQLite file)")
    parser.add_argument("--every", type=float, default=0.0,
                        help="print a progress line every N seconds (0: none)")
    parser.add_argument("--purge-rows", type=int, default=0, metavar="N",
                        help="store N old messages first, purge them during the load")
    parser.add_argument("--ceiling", action="store_true",
                        help=f"run the same load against {CEILING.name} first, print the ratio")
    parser.add_argument("--runs", type=int, default=1, help="rounds; medians printed")
    parser.add_argument("--receipts", action="store_true",
                        help="registered_delivery 1, receipts read by an Rx session")
    parser.add_argument("--preload", type=int, default=0, metavar="N",
                        help="store N delivered messages of the last day first")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="submit_sm a second at most, all binds together (a soak)")
    parser.add_argument("--burst", action="store_true",
                        help="each bind sends its whole window once it is empty")
    parser.add_argument("--workers", type=int, default=1,
                        help="serve --workers N (PostgreSQL): N processes share the port")
    parser.add_argument("--purge-cli", action="store_true",
                        help="purge with `smsgate purge` (another process), not in serve")
    run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
