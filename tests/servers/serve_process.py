"""A real `smsgate serve` subprocess, for the tests that kill or signal it."""

import asyncio
import contextlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def start_serve(url: str, log: Path, listening: str = "SMPP",
                      *options: str) -> tuple[asyncio.subprocess.Process, int]:
    """Start `python -m smsgate.cli serve` on free ports (stderr appended to `log`) and
    return it with the port of its `<listening> listening on` line."""
    with log.open("ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgate.cli", "serve", "--database", url,
            "--smpp-port", "0", "--http-port", "0", "--admin-port", "0", "--log-level", "WARNING",
            *options,
            stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=ROOT)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            while True:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"serve exited early:\n{log.read_text()}")
                if line.startswith(f"{listening} listening on "):
                    return proc, int(line.rsplit(":", 1)[1])
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise


async def start_serve_ports(url: str, log: Path, *options: str, until: str = "HTTP"
                            ) -> tuple[asyncio.subprocess.Process, dict[str, int]]:
    """Like start_serve, with the port of every `<NAME> listening on` line up to
    `until`'s (SMPP and HTTP by default; "Admin" for all; `log` gets stderr)."""
    with log.open("ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgate.cli", "serve", "--database", url,
            "--smpp-port", "0", "--http-port", "0", "--admin-port", "0", *options,
            stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=ROOT)
    assert proc.stdout is not None
    ports: dict[str, int] = {}
    try:
        async with asyncio.timeout(30):
            while until not in ports:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"serve exited early:\n{log.read_text()}")
                name, found, address = line.partition(" listening on ")
                if found:
                    ports[name] = int(address.rsplit(":", 1)[1])
        return proc, ports
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
