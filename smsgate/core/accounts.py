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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

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
    """Checks credentials.

    The order (SPEC §3.1, with §11's change): unknown id, source IP not allowed, wrong
    password, expired, access refused. The IP allow-list comes before the password so
    that from outside the list every password gets the same answer: an account with an
    allow-list cannot be used to test passwords from anywhere.

    scrypt runs in an executor of its own (`workers` threads) with at most `max_waiting`
    checks queued; past that a login is refused at once (HTTP11 / bind refused) instead
    of letting a flood of logins queue up behind each other and starve other work.
    Recent successes are remembered, so that an HTTP client sending its password with
    every request costs one scrypt, not one per request. The memo is keyed by a hash of
    (stored hash, password), so a password change invalidates it.
    """

    def __init__(self, memo_size: int = 10_000, memo_seconds: float = 300.0,
                 workers: int = 2, max_waiting: int = 64) -> None:
        self._memo: OrderedDict[bytes, float] = OrderedDict()
        self._memo_size = memo_size
        self._memo_seconds = memo_seconds
        self._pepper = secrets.token_bytes(16)
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self.max_waiting = max_waiting
        self.waiting = 0  # scrypt checks queued or running now
        self._checking: dict[bytes, asyncio.Future[bool]] = {}  # memo key -> its check

    def _memo_key(self, account: Account, password: str) -> bytes:
        return hashlib.blake2b(f"{account.password_hash}\0{password}".encode(),
                               key=self._pepper, digest_size=16).digest()

    def remembered(self, account: Account, password: str) -> bool:
        """Whether the password was checked recently (then no scrypt is needed)."""
        seen = self._memo.get(self._memo_key(account, password))
        return seen is not None and time.monotonic() - seen < self._memo_seconds

    async def password_ok(self, account: Account, password: str) -> bool:
        if self.remembered(account, password):
            return True
        key = self._memo_key(account, password)
        checking = self._checking.get(key)
        if checking is None:
            checking = self._checking[key] = asyncio.ensure_future(
                self._check(account, password, key))
            checking.add_done_callback(partial(self._checked, key))
        # shield: one waiter cancelled (its client gone) must not cancel the others'
        return await asyncio.shield(checking)

    def _checked(self, key: bytes, check: "asyncio.Future[bool]") -> None:
        self._checking.pop(key, None)
        if not check.cancelled():
            check.exception()  # retrieved: its waiters may all have gone

    async def _check(self, account: Account, password: str, key: bytes) -> bool:
        """One scrypt however many logins with the same credentials wait for it (a pool
        of HTTP connections opening at once sent 64 of them, ~2.5 s of the executor)."""
        if self.waiting >= self.max_waiting:
            raise GatewayError(Err.QUEUE_FULL, "too many password checks queued")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="scrypt")
        self.waiting += 1
        try:
            ok = await asyncio.get_running_loop().run_in_executor(
                self._executor, check_password, password, account.password_hash)
        finally:
            self.waiting -= 1
        if ok:
            self._memo[key] = time.monotonic()
            if len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return ok

    async def authenticate(self, account: Account | None, password: str, *, channel: str,
                           peer_ip: str | None = None, now: float | None = None) -> Account:
        if account is None:
            raise GatewayError(Err.UNKNOWN_ACCOUNT)
        if not ip_allowed(account, peer_ip):
            raise GatewayError(Err.NOT_AUTHORIZED, f"{channel} login from {peer_ip} refused")
        if not await self.password_ok(account, password):
            raise GatewayError(Err.BAD_PASSWORD)
        if is_expired(account, now):
            raise GatewayError(Err.ACCOUNT_EXPIRED)
        if not may_use(account, channel):
            raise GatewayError(Err.NOT_AUTHORIZED, f"{channel} access refused")
        return account

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def may_use(account: Account, channel: str) -> bool:
    """Enabled, and allowed on this channel ("smpp" or "http")."""
    allowed = account.smpp_enabled if channel == "smpp" else account.http_enabled
    return account.enabled and allowed


def is_expired(account: Account, now: float | None = None) -> bool:
    return account.expires_at is not None and (now or time.time()) >= account.expires_at


def refusal_after_login(account: Account | None, peer_ip: str | None, channel: str) -> str:
    """Why a session that logged in earlier may no longer go on ('' when it may): the
    checks of `Authenticator.authenticate` that do not need the password."""
    if account is None:
        return "account removed"
    if not ip_allowed(account, peer_ip):
        return f"{peer_ip} no longer in the account's IP allow-list"
    if is_expired(account):
        return "account expired"
    if not may_use(account, channel):
        return f"account disabled or {channel} access withdrawn"
    return ""


class AccountDirectory:
    """Accounts by system_id, cached; reloaded every `refresh_seconds` in the background.

    Balances here are informative only: the store decides charges in its transaction.
    Listeners (`on_reload`) are called after every reload, e.g. so that the servers
    can end sessions an account change no longer allows.
    """

    def __init__(self, store: Store, refresh_seconds: float = 2.0) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._by_system_id: dict[str, Account] = {}
        self._by_id: dict[int, Account] = {}
        self._task: asyncio.Task | None = None
        self._listeners: list[Callable[[], None]] = []

    def on_reload(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

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
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # one failing listener must not stop the others
                log.exception("account reload listener failed")

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
