"""What the abuse suite (issue 8, "Must show") shares: a real `smsgate serve` subprocess
on a fresh SQLite file, given small limits through a TOML `--config` where the defaults
would make a test slow; its memory and CPU time read from /proc; plain-socket clients
that play many source addresses (all of 127/8 is loopback); and the normal-customer
check that ends every scenario.

No mocks: the server is the real `smsgate serve` (tests/servers/serve_process.py), the
clients talk to it over real sockets, and what the tests assert is what a customer or
an operator would see: answers, closed sockets, latency, RSS, log size.
"""

import asyncio
import contextlib
import os
import re
import selectors
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from serve_process import start_serve
from smpp_harness import DEST, PASSWORD, SENDER, RawClient, password_hash, prepare_database

from smsgate.core.models import CREDIT_SCALE, Account
from smsgate.smpp.constants import CommandId, Status, Tag
from smsgate.smpp.pdu import Pdu
from smsgate.store import open_store

HOST = "127.0.0.1"
CUSTOMER = "customer"  # the normal customer, on 127.0.0.1: never an attacker's address
# The attackers' source addresses: 127.0.0.2 ... 127.0.0.254 (all of 127/8 is loopback).
ATTACKER_IPS = tuple(f"127.0.0.{n}" for n in range(2, 255))

# The normal customer's usual latency, with the suite's simulator (5-40 ms, see
# smpp_harness.SIM_CONFIG): measured 5-35 ms from submit_sm to its receipt, 1-3 ms for
# an HTTP submit, 1-2 ms for a bind (35-50 ms for the first, which runs scrypt), on a
# 2-core machine shared with other test runs. The bounds leave a wide margin for a
# loaded CI machine, and still tell "served" from "starved".
RECEIPT_LATENCY_BOUND = 2.0  # seconds, submit_sm sent -> deliver_sm receipt received
BIND_LATENCY_BOUND = 2.0  # seconds, connect + bind (the password is remembered or scrypt)
HTTP_LATENCY_BOUND = 2.0  # seconds, an HTTP submit's answer

MIB = 1024 * 1024


# -- the server -------------------------------------------------------------------------


def toml(settings: Mapping[str, Any]) -> str:
    """A TOML document for `settings` (plain values first, then nested tables)."""
    lines: list[str] = []
    _toml_table(settings, "", lines)
    return "\n".join(lines) + "\n"


def _toml_table(table: Mapping[str, Any], name: str, lines: list[str]) -> None:
    if name:
        lines.append(f"[{name}]")
    for key, value in table.items():
        if not isinstance(value, Mapping):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, Mapping):
            _toml_table(value, f"{name}.{key}" if name else key, lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


class ServedGateway:
    """A running `smsgate serve` and what can be read of it from outside."""

    def __init__(self, proc: asyncio.subprocess.Process, smpp_port: int, http_port: int,
                 log: Path) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.smpp_port = smpp_port
        self.http_port = http_port
        self.log = log

    @classmethod
    async def start(cls, tmp_path: Path, config: Mapping[str, Any],
                    accounts: Iterable[str] = (CUSTOMER,),
                    log_level: str = "INFO") -> "ServedGateway":
        """Serve a fresh SQLite database (fast simulator, catch-all route, the given
        accounts with PASSWORD and plenty of credit) with `config` as its --config."""
        url = f"sqlite:///{tmp_path}/abuse.db"
        await prepare_database(url)
        store = open_store(url)
        await store.open()
        try:
            for system_id in accounts:
                account = await store.add_account(Account(
                    system_id=system_id, password_hash=password_hash(PASSWORD),
                    created_at=time.time()))
                await store.adjust_balance(account.id, 1_000_000 * CREDIT_SCALE, "opening")
        finally:
            await store.close()
        config_file = tmp_path / "abuse.toml"
        config_file.write_text(toml(config))
        log = tmp_path / "serve.log"
        proc, smpp_port = await start_serve(url, log, "SMPP", "--config", str(config_file),
                                            "--log-level", log_level)
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        match = re.match(r"HTTP listening on .*:(\d+)$", line.strip())
        assert match, f"expected the HTTP port, got {line!r}"
        return cls(proc, smpp_port, int(match.group(1)), log)

    # -- what /proc says ----------------------------------------------------------------

    def _status(self, field: str) -> int:
        """A `kB` field of /proc/<pid>/status, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")

    def rss(self) -> int:
        """Resident memory now (VmRSS), bytes."""
        return self._status("VmRSS")

    def peak_rss(self) -> int:
        """The highest RSS since the last `reset_peak` (VmHWM), bytes."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        """Start VmHWM afresh at the current RSS (Linux: clear_refs 5)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process (all its threads), seconds."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def assert_alive(self) -> None:
        assert self.proc.returncode is None, \
            f"serve exited with {self.proc.returncode}:\n{self.log_text()[-5000:]}"

    async def stop(self) -> None:
        """SIGTERM, and the exit status must be 0 (no crash on the way out either)."""
        if self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError("serve did not stop within 20 s of SIGTERM") from None
        assert code == 0, f"serve exited with {code}:\n{self.log_text()[-5000:]}"


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, config: Mapping[str, Any],
                  accounts: Iterable[str] = (CUSTOMER,),
                  log_level: str = "INFO") -> AsyncIterator[ServedGateway]:
    """A `ServedGateway` for the block; stopped with SIGTERM (exit status 0 asserted)
    when the block succeeds, killed when it fails."""
    gw = await ServedGateway.start(tmp_path, config, accounts, log_level)
    try:
        yield gw
    except BaseException:
        if gw.proc.returncode is None:
            gw.proc.kill()
            await gw.proc.wait()
        raise
    await gw.stop()


