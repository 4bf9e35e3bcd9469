"""Kicking a customer's SMPP session from the admin API, on whichever node holds it.

The admin API asks through the store (`Store.kick_session` flags the session's bind
lease); every node reads its own run's flagged leases twice a second and unbinds those
sessions. One path for one node and for many: no node calls another, and a kick asked
on node A of a session on node B takes effect within a poll, as long as B lives (a dead
node's sessions are gone with it, and its leases no longer count).
"""

import asyncio
import logging
from typing import Protocol

from .binds import BindRegistry
from .models import SessionLease
from .ports import Store, StoreError
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
KICK_REASON = "kicked by an operator"


class Kickable(Protocol):
    def revoke(self, reason: str) -> None:
        """Unbind the session (smpp_server's connection does)."""
        ...


class Sessions:
    """The cluster's live sessions, and this node's side of kicks."""

    def __init__(self, store: Store, binds: BindRegistry,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self._store = store
        self._binds = binds
        self.poll_seconds = poll_seconds
        self._kicked: set[str] = set()  # lease keys unbound already (awaiting release)
        self._task: asyncio.Task | None = None

    async def list(self) -> list[SessionLease]:
        return await self._store.list_sessions()

    async def kick(self, node_id: str, session: str) -> bool:
        """False when no live node holds such a session. A session of this node is
        unbound at once; another node's at its next poll."""
        if not await self._store.kick_session(node_id, session):
            return False
        leases = self._binds.leases
        if leases is not None and leases.node_id == node_id:
            await self.act()
        return True

    def start(self) -> None:
        if self._binds.leases is not None:
            self._task = asyncio.create_task(self._watch(), name="session-kicks")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.act()
            except StoreError as exc:  # the store may be back at the next poll
                log.debug("session kicks not read: %s", exc)

    async def act(self) -> int:
        """Unbind this run's sessions that a kick was asked for; returns how many."""
        leases = self._binds.leases
        assert leases is not None
        keys = set(await self._store.kicked_sessions(leases.node_id, leases.run_id))
        self._kicked &= keys  # released ones are gone from the store too
        done = 0
        for key in sorted(keys - self._kicked):
            session = self._binds.session_of(key)
            if session is None:
                continue
            self._kicked.add(key)
            log.info("session %s: %s", key, KICK_REASON)
            session.revoke(KICK_REASON)  # type: ignore[attr-defined]
            done += 1
        return done
