"""A real TCP proxy between asyncpg and PostgreSQL that loses a COMMIT's answer.

It relays bytes both ways and reads the frontend's messages (PostgreSQL protocol 3:
an untyped startup packet, then type byte + length). Armed with `cut_next_commit`, the
next simple-query COMMIT of any connection is
- "deliver": forwarded to the server; the server's answer (which proves the COMMIT was
  executed) is read and dropped, and both sockets are closed: the client sees its
  connection die with the transaction committed;
- "drop": dropped, and both sockets closed: the server never sees the COMMIT and rolls
  the transaction back when it notices its client is gone;
- "hold": dropped, and only the client's socket closed: the server's backend sits idle
  in its transaction, as behind a network that lost the connection silently.
Other connections (a fresh one opened to find out what happened) pass untouched,
unless `refuse_new` is set: new connections are then closed at once, as when the server
cannot be reached any more.
"""

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


class CommitCutter:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._url = parts
        self._armed: str | None = None  # the mode of the next cut
        self.cuts = 0
        self.refuse_new = False
        self.cut = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        """Listen; returns `url` rewritten to go through the proxy (without TLS)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        user = f"{self._url.username}@" if self._url.username else ""
        query = "&".join(q for q in (self._url.query, "sslmode=disable") if q)
        return urlunsplit(self._url._replace(netloc=f"{user}127.0.0.1:{port}", query=query))

    def cut_next_commit(self, mode: str) -> None:
        assert mode in ("deliver", "drop", "hold"), mode
        self.cut.clear()
        self._armed = mode

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _serve(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        if self.refuse_new:
            client_w.close()
            return
        server_r, server_w = await asyncio.open_connection(*self.target)
        link = _Link(client_w, server_w)
        up = asyncio.create_task(self._upstream(client_r, link))
        down = asyncio.create_task(self._downstream(server_r, link))
        self._tasks.update((up, down))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            link.close()
            for task in (up, down):
                task.cancel()
                self._tasks.discard(task)

    async def _upstream(self, reader: asyncio.StreamReader, link: "_Link") -> None:
        """Client -> server, message by message."""
        while True:  # untyped packets: SSL/GSSENC requests, then the startup packet
            header = await reader.readexactly(4)
            body = await reader.readexactly(int.from_bytes(header, "big") - 4)
            link.server.write(header + body)
            if int.from_bytes(body[:4], "big") not in (_SSL_REQUEST, _GSSENC_REQUEST):
                break
        while True:
            header = await reader.readexactly(5)
            body = await reader.readexactly(int.from_bytes(header[1:], "big") - 4)
            if header[:1] == b"Q" and body.upper().startswith(b"COMMIT") \
                    and self._armed is not None:
                mode, self._armed = self._armed, None
                await self._cut(link, header + body, mode)
                return
            link.server.write(header + body)

    async def _cut(self, link: "_Link", commit: bytes, mode: str) -> None:
        if mode == "drop":
            self._finish(link)
            return
        if mode == "hold":
            link.client.close()
            self.cuts += 1
            self.cut.set()
        else:
            link.swallow = True
            link.server.write(commit)
        await asyncio.Future()  # the server's answer (or its end) ends it: _downstream

    def _finish(self, link: "_Link") -> None:
        link.close()
        self.cuts += 1
        self.cut.set()

    async def _downstream(self, reader: asyncio.StreamReader, link: "_Link") -> None:
        """Server -> client, as bytes come; the answer to a delivered COMMIT (it proves
        the server executed it) is dropped with both sockets."""
        while data := await reader.read(65536):
            if link.swallow:
                self._finish(link)
                return
            if not link.client.is_closing():
                link.client.write(data)


class _Link:
    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client, self.server = client, server
        self.swallow = False

    def close(self) -> None:
        for writer in (self.client, self.server):
            writer.close()