# -- the normal customer ----------------------------------------------------------------


@dataclass
class CustomerFigures:
    bind: float  # seconds: connect and bind (both sessions for Tx+Rx)
    receipt: float  # seconds: submit_sm sent -> its deliver_sm receipt received
    http: float  # seconds: an HTTP submit's answer
    rss: int  # the server's RSS after all that, bytes

    def __str__(self) -> str:
        return (f"bind {self.bind * 1000:.0f} ms, receipt {self.receipt * 1000:.0f} ms, "
                f"http {self.http * 1000:.0f} ms, rss {self.rss / MIB:.1f} MiB")


async def normal_customer(gw: ServedGateway, rss_bound: int, mode: str = "trx",
                          source: str = HOST) -> CustomerFigures:
    """A normal customer binds (TRx, or Tx + Rx), submits with registered_delivery and
    gets its receipt within RECEIPT_LATENCY_BOUND; an HTTP submit answers within
    HTTP_LATENCY_BOUND; and the server's RSS is under `rss_bound`."""
    gw.assert_alive()
    started = time.monotonic()
    clients: list[RawClient] = []
    try:
        for kind in (("trx",) if mode == "trx" else ("rx", "tx")):
            client = await RawClient.connect(HOST, gw.smpp_port, source)
            clients.append(client)
            response = await client.bind(kind, CUSTOMER)
            assert response.status == Status.ESME_ROK, f"bind {kind}: 0x{response.status:x}"
        bound = time.monotonic()
        receiver, sender = clients[0], clients[-1]
        answer = await sender.submit(registered_delivery=1)
        assert answer.status == Status.ESME_ROK, f"submit_sm: 0x{answer.status:x}"
        await _receipt_of(receiver, answer["message_id"], RECEIPT_LATENCY_BOUND)
        received = time.monotonic()
        for client in clients:
            unbound = await client.request(Pdu(CommandId.unbind))
            assert unbound.status == Status.ESME_ROK
    finally:
        for client in clients:
            await client.close()
    figures = CustomerFigures(bind=bound - started, receipt=received - bound,
                              http=await _http_submit(gw, source), rss=gw.rss())
    assert figures.bind < BIND_LATENCY_BOUND, figures
    assert figures.receipt < RECEIPT_LATENCY_BOUND, figures
    assert figures.http < HTTP_LATENCY_BOUND, figures
    assert figures.rss < rss_bound, f"{figures}: over {rss_bound / MIB:.0f} MiB"
    print(f"normal customer ({mode}): {figures}")
    return figures


async def _receipt_of(client: RawClient, message_id: str, timeout: float) -> Pdu:
    """The deliver_sm receipt of `message_id` (answered ESME_ROK)."""
    async with asyncio.timeout(timeout):
        while True:
            pdu = await client.requests.get()
            if pdu.command_id != CommandId.deliver_sm:
                continue
            client.respond(pdu)
            if pdu.tlv(Tag.receipted_message_id) == message_id:
                assert pdu["esm_class"] & 0x04, pdu
                return pdu


