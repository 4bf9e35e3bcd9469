"""SPEC §11 over HTTP (issue 8, item 6): the failed-login back-off per source IP and per
system_id (core/login_guard.py), and an IP allow-list checked before the password.
Clients connect from different loopback addresses (all of 127/8 is loopback)."""

import asyncio

import aiohttp
from http_harness import PASSWORD, USER, api_fixture  # noqa: F401

import smsgate.core.accounts
from smsgate.core.errors import Err

BALANCE = "/websmpp/balanceReport"


class ScryptCount:
    """Counts the password checks that really run scrypt (check_password is called
    through the module's global, in the authenticator's executor)."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        real = smsgate.core.accounts.check_password

        def counted(password: str, stored: str) -> bool:
            self.calls += 1
            return real(password, stored)

        monkeypatch.setattr(smsgate.core.accounts, "check_password", counted)


async def balance(api, user: str, password: str, source: str = "127.0.0.1") -> str:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session, session.get(
            api.base + BALANCE, params={"userid": user, "password": password}) as response:
        return await response.text()


async def test_wrong_passwords_start_a_back_off_without_scrypt(api, monkeypatch):
    await api.seed_account()
    await api.account("other", password="other-pw")
    scrypt = ScryptCount(monkeypatch)
    answers = [await balance(api, USER, f"guess{n}") for n in range(100)]
    assert answers == [Err.BAD_PASSWORD.http_line] * 100  # the back-off answers alike
    assert scrypt.calls == 10  # checked until the 10th failure, refused unchecked since
    guard = api.app.gateway.login_guard
    assert (guard.failures, guard.refused) == (10, 90)
    # inside the back-off the right password is refused too, from this IP for any id
    assert await balance(api, USER, PASSWORD) == Err.BAD_PASSWORD.http_line
    assert await balance(api, "other", "other-pw") == Err.BAD_PASSWORD.http_line
    assert await balance(api, "nobody", "x") == Err.UNKNOWN_ACCOUNT.http_line
    # and for this id from any IP
    assert await balance(api, USER, PASSWORD, "127.0.0.2") == Err.BAD_PASSWORD.http_line
    assert scrypt.calls == 10
    # another IP, another account: unaffected
    assert await balance(api, "other", "other-pw", "127.0.0.2") == "Response: 1000.00"


async def test_an_ip_allow_list_refuses_before_the_password(api, monkeypatch):
    await api.account("office", password="office-pw", allowed_ips=("10.0.0.0/8",))
    await api.account("branch", password="branch-pw", allowed_ips=("127.0.0.2/32",))
    scrypt = ScryptCount(monkeypatch)
    # from outside the list every password gets the same answer, and none is checked
    for password in ("office-pw", "wrong"):
        assert await balance(api, "office", password) == Err.NOT_AUTHORIZED.http_line
    assert await balance(api, "branch", "branch-pw") == Err.NOT_AUTHORIZED.http_line
    assert scrypt.calls == 0
    # from inside it, the password decides
    assert await balance(api, "branch", "wrong", "127.0.0.2") == Err.BAD_PASSWORD.http_line
    assert await balance(api, "branch", "branch-pw", "127.0.0.2") == "Response: 1000.00"


async def test_concurrent_first_logins_with_the_same_password_share_one_scrypt(
        api, monkeypatch):
    """A client pool opening 64 connections at once sends its password 64 times before
    the first check returns: one scrypt answers them all (it was 64, ~2.5 s here)."""
    await api.seed_account()
    scrypt = ScryptCount(monkeypatch)
    answers = await asyncio.gather(*(balance(api, USER, PASSWORD) for _ in range(64)))
    assert answers == ["Response: 1000.00"] * 64
    assert scrypt.calls == 1
    # a wrong password is not remembered: later guesses are each checked again
    assert await balance(api, USER, "wrong") == Err.BAD_PASSWORD.http_line
    assert await balance(api, USER, "wrong") == Err.BAD_PASSWORD.http_line
    assert scrypt.calls == 3
