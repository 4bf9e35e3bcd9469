"""Issue 8, item 1 (HTTP side): the HTTP port's connection caps and deadlines
(servers/http_connections.py), over real sockets against the real server.

Each test runs the gateway with short deadlines (about a second) and checks that a
connection is dropped no sooner than its deadline and well within a generous margin
after it (the machine is shared: no tight timing)."""

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import pytest
from http_harness import PASSWORD, USER, eventually, running_api

from smsgate.core.errors import Err
from smsgate.core.models import CoverageEntry
from smsgate.servers.connection_limits import ConnectionCaps

HTTP16 = Err.BAD_REQUEST.http_line.encode()
MARGIN = 5.0  # seconds a drop may come after its deadline on a busy machine


def short_deadlines(settings) -> None:
    http = settings.http
    http.header_timeout, http.keepalive_timeout = 1.0, 2.0
    http.body_timeout, http.write_timeout = 1.0, 1.0


@pytest.fixture
def store_url(tmp_path) -> str:
    """SQLite only: the HTTP server's sockets, deadlines and caps have nothing to do
    with the backend (its paths through the API are tested in the other modules)."""
    return f"sqlite:///{tmp_path}/smsgate.db"


async def connect(port: int, source: str = "127.0.0.1", rcvbuf: int | None = None
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf is not None:  # before connecting: the window the server sees
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def closed_after(reader: asyncio.StreamReader, started: float, limit: float) -> float:
    """Seconds from `started` until the server closed the connection (EOF or reset);
    reads and drops whatever it sends meanwhile; `limit` if it did not."""
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(limit):
            while await reader.read(65536):
                pass
    return time.monotonic() - started


async def answer_of(reader: asyncio.StreamReader, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes (or `limit` passed)."""
    data = b""
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                data += chunk
    return data


async def metrics_of(api) -> str:
    async with api.session.get(api.base + "/metrics") as response:
        return await response.text()


async def slowloris(writer: asyncio.StreamWriter) -> None:
    """A request head, one header line every 0.3 s, never finished."""
    writer.write(b"GET /websmpp/websms HTTP/1.1\r\nHost: x\r\n")
    with contextlib.suppress(ConnectionError):
        for n in range(1000):
            await asyncio.sleep(0.3)
            writer.write(b"X-Slow-%d: y\r\n" % n)
            await writer.drain()


async def test_silent_and_slowloris_sockets_are_dropped_in_time(store_url):
    async with running_api(store_url, short_deadlines) as api:
        port = api.app.http.address[1]
        started = time.monotonic()
        silent = [await connect(port) for _ in range(10)]
        slow = [await connect(port) for _ in range(10)]
        writers = [asyncio.create_task(slowloris(w)) for _, w in slow]
        try:
            silent_after = await asyncio.gather(
                *(closed_after(r, started, 2.0 + MARGIN) for r, _ in silent))
            slow_after = await asyncio.gather(
                *(closed_after(r, started, 1.0 + MARGIN) for r, _ in slow))
        finally:
            for task in writers:
                task.cancel()
        # silent: keepalive_timeout (2 s) since the connect; slowloris: header_timeout
        # (1 s) from its first byte, although it sends a line every 0.3 s
        assert all(2.0 - 0.1 <= t < 2.0 + MARGIN for t in silent_after), silent_after
        assert all(1.0 - 0.1 <= t < 1.0 + MARGIN for t in slow_after), slow_after
        assert api.app.http.guard.limiter.total == 0
        for _, writer in silent + slow:
            writer.close()


async def test_clients_that_keep_up_are_not_dropped(store_url):
    """A keep-alive client making a request every 0.5 s for longer than every deadline,
    and a POST whose body trickles in for longer than header_timeout (the body has
    body_timeout)."""
    def slow_body_allowed(settings) -> None:
        short_deadlines(settings)
        settings.http.body_timeout = 10.0

    async with running_api(store_url, slow_body_allowed) as api:
        await api.seed_account()
        base = api.base + "/websmpp/balanceReport"
        params = {"userid": USER, "password": PASSWORD}
        for _ in range(7):  # 3.5 s on one pooled connection
            async with api.session.get(base, params=params) as response:
                assert (await response.text()).startswith("Response: ")
            await asyncio.sleep(0.5)
        assert api.app.http.guard.timed_out == 0
        reader, writer = await connect(api.app.http.address[1])
        body = f"userid={USER}&password={PASSWORD}".encode()
        writer.write(b"POST /websmpp/balanceReport HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 8):  # about 1.5 s for the body
            await asyncio.sleep(0.3)
            writer.write(body[start:start + 8])
        assert (await answer_of(reader)).endswith(b"Response: 1000.00")
        writer.close()


async def test_a_body_not_received_in_time_is_refused(store_url):
    async with running_api(store_url, short_deadlines) as api:
        reader, writer = await connect(api.app.http.address[1])
        started = time.monotonic()
        writer.write(b"POST /websmpp/websms HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100\r\n\r\nuser=a&pass=")
        answer = await answer_of(reader, 1.0 + MARGIN)
        assert answer.endswith(HTTP16)
        assert 1.0 - 0.1 <= time.monotonic() - started < 1.0 + MARGIN
        writer.close()


async def test_a_body_over_the_limit_is_refused_before_it_is_read(store_url):
    async with running_api(store_url) as api:
        port = api.app.http.address[1]
        # Content-Length over max_body (2 MiB): answered at once, no byte of body sent
        reader, writer = await connect(port)
        writer.write(b"POST /websmpp/websms HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 209715200\r\n\r\n")
        assert (await answer_of(reader, 5.0)).endswith(HTTP16)
        writer.close()
        # chunked: cut at the limit, not read whole
        reader, writer = await connect(port)
        writer.write(b"POST /websmpp/websms HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * 65536
        with contextlib.suppress(ConnectionError):
            for _ in range(40):  # 2.5 MiB
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        assert (await answer_of(reader, 5.0)).endswith(HTTP16)
        writer.close()


@pytest.mark.parametrize("request_head", [
    b"GET /websmpp/websms?text=" + b"a" * 17_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /websmpp/websms HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /websmpp/websms HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(101))
    + b"\r\n",
], ids=["request line", "header line", "header count"])
async def test_request_heads_over_the_limits_are_refused(store_url, request_head):
    async with running_api(store_url) as api:
        reader, writer = await connect(api.app.http.address[1])
        writer.write(request_head)
        answer = await answer_of(reader)
        status_line = answer.split(b"\r\n")[0]
        assert status_line.endswith(b" 400 Bad Request") and answer.endswith(HTTP16), answer[:200]
        writer.close()


async def test_the_request_line_limit_is_a_setting_and_fits_a_long_get(store_url):
    def small(settings) -> None:
        settings.http.max_line_size = 1024

    long_get = b"GET /websmpp/websms?text=" + b"a" * 15_000 + b" HTTP/1.1\r\nHost: x\r\n" \
        b"Connection: close\r\n\r\n"
    async with running_api(store_url) as api:  # default 16 KiB: a long GET fits
        reader, writer = await connect(api.app.http.address[1])
        writer.write(long_get)
        assert (await answer_of(reader)).endswith(Err.BAD_REQUEST_PARAMS.http_line.encode())
        writer.close()
        api.configure = small
        await api.restart()
        reader, writer = await connect(api.app.http.address[1])
        writer.write(b"GET /websmpp/websms?text=" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n")
        assert (await answer_of(reader)).endswith(HTTP16)
        writer.close()


async def refused(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Whether the server dropped the connection without answering a request."""
    with contextlib.suppress(ConnectionError):
        writer.write(b"GET /websmpp/x HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
    return await answer_of(reader, 5.0) == b""


async def served(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"GET /websmpp/x HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    return (await reader.readexactly(length)) == Err.UNKNOWN_PATH.http_line.encode()


async def test_connection_caps_per_source_ip_and_in_all(store_url):
    def caps(settings) -> None:
        settings.http.connections = ConnectionCaps(max_per_ip=3, max_total=5)

    async with running_api(store_url, caps) as api:
        port = api.app.http.address[1]
        mine = [await connect(port) for _ in range(3)]
        assert all([await served(*c) for c in mine])
        assert await refused(*await connect(port))  # the 4th from 127.0.0.1
        other = [await connect(port, "127.0.0.2") for _ in range(2)]  # another IP gets in
        assert all([await served(*c) for c in other])
        assert await refused(*await connect(port, "127.0.0.3"))  # 5 in all
        mine[0][1].close()  # one of 127.0.0.1's goes: its place is free again

        async def released():
            return api.app.http.guard.limiter.total == 4  # 2 + 2

        await eventually(released, what="the closed connection's release")
        last = await connect(port)
        assert await served(*last)
        assert api.app.http.guard.limiter.refused == 2
        for _, writer in [*mine[1:], *other, last]:
            writer.close()

        async def all_closed():
            return api.app.http.guard.limiter.total == 0

        await eventually(all_closed, what="every connection released")
        assert "smsgate_http_connections_refused_total 2.0" in await metrics_of(api)


async def test_a_client_that_never_reads_a_download_is_dropped(store_url):
    """A coverage download larger than the socket buffers can take, to a client that
    reads none of it: dropped write_timeout after the transport's buffer filled, and its
    handler task ends (no memory or task held)."""
    async with running_api(store_url, short_deadlines) as api:
        await api.seed_account()
        operator = "Network " + "x" * 150
        await api.store.replace_coverage([
            CoverageEntry("Testland", "TL", operator, "999", f"{n:05d}", f"99{n:06d}")
            for n in range(40_000)])  # about 7 MB of CSV
        _, writer = await connect(api.app.http.address[1], rcvbuf=4096)
        writer.write(f"GET /websmpp/downloadcoverage?userid={USER}&password={PASSWORD}"
                     "&format=3 HTTP/1.1\r\nHost: x\r\n\r\n".encode())

        async def dropped():
            http = api.app.http
            return http.guard.timed_out == 1 and http.guard.limiter.total == 0 \
                and not http._runner.server.connections

        await eventually(dropped, timeout=30, what="the non-reading client dropped")
        # With an RST: a plain close would queue a FIN behind ~MBs the client never
        # reads, leaving the server's socket in FIN-WAIT-1 (and the client connected).
        server_port = api.app.http.address[1]
        client_port = writer.get_extra_info("sockname")[1]
        assert await eventually(lambda: not kernel_sockets(server_port, client_port),
                                timeout=2, what="the server's socket gone")
        writer.close()
        assert "smsgate_http_connections_timed_out_total 1.0" in await metrics_of(api)


def kernel_sockets(local_port: int, remote_port: int) -> list[str]:
    """TCP states (hex, /proc/net/tcp) of the kernel's sockets local_port -> remote_port."""
    states = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if int(local.split(":")[1], 16) == local_port \
                and int(remote.split(":")[1], 16) == remote_port:
            states.append(state)
    return states


def test_every_limit_is_a_toml_setting(tmp_path):
    """docs/operations.md's keys reach the settings (config.py maps nested tables)."""
    from smsgate.config import load
    config = tmp_path / "smsgate.toml"
    config.write_text("""
[http]
header_timeout = 5
keepalive_timeout = 20
body_timeout = 15
write_timeout = 25.5
max_line_size = 8192
max_field_size = 4096
max_headers = 50
max_body = 1048576
anonymous_status_rate = 10
[http.connections]
max_per_ip = 20
max_total = 1000
[http.callbacks]
allow_private = true
max_answer = 1024
""")
    settings = load(str(config), environ={}).settings
    http = settings.http
    assert (http.header_timeout, http.keepalive_timeout, http.body_timeout,
            http.write_timeout) == (5.0, 20.0, 15.0, 25.5)
    assert (http.max_line_size, http.max_field_size, http.max_headers, http.max_body) == \
        (8192, 4096, 50, 1048576)
    assert http.anonymous_status_rate == 10.0
    assert (http.connections.max_per_ip, http.connections.max_total) == (20, 1000)
    assert http.callbacks.allow_private and http.callbacks.max_answer == 1024
