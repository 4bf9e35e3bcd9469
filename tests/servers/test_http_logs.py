"""Issue 8, item 9: no secret and no traceback in the log for the requests a careless or
hostile client sends: a 100 KB GET with `pass=` in it, ids out of range, bodies and
queries that are not UTF-8. In this process (caplog: every record of every logger) and
in a real `smsgate serve` (its stderr)."""

import asyncio
import logging
import socket

from http_harness import PASSWORD, USER, api_fixture, submit_params  # noqa: F401
from serve_process import start_serve
from smpp_harness import password_hash, prepare_database

from smsgate.core.errors import Err
from smsgate.core.models import Account
from smsgate.store import open_store

SECRET = "Hunter2Secret"
HTTP16 = Err.BAD_REQUEST.http_line


def raw_request(port: int, data: bytes) -> bytes:
    """Send `data`, read until the server closes (a blocking client: run in a thread)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def bad_requests() -> list[tuple[bytes, bytes]]:
    """(request, the answer's body) pairs: each is refused with HTTP16 or HTTP08."""
    long_get = (f"GET /websmpp/websms?user={USER}&pass={SECRET}&text=".encode()
                + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    body = f"user={USER}&pass={SECRET}&text=caf\xe9".encode("latin-1")
    latin1_form = (b"POST /websmpp/websms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
    escaped_form_body = f"user={USER}&pass={SECRET}&text=caf%E9".encode()
    escaped_form = (b"POST /websmpp/websms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(escaped_form_body) + escaped_form_body)
    query = f"GET /websmpp/websms?user={USER}&pass={SECRET}&text=caf%E9 HTTP/1.1\r\n"
    raw_query = f"GET /websmpp/websms?user={USER}&pass={SECRET}&text=caf".encode() + \
        b"\xe9 HTTP/1.1\r\nHost: x\r\n\r\n"
    http08 = Err.BAD_MESSAGE_ID.http_line.encode()
    return [
        (long_get, HTTP16.encode()),
        (latin1_form, HTTP16.encode()),
        (escaped_form, HTTP16.encode()),
        (query.encode() + b"Host: x\r\nConnection: close\r\n\r\n", HTTP16.encode()),
        (raw_query, HTTP16.encode()),
        (b"GET /websmpp/websmsstatus?respId=9999999999999999999 HTTP/1.1\r\nHost: x\r\n"
         b"Connection: close\r\n\r\n", http08),
        (b"GET /websmpp/websmsstatus?respId=%C2%B2 HTTP/1.1\r\nHost: x\r\n"
         b"Connection: close\r\n\r\n", http08),
    ]


async def send_bad_requests(port: int) -> None:
    for request, expected in bad_requests():
        answer = await asyncio.to_thread(raw_request, port, request)
        assert answer.endswith(expected), (request[:60], answer[-200:])


async def test_bad_requests_are_answered_without_secret_or_traceback_in_the_log(api, caplog):
    await api.seed_account()
    caplog.set_level(logging.DEBUG)
    await send_bad_requests(api.app.http.address[1])
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert record.exc_info is None and record.levelno < logging.ERROR, record.getMessage()
    # aiohttp's own loggers (and ours) carry the filter: whatever they may log later
    logging.getLogger("aiohttp.server").error("request /x?user=a&pass=%s", SECRET)
    logging.getLogger("smsgate.servers.http_api").warning("dlrurl /?token=%s", SECRET)
    assert SECRET not in caplog.text


async def test_a_real_serve_logs_no_secret_and_no_traceback(tmp_path):
    url = f"sqlite:///{tmp_path}/smsgate.db"
    await prepare_database(url)
    store = open_store(url)
    await store.open()
    await store.add_account(Account(system_id=USER, password_hash=password_hash(PASSWORD)))
    await store.close()
    log = tmp_path / "serve.log"
    proc, port = await start_serve(url, log, "HTTP", "--log-level", "DEBUG")
    try:
        await send_bad_requests(port)
    finally:
        proc.terminate()
        await proc.wait()
    text = log.read_text()
    assert "malformed request" in text  # DEBUG was on
    assert SECRET not in text
    assert "Traceback" not in text
