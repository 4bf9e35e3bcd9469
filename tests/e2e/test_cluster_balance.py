"""Two nodes on one PostgreSQL never oversell a balance (SPEC §9, issue 10 "Must show"):
200 concurrent submits over both nodes against credit for 100 accept exactly 100.

Each node charges a whole group commit with one conditional debit in the same
transaction as its messages (store/charging.py); the row lock on the account orders
the two nodes' commits, and the second sees what the first left.
"""

import asyncio
from collections import Counter
from decimal import Decimal

import aiohttp
from e2e_harness import http_get

CUSTOMER, PASSWORD = "shared", "shared-pw-1"
CREDIT, SUBMITS = 100, 200  # the seeded route costs 1 credit per part


async def test_two_nodes_never_oversell_one_balance(gateway_at, pg_url):
    a, b = gateway_at("a", pg_url), gateway_at("b", pg_url)
    await a.cli(["migrate"], ["account", "add", CUSTOMER, "--password", PASSWORD,
                              "--credits", str(CREDIT)])
    await asyncio.gather(a.start(), b.start())

    async def submit(session: aiohttp.ClientSession, base: str, n: int) -> str:
        answer = await http_get(session, f"{base}/websmpp/websms", user=CUSTOMER,
                                **{"pass": PASSWORD}, sid="Acme", mno=f"4477009{n:05d}",
                                type="1", text=f"race {n}")
        return "accepted" if answer.startswith("Response: ") else answer.split(" ")[2]

    connector = aiohttp.TCPConnector(limit=SUBMITS)
    async with aiohttp.ClientSession(connector=connector) as session:
        for node in (a, b):  # one login each first: 100 cold scrypt checks at once on a
            # node are refused past its queue (core/accounts.py), which is not the point
            await http_get(session, f"{node.base}/websmpp/balanceReport",
                           userid=CUSTOMER, password=PASSWORD)
        answers = Counter(await asyncio.gather(*(
            submit(session, (a, b)[n % 2].base, n) for n in range(SUBMITS))))
        balance = await http_get(session, f"{b.base}/websmpp/balanceReport",
                                 userid=CUSTOMER, password=PASSWORD)

    assert answers == {"accepted": CREDIT, "HTTP18": SUBMITS - CREDIT}, answers
    assert Decimal(balance.removeprefix("Response: ")) == 0
    [(stored, nodes)] = await a.rows("SELECT count(*), count(DISTINCT node) FROM messages")
    assert stored == CREDIT and nodes == 2  # both nodes took a share
    await asyncio.gather(a.terminate(), b.terminate())
