"""The seed's bind policy: per system_id at most one receiver-capable session (Rx or
TRx) at a time, plus transmitter sessions up to the account's max_tx.

The registry checks this node's sessions first (no store round trip for a refusal it
can see), then takes a lease in the store (`BindLeases`), which checks every live
node's leases under a lock: the policy then holds across the cluster (SPEC §9), and a
dead node's sessions stop counting once it is silent for NODE_DEAD_AFTER seconds.
"""

import asyncio
import itertools
import logging
from dataclasses import dataclass, field

from .errors import Err, GatewayError
from .models import Account
from .ports import Store

log = logging.getLogger(__name__)

TX, RX, TRX = "tx", "rx", "trx"
GIVE_BACK_TRIES = 30  # a second apart: a store outage of half a minute


class BindLeases:
    """This node's leases in the store, one per bound session."""

    def __init__(self, store: Store, node_id: str, run_id: str) -> None:
        self._store = store
        self.node_id = node_id
        self.run_id = run_id
        self._keys = itertools.count(1)
        self._giving_back: set[asyncio.Task] = set()

    def new_key(self) -> str:
        return str(next(self._keys))

    async def take(self, account: Account, kind: str, key: str) -> None:
        refused = await self._store.take_bind(self.node_id, self.run_id, key, account.id,
                                              kind, account.max_tx)
        if refused is not None:
            raise GatewayError(Err.NOT_AUTHORIZED, refused)

    def give_back(self, key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._give_back(key))
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    async def _give_back(self, key: str) -> None:
        for attempt in range(GIVE_BACK_TRIES):
            try:
                return await self._store.give_back_bind(self.node_id, key)
            except Exception as exc:
                if attempt + 1 == GIVE_BACK_TRIES:  # held until this node stops or dies
                    log.error("bind lease %s not given back: %s", key, exc)
                    return
                await asyncio.sleep(1.0)


@dataclass
class _AccountBinds:
    receiver: object | None = None
    transmitters: set = field(default_factory=set)


class BindRegistry:
    def __init__(self, leases: BindLeases | None = None) -> None:
        self._binds: dict[int, _AccountBinds] = {}
        self._leases = leases
        self._lease_keys: dict[object, str] = {}  # session -> its lease

    async def acquire(self, account: Account, kind: str, session: object) -> None:
        """Take a bind slot for `session`, or raise GatewayError. A session released
        while its lease was being taken gives the lease back at once."""
        self._take_here(account, kind, session)
        if self._leases is None:
            return
        key = self._lease_keys[session] = self._leases.new_key()
        try:
            await self._leases.take(account, kind, key)
        except BaseException:
            self._lease_keys.pop(session, None)
            self._release_here(account.id, session)
            raise
        if session not in self._lease_keys:  # released meanwhile
            self._leases.give_back(key)

    def _take_here(self, account: Account, kind: str, session: object) -> None:
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
        self._release_here(account_id, session)
        key = self._lease_keys.pop(session, None)
        if key is not None and self._leases is not None:
            self._leases.give_back(key)

    def _release_here(self, account_id: int, session: object) -> None:
        binds = self._binds.get(account_id)
        if binds is None:
            return
        if binds.receiver is session:
            binds.receiver = None
        binds.transmitters.discard(session)
        if binds.receiver is None and not binds.transmitters:
            del self._binds[account_id]

    def session_of(self, key: str) -> object | None:
        """The session holding lease `key` on this node (for a kick); None if gone."""
        for session, held in list(self._lease_keys.items()):
            if held == key:
                return session
        return None

    @property
    def leases(self) -> "BindLeases | None":
        return self._leases

    def count(self, account_id: int) -> tuple[int, int]:
        """(receivers, transmitters) bound for the account on this node."""
        binds = self._binds.get(account_id)
        if binds is None:
            return 0, 0
        return int(binds.receiver is not None), len(binds.transmitters)
