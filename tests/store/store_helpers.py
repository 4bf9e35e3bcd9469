"""Builders for the store tests."""

import itertools
import time

from smsgate.core.models import CREDIT_SCALE, Account, Message, PendingReceipt, WriteBatch

_ids = itertools.count(1_000_001)


def next_id() -> int:
    return next(_ids)


def message(account_id: int, price: int = CREDIT_SCALE, **fields) -> Message:
    """A message with a fresh id, unsent, to 447700900001 from "Acme"."""
    defaults = dict(id=next_id(), account_id=account_id, source_addr="Acme",
                    dest_addr="447700900001", payload=b"hello", price=price,
                    connector="simulator", created_at=time.time())
    defaults.update(fields)
    return Message(**defaults)


async def funded(store, system_id: str = "acme", credits: int = 10,
                 credit_limit: int = 0) -> Account:
    """An account with `credits` whole credits."""
    return await store.add_account(Account(system_id, "hash", balance=credits * CREDIT_SCALE,
                                           credit_limit=credit_limit * CREDIT_SCALE))


def receipt(account_id: int, message_id: int, now: float, **fields) -> PendingReceipt:
    defaults = dict(account_id=account_id, message_id=message_id,
                    source_addr="447700900001", dest_addr="Acme", status="DELIVRD",
                    error_code=0, submitted_at=now - 1, done_at=now, text="hello",
                    created_at=now, expires_at=now + 3600, next_attempt_at=now)
    defaults.update(fields)
    return PendingReceipt(**defaults)


async def write_callbacks(store, new, done, retry) -> list[int]:
    """One commit of the callback outbox through the store's group-commit write: insert
    `new` (their ids returned, in order), delete `done`, reschedule `retry`."""
    result = await store.write(WriteBatch(new_callbacks=list(new), done_callbacks=list(done),
                                          retry_callbacks=list(retry)))
    return result.callback_ids
