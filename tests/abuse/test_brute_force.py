"""Password guessing over SMPP binds and over HTTP (SPEC §11): after 10 failures within
a minute from one source IP, or for one system_id, the back-off refuses further attempts
from that IP / for that id without checking the password (SMPP: ESME_RBINDFAIL after
`login_backoff_delay`; HTTP: HTTP04/05), the right password included; other addresses
and accounts are not affected. The server's CPU time shows scrypt is not run per refused
attempt."""

import asyncio
import time

import aiohttp
from abuse_harness import ATTACKER_IPS, CUSTOMER, HOST, MIB, normal_customer, serving
from smpp_harness import PASSWORD, RawClient

from smsgate.core.accounts import check_password
from smsgate.core.errors import Err
from smsgate.smpp.constants import Status

MAX_FAILURES = 10  # the default [login] max_failures
BACKOFF_DELAY = 0.5  # [smpp] login_backoff_delay (default 1 s): a shorter wait, same rule
REFUSED_ATTEMPTS = 200  # guesses made inside the back-off, per protocol
AT_ONCE = 50  # of them in flight at once (under the per-IP cap of 100 connections)
# A refused attempt costs the server connection handling only: measured 0.1-0.2 ms CPU
# each, against 28-32 ms for one scrypt check (measured by the test, on its machine),
# and 10 checked failures cost 0.3 s. Bound: a tenth of one scrypt per attempt, i.e.
# one check per ten attempts would already fail.
CPU_SHARE_OF_SCRYPT = 0.1
# Server RSS: 82 MiB after start, 98 MiB after these tests; up to 113-115 MiB once both
# scrypt threads have checked a password (glibc keeps each one's 16 MiB in its arena).
# The refused attempts add nothing measurable. Bound: 30% over the highest.
RSS_BOUND = 150 * MIB
CONFIG = {"smpp": {"login_backoff_delay": BACKOFF_DELAY}}
ACCOUNTS = (CUSTOMER, "victim", "other", "webvictim")


def scrypt_seconds() -> float:
    """What one password check costs here (the best of three)."""
    from smpp_harness import password_hash

    stored = password_hash(PASSWORD)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        check_password("wrong", stored)
        best = min(best, time.process_time() - started)
    return best


async def bind(port: int, source: str, system_id: str, password: str) -> tuple[int, float]:
    """One bind_transmitter from `source`: its status and how long its answer took."""
    client = await RawClient.connect(HOST, port, source)
    try:
        started = time.monotonic()
        response = await client.bind("tx", system_id, password)
        return response.status, time.monotonic() - started
    finally:
        await client.close()


async def many(attempt, count: int) -> list:
    """`count` calls of `attempt(n)`, AT_ONCE at a time."""
    results = []
    for start in range(0, count, AT_ONCE):
        results += await asyncio.gather(*(attempt(n) for n in range(start,
                                                                     min(count, start + AT_ONCE))))
    return results


