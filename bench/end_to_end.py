"""End-to-end benchmark: customer ESMEs -> smsgate -> SMPP connector -> a sink SMSC ->
receipts back to the customers' receiver.

    .venv/bin/python bench/end_to_end.py [--binds 4] [--window 100] [--seconds 10]
        [--connector-binds 2] [--connector-window 200] [--database postgresql://...]

Three processes: `smsgate serve` (on a fresh SQLite file by default), the lean sink SMSC
`bench/sink_smsc.py` (answers every submit_sm at once and sends one DELIVRD receipt per
message), and this one, which plays the customer: one receiver (Rx) session and
`--binds` transmitter sessions that each keep `--window` messages on their way (submit_sm
with registered_delivery 1 sent, its receipt not yet back: a closed loop, so the rate
measured is one the gateway sustains, not a backlog growing behind an open tap).
smsgate has one SMPP connector to the sink (`--connector-binds` TRx sessions, window
`--connector-window`) and a catch-all route to it.

Printed: completed messages/s (a receipt received by the customer), submit_sm accepted/s,
latency from submit to receipt p50/p99, the CPU each process used, and, in the same
invocation, the plain ingest rate of `bench/smpp_ingest.py` (simulator upstream, no
receipts) as the yardstick: these machines vary by tens of percent from day to day.
"""

import argparse
import asyncio
import struct
import sys
import tempfile
import time
from pathlib import Path

from serverproc import (
    cpu_seconds,
    percentile,
    prepare,
    rss_mib,
    run,
    start_server,
    stop_server,
)
from smpp_ingest import bind_pdu, run_load

from smsgate.core.models import CREDIT_SCALE, Connector, Route
from smsgate.smpp.codec import Codec
from smsgate.smpp.constants import CommandId, Status
from smsgate.smpp.pdu import Pdu
from smsgate.store import open_store

HEADER = struct.Struct(">IIII")
TAG_RECEIPTED_ID = 0x001E
SINK = Path(__file__).with_name("sink_smsc.py")


class Customer(asyncio.Protocol):
    """One customer session: a transmitter keeping `window` submits outstanding, or the
    receiver answering deliver_sm and timing each receipt against its submit."""

    def __init__(self, kind: int, template: bytes, window: int, book: "Book") -> None:
        self.kind, self.template, self.window, self.book = kind, bytearray(template), window, book
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent_at: dict[int, float] = {}
        self.sequence = 1
        self.running = False
        self.bound = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(bind_pdu(self.kind))

    def connection_lost(self, exc) -> None:
        if not self.bound.done():
            self.bound.set_exception(ConnectionError("closed before bind"))

    def fill(self) -> None:
        """Keep `window` messages of this session on their way: submitted and not yet
        receipted (closed loop: the rate measured is one the gateway sustains)."""
        missing = min(self.window - len(self.sent_at), self.book.room(self))
        if missing <= 0 or not self.running:
            return
        out, now, template = bytearray(), time.perf_counter(), self.template
        for _ in range(missing):
            self.sequence += 1
            struct.pack_into(">I", template, 12, self.sequence)
            out += template
            self.sent_at[self.sequence] = now
        self.book.in_flight[id(self)] = self.book.in_flight.get(id(self), 0) + missing
        self.transport.write(out)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end, now = 0, len(buf), time.perf_counter()
        answers = bytearray()
        while end - pos >= 16:
            length, command_id, status, sequence = HEADER.unpack_from(buf, pos)
            if end - pos < length:
                break
            body = bytes(buf[pos + 16:pos + length])
            pos += length
            if command_id & 0x80000000 and command_id != CommandId.submit_sm_resp:
                if not self.bound.done():
                    self.bound.set_result(status)
            elif command_id == CommandId.submit_sm_resp:
                self.submitted(sequence, status, body, now)
            elif command_id == CommandId.deliver_sm:
                self.book.receipt(receipted_id(body), now)
                answers += HEADER.pack(17, CommandId.deliver_sm_resp, 0, sequence) + b"\0"
            elif command_id == CommandId.enquire_link:
                answers += HEADER.pack(16, CommandId.enquire_link_resp, 0, sequence)
        del buf[:pos]
        if answers:
            self.transport.write(answers)  # type: ignore[union-attr]
        self.fill()

    def submitted(self, sequence: int, status: int, body: bytes, now: float) -> None:
        sent = self.sent_at.pop(sequence, None)
        if sent is None:
            return
        if status == Status.ESME_ROK:
            self.book.submitted(body[:-1].decode("latin-1"), sent, self)
        else:
            self.book.errors[status] = self.book.errors.get(status, 0) + 1
            self.book.in_flight[id(self)] -= 1


