"""Helpers for the end-to-end tests: real `smsgate serve` processes, the operator CLI,
the customers' side (HTTP API, SMPP Tx + Rx, a dlrurl receiver) and plain reads of a
gateway's database. Everything goes over real TCP between real processes.

Every process a test starts is registered in a `Processes` group, which kills what is
still running when the test ends, whether it passed or not.
"""

import asyncio
import contextlib
import signal
import socket
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cli_runner import CliRunner
from smpp_harness import RawClient, submit_sm
from smpp_harness import eventually as poll_until
from smpp_harness import free_port as free_port  # re-exported for the e2e tests
from smpp_harness import reserve_port as reserve_port  # re-exported for the e2e tests

from smsgate.smpp.constants import CommandId, Status, Tag
from smsgate.smpp.pdu import Pdu
from smsgate.store import sqlite_path

ROOT = Path(__file__).resolve().parents[2]
SINK = ROOT / "bench" / "sink_smsc.py"
CLI = CliRunner()  # closed at the session's end (conftest.py)


async def eventually(check: Callable[[], Any], timeout: float, interval: float = 0.1,
                     what: str = "condition") -> Any:
    """smpp_harness.eventually, polling less often: e2e checks read a database or files
    of other processes."""
    return await poll_until(check, timeout, interval, what)


class Processes:
    """The test's subprocesses: killed at the end if still running."""

    def __init__(self) -> None:
        self.running: list[asyncio.subprocess.Process] = []

    def add(self, proc: asyncio.subprocess.Process) -> asyncio.subprocess.Process:
        self.running.append(proc)
        return proc

    async def kill_all(self) -> None:
        for proc in self.running:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self.running.clear()


async def cli(url: str, *commands: Sequence[str]) -> str:
    """Run operator CLI commands (`smsgate ...` argv lists) on `url`, each in a process
    of its own forked by the CLI runner (tests/cli_runner.py: no interpreter start per
    command); any failing command fails the test. Their stdout, one after the other."""
    out = []
    for command in commands:
        result = await asyncio.to_thread(CLI.run, [*command, "--database", url])
        assert result.returncode == 0, (f"CLI failed: smsgate {' '.join(command)}: exit "
                                        f"{result.returncode}\n{result.stderr}{result.stdout}")
        out.append(result.stdout)
    return "".join(out)


class Gateway:
    """One `smsgate serve` process on its own database; its stderr goes to `log`."""

    def __init__(self, name: str, url: str, log: Path, processes: Processes,
                 options: Sequence[str] = ()) -> None:
        self.name, self.url, self.log, self.processes = name, url, log, processes
        self.options = list(options)
        self.proc: asyncio.subprocess.Process | None = None
        self.smpp_port = self.http_port = self.admin_port = 0

    async def start(self, same_ports: bool = False) -> "Gateway":
        """Start serve; on free ports, or on the ports of the previous run."""
        smpp, http = (self.smpp_port, self.http_port) if same_ports else (0, 0)
        with self.log.open("ab") as stderr:
            proc = self.processes.add(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "smsgate.cli", "serve", "--database", self.url,
                "--smpp-port", str(smpp), "--http-port", str(http), "--admin-port", "0",
                "--log-level", "WARNING", "--node-id", self.name, *self.options,
                stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=ROOT))
        ports: dict[str, int] = {}
        async with asyncio.timeout(60):
            while len(ports) < 3:  # Admin's line comes last
                line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
                if not line:
                    raise AssertionError(f"{self.name}: serve exited early:\n"
                                         f"{self.log.read_text()[-3000:]}")
                for kind in ("SMPP", "HTTP", "Admin"):
                    if line.startswith(f"{kind} listening on "):
                        ports[kind] = int(line.rsplit(":", 1)[1])
        self.proc, self.smpp_port, self.http_port = proc, ports["SMPP"], ports["HTTP"]
        self.admin_port = ports["Admin"]
        return self

    async def kill(self) -> None:
        """kill -9."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> None:
        """SIGTERM: unbind, flush, exit (killed if that takes more than 20 s)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"{self.name} did not stop on SIGTERM") from None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def cli(self, *commands: Sequence[str]) -> str:
        return await cli(self.url, *commands)

    async def rows(self, sql: str) -> list[tuple]:
        return await rows(self.url, sql)


async def rows(url: str, sql: str) -> list[tuple]:
    """A query on a gateway's database (plain SQL, no parameters), while it runs."""
    path = sqlite_path(url)
    if path is not None:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=10)) as db:
            return db.execute(sql).fetchall()
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def start_sink(processes: Processes, *options: str,
                     reserved: socket.socket | None = None) -> int:
    """bench/sink_smsc.py, an SMSC that answers at once, in a process of its own (with
    its `options`, e.g. --record FILE), on the `reserved` port if any; returns the port
    it listens on."""
    if reserved is not None:
        options = ("--port", str(reserved.getsockname()[1]), "--reuse-port", *options)
    sink = processes.add(await asyncio.create_subprocess_exec(
        sys.executable, str(SINK), *options,
        stdout=asyncio.subprocess.PIPE))
    ready = (await asyncio.wait_for(sink.stdout.readline(), 30)).decode()  # type: ignore[union-attr]
    assert ready.startswith("READY "), ready
    return int(ready.split()[1])


