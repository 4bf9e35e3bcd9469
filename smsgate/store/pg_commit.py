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
The price: one round trip per transaction, to read the id.

That round trip also carries, for the group commit (`generic_plans`), the transaction's
`plan_cache_mode`: its statements are the same few bulk statements on arrays thousands
of times a second, and with the messages partitioned by id range a custom plan of each
costs ~0.3 ms of planning (pruning at plan time) against ~0.03 ms for the generic plan,
which prunes at run time (`EXPLAIN ANALYZE EXECUTE` of the prepared status UPDATE, 8
partitions). Measured in docs/performance.md: +7 % submit_sm/s with 20 million messages
stored, no change on an empty store.
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
CURRENT_XID_GENERIC_PLANS = ("SELECT txid_current(), "
                             "set_config('plan_cache_mode', 'force_generic_plan', true)")
XACT_STATUS = "SELECT txid_status($1)"
# pg_stat_activity shows the 32-bit xid of the 64-bit one txid_current() gives.
TERMINATE = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE pid = $1 AND backend_xid::text = ($2::bigint % 4294967296)::text")
POLL_SECONDS = 0.05
TERMINATE_AFTER = 1.0
RESOLVE_SECONDS = 10.0
CONNECT_SECONDS = 5.0

Work = Callable[..., Awaitable[Any]]


async def in_transaction(pool: asyncpg.Pool, dsn: str, work: Work, *args: Any,
                         generic_plans: bool = False) -> Any:
    """work(connection, *args) in one transaction on a pooled connection; its result
    once committed (see the module docstring for a lost COMMIT answer and for
    `generic_plans`)."""
    async with pool.acquire() as c:
        tx = c.transaction()
        await tx.start()
        try:
            xid = await c.fetchval(CURRENT_XID_GENERIC_PLANS if generic_plans else CURRENT_XID)
            result = await work(c, *args)
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
