"""A property-based run of schemathesis against a real `smsgate serve`, from the OpenAPI
document the server generates: for every operation, generated requests (valid and
not) get no 5xx, and every answer matches the document's status codes, content type
and schema. Bounded: a few examples per operation, well under a minute."""

import asyncio
import contextlib
import json
import urllib.request

from hypothesis import HealthCheck, given, settings
from serve_process import start_serve_ports

from smsgate.cli import main as cli_main

EXAMPLES = 120  # drawn over all operations


def fetch(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def run_schemathesis(base: str, token: str) -> int:
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_dict(fetch(base + "/api/v1/openapi.json", token))
    headers = {"Authorization": f"Bearer {token}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    calls = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy())
    def check(case) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(base_url=base, headers=headers, checks=checks)

    check()
    return calls


async def test_schemathesis_finds_no_5xx_and_no_schema_mismatch(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/smsgate.db"
    assert await asyncio.to_thread(cli_main, ["admin", "token", "add", "fuzz",
                                              "--database", url]) == 0
    token = capsys.readouterr().out.split()[2]
    config = tmp_path / "smsgate.toml"
    config.write_text("[login]\nmax_failures = 0\n")  # wrong tokens are generated too
    proc, ports = await start_serve_ports(url, tmp_path / "serve.log", "--config",
                                          str(config), until="Admin")
    try:
        base = f"http://127.0.0.1:{ports['Admin']}"
        calls = await asyncio.to_thread(run_schemathesis, base, token)
        assert calls >= EXAMPLES // 2
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()
