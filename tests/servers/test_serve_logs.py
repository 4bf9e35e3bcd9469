"""SPEC §10: a real `smsgate serve` logs one line per event, as text or JSON, and never a
password, a token or a message's text at the default level. The customer binds over SMPP
with a wrong then the right password, submits over SMPP and over HTTP (password in the
query string); then the process's stderr is read whole."""

import asyncio
import json

import aiohttp
import pytest
from serve_process import start_serve_ports
from smpp_harness import RawClient, eventually, password_hash, prepare_database

from smsgate.core.models import CREDIT_SCALE, Account
from smsgate.smpp.constants import Status
from smsgate.store import open_store

USER = "logcheck"
PASSWORD = "Zq81xPw7"  # distinctive strings: found in a log only if leaked
WRONG_PASSWORD = "Wr0ngPw9"
HTTP_WRONG_PASSWORD = "HttpWr0ng55"
TEXT = "Tell-no-one-7f3a the vault code is 9182"
NODE = "log-node"
FIELDS = {"ts", "level", "logger", "message", "node"}


async def funded_account(url: str) -> None:
    await prepare_database(url)
    store = open_store(url)
    await store.open()
    try:
        account = await store.add_account(Account(system_id=USER,
                                                  password_hash=password_hash(PASSWORD)))
        await store.adjust_balance(account.id, 100 * CREDIT_SCALE, "test")
    finally:
        await store.close()


async def smpp_customer(port: int) -> None:
    wrong = await RawClient.connect("127.0.0.1", port)
    assert (await wrong.bind("trx", USER, WRONG_PASSWORD)).status == Status.ESME_RINVPASWD
    await wrong.close()
    client = await RawClient.connect("127.0.0.1", port)
    assert (await client.bind("trx", USER, PASSWORD)).status == Status.ESME_ROK
    response = await client.submit(text=TEXT.encode(), registered_delivery=1)
    assert response.status == Status.ESME_ROK
    receipt = await client.next_request(timeout=10)  # the simulator's DELIVRD
    client.respond(receipt)
    await client.close()


async def http_customer(port: int) -> None:
    base = f"http://127.0.0.1:{port}/websmpp/websms"
    params = {"user": USER, "sid": "Test", "mno": "96170123456", "type": "1", "text": TEXT}
    async with aiohttp.ClientSession() as session:
        async with session.get(base, params={**params, "pass": HTTP_WRONG_PASSWORD}) as r:
            assert (await r.text()).startswith("ERROR"), await r.text()
        async with session.get(base, params={**params, "pass": PASSWORD}) as r:
            assert (await r.text()).startswith("Response: "), await r.text()
        async with session.get(f"http://127.0.0.1:{port}/health") as r:
            assert r.status == 200


@pytest.mark.parametrize(("log_format", "level", "option"), [
    ("text", "INFO", "default"), ("json", "INFO", "config"), ("json", "DEBUG", "flag")])
async def test_serve_logs_no_password_nor_text(tmp_path, log_format, level, option):
    """INFO is the default level; DEBUG adds a line per submit, with its message_id. The
    format comes from --log-format, or from log_format in the TOML settings file."""
    url = f"sqlite:///{tmp_path}/smsgate.db"
    await funded_account(url)
    log = tmp_path / "serve.log"
    options = ["--node-id", NODE, "--log-level", level]
    if option == "flag":
        options += ["--log-format", log_format]
    elif option == "config":
        config = tmp_path / "smsgate.toml"
        config.write_text(f'log_format = "{log_format}"\n')
        options += ["--config", str(config)]
    proc, ports = await start_serve_ports(url, log, *options)
    try:
        await smpp_customer(ports["SMPP"])
        await http_customer(ports["HTTP"])
        await eventually(lambda: _logged(log, f"bound {USER}"), what="the bind's line")
    finally:
        proc.terminate()
        await proc.wait()
    text = log.read_text()
    for secret in (PASSWORD, WRONG_PASSWORD, HTTP_WRONG_PASSWORD, TEXT, "Tell-no-one"):
        assert secret not in text, secret
    assert f"bind {USER} as trx refused" in text
    if log_format == "json":
        entries = check_json_lines(text)
        if level == "DEBUG":
            stored = [e for e in entries if "stored" in e["message"]]
            assert {e["logger"] for e in stored} == {"smsgate.servers.smpp_server",
                                                     "smsgate.servers.http_api"}
            assert all(e["account"] == USER and e["message_id"] for e in stored), stored
    else:
        assert not text.startswith("{")


async def _logged(log, words: str) -> bool:
    await asyncio.sleep(0)
    return words in log.read_text()


def check_json_lines(text: str) -> list[dict]:
    entries = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert entries
    for entry in entries:
        assert entry.keys() >= FIELDS, entry
        assert entry["node"] == NODE
        assert entry["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    bound = [e for e in entries if "bound" in e["message"] and "unbound" not in e["message"]]
    assert bound and bound[0]["account"] == USER
    assert bound[0]["session"].startswith("127.0.0.1:")
    refused = [e for e in entries if "refused" in e["message"]]
    assert refused and refused[0]["account"] == USER and "session" in refused[0]
    return entries