async def test_smpp_bind_brute_force(tmp_path):
    scrypt = scrypt_seconds()
    async with serving(tmp_path, CONFIG, accounts=ACCOUNTS) as gw:
        port = gw.smpp_port
        guesser, spread, fresh = ATTACKER_IPS[0], ATTACKER_IPS[1:1 + MAX_FAILURES], ATTACKER_IPS[20]
        # Per IP: ten failures from one address (ten unknown ids: no id reaches ten).
        for n in range(MAX_FAILURES):
            status, _ = await bind(port, guesser, f"guess{n}", "wrong")
            assert status == Status.ESME_RINVSYSID
        status, took = await bind(port, guesser, CUSTOMER, PASSWORD)  # the right one
        assert status == Status.ESME_RBINDFAIL and took >= BACKOFF_DELAY * 0.9, (status, took)
        assert (await bind(port, fresh, CUSTOMER, PASSWORD))[0] == Status.ESME_ROK
        # Per system_id: ten wrong passwords for one account, one from each of ten IPs.
        cpu = gw.cpu_seconds()
        for source in spread:
            assert (await bind(port, source, "victim", "wrong"))[0] == Status.ESME_RINVPASWD
        checked_cpu = gw.cpu_seconds() - cpu
        status, took = await bind(port, fresh, "victim", PASSWORD)  # the right one
        assert status == Status.ESME_RBINDFAIL and took >= BACKOFF_DELAY * 0.9, (status, took)
        for source in spread[:3]:  # those IPs made one failure each: not blocked
            assert (await bind(port, source, "other", PASSWORD))[0] == Status.ESME_ROK
        # Inside the back-off: many guesses, none checked (CPU), each answered late.
        cpu = gw.cpu_seconds()
        results = await many(lambda n: bind(port, guesser, "victim", f"guess{n}"),
                             REFUSED_ATTEMPTS)
        refused_cpu = gw.cpu_seconds() - cpu
        assert {status for status, _ in results} == {Status.ESME_RBINDFAIL}
        assert min(took for _, took in results) >= BACKOFF_DELAY * 0.9
        after = await normal_customer(gw, RSS_BOUND)
    per_attempt = refused_cpu / REFUSED_ATTEMPTS
    assert per_attempt < CPU_SHARE_OF_SCRYPT * scrypt, (per_attempt, scrypt)
    print(f"smpp brute force: scrypt {scrypt * 1000:.0f} ms here; 10 checked failures cost "
          f"the server {checked_cpu:.2f} s CPU; {REFUSED_ATTEMPTS} refused ones "
          f"{refused_cpu:.2f} s ({per_attempt * 1000:.2f} ms each), answered after "
          f"{min(t for _, t in results):.2f}-{max(t for _, t in results):.2f} s; "
          f"rss after {after.rss / MIB:.1f} MiB")


async def http_balance(port: int, source: str, user: str, password: str) -> str:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    url = f"http://{HOST}:{port}/websmpp/balanceReport"
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as session, \
            session.get(url, params={"userid": user, "password": password}) as response:
        return await response.text()


async def test_http_password_brute_force(tmp_path):
    scrypt = scrypt_seconds()
    bad_password = Err.BAD_PASSWORD.http_line
    async with serving(tmp_path, {}, accounts=ACCOUNTS) as gw:
        port = gw.http_port
        guesser, elsewhere = ATTACKER_IPS[0], ATTACKER_IPS[1]
        cpu = gw.cpu_seconds()
        for n in range(MAX_FAILURES):
            assert await http_balance(port, guesser, "webvictim", f"guess{n}") == bad_password
        checked_cpu = gw.cpu_seconds() - cpu
        # The right password is refused the same way, from this IP and for this id...
        assert await http_balance(port, guesser, "webvictim", PASSWORD) == bad_password
        assert await http_balance(port, elsewhere, "webvictim", PASSWORD) == bad_password
        assert await http_balance(port, guesser, CUSTOMER, PASSWORD) == bad_password
        # ... while another account from another address is served.
        assert (await http_balance(port, elsewhere, CUSTOMER, PASSWORD)).startswith("Response: ")
        cpu = gw.cpu_seconds()
        answers = await many(lambda n: http_balance(port, guesser, "webvictim", f"g{n}"),
                             REFUSED_ATTEMPTS)
        refused_cpu = gw.cpu_seconds() - cpu
        assert set(answers) == {bad_password}
        after = await normal_customer(gw, RSS_BOUND)
    per_attempt = refused_cpu / REFUSED_ATTEMPTS
    assert per_attempt < CPU_SHARE_OF_SCRYPT * scrypt, (per_attempt, scrypt)
    print(f"http brute force: scrypt {scrypt * 1000:.0f} ms here; 10 checked failures cost "
          f"the server {checked_cpu:.2f} s CPU; {REFUSED_ATTEMPTS} refused ones "
          f"{refused_cpu:.2f} s ({per_attempt * 1000:.2f} ms each); rss after "
          f"{after.rss / MIB:.1f} MiB")
