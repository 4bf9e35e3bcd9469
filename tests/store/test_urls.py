"""open_store: picking a backend from a database URL."""

import pytest

from smsgate.config import Settings
from smsgate.core.ports import StoreError
from smsgate.store import open_store, sqlite_path
from smsgate.store.postgres import PostgresStore
from smsgate.store.sqlite import SqliteStore


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:///smsgate.db", "smsgate.db"),
    ("sqlite:///data/gw.db", "data/gw.db"),
    ("sqlite:////var/lib/gw.db", "/var/lib/gw.db"),
    ("SQLite:///x.db", "x.db"),
    ("plain/path.db", "plain/path.db"),
    ("/abs/path.db", "/abs/path.db"),
])
def test_sqlite_urls(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    assert store.backend == "sqlite"
    assert store.path == path


def test_default_url_is_a_relative_sqlite_file() -> None:
    assert sqlite_path(Settings().database_url) == "smsgate.db"


@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:5432/smsgate",
    "postgres://user:pw@db.example/smsgate",
    "postgresql://u@h/db?sslmode=disable",
])
def test_postgres_urls(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.backend == "postgresql"
    assert store.dsn == url


@pytest.mark.parametrize(("url", "reason"), [
    ("", "empty"),
    ("   ", "empty"),
    ("mysql://root@localhost/db", "unsupported database URL scheme 'mysql'"),
    ("sqlite://host/file.db", "takes no host"),
    ("sqlite:///", "no file name"),
    ("sqlite:///dir/", "no file name"),
    ("sqlite:///x.db?mode=ro", "options"),
    ("postgresql://u@h:notaport/db", "bad PostgreSQL URL"),
    ("postgresql:///db", "no host"),
])
def test_bad_urls(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        open_store(url)
    assert "\n" not in str(caught.value)


async def test_unreachable_databases_raise_store_error(tmp_path) -> None:
    for url in (f"sqlite:///{tmp_path}/missing/dir/x.db",
                "postgresql://postgres@127.0.0.1:1/nothing"):
        store = open_store(url)
        with pytest.raises(StoreError):
            await store.open()
        await store.close()


async def test_a_store_that_is_not_open_raises_store_error(tmp_path) -> None:
    for url in (f"sqlite:///{tmp_path}/x.db", "postgresql://postgres@127.0.0.1/x"):
        with pytest.raises(StoreError, match="not open"):
            await open_store(url).get_setting("x")
