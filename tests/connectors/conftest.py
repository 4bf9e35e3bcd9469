"""Fixtures for the SMPP connector tests: upstreams to bind to, over real TCP.

- `gateway`: our own smsgate (a real App, SQLite: the backend is not what these tests
  are about), the servers' harness reused from tests/servers/smpp_harness.py;
- `tls_gateway`: the same with its SMPP TLS port, certificate from a trustme CA;
- `raw_smsc`: the steerable raw SMSC of upstream_harness.py;
- `smpp34_server`: PyPI smpp34, an SMPP implementation independent of ours.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))

from smpp_harness import Harness, fast_settings, free_port, prepare_database
from upstream_harness import RawSmsc

from smsgate.app import App


async def _gateway(tmp_path: Path, tls: tuple[str, str] | None = None):
    url = f"sqlite:///{tmp_path}/upstream.db"
    await prepare_database(url)
    settings = fast_settings(url)
    if tls is not None:
        settings.smpp_tls_port = 0
        settings.tls_cert, settings.tls_key = tls
    app = App(settings)
    app.receipts._poll_seconds = 0.1  # retry stored receipts quickly
    await app.start()
    return Harness(app, url)


@pytest.fixture
async def gateway(tmp_path: Path):
    """A running smsgate to use as the upstream SMSC (its simulator makes receipts)."""
    harness = await _gateway(tmp_path)
    try:
        yield harness
    finally:
        await harness.app.stop()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_gateway(tmp_path: Path, ca: trustme.CA):
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    harness = await _gateway(tmp_path, (str(cert_path), str(key_path)))
    try:
        yield harness
    finally:
        await harness.app.stop()


@pytest.fixture
async def raw_smsc():
    smsc = await RawSmsc().start()
    try:
        yield smsc
    finally:
        await smsc.close()


@dataclass
class Smpp34:
    server: Any  # smpp34.Server
    port: int


@pytest.fixture
async def smpp34_server():
    """An smpp34 SMSC on a free port (it binds anyone); the test reads its events."""
    smpp34 = pytest.importorskip("smpp34")
    port = free_port()
    server = smpp34.Server(host="127.0.0.1", port=port, system_id="s34")
    await server.start()
    try:
        yield Smpp34(server, port)
    finally:
        await server.stop()
