"""Bearer tokens of the admin API (SPEC §10): issued once, stored hashed, revocable.

A token is `secrets.token_urlsafe(32)` (256 random bits), so a plain SHA-256 is enough
to store it: nobody can guess a preimage, and no salt or slow hash is needed (unlike a
customer's password). The store finds the row by the hash; the hash is compared again
with `hmac.compare_digest`, so no timing of ours depends on how much of a guess matches.
`last_used_at` is written at most once a minute per token, not on every request.
"""

import hashlib
import hmac
import re
import secrets
import time

from .models import AdminToken
from .ports import Conflict, Store

TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
TOUCH_EVERY = 60.0  # seconds between last_used_at writes of one token


class TokenRefused(Exception):
    """`revoked` False: no such token (HTTP 401); True: it was revoked (HTTP 403)."""

    def __init__(self, detail: str, revoked: bool) -> None:
        super().__init__(detail)
        self.revoked = revoked


class TokenExists(Exception):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_token_name(name: str) -> None:
    if not TOKEN_NAME.fullmatch(name):
        raise ValueError(f"token name {name!r}: 1-64 of A-Z a-z 0-9 _ . @ -, starting "
                         "with a letter or digit")


class AdminTokens:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._touched: dict[str, float] = {}  # name -> when last_used_at was written

    async def issue(self, name: str) -> str:
        """A new token under `name`: returned once, never stored in clear."""
        check_token_name(name)
        token = secrets.token_urlsafe(32)
        try:
            await self._store.add_admin_token(name, token_hash(token), time.time())
        except Conflict:
            raise TokenExists(f"token {name!r} exists already") from None
        return token

    async def list(self) -> list[AdminToken]:
        return await self._store.admin_tokens()

    async def revoke(self, name: str) -> bool:
        return await self._store.revoke_admin_token(name, time.time())

    async def check(self, token: str) -> AdminToken:
        """The token's record; TokenRefused when unknown or revoked."""
        digest = token_hash(token)
        found = await self._store.admin_token(digest) if token else None
        if found is None or not hmac.compare_digest(found[1], digest):
            raise TokenRefused("unknown token", revoked=False)
        record = found[0]
        if record.revoked_at is not None:
            raise TokenRefused(f"token {record.name!r} is revoked", revoked=True)
        now = time.time()
        if now - self._touched.get(record.name, 0.0) >= TOUCH_EVERY:
            self._touched[record.name] = now
            await self._store.touch_admin_token(record.name, now)
            record.last_used_at = now
        return record
