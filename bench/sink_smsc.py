#!/usr/bin/env python3
"""A lean SMPP 3.4 sink SMSC for benchmarks: binds anyone, answers every submit_sm at
once with a new message id and sends one delivery receipt (DELIVRD) per message.

It is the far end of `bench/end_to_end.py`: smsgate's SMPP connector binds to it. It is
written with plain `struct` on purpose (no smsgate import), so that it costs as little
CPU as possible and is a peer independent of smsgate's own codec. Receipts go to a
receiver-capable session (TRx or Rx) of the same system_id, round robin, or wait until
one binds; their ids follow `--receipt-ids` (the usual real-world mix: hex in the
submit_sm_resp, the same number in decimal in the receipt).

    python bench/sink_smsc.py --port 2776            # prints "READY <port>"
    python bench/sink_smsc.py --id-format hex --receipt-ids dec --throttle-every 50
    python bench/sink_smsc.py --record texts.txt     # each accepted text, one a line

On SIGTERM/SIGINT it prints one line of counts and exits.
"""

import argparse
import asyncio
import itertools
import signal
import struct
import sys
import time
from collections import deque

HEADER = struct.Struct(">IIII")
BIND_TX, BIND_RX, BIND_TRX = 0x02, 0x01, 0x09
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x04, 0x05, 0x06, 0x15
RESPONSE = 0x80000000
GENERIC_NACK = 0x80000000
ESME_ROK, ESME_RTHROTTLED, ESME_RINVCMDID = 0x00, 0x58, 0x03
TAG_RECEIPTED_ID, TAG_MESSAGE_STATE = 0x001E, 0x0427
MAX_PDU = 64 * 1024
WINDOW = 100  # receipts outstanding per receiver session
RETRY_SECONDS = 1.0  # a receipt refused by the gateway is sent again this much later


def cstr(data: bytes, start: int, end: int) -> tuple[bytes, int]:
    stop = data.index(0, start, end)
    return data[start:stop], stop + 1


class Counts:
    submits = 0
    throttled = 0
    receipts_sent = 0
    receipts_acked = 0
    receipts_refused = 0  # answered with an error: sent again after RETRY_SECONDS


class Sink:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ids = itertools.count(args.first_id)
        self.counts = Counts()
        self.receivers: dict[bytes, deque[SmscSession]] = {}
        self.waiting: dict[bytes, deque[bytes]] = {}  # receipts for ids without a receiver
        # --record: the short_message of every accepted submit_sm, one a line (tests
        # count what was sent twice); written once per read, not per message
        self.record = open(args.record, "ab") if args.record else None  # noqa: SIM115
        self.recorded: list[bytes] = []

    def receiver(self, system_id: bytes) -> "SmscSession | None":
        sessions = self.receivers.get(system_id)
        if not sessions:
            return None
        sessions.rotate(1)
        return sessions[0]

    def queue_receipt(self, system_id: bytes, body: bytes) -> None:
        session = self.receiver(system_id)
        if session is None:
            self.waiting.setdefault(system_id, deque()).append(body)
        else:
            session.send_receipt(body)

    def receiver_bound(self, session: "SmscSession") -> None:
        self.receivers.setdefault(session.system_id, deque()).append(session)
        backlog = self.waiting.pop(session.system_id, deque())
        while backlog:
            session.send_receipt(backlog.popleft())

    def receiver_lost(self, session: "SmscSession") -> None:
        sessions = self.receivers.get(session.system_id)
        if sessions and session in sessions:
            sessions.remove(session)
        for body in session.unacked():
            self.queue_receipt(session.system_id, body)


