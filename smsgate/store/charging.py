"""How one group commit charges its new messages: the rules both backends share.

Per account with new messages the backend first tries ONE conditional debit of the
account's total (`balance - total >= -credit_limit`). That is the common case and costs
one statement. If it fails, the backend reads the balance (locked for the transaction)
and `ChargePlan.settle` goes through that account's messages in list order, accepting
each one that the remaining balance allows and refusing the others. This gives the same
outcome as charging the messages one at a time in order, whatever way they were batched:
a refused large message does not stop a later small one that fits. A message with price
0 is always accepted. (PostgreSQL locks and reads every touched balance first, to keep a
fixed lock order between nodes, and calls `decide`: the same test, the same outcome.)

The ledger gets ONE debit row per account per batch ("charge: N messages", message_id =
the first accepted message), not one per message: at 15,000 messages/s per-message rows
would double the write volume. Each message's own price stays in the messages table, so
every charge remains auditable (an account's charges add up to the prices of its stored
messages; the row's message_id points into its batch), and refunds are still written
one row per message.

Refunds. A message is refunded at most once, and only together with the status that
ends it: a refund is granted only when, in the same transaction, the status write moves
its message from a live state (ATES, ACCEPTD) into a final one. An upstream may report
REJECTD several times, or after DELIVRD; a cancel may race a rejection: the status write
changes the row once (`status NOT IN final`), so only one of them is paid. A refund rides
on its status (`StatusUpdate.refund`, set by the dispatcher's refund policy); the store
learns which rows its status write really moved (`granted`):
- SQLite reads, just before its set-based UPDATE, which of the refunded messages are
  still live: under BEGIN IMMEDIATE nothing else writes, and the batch holds one folded
  row per message, so these are exactly the rows the UPDATE moves;
- PostgreSQL takes them from the UPDATE's own RETURNING (another node may change a row
  until the UPDATE locks it); the refunded accounts are locked first, with the charged
  ones, in id order, so the later credit takes no new lock.
Why no crash pays twice: the refund and its status are written by one statement group
in one transaction, the group commit's (`Store.write`: SQLite's `_write` between BEGIN
IMMEDIATE and COMMIT, PostgreSQL's `_write` inside `write()`'s transaction). A kill -9
before that COMMIT leaves neither (the message is still live; whatever ends it later is
paid once); after it, both, and the message is final, so no later write (a repeated
report, the outcome of a message sent again after the restart, a cancel: CANCEL wants
status ATES) moves it again, and none is paid.
Cancel refunds follow the same shape (`cancel_refunds`): the cancel's UPDATE ... RETURNING
names the messages it moved to DELETED, each with a price is refunded. Every refund
costs one balance update per account per transaction (`refund_totals`) and one ledger
row per refunded message (`refund_ledger_rows`), on both backends.
"""

from collections.abc import Iterable

from ..core.models import FINAL_STATUSES, Message, Refund, StatusUpdate


class ChargePlan:
    """The charging of one batch's new messages, account by account."""

    __slots__ = ("atomic", "groups", "refused", "totals")

    def __init__(self, messages: list[Message], atomic: Iterable[list[int]] = ()) -> None:
        # message id -> the ids of its all-or-nothing group
        self.atomic: dict[int, list[int]] = {i: group for group in atomic for i in group}
        self.groups: dict[int, list[Message]] = {}
        self.totals: dict[int, int] = {}
        for m in messages:
            group = self.groups.get(m.account_id)
            if group is None:
                self.groups[m.account_id] = [m]
                self.totals[m.account_id] = m.price
            else:
                group.append(m)
                self.totals[m.account_id] += m.price
        self.refused: set[int] = set()

    def debits(self) -> list[tuple[int, int]]:
        """(account_id, total) for each account with something to charge."""
        return [(aid, total) for aid, total in self.totals.items() if total]

    def decide(self, account_id: int, balance: int | None, credit_limit: int) -> int:
        """With the balance already read (and locked): the conditional debit, then
        settle() if it does not cover the total. Returns the total to debit."""
        total = self.totals[account_id]
        if balance is not None and balance - total >= -credit_limit:
            return total
        return self.settle(account_id, balance, credit_limit)

    def settle(self, account_id: int, balance: int | None, credit_limit: int) -> int:
        """The conditional debit failed: accept in order what the balance allows (an
        unknown account, balance None, gets nothing but its free messages). Returns the
        total now to debit."""
        floor = -credit_limit
        total = 0
        for ids, price in self._units(account_id):
            if price == 0 or (balance is not None and balance - total - price >= floor):
                total += price
            else:
                self.refused.update(ids)
        self.totals[account_id] = total
        return total

    def _units(self, account_id: int) -> list[tuple[list[int], int]]:
        """The account's messages in order as (ids, price) units: an atomic group is one
        unit, placed where its first message is."""
        messages = self.groups[account_id]
        if not self.atomic:
            return [([m.id], m.price) for m in messages]
        units: list[tuple[list[int], int]] = []
        seen: dict[int, int] = {}  # first id of a group -> its unit index
        for m in messages:
            group = self.atomic.get(m.id)
            if group is None:
                units.append(([m.id], m.price))
            elif group[0] in seen:
                ids, price = units[seen[group[0]]]
                units[seen[group[0]]] = (ids, price + m.price)
            else:
                seen[group[0]] = len(units)
                units.append((group, m.price))
        return units

    def accepted(self, messages: list[Message]) -> list[Message]:
        if not self.refused:
            return messages
        refused = self.refused
        return [m for m in messages if m.id not in refused]

    def ledger_rows(self, now: float) -> list[tuple]:
        """One (account_id, amount, reason, message_id, created_at) per charged account."""
        rows = []
        refused = self.refused
        for aid, total in self.totals.items():
            if not total:
                continue
            group = self.groups[aid]
            taken = [m for m in group if m.id not in refused] if refused else group
            count = len(taken)
            reason = f"charge: {count} message{'s' if count != 1 else ''}"
            rows.append((aid, -total, reason, taken[0].id, now))
        return rows


def carried_refunds(statuses: list[StatusUpdate]) -> dict[int, Refund]:
    """message id -> the refund carried by the status that ends it in this batch (the
    first final one, as `rows.status_rows` folds them; later ones are not stored)."""
    if not any(u.refund for u in statuses):  # the common case: one cheap pass
        return {}
    refunds: dict[int, Refund] = {}
    ended: set[int] = set()
    for u in statuses:
        if u.status in FINAL_STATUSES and u.message_id not in ended:
            ended.add(u.message_id)
            if u.refund is not None:
                refunds[u.message_id] = u.refund
    return refunds


def granted(refunds: dict[int, Refund], moved: Iterable[int]) -> list[Refund]:
    """The refunds whose message this transaction's status write moved into its final
    state; the others are dropped (the message had ended already)."""
    return [refunds[i] for i in moved if i in refunds]


def cancel_refunds(cancelled: Iterable[Message]) -> list[Refund]:
    """One refund per message a cancel moved to DELETED, unless it was free."""
    return [Refund(m.account_id, m.price, m.id, "refund: cancelled")
            for m in cancelled if m.price]


def refund_totals(refunds: Iterable[Refund]) -> list[tuple[int, int]]:
    """(account_id, sum of amounts): one balance update per account."""
    sums: dict[int, int] = {}
    for r in refunds:
        sums[r.account_id] = sums.get(r.account_id, 0) + r.amount
    return list(sums.items())


def refund_ledger_rows(refunds: Iterable[Refund], now: float) -> list[tuple]:
    return [(r.account_id, r.amount, r.reason, r.message_id, now) for r in refunds]
