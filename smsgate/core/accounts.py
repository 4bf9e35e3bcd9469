"""Accounts: password hashing, authentication with the seed's check order, and an
in-memory directory refreshed from the store (so CLI changes reach a running server)."""

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import OrderedDict

from .errors import Err, GatewayError
from .models import Account
from .ports import Store

log = logging.getLogger(__name__)

# scrypt with n=2**14, r=8, p=1 (16 MiB, tens of milliseconds): slow for guessing.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n),
                               r=int(r), p=int(p))
    return hmac.compare_digest(candidate, bytes.fromhex(digest))


def ip_allowed(account: Account, peer_ip: str | None) -> bool:
    if not account.allowed_ips:
        return True
    if peer_ip is None:
        return False
    try:
        address = ipaddress.ip_address(peer_ip)
        return any(address in ipaddress.ip_network(cidr, strict=False)
                   for cidr in account.allowed_ips)
    except ValueError:
        return False


class Authenticator:
    """Checks credentials; remembers recent successes so that an HTTP client sending its
    password with every request costs one scrypt, not one per request. The memo is keyed
    by a hash of (stored hash, password), so a password change invalidates it."""

    def __init__(self, memo_size: int = 10_000, memo_seconds: float = 300.0) -> None:
        self._memo: OrderedDict[bytes, float] = OrderedDict()
        self._memo_size = memo_size
        self._memo_seconds = memo_seconds
        self._pepper = secrets.token_bytes(16)

    def _memo_key(self, account: Account, password: str) -> bytes:
        return hashlib.blake2b(f"{account.password_hash}\0{password}".encode(),
                               key=self._pepper, digest_size=16).digest()

    def remembered(self, account: Account, password: str) -> bool:
        """Whether the password was checked recently: then `authenticate` is cheap
        enough to run on the event loop (no scrypt)."""
        seen = self._memo.get(self._memo_key(account, password))
        return seen is not None and time.monotonic() - seen < self._memo_seconds

    def password_ok(self, account: Account, password: str) -> bool:
        key = self._memo_key(account, password)
        now = time.monotonic()
        seen = self._memo.get(key)
        if seen is not None and now - seen < self._memo_seconds:
            return True
        if not check_password(password, account.password_hash):
            return False
        self._memo[key] = now
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return True

    def authenticate(self, account: Account | None, password: str, *, channel: str,
                     peer_ip: str | None = None, now: float | None = None) -> Account:
        """The seed's order: unknown id, wrong password, expired, then not allowed."""
        if account is None:
            raise GatewayError(Err.UNKNOWN_ACCOUNT)
        if not self.password_ok(account, password):
            raise GatewayError(Err.BAD_PASSWORD)
        if is_expired(account, now):
            raise GatewayError(Err.ACCOUNT_EXPIRED)
        allowed = account.smpp_enabled if channel == "smpp" else account.http_enabled
        if not account.enabled or not allowed or not ip_allowed(account, peer_ip):
            raise GatewayError(Err.NOT_AUTHORIZED, f"{channel} access refused")
        return account


def is_expired(account: Account, now: float | None = None) -> bool:
    return account.expires_at is not None and (now or time.time()) >= account.expires_at


class AccountDirectory:
    """Accounts by system_id, cached; reloaded every `refresh_seconds` in the background.

    Balances here are informative only: the store decides charges in its transaction.
    """

    def __init__(self, store: Store, refresh_seconds: float = 2.0) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._by_system_id: dict[str, Account] = {}
        self._by_id: dict[int, Account] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._refresh_loop(), name="account-refresh")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def reload(self) -> None:
        accounts = await self._store.list_accounts()
        self._by_system_id = {a.system_id: a for a in accounts}
        self._by_id = {a.id: a for a in accounts}

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.reload()
            except Exception:  # keep serving from the cache; the store may be back soon
                log.exception("account reload failed")

    async def get(self, system_id: str) -> Account | None:
        account = self._by_system_id.get(system_id)
        if account is None:  # created a moment ago by the CLI?
            account = await self._store.get_account(system_id)
            if account is not None:
                self._by_system_id[system_id] = account
                self._by_id[account.id] = account
        return account

    def by_id(self, account_id: int) -> Account | None:
        return self._by_id.get(account_id)
