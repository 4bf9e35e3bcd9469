"""Time every asyncpg statement of a running `smsgate serve`, by statement.

Put this folder on PYTHONPATH (Python imports `sitecustomize` at start-up) and name a
folder in SMSGATE_PG_STATEMENTS: each process writes there, every 2 s, a file of
`calls  mean ms  statement` lines, the wall time from the call to its answer. With it,
what a group commit waits for shows statement by statement (docs/performance.md, issue
12, ninth and tenth passes); `bench/pg_statements/summary.py` sums them a commit.

    SMSGATE_PG_STATEMENTS=/tmp/pgst PYTHONPATH=.:bench/pg_statements \\
        .venv/bin/python bench/smpp_ingest.py --database postgresql://... --seconds 8

The wrappers cost a few µs a statement: read the breakdown, not the rate.
"""

import contextlib
import functools
import os
import threading
import time

FOLDER = os.environ.get("SMSGATE_PG_STATEMENTS")


def _install(folder: str) -> None:
    from asyncpg import connection, transaction
    totals: dict[str, list] = {}

    def timed(cls: type, name: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        async def wrapper(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return await original(self, *args, **kwargs)
            finally:
                key = f"{name}: {' '.join(str(args[0]).split())[:60]}" \
                    if name in ("execute", "fetch", "fetchval", "fetchrow") else name
                entry = totals.setdefault(key, [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - started
        setattr(cls, name, wrapper)

    for name in ("execute", "fetch", "fetchval", "fetchrow", "executemany",
                 "copy_records_to_table"):
        timed(connection.Connection, name)
    for name in ("start", "commit"):
        timed(transaction.Transaction, name)

    def dump() -> None:
        path = os.path.join(folder, f"statements.{os.getpid()}")
        while True:
            time.sleep(2)
            lines = [f"{calls:8d} {1000 * seconds / calls:8.2f} ms  {key}\n"
                     for key, (calls, seconds) in sorted(totals.items(),
                                                         key=lambda kv: -kv[1][1])]
            with open(path, "w") as out:
                out.writelines(lines)
    threading.Thread(target=dump, name="pg-statements", daemon=True).start()


if FOLDER:
    with contextlib.suppress(ImportError):  # a process without asyncpg (the bench's)
        _install(FOLDER)