class Book:
    """Submit times by message id; receipts counted and timed while recording; each
    sender's messages on their way (submitted, receipt not yet back)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.in_flight: dict[int, int] = {}  # id(sender) -> messages on their way
        self.senders: dict[str, Customer] = {}  # message id -> its sender
        self.sent: dict[str, float] = {}
        # receipts read before their submit_sm_resp (they come on another socket)
        self.early: dict[str, float] = {}
        self.accepted = 0
        self.completed = 0
        self.latencies: list[float] = []
        self.errors: dict[int, int] = {}
        self.recording = False
        self.unknown = 0

    def room(self, sender: "Customer") -> int:
        return self.window - self.in_flight.get(id(sender), 0)

    def submitted(self, message_id: str, at: float, sender: "Customer") -> None:
        self.sent[message_id] = at
        self.senders[message_id] = sender
        if self.recording:
            self.accepted += 1
        early = self.early.pop(message_id, None)
        if early is not None:  # its receipt was read before its submit_sm_resp
            self.receipt(message_id, early)

    def receipt(self, message_id: str | None, now: float) -> None:
        sent = self.sent.pop(message_id, None) if message_id else None
        if sent is None:
            if message_id:
                self.early[message_id] = now
            else:
                self.unknown += 1
            return
        sender = self.senders.pop(message_id)  # type: ignore[arg-type]
        self.in_flight[id(sender)] -= 1
        sender.fill()
        if self.recording:
            self.completed += 1
            self.latencies.append(now - sent)


def receipted_id(body: bytes) -> str | None:
    """receipted_message_id of a deliver_sm body (skips the mandatory fields)."""
    try:
        p = body.index(0) + 3  # service_type, source ton/npi
        p = body.index(0, p) + 3  # source_addr, dest ton/npi
        p = body.index(0, p) + 4  # destination_addr, esm_class, protocol_id, priority
        p = body.index(0, p) + 1  # schedule_delivery_time
        p = body.index(0, p) + 1 + 4  # validity_period; registered .. sm_default_msg_id
        p += 1 + body[p]  # sm_length, short_message
        while p + 4 <= len(body):
            tag, length = struct.unpack_from(">HH", body, p)
            if tag == TAG_RECEIPTED_ID:
                return body[p + 4:p + 4 + length].rstrip(b"\0").decode("latin-1")
            p += 4 + length
    except (ValueError, IndexError):
        pass
    return None


async def start_sink() -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SINK), "--port", "0", stdout=asyncio.subprocess.PIPE)
    line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
    if not line.startswith("READY "):
        raise SystemExit(f"the sink did not start: {line!r}")
    return proc, int(line.split()[1])


async def route_to_sink(url: str, port: int, binds: int, window: int) -> None:
    """A connector to the sink and a catch-all route to it before the simulator's."""
    store = open_store(url)
    await store.open()
    try:
        await store.add_connector(Connector("sink", "smpp", {
            "host": "127.0.0.1", "port": port, "system_id": "smsgate", "password": "pw",
            "binds": binds, "window": window}))
        await store.add_route(Route("", "sink", CREDIT_SCALE, priority=-10))
    finally:
        await store.close()


async def unroute_sink(url: str) -> None:
    store = open_store(url)
    await store.open()
    try:
        for route in await store.list_routes():
            if route.connector == "sink":
                await store.remove_route(route.id)
    finally:
        await store.close()


async def customers(port: int, binds: int, window: int, book: Book) -> list[Customer]:
    loop = asyncio.get_running_loop()
    template = Codec().encode(Pdu(CommandId.submit_sm, 0, 0, {
        "source_addr_ton": 5, "source_addr": "Bench", "dest_addr_ton": 1,
        "dest_addr_npi": 1, "destination_addr": "447700900123", "registered_delivery": 1,
        "short_message": b"The quick brown fox jumps over the lazy dog 0123456789"}))
    sessions = []
    for kind in [CommandId.bind_receiver] + [CommandId.bind_transmitter] * binds:
        _, session = await loop.create_connection(
            lambda k=kind: Customer(k, template, window, book), "127.0.0.1", port)
        sessions.append(session)
    statuses = await asyncio.gather(*(s.bound for s in sessions))
    if any(statuses):
        raise SystemExit(f"customer bind refused: {statuses}")
    return sessions


