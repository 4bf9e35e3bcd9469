"""Helpers for the SMPP server tests: a real `App` on an ephemeral port, in this process's
event loop, on each storage backend; and a raw SMPP client over asyncio streams.

Everything goes over real TCP to the real server: no mock of the network, the database
or the protocol peer. `store_url` (tests/conftest.py) gives a fresh database per test,
once on SQLite and once on PostgreSQL (skipped with a reason when none is reachable).
"""

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from smsgate.app import App, Settings
from smsgate.core.accounts import hash_password
from smsgate.core.models import CREDIT_SCALE, Account, Connector, Message, Route
from smsgate.servers.smpp_server import SmppServerConfig
from smsgate.smpp.codec import Codec
from smsgate.smpp.constants import RESPONSE_BIT, CommandId, Status
from smsgate.smpp.pdu import Pdu
from smsgate.store import open_store

PASSWORD = "secret12"
PRICE = CREDIT_SCALE  # the seeded catch-all route: 1 credit per part
DEST = "447700900001"
SENDER = "Acme"
# The simulator finishes every message within this many ms (the default is 50-500).
SIM_CONFIG = {"min_latency_ms": 5, "max_latency_ms": 40}

_hashes: dict[str, str] = {}


def password_hash(password: str) -> str:
    """scrypt costs ~50 ms; one hash per password per test run is enough."""
    if password not in _hashes:
        _hashes[password] = hash_password(password)
    return _hashes[password]


def free_port() -> int:
    """A loopback port nothing listens on now, for a server bound at once (one to start
    later: reserve_port, which no other socket can take meanwhile)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reserve_port() -> socket.socket:
    """A loopback port held for a server that starts later: bound (with SO_REUSEPORT, so
    that another process may bind it too), not listening. Connections to it are refused
    meanwhile, and no other socket can take it, as an outgoing connection's ephemeral
    port once took a port probed free (CI: address already in use). Listen on it
    (aiohttp's SockSite) or have the process bind it with SO_REUSEPORT, then close it."""
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    held.bind(("127.0.0.1", 0))
    return held


async def eventually(check: Callable[[], Any], timeout: float = 5.0,
                     interval: float = 0.02, what: str = "condition") -> Any:
    """Poll a check (plain or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


class RawClient:
    """A minimal SMPP peer: writes PDUs (or raw bytes), matches responses by sequence.

    Requests from the server (deliver_sm, enquire_link, unbind) go to `requests`;
    enquire_link is answered at once, the others only when the test says so.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.codec = Codec(field_limits={"password": 100})  # long passwords allowed
        self.requests: asyncio.Queue[Pdu] = asyncio.Queue()
        self.unmatched: list[Pdu] = []  # responses nobody waited for
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self._sequence = 0
        self.eof = asyncio.Event()
        self.answer_enquire_link = True
        self.enquire_links = 0  # enquire_link requests received from the server
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, host: str, port: int, source: str | None = None) -> "RawClient":
        """Connect, from the loopback address `source` if given (all of 127/8 is
        loopback, so tests can play several client IPs)."""
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        return cls(reader, writer)

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _read(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(4)
                length = int.from_bytes(header, "big")
                pdu = self.codec.decode(header + await self.reader.readexactly(length - 4))
                if pdu.command_id & RESPONSE_BIT:
                    future = self._waiting.pop(pdu.sequence, None)
                    if future is not None and not future.done():
                        future.set_result(pdu)
                    else:
                        self.unmatched.append(pdu)
                elif pdu.command_id == CommandId.enquire_link:
                    self.enquire_links += 1
                    if self.answer_enquire_link:
                        self.respond(pdu)
                else:
                    self.requests.put_nowait(pdu)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.eof.set()
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("server closed the connection"))
                    future.exception()  # retrieved: a test may not wait for every answer
            self._waiting.clear()

    # -- sending -----------------------------------------------------------------------

    def send(self, pdu: Pdu) -> asyncio.Future[Pdu]:
        """Write a request; the future gets its response."""
        if pdu.sequence == 0:
            pdu.sequence = self.next_sequence()
        return self.send_raw(self.codec.encode(pdu), pdu.sequence)

    def send_raw(self, data: bytes, sequence: int | None = None) -> asyncio.Future[Pdu]:
        future = asyncio.get_running_loop().create_future()
        if sequence is not None:
            self._waiting[sequence] = future
        if self.eof.is_set():
            future.set_exception(ConnectionError("connection closed"))
        else:
            self.writer.write(data)
        return future

    def pipeline(self, pdus: list[Pdu]) -> list[asyncio.Future[Pdu]]:
        """Write several requests in one write (numbered here if not yet); the futures
        get their responses."""
        loop = asyncio.get_running_loop()
        futures = []
        for pdu in pdus:
            if pdu.sequence == 0:
                pdu.sequence = self.next_sequence()
            futures.append(self._waiting.setdefault(pdu.sequence, loop.create_future()))
        self.send_raw(b"".join(self.codec.encode(p) for p in pdus))
        return futures

    async def request(self, pdu: Pdu, timeout: float = 5.0) -> Pdu:
        return await asyncio.wait_for(self.send(pdu), timeout)

    def respond(self, request: Pdu, status: int = Status.ESME_ROK, **fields: Any) -> None:
        self.writer.write(self.codec.encode(request.response(status, **fields)))

    async def next_request(self, timeout: float = 5.0) -> Pdu:
        return await asyncio.wait_for(self.requests.get(), timeout)

    # -- conveniences ------------------------------------------------------------------

    async def bind(self, kind: str, system_id: str, password: str = PASSWORD) -> Pdu:
        command = {"tx": CommandId.bind_transmitter, "rx": CommandId.bind_receiver,
                   "trx": CommandId.bind_transceiver}[kind]
        return await self.request(Pdu(command, fields={
            "system_id": system_id, "password": password, "system_type": "",
            "interface_version": 0x34}))

    async def submit(self, destination: str = DEST, text: bytes = b"Hello", **fields: Any) -> Pdu:
        return await self.request(submit_sm(destination, text, **fields))

    async def wait_closed(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.eof.wait(), timeout)

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def submit_sm(destination: str = DEST, text: bytes = b"Hello", **fields: Any) -> Pdu:
    base = {"source_addr_ton": 5, "source_addr_npi": 0, "source_addr": SENDER,
            "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": destination,
            "short_message": text}
    return Pdu(CommandId.submit_sm, fields=base | fields)