class SmscSession(asyncio.Protocol):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.out = bytearray()
        self.transport: asyncio.Transport | None = None
        self.system_id = b""
        self.receives = False
        self.sequence = 0
        self.outstanding: dict[int, bytes] = {}  # deliver_sm sequence -> its body
        self.backlog: deque[bytes] = deque()
        self.flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.receives:
            self.sink.receiver_lost(self)

    def unacked(self) -> list[bytes]:
        bodies = [*self.outstanding.values(), *self.backlog]
        self.outstanding.clear()
        self.backlog.clear()
        return bodies

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= 16:
            length, command, status, sequence = HEADER.unpack_from(buffer, offset)
            if length < 16 or length > MAX_PDU:
                self.transport.abort()  # type: ignore[union-attr]
                return
            if len(buffer) - offset < length:
                break
            self.handle(command, status, sequence, bytes(buffer[offset + 16:offset + length]))
            offset += length
        del buffer[:offset]
        self.flush()
        sink = self.sink
        if sink.recorded:
            sink.record.write(b"".join(sink.recorded))  # type: ignore[union-attr]
            sink.record.flush()  # type: ignore[union-attr]
            sink.recorded.clear()

    def handle(self, command: int, status: int, sequence: int, body: bytes) -> None:
        if command in (BIND_TX, BIND_RX, BIND_TRX):
            self.bind(command, sequence, body)
        elif command == SUBMIT_SM:
            self.submit(sequence, body)
        elif command == DELIVER_SM | RESPONSE:
            self.receipt_answered(sequence, status)
        elif command == ENQUIRE_LINK:
            self.write(ENQUIRE_LINK | RESPONSE, ESME_ROK, sequence)
        elif command == UNBIND:
            self.write(UNBIND | RESPONSE, ESME_ROK, sequence)
            self.flush()
            self.transport.close()  # type: ignore[union-attr]
        elif not command & RESPONSE:
            self.write(GENERIC_NACK, ESME_RINVCMDID, sequence)

    def write(self, command: int, status: int, sequence: int, body: bytes = b"") -> None:
        self.out += HEADER.pack(16 + len(body), command, status, sequence) + body

    def flush(self) -> None:
        if self.out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(self.out))
        self.out.clear()
        self.flush_scheduled = False

    def flush_soon(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def bind(self, command: int, sequence: int, body: bytes) -> None:
        self.system_id, _ = cstr(body, 0, len(body))
        self.write(command | RESPONSE, ESME_ROK, sequence, b"sink\x00")
        if command in (BIND_RX, BIND_TRX):
            self.receives = True
            self.sink.receiver_bound(self)

    def submit(self, sequence: int, body: bytes) -> None:
        counts = self.sink.counts
        counts.submits += 1
        every = self.sink.args.throttle_every
        if every and counts.submits % every == 0:
            counts.throttled += 1
            self.write(SUBMIT_SM | RESPONSE, ESME_RTHROTTLED, sequence)
            return
        number = next(self.sink.ids)
        resp_id = f"{number:x}" if self.sink.args.id_format == "hex" else str(number)
        self.write(SUBMIT_SM | RESPONSE, ESME_ROK, sequence, resp_id.encode() + b"\x00")
        if self.sink.record is not None:
            self.sink.recorded.append(short_message(body) + b"\n")
        if self.sink.args.no_receipts:
            return
        receipt = receipt_body(body, number, resp_id, self.sink.args.receipt_ids)
        delay = self.sink.args.receipt_delay_ms / 1000
        if delay:
            asyncio.get_running_loop().call_later(
                delay, self.sink.queue_receipt, self.system_id, receipt)
        else:
            self.sink.queue_receipt(self.system_id, receipt)

    def send_receipt(self, body: bytes) -> None:
        if len(self.outstanding) >= WINDOW:
            self.backlog.append(body)
            return
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        self.outstanding[self.sequence] = body
        self.write(DELIVER_SM, ESME_ROK, self.sequence, body)
        self.sink.counts.receipts_sent += 1
        self.flush_soon()

    def receipt_answered(self, sequence: int, status: int) -> None:
        """ESME_ROK: done. Anything else (the gateway could not store it): sent again
        later, as an SMSC does."""
        body = self.outstanding.pop(sequence, None)
        if body is not None and status == ESME_ROK:
            self.sink.counts.receipts_acked += 1
        elif body is not None:
            self.sink.counts.receipts_refused += 1
            asyncio.get_running_loop().call_later(
                RETRY_SECONDS, self.sink.queue_receipt, self.system_id, body)
        while self.backlog and len(self.outstanding) < WINDOW:
            self.send_receipt(self.backlog.popleft())


def short_message(submit: bytes) -> bytes:
    """short_message of a submit_sm body."""
    end = len(submit)
    _, p = cstr(submit, 0, end)  # service_type
    _, p = cstr(submit, p + 2, end)  # source ton, npi, addr
    _, p = cstr(submit, p + 2, end)  # dest ton, npi, addr
    _, p = cstr(submit, p + 3, end)  # esm_class, protocol_id, priority; schedule
    _, p = cstr(submit, p, end)  # validity_period
    length = submit[p + 4]  # registered, replace, data_coding, default_msg_id, sm_length
    return submit[p + 5:p + 5 + length]


def receipt_body(submit: bytes, number: int, resp_id: str, receipt_ids: str) -> bytes:
    """deliver_sm body of a DELIVRD receipt for a submit_sm body (addresses swapped)."""
    end = len(submit)
    _, p = cstr(submit, 0, end)  # service_type
    src_ton, src_npi = submit[p], submit[p + 1]
    source, p = cstr(submit, p + 2, end)
    dst_ton, dst_npi = submit[p], submit[p + 1]
    dest, _ = cstr(submit, p + 2, end)
    receipt_id = resp_id if receipt_ids == "same" else f"{number:010d}"
    stamp = time.strftime("%y%m%d%H%M", time.gmtime())
    text = (f"id:{receipt_id} sub:001 dlvrd:001 submit date:{stamp} done date:{stamp} "
            "stat:DELIVRD err:000 text:").encode()
    tlv_id = resp_id.encode() + b"\x00"
    return (b"\x00" + bytes((dst_ton, dst_npi)) + dest + b"\x00"
            + bytes((src_ton, src_npi)) + source + b"\x00"
            + bytes((0x04, 0, 0)) + b"\x00\x00" + bytes((0, 0, 0, 0, len(text))) + text
            + struct.pack(">HH", TAG_RECEIPTED_ID, len(tlv_id)) + tlv_id
            + struct.pack(">HHB", TAG_MESSAGE_STATE, 1, 2))


async def main(args: argparse.Namespace) -> None:
    sink = Sink(args)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SmscSession(sink), args.host, args.port,
                                      reuse_address=True, reuse_port=args.reuse_port,
                                      backlog=1024)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    c = sink.counts
    print(f"submits={c.submits} throttled={c.throttled} receipts_sent={c.receipts_sent} "
          f"receipts_acked={c.receipts_acked} receipts_refused={c.receipts_refused}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--reuse-port", action="store_true",
                        help="bind with SO_REUSEPORT (a test holds the port until then)")
    parser.add_argument("--id-format", choices=["dec", "hex"], default="dec",
                        help="message ids in submit_sm_resp (default dec)")
    parser.add_argument("--receipt-ids", choices=["same", "dec"], default="same",
                        help="id: in the receipt text: the resp's string, or its number "
                             "in decimal padded to 10 digits")
    parser.add_argument("--first-id", type=int, default=1)
    parser.add_argument("--receipt-delay-ms", type=float, default=0.0)
    parser.add_argument("--no-receipts", action="store_true")
    parser.add_argument("--throttle-every", type=int, default=0,
                        help="answer every Nth submit_sm ESME_RTHROTTLED (0 = never)")
    parser.add_argument("--record", metavar="FILE",
                        help="append the text of every accepted submit_sm to FILE, one "
                             "a line (for tests that count duplicates)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    try:
        import uvloop
        uvloop.run(main(arguments))
    except ImportError:
        asyncio.run(main(arguments))
