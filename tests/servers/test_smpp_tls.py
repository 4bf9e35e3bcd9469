"""The optional SMPP TLS port (SPEC §2), over real sockets: the same server and sessions
behind an SSL transport, with a self-signed certificate made by trustme for each test.

TLS does not touch storage, so these tests run on SQLite only.
"""

import asyncio
import os
import re
import signal
import ssl
import sys
from pathlib import Path

import pytest
import smpplib.client
import trustme
from smpp_harness import (
    DEST,
    PASSWORD,
    SENDER,
    Harness,
    RawClient,
    fast_settings,
    prepare_database,
)

from smsgate.app import App
from smsgate.servers.tls import TlsConfigError, server_context
from smsgate.smpp.constants import CommandId, Status
from smsgate.smpp.pdu import Pdu

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> tuple[str, str]:
    """(certificate chain PEM, private key PEM) for 127.0.0.1 and localhost."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@pytest.fixture
async def tls_gateway(tmp_path: Path, cert_files: tuple[str, str]):
    """The gateway with its plain SMPP port and a TLS port, both ephemeral."""
    url = f"sqlite:///{tmp_path}/tls.db"
    await prepare_database(url)
    settings = fast_settings(url)
    settings.smpp_tls_port = 0
    settings.tls_cert, settings.tls_key = cert_files
    settings.smpp.tls_handshake_timeout = 2.0
    app = App(settings)
    await app.start()
    harness = Harness(app, url)
    try:
        yield harness
    finally:
        await harness.close_clients()
        await app.stop()


async def tls_client(gateway: Harness, context: ssl.SSLContext) -> RawClient:
    assert gateway.app.smpp.tls_address is not None
    host, port = gateway.app.smpp.tls_address
    reader, writer = await asyncio.open_connection(host, port, ssl=context,
                                                   server_hostname="localhost")
    client = RawClient(reader, writer)
    gateway.clients.append(client)
    return client


async def test_bind_and_submit_over_tls(tls_gateway, client_context):
    account = await tls_gateway.account()
    client = await tls_client(tls_gateway, client_context)
    assert client.writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    assert (await client.bind("trx", "acme")).status == Status.ESME_ROK
    response = await client.submit(text=b"Hello over TLS")
    assert response.status == Status.ESME_ROK
    message = await tls_gateway.message(response["message_id"])
    assert message.account_id == account.id and message.payload == b"Hello over TLS"
    assert tls_gateway.app.smpp.tls_address[1] != tls_gateway.port


async def test_plain_client_on_the_tls_port_is_dropped(tls_gateway, client_context):
    await tls_gateway.account()
    secure = await tls_client(tls_gateway, client_context)
    assert (await secure.bind("trx", "acme")).status == Status.ESME_ROK
    host, port = tls_gateway.app.smpp.tls_address
    # An SMPP bind in clear text where the server expects a TLS ClientHello.
    plain = RawClient(*await asyncio.open_connection(host, port))
    tls_gateway.clients.append(plain)
    bind = plain.send(Pdu(CommandId.bind_transmitter, fields={
        "system_id": "acme", "password": PASSWORD, "system_type": "",
        "interface_version": 0x34}))
    await plain.wait_closed(timeout=1.5)  # at once: not a ClientHello, no timeout needed
    with pytest.raises(ConnectionError):
        await bind
    # A client that says nothing is dropped after the handshake timeout (2 s here).
    silent = RawClient(*await asyncio.open_connection(host, port))
    tls_gateway.clients.append(silent)
    await silent.wait_closed(timeout=5)
    # Neither became a session; the TLS session and the plain port work on.
    assert len(tls_gateway.app.smpp.connections) == 1
    assert (await secure.submit()).status == Status.ESME_ROK
    clear = await tls_gateway.bound("tx")
    assert (await clear.submit()).status == Status.ESME_ROK


async def test_the_tls_port_shares_the_connection_caps(tls_gateway, client_context):
    await tls_gateway.account()
    tls_gateway.app.smpp.config.caps.max_per_ip = 2
    plain = await tls_gateway.bound("tx")
    secure = await tls_client(tls_gateway, client_context)
    assert (await secure.bind("tx", "acme")).status == Status.ESME_ROK
    for refused in (await tls_client(tls_gateway, client_context), await tls_gateway.client()):
        await refused.wait_closed(timeout=2)  # the third from 127.0.0.1, on either port
    assert tls_gateway.app.smpp.limiter.total == 2
    assert (await plain.submit()).status == (await secure.submit()).status == Status.ESME_ROK


async def test_client_that_does_not_trust_the_certificate_is_refused(tls_gateway):
    await tls_gateway.account()
    with pytest.raises(ssl.SSLCertVerificationError):
        await tls_client(tls_gateway, ssl.create_default_context())
    client = await tls_gateway.bound("tx")  # the server is unharmed
    assert (await client.submit()).status == Status.ESME_ROK


def _smpplib_submit(host: str, port: int, context: ssl.SSLContext) -> tuple:
    client = smpplib.client.Client(host, port, timeout=5, ssl_context=context,
                                   allow_unknown_opt_params=True)
    sent = []
    client.set_message_sent_handler(lambda pdu, **_: sent.append(pdu))
    client.connect()
    try:
        bind = client.bind_transmitter(system_id="acme", password=PASSWORD)
        client.send_message(source_addr_ton=5, source_addr_npi=0, source_addr=SENDER,
                            dest_addr_ton=1, dest_addr_npi=1, destination_addr=DEST,
                            short_message=b"Hello from smpplib over TLS")
        while not sent:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return bind, sent


async def test_smpplib_over_tls(tls_gateway, client_context):
    await tls_gateway.account()
    client_context.check_hostname = False  # smpplib wraps without server_hostname
    host, port = tls_gateway.app.smpp.tls_address
    bind, [resp] = await asyncio.to_thread(_smpplib_submit, host, port, client_context)
    assert bind.status == 0 and resp.status == 0
    message = await tls_gateway.message(resp.message_id.decode())
    assert message.payload == b"Hello from smpplib over TLS"


def test_server_context(cert_files, tmp_path):
    cert, key = cert_files
    assert server_context(cert, key).minimum_version == ssl.TLSVersion.TLSv1_2
    combined = tmp_path / "combined.pem"
    combined.write_text(Path(key).read_text() + Path(cert).read_text())
    server_context(str(combined))  # the key may sit in the certificate file
    with pytest.raises(TlsConfigError, match="does not exist"):
        server_context(str(tmp_path / "missing.pem"), key)
    with pytest.raises(TlsConfigError, match="cannot be used"):
        server_context(cert, cert)  # a certificate where the key should be
    other = trustme.CA().issue_cert("localhost").private_key_pem
    other.write_to_path(str(tmp_path / "other.key"))
    with pytest.raises(TlsConfigError, match="cannot be used"):
        server_context(cert, str(tmp_path / "other.key"))
    with pytest.raises(TlsConfigError, match="needs a certificate"):
        server_context("", "")


async def test_serve_prints_the_tls_port_last(tmp_path, cert_files, client_context):
    """The real `smsgate serve` (uvloop's SSL transport): three lines, in this order."""
    cert, key = cert_files
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgate.cli", "serve", "--database",
        f"sqlite:///{tmp_path}/serve.db", "--smpp-port", "0", "--http-port", "0",
        "--admin-port", "0",
        "--smpp-tls-port", "0", "--tls-cert", cert, "--tls-key", key,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while not (lines and lines[-1].startswith("SMPP TLS listening")):
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, f"serve exited: {lines}"
            lines.append(line.decode().rstrip("\n"))
        assert re.fullmatch(r"SMPP listening on 127\.0\.0\.1:\d+", lines[-3]), lines
        assert re.fullmatch(r"HTTP listening on 127\.0\.0\.1:\d+", lines[-2]), lines
        match = re.fullmatch(r"SMPP TLS listening on (127\.0\.0\.1):(\d+)", lines[-1])
        assert match, lines
        demo = re.search(r"system_id=(\S+) password=(\S+)", "\n".join(lines))
        assert demo, lines
        garbage = RawClient(*await asyncio.open_connection(match[1], int(match[2])))
        garbage.send_raw(b"\x00\x00\x00\x10" + os.urandom(12))
        await garbage.wait_closed(timeout=5)
        await garbage.close()
        reader, writer = await asyncio.open_connection(
            match[1], int(match[2]), ssl=client_context, server_hostname="localhost")
        client = RawClient(reader, writer)
        try:
            assert (await client.bind("tx", demo[1], demo[2])).status == Status.ESME_ROK
            assert (await client.submit()).status == Status.ESME_ROK
        finally:
            await client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