async def _http_submit(gw: ServedGateway, source: str) -> float:
    started = time.monotonic()
    params = {"user": CUSTOMER, "pass": PASSWORD, "sid": SENDER, "mno": DEST, "type": "1",
              "text": "hello"}
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        url = f"http://{HOST}:{gw.http_port}/websmpp/websms"
        async with session.get(url, params=params) as response:
            body = await response.text()
    assert response.status == 200 and re.fullmatch(r"Response: \d+", body), body
    return time.monotonic() - started


# -- plain sockets ----------------------------------------------------------------------


def connect_from(source: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A blocking TCP connection to HOST:port from the loopback address `source`."""
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect((HOST, port))
    return sock


def connect_unless_reset(source: str, port: int) -> socket.socket | None:
    """connect_from, or None when the server aborted the connection before the
    connect returned: with a timeout set, Python connects without blocking, polls,
    then reads SO_ERROR, so a server that accepts and resets at once can make the
    connect itself fail with ECONNRESET (seen in CI)."""
    try:
        return connect_from(source, port)
    except ConnectionResetError:
        return None


@dataclass
class IdleConnections:
    """Connections that say nothing, with the time.monotonic() each was opened at."""

    socks: list[socket.socket]
    opened: list[float]

    def lifetimes(self, timeout: float) -> list[float | None]:
        """Wait up to `timeout` s for the server to close them all: how long each
        lived (None: still open)."""
        closed = closed_within(self.socks, timeout)
        return [None if end is None else end - start
                for start, end in zip(self.opened, closed, strict=True)]

    def close(self) -> None:
        close_all(self.socks)


def open_idle(port: int, sources: Iterable[str], per_source: int) -> IdleConnections:
    """`per_source` connections from each source address, that then say nothing."""
    idle = IdleConnections([], [])
    for source in sources:
        for _ in range(per_source):
            idle.socks.append(connect_from(source, port))
            idle.opened.append(time.monotonic())
    return idle


def refused_at_once(port: int, source: str, within: float = 3.0) -> float | None:
    """Connect from `source`; the seconds until the server dropped the connection
    (EOF or RST) without a byte of answer, or None if it was still open `within`."""
    sock = connect_unless_reset(source, port)
    if sock is None:
        return 0.0
    with sock:
        started = time.monotonic()
        closed = closed_within([sock], within)[0]
        return None if closed is None else closed - started


def closed_within(socks: list[socket.socket], timeout: float) -> list[float | None]:
    """Wait up to `timeout` s for the server to close each socket (it becomes readable
    and reads EOF or RST; data the server sends first is read and dropped). Returns,
    per socket, the time.monotonic() at which it was seen closed, or None."""
    deadline = time.monotonic() + timeout
    result: list[float | None] = [None] * len(socks)
    with selectors.DefaultSelector() as selector:
        for index, sock in enumerate(socks):
            selector.register(sock, selectors.EVENT_READ, index)
        left = len(socks)
        while left and (remaining := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(remaining):
                if _drained(key.fileobj):  # type: ignore[arg-type]
                    result[key.data] = time.monotonic()
                    selector.unregister(key.fileobj)
                    left -= 1
    return result


def _drained(sock: socket.socket) -> bool:
    """Read what is there; True once the peer has closed (EOF or reset)."""
    try:
        data = sock.recv(65536, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:  # ConnectionResetError: an abort
        return True
    return not data


def close_all(socks: Iterable[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


def http_exchange(port: int, data: bytes | Iterable[bytes], source: str = HOST,
                  pause: float = 0.0, timeout: float = 30.0) -> tuple[bytes, float]:
    """Send `data` (pieces `pause` s apart), then read until the server closes. Returns
    what came back and the seconds from the first byte sent to the close. Writing
    stops, without error, once the server has dropped the connection."""
    pieces = [data] if isinstance(data, bytes) else list(data)
    answer = b""
    with connect_from(source, port, timeout) as sock:
        started = time.monotonic()
        for index, piece in enumerate(pieces):
            if index and pause:
                time.sleep(pause)
            try:
                sock.sendall(piece)
            except OSError:  # dropped by the server meanwhile
                break
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer, time.monotonic() - started


def http_answer(answer: bytes) -> tuple[int, bytes]:
    """(status code, body) of the one HTTP answer in `answer`."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
    return status, body
