"""SMPP client connector benchmark: the connector alone against the lean sink SMSC.

    .venv/bin/python bench/smpp_client.py [--binds 2] [--window 100] [--seconds 10]

`bench/sink_smsc.py` runs as a subprocess (hex ids in submit_sm_resp, the same numbers
in decimal in its receipts, one DELIVRD receipt per message). First a yardstick: a raw
client in this process (pre-encoded submit_sm, header-only parsing, pre-encoded
deliver_sm_resp) keeps the same binds and windows full, which shows what the sink and
the loopback allow on this machine. Then `SmppConnector` is fed as the dispatcher feeds
it (its `room`, every millisecond), its events counted by a recorder that stores
nothing. Both print messages/s (submit_sm answered ESME_ROK) and receipts/s (deliver_sm
answered), with the CPU of this process and of the sink.
"""

import argparse
import asyncio
import struct
import sys
import time
from pathlib import Path

from serverproc import cpu_seconds, run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smsgate.connectors.smpp_client import SmppConnector  # noqa: E402
from smsgate.core.models import Message  # noqa: E402
from smsgate.smpp.codec import Codec  # noqa: E402
from smsgate.smpp.constants import CommandId  # noqa: E402
from smsgate.smpp.pdu import Pdu  # noqa: E402

HEADER = struct.Struct(">IIII")
TEXT = b"The quick brown fox jumps over the lazy dog 0123456789"


class RawClient(asyncio.Protocol):
    """The yardstick: one TRx session keeping `window` submit_sm outstanding."""

    def __init__(self, window: int) -> None:
        codec = Codec()
        self.submit = bytearray(codec.encode(Pdu(CommandId.submit_sm, 0, 0, {
            "source_addr_ton": 5, "source_addr": "Bench", "dest_addr_ton": 1,
            "dest_addr_npi": 1, "destination_addr": "447700900123",
            "registered_delivery": 1, "short_message": TEXT})))
        self.bind = codec.encode(Pdu(CommandId.bind_transceiver, 1, 0, {
            "system_id": "bench", "password": "bench", "interface_version": 0x34}))
        self.window = window
        self.outstanding = 0
        self.sequence = 1
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.ok = self.receipts = 0
        self.bound = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.bind)

    def fill(self) -> None:
        out = bytearray()
        while self.outstanding < self.window:
            self.sequence += 1
            struct.pack_into(">I", self.submit, 12, self.sequence)
            out += self.submit
            self.outstanding += 1
        if out:
            self.transport.write(out)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end, out = 0, len(buf), bytearray()
        while end - pos >= 16:
            length, command, status, sequence = HEADER.unpack_from(buf, pos)
            if end - pos < length:
                break
            pos += length
            if command == CommandId.submit_sm_resp:
                self.outstanding -= 1
                self.ok += not status
            elif command == CommandId.deliver_sm:
                self.receipts += 1
                out += HEADER.pack(17, CommandId.deliver_sm_resp, 0, sequence) + b"\0"
            elif command == CommandId.bind_transceiver_resp and not self.bound.done():
                self.bound.set_result(None)
        del buf[:pos]
        if out:
            self.transport.write(out)  # type: ignore[union-attr]
        if self.bound.done():
            self.fill()


class Counter:
    """ConnectorEvents that stores nothing: counts, and acknowledges every receipt."""

    def __init__(self) -> None:
        self.sent_count = self.failed_count = self.report_count = 0

    def sent(self, message, upstream_ids) -> None:
        self.sent_count += 1

    def failed(self, message, failure) -> None:
        self.failed_count += 1

    def status(self, message, update) -> None:
        pass

    def report(self, report, done) -> None:
        self.report_count += 1
        done(True)

    def inbound(self, message, done) -> None:
        done(True)


def measured(label: str, seconds: float, done: int, receipts: int, own_cpu: float,
             sink_cpu: float) -> None:
    print(f"{label:<24} {done / seconds:>9,.0f} messages/s {receipts / seconds:>9,.0f} "
          f"receipts/s   CPU: this process {own_cpu / seconds:4.0%}, sink "
          f"{sink_cpu / seconds:4.0%} of a core", flush=True)


async def yardstick(port: int, args: argparse.Namespace, sink_pid: int) -> None:
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(args.binds):
        _, client = await loop.create_connection(lambda: RawClient(args.window),
                                                 "127.0.0.1", port)
        clients.append(client)
    await asyncio.gather(*(c.bound for c in clients))
    for client in clients:
        client.fill()
    await asyncio.sleep(1.0)
    ok, receipts = sum(c.ok for c in clients), sum(c.receipts for c in clients)
    cpu, sink = time.process_time(), cpu_seconds(sink_pid)
    await asyncio.sleep(args.seconds)
    measured("raw client (yardstick)", args.seconds, sum(c.ok for c in clients) - ok,
             sum(c.receipts for c in clients) - receipts, time.process_time() - cpu,
             cpu_seconds(sink_pid) - sink)
    for client in clients:
        client.window = 0
        client.transport.close()  # type: ignore[union-attr]
    await asyncio.sleep(0.5)


async def connector_run(port: int, args: argparse.Namespace, sink_pid: int) -> None:
    connector = SmppConnector("bench", {
        "host": "127.0.0.1", "port": port, "system_id": "bench2", "password": "bench",
        "binds": args.binds, "window": args.window, "tps": args.tps, "id_format": "auto"})
    counter = Counter()
    await connector.start(counter)
    while connector.state()["transmitters_up"] < args.binds:
        await asyncio.sleep(0.01)
    running = True
    next_id = 0

    async def feed() -> None:
        nonlocal next_id
        while running:
            room = connector.room
            if room:
                batch = [Message(id=next_id + n, account_id=1, source_addr="Bench",
                                 dest_addr="447700900123", payload=TEXT, source_ton=5)
                         for n in range(room)]
                next_id += room
                connector.send(batch)
            await asyncio.sleep(0.001)

    feeder = asyncio.ensure_future(feed())
    await asyncio.sleep(1.0)
    sent, reports = counter.sent_count, counter.report_count
    cpu, sink = time.process_time(), cpu_seconds(sink_pid)
    await asyncio.sleep(args.seconds)
    measured("SmppConnector", args.seconds, counter.sent_count - sent,
             counter.report_count - reports,
             time.process_time() - cpu, cpu_seconds(sink_pid) - sink)
    running = False
    await feeder
    await connector.stop()
    print(f"connector state: {connector.state()}", flush=True)


async def main_async(args: argparse.Namespace) -> None:
    sink = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "sink_smsc.py"), "--port", "0",
        "--id-format", "hex", "--receipt-ids", "dec", stdout=asyncio.subprocess.PIPE)
    assert sink.stdout is not None
    port = int((await sink.stdout.readline()).split()[1])
    print(f"sink SMSC pid {sink.pid} on port {port}; {args.binds} TRx binds x window "
          f"{args.window}, {args.seconds:g} s measured after 1 s", flush=True)
    try:
        if not args.no_yardstick:
            await yardstick(port, args, sink.pid)
        await connector_run(port, args, sink.pid)
    finally:
        sink.terminate()
        print(f"sink: {(await sink.stdout.read()).decode().strip()}", flush=True)
        await sink.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binds", type=int, default=2, help="TRx sessions")
    parser.add_argument("--window", type=int, default=100, help="outstanding per session")
    parser.add_argument("--tps", type=int, default=0, help="the connector's limit (0: none)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-yardstick", action="store_true")
    run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