def recorded(record: Path) -> Counter[bytes]:
    """The texts a sink started with `--record record` was sent, with their counts."""
    return Counter(record.read_bytes().splitlines()) if record.exists() else Counter()


# -- the customer's side ----------------------------------------------------------------


async def http_get(session: aiohttp.ClientSession, url: str, **params: Any) -> str:
    async with session.get(url, params=params) as response:
        assert response.status == 200, response.status
        return await response.text()


def ids_of(answer: str) -> list[str]:
    assert answer.startswith("Response: "), answer
    return answer.removeprefix("Response: ").split(",")


class DlrReceiver:
    """The customer's dlrurl endpoint: records every callback's query parameters."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> "DlrReceiver":
        async def dlr(request: web.Request) -> web.Response:
            self.calls.append(dict(request.query))
            return web.Response(text="OK")

        app = web.Application()
        app.router.add_get("/dlr", dlr)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/dlr"
        return self

    def statuses(self, message_id: str) -> list[str]:
        return [c["status"] for c in self.calls if c.get("id") == message_id]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def customer_tx_rx(port: int, system_id: str, password: str
                         ) -> tuple[RawClient, RawClient]:
    """A customer's transmitter and receiver sessions, bound."""
    tx = await RawClient.connect("127.0.0.1", port)
    rx = await RawClient.connect("127.0.0.1", port)
    for client, kind in ((tx, "tx"), (rx, "rx")):
        answer = await client.bind(kind, system_id, password)
        assert answer.status == Status.ESME_ROK, f"bind {kind}: 0x{answer.status:x}"
    return tx, rx


async def next_receipt(rx: RawClient, timeout: float) -> Pdu:
    """The next deliver_sm on a receiver session, answered ESME_ROK."""
    while True:
        pdu = await rx.next_request(timeout)
        if pdu.command_id == CommandId.deliver_sm:
            rx.respond(pdu)
            return pdu


def receipted_id(pdu: Pdu) -> str:
    value = pdu.tlv(Tag.receipted_message_id)
    if isinstance(value, bytes | bytearray):
        value = bytes(value).rstrip(b"\0").decode()
    return str(value)


FLOOD_CUSTOMER, FLOOD_PASSWORD = "flood", "flood-pw-1"


class Flood:
    """Customer transmitters keeping `outstanding` submit_sm each, every text its own
    (`prefix` and a count), until their gateway dies, unbinds them, or `stop()`."""

    def __init__(self, sessions: int = 2, outstanding: int = 32, prefix: bytes = b"k") -> None:
        self.sessions, self.outstanding, self.prefix = sessions, outstanding, prefix
        self.acked: dict[str, bytes] = {}  # the gateway's id -> text
        self.refused: Counter[int] = Counter()
        self.count = 0
        self.unbinds = 0  # sessions the gateway ended with an unbind (answered)
        self._stopping = False

    async def run(self, port: int) -> None:
        await asyncio.gather(*(self._session(port) for _ in range(self.sessions)))

    def stop(self) -> None:
        """Send no more; `run` returns once what was sent is answered."""
        self._stopping = True

    async def _session(self, port: int) -> None:
        client = await RawClient.connect("127.0.0.1", port)
        try:
            bound = await client.bind("tx", FLOOD_CUSTOMER, FLOOD_PASSWORD)
            assert bound.status == Status.ESME_ROK
            slots = asyncio.Semaphore(self.outstanding)
            unbound = asyncio.ensure_future(self._await_unbind(client))
            while not client.eof.is_set() and not self._stopping and not unbound.done():
                await slots.acquire()
                self.count += 1
                text = self.prefix + b"%07d" % self.count
                future = client.send(submit_sm(f"4477{self.count:08d}", text))
                future.add_done_callback(lambda f, t=text: self._answered(f, t, slots))
            if self._stopping:  # every answer in
                for _ in range(self.outstanding):
                    await asyncio.wait_for(slots.acquire(), 30)
            else:
                await client.eof.wait()
            unbound.cancel()
        finally:
            await client.close()

    async def _await_unbind(self, client: RawClient) -> None:
        """Answer the gateway's unbind (it ends the session) and count it."""
        while True:
            request = await client.requests.get()
            if request.command_id == CommandId.unbind:
                self.unbinds += 1
                client.respond(request)
                return

    def _answered(self, future: asyncio.Future, text: bytes, slots) -> None:
        slots.release()
        if future.cancelled() or future.exception() is not None:
            return  # no answer before the kill: not acknowledged
        answer = future.result()
        if answer.status == Status.ESME_ROK:
            self.acked[answer["message_id"]] = text
        else:
            self.refused[answer.status] += 1
