"""The HAProxy example of docs/operations.md ("Front door"), run for real: docs/haproxy.cfg
with its addresses and ports replaced, in front of two nodes on one PostgreSQL. SMPP
binds and HTTP submits go through it, and once a node is killed its health check takes
it out and traffic goes on through the other.
"""

import asyncio
import re
import shutil
from pathlib import Path

import aiohttp
import pytest
from e2e_harness import ROOT, eventually, free_port
from smpp_harness import RawClient, submit_sm

from smsgate.smpp.constants import Status

CUSTOMER, PASSWORD = "proxied", "proxied-pw-1"
EXAMPLE = ROOT / "docs" / "haproxy.cfg"


@pytest.fixture
def haproxy(pg_url: str) -> str:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (.ci/run installs it: apt-get install haproxy)")
    return pg_url


def configured(a, b, smpp_port: int, http_port: int, path: Path) -> Path:
    """The example with the nodes' real ports and the proxy's own."""
    text = EXAMPLE.read_text()
    for host, node in (("10.0.0.5", a), ("10.0.0.6", b)):
        text = text.replace(f"{host}:8899 check port 8080",
                            f"127.0.0.1:{node.smpp_port} check port {node.http_port}")
        text = text.replace(f"{host}:8080", f"127.0.0.1:{node.http_port}")
    text = re.sub(r"bind :2775", f"bind 127.0.0.1:{smpp_port}", text)
    text = re.sub(r"bind :80\b", f"bind 127.0.0.1:{http_port}", text)
    assert "10.0.0." not in text
    path.write_text(text)
    return path


async def test_haproxy_example_in_front_of_two_nodes(gateway_at, haproxy, tmp_path,
                                                     processes):
    a, b = gateway_at("a", haproxy), gateway_at("b", haproxy)
    await a.cli(["migrate"], ["account", "add", CUSTOMER, "--password", PASSWORD,
                              "--credits", "100", "--max-tx", "4"])
    await asyncio.gather(a.start(), b.start())
    smpp_port, http_port = free_port(), free_port()
    config = configured(a, b, smpp_port, http_port, tmp_path / "haproxy.cfg")
    processes.add(await asyncio.create_subprocess_exec(
        "haproxy", "-db", "-f", str(config), stdout=asyncio.subprocess.DEVNULL,
        stderr=(tmp_path / "haproxy.log").open("wb")))
    base = f"http://127.0.0.1:{http_port}"

    async with aiohttp.ClientSession() as session:
        async def get(path: str, **params) -> tuple[int, str]:
            try:
                async with session.get(f"{base}{path}", params=params) as answer:
                    return answer.status, await answer.text()
            except aiohttp.ClientError:
                return 0, ""

        async def submitted() -> bool:
            status, text = await get("/websmpp/websms", user=CUSTOMER, **{"pass": PASSWORD},
                                     sid="Acme", mno="447700900001", type="1", text="hi")
            return status == 200 and text.startswith("Response: ")

        await eventually(lambda: _ok(get("/health")), timeout=15, what="/health via the proxy")
        await eventually(submitted, timeout=10, what="an HTTP submit via the proxy")
        tx = await RawClient.connect("127.0.0.1", smpp_port)
        assert (await tx.bind("tx", CUSTOMER, PASSWORD)).status == Status.ESME_ROK
        assert (await tx.request(submit_sm())).status == Status.ESME_ROK
        await tx.close()

        await a.kill()
        await asyncio.sleep(5.0)  # two failed checks 2 s apart: node-a is out

        results = [await submitted() for _ in range(10)]
        assert all(results), results
        tx = await RawClient.connect("127.0.0.1", smpp_port)
        assert (await tx.bind("tx", CUSTOMER, PASSWORD)).status == Status.ESME_ROK
        await tx.close()
    await b.terminate()


async def _ok(answer) -> bool:
    status, text = await answer
    return status == 200 and '"ok"' in text
