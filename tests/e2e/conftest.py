"""Fixtures of the end-to-end tests: the test's process group (killed at the end, pass
or fail) and a gateway factory on fresh databases under tmp_path."""

from pathlib import Path

import pytest
from e2e_harness import CLI, Gateway, Processes


@pytest.fixture(scope="session", autouse=True)
def _cli_runner():
    yield
    CLI.close()


@pytest.fixture
async def processes():
    group = Processes()
    try:
        yield group
    finally:
        await group.kill_all()


@pytest.fixture
def gateway_at(tmp_path: Path, processes: Processes):
    """gateway_at(name, url=None, *serve options): a Gateway (not started) on its own
    SQLite file unless `url` is given."""
    def make(name: str, url: str | None = None, *options: str) -> Gateway:
        url = url or f"sqlite:///{tmp_path}/{name}.db"
        return Gateway(name, url, tmp_path / f"{name}.log", processes, options)
    return make


@pytest.fixture
def pg_url(store_url: str) -> str:
    """The PostgreSQL variant of store_url only: a cluster (SQLite is one node)."""
    if not store_url.startswith("postgresql"):
        pytest.skip("a cluster is PostgreSQL only (SQLite is one node)")
    return store_url
