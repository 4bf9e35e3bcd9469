"""Persistence: SQLite (embedded default) or PostgreSQL behind the core's `Store` port.

`open_store(url)` picks the backend from a database URL; the caller awaits `.open()` and
usually `.migrate()`. `BatchWriter` is the group commit of the hot path.
"""

from ..core.ports import Store
from .writer import BatchWriter

__all__ = ["BatchWriter", "open_store", "sqlite_path"]


def sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL or plain path; None if `url` is another scheme's URL.

    `sqlite:///rel/path.db` is relative to the working directory, `sqlite:////abs.db`
    absolute (as in SQLAlchemy); a string without `://` is a path as it stands."""
    if "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "sqlite":
        return None
    if not rest.startswith("/"):
        raise ValueError(f"bad SQLite URL {url!r}: takes no host (use sqlite:///path.db)")
    path = rest[1:]
    if not path or path.endswith("/"):
        raise ValueError(f"bad SQLite URL {url!r}: no file name")
    if "?" in path or "#" in path:
        raise ValueError(f"bad SQLite URL {url!r}: options are not supported")
    return path


def _check_postgres(url: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port raises ValueError when it is bad
    except ValueError as exc:
        raise ValueError(f"bad PostgreSQL URL: {exc}") from None
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("bad PostgreSQL URL: no host (use postgresql://user@host:port/db)")


def open_store(url: str) -> Store:
    """A store for `url`, not yet opened. Raises ValueError with a one-line reason."""
    url = url.strip()
    if not url:
        raise ValueError("empty database URL")
    path = sqlite_path(url)
    if path is not None:
        from .sqlite import SqliteStore
        return SqliteStore(path)
    scheme = url.partition("://")[0].lower()
    if scheme in ("postgresql", "postgres"):
        _check_postgres(url)
        from .postgres import PostgresStore
        return PostgresStore(url)
    raise ValueError(f"unsupported database URL scheme {scheme!r} "
                     "(use sqlite:///path.db or postgresql://user@host:port/db)")