async def measure(port: int, args: argparse.Namespace, pids: dict[str, int]) -> None:
    book = Book(args.window)
    sessions = await customers(port, args.binds, args.window, book)
    senders = sessions[1:]
    for session in senders:
        session.running = True
        session.fill()
    await asyncio.sleep(args.warmup)
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    book.recording = True
    started = time.perf_counter()
    for second in range(int(args.seconds)):
        before = book.completed
        await asyncio.sleep(1.0)
        if args.progress:
            print(f"  {second + 1:3d} s  {book.completed - before:>8,} receipts", flush=True)
    await asyncio.sleep(args.seconds - int(args.seconds))
    book.recording = False
    elapsed = time.perf_counter() - started
    used = {name: (cpu_seconds(pid) - cpu[name]) / elapsed for name, pid in pids.items()}
    for session in senders:
        session.running = False
    await asyncio.sleep(1.0)
    for session in sessions:
        session.transport.close()  # type: ignore[union-attr]
    ms = [x * 1000 for x in book.latencies]
    print(f"end to end, receipts     {book.completed / elapsed:>10,.0f} /s   "
          f"submit->receipt ms p50 {percentile(ms, 50):6.1f}  p99 {percentile(ms, 99):6.1f}"
          f"  max {max(ms, default=float('nan')):6.1f}", flush=True)
    print(f"submit_sm accepted       {book.accepted / elapsed:>10,.0f} /s"
          + (f"   errors {book.errors}" if book.errors else "")
          + f"; receipts not back 1 s after the load: {len(book.sent):,}"
          + (f", receipts without an id: {book.unknown}" if book.unknown else "")
          + (f", for unknown ids: {len(book.early)}" if book.early else ""), flush=True)
    print("CPU (share of one core): " + ", ".join(f"{n} {u:.0%}" for n, u in used.items())
          + f"; smsgate RSS {rss_mib(pids['smsgate']):.0f} MiB", flush=True)
    args.result = book.completed / elapsed


async def yardstick(args: argparse.Namespace, tmp: str) -> float:
    """The ingest load on the simulator: a fresh SQLite file, or the same PostgreSQL
    database with the sink's route removed."""
    url = args.database or f"sqlite:///{tmp}/ingest.db"
    if args.database:
        await unroute_sink(url)
    await prepare(url, max_tx=max(args.binds, 10))
    proc, port = await start_server(url, "SMPP")
    try:
        template = Codec().encode(Pdu(CommandId.submit_sm, 0, 0, {
            "source_addr_ton": 5, "source_addr": "Bench", "dest_addr_ton": 1,
            "dest_addr_npi": 1, "destination_addr": "447700900123",
            "short_message": b"The quick brown fox jumps over the lazy dog 0123456789"}))
        rate, latencies, _ = await run_load(port, template, args.binds, args.window,
                                            args.seconds)
    finally:
        await stop_server(proc)
    ms = [x * 1000 for x in latencies]
    print(f"yardstick: ingest only   {rate:>10,.0f} /s   (bench/smpp_ingest.py load, "
          f"simulator, no receipts; p99 {percentile(ms, 99):.1f} ms)", flush=True)
    return rate


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="smsgate-e2e-") as tmp:
        url = args.database or f"sqlite:///{tmp}/e2e.db"
        sink, sink_port = await start_sink()
        try:
            await prepare(url, max_tx=max(args.binds, 10))
            await route_to_sink(url, sink_port, args.connector_binds, args.connector_window)
            options = ()
            if args.config:
                options = ("--config", args.config)
            proc, port = await start_server(url, "SMPP", *options,
                                            log=Path(args.server_log) if args.server_log else None)
            try:
                await asyncio.sleep(args.bind_wait)  # the connector binds to the sink
                print(f"{args.binds} customer Tx x window {args.window} + 1 Rx; connector "
                      f"{args.connector_binds} TRx x window {args.connector_window}; "
                      f"{Path(url).suffix or url.split(':')[0]}", flush=True)
                await measure(port, args, {"smsgate": proc.pid, "sink": sink.pid})
            finally:
                await stop_server(proc)
        finally:
            sink.terminate()
            counts = (await sink.stdout.read()).decode().strip()  # type: ignore[union-attr]
            await sink.wait()
            print(f"sink: {counts}", flush=True)
        if not args.skip_yardstick:
            ingest = await yardstick(args, tmp)
            print(f"ratio end to end / ingest: {args.result / ingest:.2f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binds", type=int, default=4, help="customer transmitter sessions")
    parser.add_argument("--window", type=int, default=100, help="outstanding per session")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connector-binds", type=int, default=2)
    parser.add_argument("--connector-window", type=int, default=200)
    parser.add_argument("--bind-wait", type=float, default=2.0,
                        help="seconds for the connector to bind before the load")
    parser.add_argument("--database", help="postgresql://... (default: a fresh SQLite file)")
    parser.add_argument("--skip-yardstick", action="store_true")
    parser.add_argument("--progress", action="store_true", help="receipts per second")
    parser.add_argument("--config", help="a TOML settings file for `serve`")
    parser.add_argument("--server-log", help="write serve's log (INFO) to this file")
    run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