class Harness:
    """A running gateway plus helpers to make accounts and clients."""

    def __init__(self, app: App, url: str) -> None:
        self.app = app
        self.url = url
        self.host, self.port = app.smpp.address
        self.clients: list[RawClient] = []

    @property
    def store(self):
        return self.app.store

    async def account(self, system_id: str = "acme", password: str = PASSWORD,
                      credits: int = 1000, **fields: Any) -> Account:
        account = await self.store.add_account(Account(
            system_id=system_id, password_hash=password_hash(password),
            created_at=time.time(), **fields))
        if credits:
            await self.store.adjust_balance(account.id, credits * CREDIT_SCALE,
                                            "opening balance")
        return account

    async def client(self, source: str | None = None) -> RawClient:
        client = await RawClient.connect(self.host, self.port, source)
        self.clients.append(client)
        return client

    async def bound(self, kind: str = "trx", system_id: str = "acme",
                    password: str = PASSWORD, source: str | None = None) -> RawClient:
        client = await self.client(source)
        response = await client.bind(kind, system_id, password)
        assert response.status == Status.ESME_ROK, f"bind {kind}: 0x{response.status:x}"
        return client

    async def message(self, message_id: str | int) -> Message:
        message = await self.store.get_message(int(message_id))
        assert message is not None, f"message {message_id} is not in the store"
        return message

    async def balance(self, account_id: int) -> int:
        account = await self.store.get_account_by_id(account_id)
        assert account is not None
        return account.balance

    async def receipts(self, account_id: int) -> list:
        """Receipts still stored for the account (whatever their retry time)."""
        return await self.store.pending_receipts(account_id, time.time() + 3600, 1000)

    def connection(self, client: RawClient):
        """The server's side of `client`'s connection."""
        ip, port = client.writer.get_extra_info("sockname")[:2]
        [connection] = [c for c in self.app.smpp.connections if c.peer == f"{ip}:{port}"]
        return connection

    async def close_clients(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients.clear()
        # Let the server see the disconnects, so that stop() need not unbind anyone.
        deadline = time.monotonic() + 2
        while self.app.smpp.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


async def prepare_database(url: str) -> None:
    """Schema plus a fast simulator and a catch-all route at 1 credit per part (what
    `seed` would create, with the simulator's latency cut so that tests run fast)."""
    store = open_store(url)
    await store.open()
    try:
        await store.migrate()
        await store.add_connector(Connector("simulator", "simulator", dict(SIM_CONFIG)))
        await store.add_route(Route(prefix="", connector="simulator", price=PRICE))
    finally:
        await store.close()


def fast_settings(url: str) -> Settings:
    return Settings(database_url=url, host="127.0.0.1", smpp_port=0, http_port=0, admin_port=0,
                    node_id="test", smpp=SmppServerConfig(response_timeout=2.0))


