"""Two smsgate processes in a chain (issue 9, "Must show"): gateway A routes a prefix
through its SMPP connector to gateway B, where A is a customer like any other.

B charges A's account per part; B's simulator decides each message's fate and B's
receipts flow back over A's connector session; A matches them by B's ids and tells its
own customer, with A's ids, over HTTP status, the dlrurl callback and an SMPP receipt.
"""

from decimal import Decimal

import aiohttp
from e2e_harness import (
    DlrReceiver,
    customer_tx_rx,
    eventually,
    http_get,
    ids_of,
    next_receipt,
    receipted_id,
)
from smpp_harness import submit_sm

from smsgate.smpp.constants import Status

A_ACCOUNT, A_PASSWORD = "gwa", "gwa-pass-1"  # A's account at B
CUSTOMER, CUSTOMER_PASSWORD = "cust", "cust-pw-1"
LONG_TEXT = "0123456789" * 20  # 200 GSM-7 characters: 2 parts


async def test_a_routes_through_b_and_receipts_come_back(gateway_at, store_url, tmp_path):
    """A on each backend (store_url), B on SQLite. A's connector is new, and a few
    reports do not teach it how B spells its ids (core/correlation.py): each waits in
    the park, then a last look in the store matches it. A short park: the same path,
    without the default's 10 s wait."""
    config = tmp_path / "a.toml"
    config.write_text("receipt_park_seconds = 1\n")
    b = gateway_at("b")
    await b.cli(["migrate"], ["account", "add", A_ACCOUNT, "--password", A_PASSWORD,
                              "--credits", "100"])
    await b.start()
    a = gateway_at("a", store_url, "--callbacks-allow-private", "--config", str(config))
    await a.cli(
        ["migrate"],
        ["account", "add", CUSTOMER, "--password", CUSTOMER_PASSWORD, "--credits", "50"],
        ["connector", "add", "b", "--type", "smpp", "--host", "127.0.0.1", "--port",
         str(b.smpp_port), "--system-id", A_ACCOUNT, "--password", A_PASSWORD,
         "--reconnect-max", "2"],
        ["route", "add", "4477", "b", "--price", "0.05"])
    await a.start()
    dlr = await DlrReceiver().start()
    tx, rx = await customer_tx_rx(a.smpp_port, CUSTOMER, CUSTOMER_PASSWORD)
    session = aiohttp.ClientSession()
    try:
        sent = {}
        for dest, text in (("447700900001", "hello over http"), ("447700900002", LONG_TEXT)):
            answer = await http_get(session, f"{a.base}/websmpp/websms", user=CUSTOMER,
                                    **{"pass": CUSTOMER_PASSWORD}, sid="Acme", mno=dest,
                                    type="1", text=text, dlrurl=dlr.url, ref=dest)
            [sent[dest]] = ids_of(answer)
        answer = await tx.request(submit_sm("447700900003", b"hello over smpp",
                                            registered_delivery=1))
        assert answer.status == Status.ESME_ROK
        sent["447700900003"] = smpp_id = answer["message_id"]

        # The SMPP customer's receipt: A's id (not B's), DELIVRD.
        receipt = await next_receipt(rx, timeout=30)
        assert receipted_id(receipt) == smpp_id
        assert f"id:{smpp_id} ".encode() in receipt["short_message"]
        assert b"stat:DELIVRD" in receipt["short_message"]

        # Every message DELIVRD over HTTP status, and the HTTP ones called back.
        async def all_delivered() -> bool:
            for message_id in sent.values():
                status = await http_get(session, f"{a.base}/websmpp/websmsstatus",
                                        respId=message_id, user=CUSTOMER,
                                        **{"pass": CUSTOMER_PASSWORD})
                if status != "Response: DELIVRD":
                    return False
            return True
        await eventually(all_delivered, timeout=30, what="DELIVRD at A")
        await eventually(lambda: all(dlr.statuses(sent[d]) == ["DELIVRD"]
                                     for d in ("447700900001", "447700900002")),
                         timeout=30, what="the dlrurl callbacks")
        assert {c["ref"] for c in dlr.calls} == {"447700900001", "447700900002"}

        # B charged A's account 1 credit per part: 1 + 2 + 1; A charged its customer
        # 0.05 per part. B holds one message per part, all DELIVRD.
        balance = await http_get(session, f"{b.base}/websmpp/balanceReport",
                                 userid=A_ACCOUNT, password=A_PASSWORD)
        assert Decimal(balance.removeprefix("Response: ")) == Decimal(96)
        balance = await http_get(session, f"{a.base}/websmpp/balanceReport",
                                 userid=CUSTOMER, password=CUSTOMER_PASSWORD)
        assert Decimal(balance.removeprefix("Response: ")) == Decimal("49.80")
        at_b = await b.rows("SELECT m.status, m.upstream_id FROM messages m JOIN accounts a "
                            f"ON a.id = m.account_id WHERE a.system_id = '{A_ACCOUNT}'")
        assert [status for status, _ in at_b] == ["DELIVRD"] * 4
        # A knows each message by B's id (the long one by its first part's).
        at_a = dict(await a.rows("SELECT id, upstream_id FROM messages"))
        b_ids = set(await b.rows("SELECT CAST(id AS TEXT) FROM messages"))
        assert {(at_a[int(i)],) for i in sent.values()} <= b_ids
        assert not set(sent.values()) & {i for (i,) in b_ids}
        # No second receipt for the SMPP message.
        assert rx.requests.empty()
    finally:
        await session.close()
        await dlr.close()
        await tx.close()
        await rx.close()
        await a.terminate()
        await b.terminate()
