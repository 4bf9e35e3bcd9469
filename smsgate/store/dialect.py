"""One spelling of SQL for both backends, and its conversion to each (DESIGN.md: a
statement both backends run is written once).

Statements are spelled for asyncpg, with three tokens:
- `$1`, `$2`, ...: placeholders; sqlite3 reads them as `?1`, `?2` (numbered, so that
  one may be used twice);
- `col = ANY($n)`: `col` is one of a list bound as one parameter. PostgreSQL takes the
  list as an array (its type inferred from `col`); SQLite reads it from JSON text
  through json_each (`IN (SELECT value FROM json_each(?n))`), which the planner serves
  from an index on `col` like a list of `?`. The backend's `list_arg` makes the value;
- `{now}`: the database's clock in epoch seconds (store/nodes.py says why);
- `{skip_locked}`: PostgreSQL's `FOR UPDATE SKIP LOCKED`, so that nodes claiming rows at
  once take disjoint shares; nothing on SQLite, whose one writer serializes claims;
- `{indexed_by NAME}`: SQLite's `INDEXED BY NAME`, where its planner would choose worse
  (the statement says why); nothing on PostgreSQL.
"""

import json
import re
from collections.abc import Callable, Iterable
from types import SimpleNamespace

PG_NOW = "extract(epoch from clock_timestamp())::float8"
SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_ANY = re.compile(r"= ANY\(\$(\d+)\)")
_INDEXED_BY = re.compile(r"\{indexed_by (\w+)\}")


def for_postgres(sql: str) -> str:
    sql = _INDEXED_BY.sub("", sql)
    return sql.replace("{now}", PG_NOW).replace("{skip_locked}", " FOR UPDATE SKIP LOCKED")


def for_sqlite(sql: str) -> str:
    sql = _ANY.sub(r"IN (SELECT value FROM json_each($\1))", sql)
    sql = _INDEXED_BY.sub(r" INDEXED BY \1", sql)
    return sql.replace("$", "?").replace("{now}", SQLITE_NOW).replace("{skip_locked}", "")


def postgres_list(values: Iterable) -> list:
    return list(values)


def sqlite_list(values: Iterable) -> str:
    return json.dumps(list(values))


def spelled(statements: object, convert: Callable[[str], str]) -> SimpleNamespace:
    """Every upper-case string constant of module `statements`, converted: one
    attribute per statement, named as in the module."""
    return SimpleNamespace(**{name: convert(value) for name, value in vars(statements).items()
                              if name.isupper() and not name.startswith("_")
                              and isinstance(value, str)})
