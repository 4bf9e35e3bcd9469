"""PostgreSQL transactions whose outcome is known even when the COMMIT's answer is lost.

When the connection breaks after COMMIT was sent and before its answer came back, the
transaction may have committed or not. Answering "failed" then is wrong in one case out
of two: the customer is told RSYSERR/HTTP03 for messages that are stored and charged,
and one who resubmits pays twice. So every transaction that moves money reads its own
id first (`txid_current()`: the server assigns it anyway, as the transaction writes),
and when COMMIT fails in any way, a fresh connection asks the server what became of it
(`txid_status`):
- committed: the caller gets its result as if the answer had come. Everything the
  transaction computed stays valid, receipt and callback ids drawn from sequences
  included;
- aborted: a StoreError, as for any rolled-back transaction;
- in progress: the old backend has not finished with the COMMIT, or has not yet seen
  that its client is gone. After TERMINATE_AFTER seconds it is terminated (matched by
  its pid and by the transaction id, so that a reused pid is never hit), which settles
  it one way or the other;
- no answer within RESOLVE_SECONDS (the server is unreachable): CommitUnknown, a
  StoreError that says so; the caller cannot do better than report a failure.
The price: one round trip per transaction to read the id (`in_transaction`), or none
where the transaction's first statement reads it beside its own work (`transact`: the
group commit's opening statement, store/pg_write.py).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ..core.ports import CommitUnknown, StoreError

log = logging.getLogger(__name__)

CURRENT_XID = "SELECT txid_current()"
XACT_STATUS = "SELECT txid_status($1)"
# pg_stat_activity shows the 32-bit xid of the 64-bit one txid_current() gives.
TERMINATE = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE pid = $1 AND backend_xid::text = ($2::bigint % 4294967296)::text")
POLL_SECONDS = 0.05
TERMINATE_AFTER = 1.0
RESOLVE_SECONDS = 10.0
CONNECT_SECONDS = 5.0

Work = Callable[..., Awaitable[Any]]


async def in_transaction(pool: asyncpg.Pool, dsn: str, work: Work, *args: Any) -> Any:
    """work(connection, *args) in one transaction on a pooled connection; its result
    once committed (see the module docstring for a lost COMMIT answer)."""
    return await transact(pool, dsn, _xid_first, work, *args)


async def _xid_first(c: asyncpg.Connection, work: Work, *args: Any) -> tuple[int, Any]:
    return await c.fetchval(CURRENT_XID), await work(c, *args)


async def transact(pool: asyncpg.Pool, dsn: str, work: Work, *args: Any) -> Any:
    """As in_transaction, for a `work` that reads its transaction's id itself, with its
    first statement (txid_current()), and returns (that id, its result)."""
    async with pool.acquire() as c:
        tx = c.transaction()
        await tx.start()
        try:
            xid, result = await work(c, *args)
        except BaseException:
            with contextlib.suppress(Exception):  # a broken connection rolls back anyway
                await tx.rollback()
            raise
        pid = c.get_server_pid()
        try:
            await tx.commit()
        except Exception as exc:
            await settle_commit(dsn, xid, pid, exc)
        return result


async def settle_commit(dsn: str, xid: int, pid: int, error: Exception) -> None:
    """Returns if transaction `xid` committed; raises StoreError if it was rolled back,
    CommitUnknown if that cannot be learnt."""
    try:
        status = await asyncio.wait_for(_final_status(dsn, xid, pid), RESOLVE_SECONDS)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        raise CommitUnknown(f"postgresql: COMMIT failed ({error}) and its outcome is "
                            f"unknown: {exc}") from error
    if status == "aborted":
        raise StoreError(f"postgresql: COMMIT failed, rolled back: {error}") from error
    if status != "committed":
        raise CommitUnknown(f"postgresql: COMMIT failed ({error}); transaction status "
                            f"{status!r}") from error
    log.warning("the answer to a COMMIT was lost (%s): transaction %s did commit",
                error, xid)


async def _final_status(dsn: str, xid: int, pid: int) -> str | None:
    """txid_status() once it is no longer 'in progress', on a connection of its own."""
    conn = await asyncpg.connect(dsn, timeout=CONNECT_SECONDS)
    try:
        waited = 0.0
        while (status := await conn.fetchval(XACT_STATUS, xid)) == "in progress":
            if waited >= TERMINATE_AFTER:
                await conn.execute(TERMINATE, pid, xid)
            await asyncio.sleep(POLL_SECONDS)
            waited += POLL_SECONDS
        return status
    finally:
        await conn.close()
