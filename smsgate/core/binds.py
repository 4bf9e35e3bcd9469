"""The seed's bind policy: per system_id at most one receiver-capable session (Rx or
TRx) at a time, plus transmitter sessions up to the account's max_tx.

This registry holds the policy for one node; the cluster issue extends it across nodes
through PostgreSQL advisory locks.
"""

from dataclasses import dataclass, field

from .errors import Err, GatewayError
from .models import Account

TX, RX, TRX = "tx", "rx", "trx"


@dataclass
class _AccountBinds:
    receiver: object | None = None
    transmitters: set = field(default_factory=set)


class BindRegistry:
    def __init__(self) -> None:
        self._binds: dict[int, _AccountBinds] = {}

    def acquire(self, account: Account, kind: str, session: object) -> None:
        binds = self._binds.setdefault(account.id, _AccountBinds())
        if kind in (RX, TRX):
            if binds.receiver is not None:
                raise GatewayError(Err.NOT_AUTHORIZED, "a receiver session is already bound")
            binds.receiver = session
        elif len(binds.transmitters) >= account.max_tx:
            raise GatewayError(Err.NOT_AUTHORIZED, f"max_tx {account.max_tx} reached")
        else:
            binds.transmitters.add(session)

    def release(self, account_id: int, session: object) -> None:
        binds = self._binds.get(account_id)
        if binds is None:
            return
        if binds.receiver is session:
            binds.receiver = None
        binds.transmitters.discard(session)
        if binds.receiver is None and not binds.transmitters:
            del self._binds[account_id]

    def count(self, account_id: int) -> tuple[int, int]:
        """(receivers, transmitters) bound for the account."""
        binds = self._binds.get(account_id)
        if binds is None:
            return 0, 0
        return int(binds.receiver is not None), len(binds.transmitters)
