"""What the benchmarks share: a bench account on a fresh database, a real `smsgate serve`
subprocess on ephemeral ports, and /proc readings of its RSS and CPU time."""

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smsgate.app import seed  # noqa: E402
from smsgate.core.accounts import hash_password  # noqa: E402
from smsgate.core.models import CREDIT_SCALE, Account  # noqa: E402
from smsgate.core.ports import Conflict  # noqa: E402
from smsgate.store import open_store  # noqa: E402

SYSTEM_ID, PASSWORD = "bench", "bench-pw"
CREDITS = 1_000_000_000


async def prepare(url: str, max_tx: int = 10) -> None:
    """Schema, seed, and the bench account with plenty of credits and no TPS limit."""
    store = open_store(url)
    await store.open()
    try:
        await store.migrate()
        await seed(store)
        try:
            account = await store.add_account(Account(
                system_id=SYSTEM_ID, password_hash=hash_password(PASSWORD), tps=0,
                max_tx=max_tx, created_at=time.time()))
        except Conflict:  # a database used before: top it up
            account = await store.get_account(SYSTEM_ID)
            assert account is not None
        await store.adjust_balance(account.id, CREDITS * CREDIT_SCALE, "bench credit")
    finally:
        await store.close()


async def start_server(url: str, protocol: str, *options: str,
                       log: Path | None = None) -> tuple[asyncio.subprocess.Process, int]:
    """Start `smsgate serve`; returns it and the port of `protocol` ("SMPP" or "HTTP").
    Its warnings go to our stderr, or everything from INFO up to `log`."""
    proc, ports = await start_server_ports(url, *options, log=log)
    return proc, ports[protocol]


async def start_server_ports(url: str, *options: str, log: Path | None = None
                             ) -> tuple[asyncio.subprocess.Process, dict[str, int]]:
    """`start_server`, returning every port it listens on, by name ("SMPP", "HTTP",
    "Admin", ...)."""
    level = "INFO" if log else "WARNING"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgate.cli", "serve", "--database", url, "--smpp-port", "0",
        "--http-port", "0", "--admin-port", "0", "--log-level", level, *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=log.open("ab") if log else None, cwd=ROOT)
    assert proc.stdout is not None
    ports: dict[str, int] = {}
    async with asyncio.timeout(60):
        while "Admin" not in ports:  # the last of serve's `... listening on` lines
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise SystemExit(f"serve exited with {await proc.wait()}")
            if match := re.match(r"(.+) listening on (.+):(\d+)", line):
                ports[match.group(1)] = int(match.group(3))
    return proc, ports


async def metrics(port: int, family: str) -> dict[tuple[str, str], float]:
    """The samples of metric `family` on the server's /metrics (HTTP port), by sample
    name and `le` label ("" for samples without one)."""
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return {(sample.name, sample.labels.get("le", "")): sample.value
            for found in text_string_to_metric_families(text) if found.name == family
            for sample in found.samples}


async def stop_server(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM (serve unbinds and flushes), SIGKILL if it takes over 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def banner(proc: asyncio.subprocess.Process, url: str, load: str) -> str:
    """The first line of a bench's output: what ran where."""
    backend = "postgresql" if url.startswith("postgres") else "sqlite"
    return (f"smsgate serve (pid {proc.pid}) on {backend}, {load}, {os.cpu_count()} CPUs, "
            f"python {sys.version.split()[0]}")


def run(main_async) -> None:
    """Run the bench's coroutine on uvloop when installed (as `serve` does)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async)
    else:
        uvloop.run(main_async)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of `pid` so far, by thread name (the event loop is
    "loop"; same-named threads summed)."""
    seconds: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "loop" if task.name == str(pid) else (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        seconds[name] = seconds.get(name, 0.0) + ticks / os.sysconf("SC_CLK_TCK")
    return seconds


def family(pid: int) -> list[int]:
    """`pid` and its children: a `serve --workers N` is its supervisor and N workers."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(p for child in children for p in family(int(child)))]


def rss_mib(pid: int) -> float:
    """Resident memory of the server, its workers included."""
    total = 0
    for member in family(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def open_files(pid: int) -> int:
    """File descriptors the server (its workers included) holds."""
    return sum(len(os.listdir(f"/proc/{member}/fd")) for member in family(pid))


def cpu_seconds(pid: int) -> float:
    """CPU time of the server so far, its workers' (running or ended) included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for child in family(pid)[1:]:
        child_fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(child_fields[11]) + int(child_fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
