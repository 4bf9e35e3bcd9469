"""Oversized HTTP requests: bodies past `max_body` announced by Content-Length (refused
with HTTP16 before a byte of them is read) or sent chunked (cut at the limit), and
request lines, header lines and header counts past aiohttp's parser limits (400 and the
HTTP16 line). Several at once: the server holds at most `max_body` of each."""

import asyncio
import contextlib
import time

from abuse_harness import (
    ATTACKER_IPS,
    HOST,
    MIB,
    connect_from,
    http_answer,
    http_exchange,
    normal_customer,
    serving,
)

from smsgate.core.errors import Err

HTTP16 = Err.BAD_REQUEST.http_line.encode()
MAX_BODY = 2 * MIB  # the default [http] max_body
ANSWER_BOUND = 2.0  # seconds to refuse a request by its head (seen: ~2 ms)
CHUNKED_CLIENTS = 8
TRICKLE = 0.05  # seconds between 64 KiB chunks once past max_body
LINGER = 2.0  # the server reads and drops an unread body this long after answering
CLOSE_MARGIN = 5.0
# Server RSS: 82 MiB after start; 8 chunked uploads at once, each cut past 2 MiB,
# measured at a 109 MiB peak (some 3.5 MiB per upload: the body read so far and its
# copies), 85 MiB after. Bound: the start figure + 8 x max_body + a margin.
RSS_BOUND = 82 * MIB + CHUNKED_CLIENTS * MAX_BODY + 30 * MIB
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"


def head_only(port: int, length: int) -> tuple[bytes, float]:
    """A POST announcing `length` bytes of body, none of them sent: the answer and how
    soon it came (the connection is left for the server to close)."""
    with connect_from(HOST, port, 10) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /websmpp/websms HTTP/1.1\r\nHost: x\r\n" + FORM +
                     b"Content-Length: %d\r\n\r\n" % length)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(HTTP16):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer, time.monotonic() - started


async def chunked_upload(port: int, source: str) -> dict:
    """A chunked POST that never ends: 3 MiB at once (past max_body), then 64 KiB every
    TRICKLE s until the server closes. Returns the answer, when it came and when the
    connection closed (seconds from the start), and the bytes of body written."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    started = time.monotonic()
    writer.write(b"POST /websmpp/websms HTTP/1.1\r\nHost: x\r\n" + FORM +
                 b"Transfer-Encoding: chunked\r\n\r\n")
    sent = 0

    async def send() -> None:
        nonlocal sent
        chunk = b"%x\r\n" % 65536 + b"user=x&text=" + b"a" * (65536 - 12) + b"\r\n"
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(chunk)
                await writer.drain()
                sent += 65536
                if sent >= 3 * MIB:
                    await asyncio.sleep(TRICKLE)

    sending = asyncio.create_task(send())
    answer, answered = b"", 0.0
    try:
        async with asyncio.timeout(LINGER + 20):
            while data := await reader.read(65536):
                answer += data
                answered = answered or time.monotonic() - started
    except ConnectionError:
        pass
    finally:
        closed = time.monotonic() - started
        sending.cancel()
        writer.close()
    return {"answer": answer, "answered": answered, "closed": closed, "sent": sent}


async def test_oversized_bodies_lines_and_headers(tmp_path):
    async with serving(tmp_path, {}) as gw:
        port = gw.http_port
        base = gw.rss()
        gw.reset_peak()
        # Content-Length past max_body, or absurd: HTTP16 at once, no body read.
        for length in (MAX_BODY + 1, 10**15):
            answer, took = await asyncio.to_thread(head_only, port, length)
            assert http_answer(answer) == (200, HTTP16), answer
            assert took < ANSWER_BOUND, took
        # Request line, one header line, the number of headers: 400 and the HTTP16 line.
        too_long_line = b"GET /websmpp/websms?text=" + b"a" * 17_000 + b" HTTP/1.1\r\n\r\n"
        too_long_header = b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 9_000 + b"\r\n\r\n"
        too_many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(150)) \
            + b"\r\n"
        for request in (too_long_line, too_long_header, too_many):
            answer, took = await asyncio.to_thread(http_exchange, port, request)
            assert http_answer(answer) == (400, HTTP16), answer[:200]
            assert took < ANSWER_BOUND, took
        # Chunked bodies past max_body, several at once: cut at the limit.
        uploads = await asyncio.gather(*(chunked_upload(port, ATTACKER_IPS[n])
                                         for n in range(CHUNKED_CLIENTS)))
        peak = gw.peak_rss()
        after = await normal_customer(gw, RSS_BOUND)
    for upload in uploads:  # answered, then closed however the client keeps sending
        assert http_answer(upload["answer"]) == (200, HTTP16), upload["answer"][:200]
        assert upload["closed"] - upload["answered"] <= LINGER + CLOSE_MARGIN, upload
    assert peak < RSS_BOUND, peak
    print(f"oversized: chunked uploads answered HTTP16 after "
          f"{max(u['answered'] for u in uploads):.2f} s at most, closed "
          f"{min(u['closed'] - u['answered'] for u in uploads):.1f}-"
          f"{max(u['closed'] - u['answered'] for u in uploads):.1f} s later, having sent "
          f"{min(u['sent'] for u in uploads) / MIB:.0f}-"
          f"{max(u['sent'] for u in uploads) / MIB:.0f} MiB; rss base {base / MIB:.1f} MiB, "
          f"peak {peak / MIB:.1f}, after {after.rss / MIB:.1f}")
