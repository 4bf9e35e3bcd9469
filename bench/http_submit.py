"""HTTP API benchmark: single-number GET submits/s and latency of a real `smsgate serve`,
and the time of one 10,000-number POST.

    .venv/bin/python bench/http_submit.py [--connections 64] [--seconds 10]
                                          [--database postgresql://user@host/db]

The server runs as a subprocess (`python -m smsgate.cli serve`, uvloop, dispatcher and
simulator running) on ephemeral ports, by default on a fresh SQLite file, with an
account that has plenty of credits and no throughput limit. `--connections` keep-alive
HTTP/1.1 connections each keep one request outstanding (no pipelining: what a client
pool does) for `--seconds`, after a one-second warm-up. The client is a raw asyncio
protocol in this process (pre-encoded requests, header-only parsing of the answers), so
that the figures measure the server rather than an HTTP client library.

Printed: a do-nothing baseline first (GET of an unknown path: the `HTTP01` line, i.e.
aiohttp's parsing, routing and response on the same server and connections), then
`/websmpp/websms` GETs of one number each (requests/s, latency p50/p99/max in ms, from
write to complete response), the server's CPU and RSS, and `--posts` POSTs of 10,000
numbers each (wall time from the first byte written to the complete answer).
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from urllib.parse import urlencode

from serverproc import (
    PASSWORD,
    SYSTEM_ID,
    banner,
    cpu_seconds,
    percentile,
    prepare,
    rss_mib,
    run,
    start_server,
    stop_server,
)

TEXT = "The quick brown fox jumps over the lazy dog 0123456789"


def get_request(path: str, params: dict[str, str] | None = None) -> bytes:
    target = path + ("?" + urlencode(params) if params else "")
    return f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def post_request(path: str, params: dict[str, str]) -> bytes:
    body = urlencode(params).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: bench\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive connection with one request outstanding at a time."""

    def __init__(self, requests: list[bytes], expect: bytes) -> None:
        self.requests = requests
        self.expect = expect  # every answer body must start with this
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.next = 0
        self.sent_at = 0.0
        self.running = False
        self.recording = False
        self.ok = 0
        self.unexpected: dict[bytes, int] = {}
        self.latencies: list[float] = []
        self.idle = asyncio.Event()
        self.last_body = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self) -> None:
        if not self.running:
            self.idle.set()
            return
        self.idle.clear()
        request = self.requests[self.next % len(self.requests)]
        self.next += 1
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(buf[:head_end]).lower()
        start = head.index(b"content-length:") + 15  # aiohttp always sends it
        end = head.find(b"\r\n", start)
        length = int(head[start:end if end >= 0 else None])
        if len(buf) < head_end + 4 + length:
            return
        body = bytes(buf[head_end + 4:head_end + 4 + length])
        del buf[:head_end + 4 + length]
        self.last_body = body
        if self.recording:
            if body.startswith(self.expect):
                self.ok += 1
                self.latencies.append(time.perf_counter() - self.sent_at)
            else:
                key = body[:40]
                self.unexpected[key] = self.unexpected.get(key, 0) + 1
        self.send()


async def connect(port: int, count: int, requests: list[bytes],
                  expect: bytes) -> list[Connection]:
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(count):
        _transport, connection = await loop.create_connection(
            lambda: Connection(requests, expect), "127.0.0.1", port)
        connections.append(connection)
    return connections


async def run_load(port: int, connections: int, requests: list[bytes], expect: bytes,
                   seconds: float, warmup: float = 1.0) -> tuple[float, list[float], dict]:
    clients = await connect(port, connections, requests, expect)
    for client in clients:
        client.running = True
        client.send()
    await asyncio.sleep(warmup)
    for client in clients:
        client.recording = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    for client in clients:
        client.recording = client.running = False
    elapsed = time.perf_counter() - started
    await asyncio.wait_for(asyncio.gather(*(c.idle.wait() for c in clients)), 30)
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    unexpected: dict[bytes, int] = {}
    for client in clients:
        for body, count in client.unexpected.items():
            unexpected[body] = unexpected.get(body, 0) + count
    latencies = [x for c in clients for x in c.latencies]
    return sum(c.ok for c in clients) / elapsed, latencies, unexpected


async def big_post(port: int, numbers: int) -> tuple[float, bytes]:
    destinations = ",".join(str(447700000000 + n) for n in range(numbers))
    request = post_request("/websmpp/websms", {
        "user": SYSTEM_ID, "pass": PASSWORD, "sid": "Bench", "mno": destinations,
        "type": "1", "text": TEXT})
    [client] = await connect(port, 1, [request], b"Response: ")
    client.recording = True
    started = time.perf_counter()
    client.running = True
    client.send()
    client.running = False  # the answer then sets `idle` instead of sending again
    await asyncio.wait_for(client.idle.wait(), 60)
    elapsed = time.perf_counter() - started
    assert client.transport is not None
    client.transport.close()
    return elapsed, client.last_body


def report(label: str, rate: float, latencies: list[float], unexpected: dict) -> None:
    ms = [x * 1000 for x in latencies]
    line = (f"{label:<26} {rate:>9,.0f} req/s   latency ms p50 {percentile(ms, 50):6.1f}  "
            f"p99 {percentile(ms, 99):6.1f}  max {max(ms, default=float('nan')):6.1f}")
    if unexpected:
        line += "   unexpected: " + ", ".join(f"{b.decode(errors='replace')!r} x{n}"
                                              for b, n in unexpected.items())
    print(line, flush=True)


def submit_requests(count: int = 1000) -> list[bytes]:
    return [get_request("/websmpp/websms", {
        "user": SYSTEM_ID, "pass": PASSWORD, "sid": "Bench", "mno": str(447700900000 + i),
        "type": "1", "text": TEXT}) for i in range(count)]


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="smsgate-bench-") as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        await prepare(url)
        proc, port = await start_server(url, "HTTP")
        try:
            await asyncio.sleep(0.5)
            rss_start = rss_mib(proc.pid)
            print(banner(proc, url, f"{args.connections} connections"), flush=True)
            baseline = [get_request("/websmpp/nothing")]
            report("baseline: unknown path", *await run_load(
                port, args.connections, baseline, b"ERROR - HTTP01", args.baseline_seconds))
            server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
            report("websms GET, 1 number", *await run_load(
                port, args.connections, submit_requests(), b"Response: ", args.seconds))
            wall = args.seconds + 1.0
            server_cpu = (cpu_seconds(proc.pid) - server_cpu) / wall
            client_cpu = (time.process_time() - client_cpu) / wall
            await asyncio.sleep(1.0)  # the simulator finishes the last messages
            print(f"server RSS start {rss_start:.0f} MiB, now {rss_mib(proc.pid):.0f} MiB; "
                  f"CPU during the submit load: server {server_cpu:.0%} of a core, "
                  f"bench client {client_cpu:.0%}", flush=True)
            times = []
            for _ in range(args.posts):
                elapsed, body = await big_post(port, 10_000)
                ids = body.decode().removeprefix("Response: ").split(",")
                assert len(ids) == 10_000, body[:80]
                times.append(elapsed)
                await asyncio.sleep(1.0)  # let the dispatcher and simulator settle
            print(f"POST of 10,000 numbers: median {statistics.median(times) * 1000:.0f} ms "
                  f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)", flush=True)
        finally:
            await stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--posts", type=int, default=3, help="10,000-number POSTs to time")
    parser.add_argument("--database", help="default: a fresh SQLite file")
    run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
