"""Slowloris on the HTTP port: clients that send a request head one header line at a
time, a few seconds apart, and clients that send a POST body a few bytes a second. The
server drops the first `header_timeout` after their first byte however steadily they
trickle, answers the second HTTP16 at `body_timeout` and closes; a normal customer is
served all along."""

import asyncio
import time

from abuse_harness import ATTACKER_IPS, HOST, MIB, http_answer, normal_customer, serving

from smsgate.core.errors import Err

HEADER_TIMEOUT = 4.0  # [http] header_timeout (default 10 s): shorter, for a short test
BODY_TIMEOUT = 4.0  # [http] body_timeout (default 30 s)
LINE_PAUSE = 1.5  # a header line every 1.5 s: each one well inside the timeout
BODY_PAUSE = 1.0  # 10 bytes of body a second
SLOW_HEADS = 40  # 8 per source address, 5 addresses
SLOW_BODIES = 20
DROP_MARGIN = 5.0  # dropped within the timeout + this (the server's timer: ~10 ms late)
LINGER = 2.0  # the server reads (and drops) an unread body this long after answering
# Server RSS: 82 MiB after start, 83-84 MiB with the slow clients connected (peak
# 100 MiB with a bind's scrypt buffers). Bound: a fair margin over the peak; 60 slow
# clients cost kilobytes each, a leak of their data would show.
RSS_BOUND = 130 * MIB

CONFIG = {"http": {"header_timeout": HEADER_TIMEOUT, "body_timeout": BODY_TIMEOUT}}
HEAD_LINES = [b"GET /websmpp/balanceReport?userid=x&password=y HTTP/1.1\r\n", b"Host: x\r\n",
              *(b"X-Slow-%d: %s\r\n" % (n, b"a" * 20) for n in range(30))]


async def slow_head(port: int, source: str) -> float | None:
    """Send the head a line every LINE_PAUSE s, never finishing it. Returns the seconds
    from the first byte to the server's close (None: all lines went out, still open)."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    started = time.monotonic()
    try:
        for line in HEAD_LINES:
            if reader.at_eof():
                break
            writer.write(line)
            await writer.drain()
            try:  # wait LINE_PAUSE for the close (it sends nothing before it)
                if not await asyncio.wait_for(reader.read(1024), LINE_PAUSE):
                    return time.monotonic() - started
            except TimeoutError:
                continue
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()
    return None


async def slow_body(port: int, source: str) -> tuple[bytes, float, float]:
    """A POST whose 1,000-byte form body comes BODY_PAUSE s per 10 bytes. Returns the
    answer, when it came and when the connection closed (seconds from the first byte)."""
    body = b"user=customer&pass=" + b"x" * 981
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    started = time.monotonic()
    writer.write(b"POST /websmpp/websms HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body))
    answer, answered = b"", 0.0
    sending = asyncio.create_task(_trickle(writer, body))
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), BODY_TIMEOUT + 20):
            answer += chunk
            answered = answered or time.monotonic() - started
    except ConnectionError:
        pass
    finally:
        sending.cancel()
        writer.close()
    return answer, answered, time.monotonic() - started


async def _trickle(writer: asyncio.StreamWriter, body: bytes) -> None:
    try:
        for start in range(0, len(body), 10):
            writer.write(body[start:start + 10])
            await writer.drain()
            await asyncio.sleep(BODY_PAUSE)
    except ConnectionError:
        pass


async def test_slowloris_heads_and_slow_bodies(tmp_path):
    async with serving(tmp_path, CONFIG) as gw:
        started_rss = gw.rss()
        gw.reset_peak()
        port = gw.http_port
        heads = [asyncio.create_task(slow_head(port, ATTACKER_IPS[n % 5]))
                 for n in range(SLOW_HEADS)]
        bodies = [asyncio.create_task(slow_body(port, ATTACKER_IPS[5 + n % 5]))
                  for n in range(SLOW_BODIES)]
        await asyncio.sleep(1.0)
        during = await normal_customer(gw, RSS_BOUND)  # while they trickle
        dropped = await asyncio.gather(*heads)
        answered = await asyncio.gather(*bodies)
        peak = gw.peak_rss()
        after = await normal_customer(gw, RSS_BOUND, mode="tx+rx")
    assert None not in dropped, dropped
    assert min(dropped) >= HEADER_TIMEOUT * 0.9, min(dropped)
    assert max(dropped) <= HEADER_TIMEOUT + DROP_MARGIN, max(dropped)
    http16 = Err.BAD_REQUEST.http_line.encode()
    for answer, when, closed in answered:
        status, text = http_answer(answer)
        assert (status, text) == (200, http16), answer
        assert BODY_TIMEOUT * 0.9 <= when <= BODY_TIMEOUT + DROP_MARGIN, when
        assert closed <= when + LINGER + DROP_MARGIN, (when, closed)
    assert peak < RSS_BOUND
    print(f"slowloris: heads dropped after {min(dropped):.2f}-{max(dropped):.2f} s; bodies "
          f"answered HTTP16 after {min(a[1] for a in answered):.2f}-"
          f"{max(a[1] for a in answered):.2f} s, closed by "
          f"{max(a[2] for a in answered):.2f} s; rss start {started_rss / MIB:.1f} MiB, "
          f"during {during.rss / MIB:.1f}, peak {peak / MIB:.1f}, after {after.rss / MIB:.1f}")
