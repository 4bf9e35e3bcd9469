"""Fixtures shared by all test folders: a fresh database URL per test, on each backend,
and `store`, an opened, migrated store on it.

`store_url` is parametrized: SQLite (a file under tmp_path) and PostgreSQL (a schema of
its own in this session's database). PostgreSQL is the server on 127.0.0.1:5432, user
postgres (env SMSGATE_TEST_PG_DSN overrides the admin DSN); the session creates its own
database `smsgate_test_<random>` and drops it at the end. Without a server the
PostgreSQL tests skip with the reason.
"""

import asyncio
import os
import secrets
import sys
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from smsgate.store import open_store

# The harnesses of tests/servers and the builders of tests/store, importable from every
# test folder (pytest puts only a test file's own folder on sys.path).
for _helpers in ("servers", "store"):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), _helpers))

ADMIN_DSN = os.environ.get("SMSGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on a loop of its own in another thread, away from the tests' loops."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, coro).result()


async def _admin(*statements: str, dsn: str = ADMIN_DSN) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a database created for this test session (dropped at its end)."""
    name = f"smsgate_test_{secrets.token_hex(6)}"
    admin = urlsplit(ADMIN_DSN)
    try:
        _run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach or use the server means: skip
        where = f"{admin.hostname or 'localhost'}:{admin.port or 5432}"
        pytest.skip(f"PostgreSQL not reachable at {where}: {exc}")
    yield urlunsplit(admin._replace(path=f"/{name}"))
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URL to an empty database (no schema yet), one per test and backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/smsgate.db"
    return _pg_schema_url(request.getfixturevalue("pg_dsn"))


def _pg_schema_url(dsn: str) -> str:
    schema = f"t_{secrets.token_hex(6)}"
    _run(_admin(f'CREATE SCHEMA "{schema}"', dsn=dsn))
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


@dataclass
class Backends:
    """Empty databases of both backends, by backend; `missing`: why there is no
    PostgreSQL one (not reachable)."""
    urls: dict[str, str]
    missing: str = ""


@pytest.fixture
def store_urls(request: pytest.FixtureRequest, tmp_path) -> Backends:
    """Both backends at once, for a test that runs them side by side (one wait on the
    real clock for both). Without a PostgreSQL server only SQLite's: such a test runs
    it, then skips with `missing`."""
    try:
        dsn = request.getfixturevalue("pg_dsn")
    except pytest.skip.Exception as exc:
        return Backends({"sqlite": f"sqlite:///{tmp_path}/smsgate.db"}, str(exc))
    return Backends({"sqlite": f"sqlite:///{tmp_path}/smsgate.db",
                     "postgresql": _pg_schema_url(dsn)})


@pytest.fixture
async def store(store_url: str):
    """An opened, migrated store on a fresh database of each backend."""
    s = open_store(store_url)
    await s.open()
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()
