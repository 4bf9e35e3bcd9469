"""A's SMPP connector against an SMSC that is not ours (PyPI smpp34), over TCP: message
ids in hex in submit_sm_resp, the same numbers in decimal in the receipts (text only, or
with the receipted_message_id TLV in hex), and every 7th submit_sm throttled.

Every message ends DELIVRD at A, and the SMSC took each message (each part) once:
throttled submits are sent again, accepted ones never. The SMSC numbers from 1, so a
receipt's decimal id ("0000000041" for "29") is often also another message's hex id
("41"): each message must still get its own receipt.
"""

import aiohttp
import pytest
from e2e_harness import eventually, ids_of
from upstreams import Smpp34Smsc

pytest.importorskip("smpp34")

CUSTOMER, PASSWORD = "cust", "cust-pw-1"
COUNT = 200
LONG_TEXT = "abcdefghij" * 20  # 2 parts, split by A


async def test_hex_ids_decimal_receipts_and_throttling(gateway_at):
    smsc = await Smpp34Smsc(throttle_every=7).start()
    a = gateway_at("a")
    await a.cli(
        ["migrate"],
        ["account", "add", CUSTOMER, "--password", PASSWORD, "--credits", "1000"],
        ["connector", "add", "s34", "--type", "smpp", "--host", "127.0.0.1", "--port",
         str(smsc.port), "--system-id", "gwa", "--password", "pw", "--window", "10"],
        ["route", "add", "4478", "s34", "--price", "0.01"])
    await a.start()
    session = aiohttp.ClientSession()
    try:
        numbers = [f"44780{n:07d}" for n in range(COUNT)]
        form = {"user": CUSTOMER, "pass": PASSWORD, "sid": "Acme", "type": "1",
                "text": "hello", "mno": ",".join(numbers)}
        async with session.post(f"{a.base}/websmpp/websms", data=form) as response:
            ids = ids_of(await response.text())
        form.update(mno="447811111111", text=LONG_TEXT)
        async with session.post(f"{a.base}/websmpp/websms", data=form) as response:
            ids += ids_of(await response.text())
        assert len(ids) == COUNT + 1

        async def statuses() -> dict[str, int]:
            return dict(await a.rows("SELECT status, count(*) FROM messages GROUP BY status"))
        await eventually(lambda: _done(statuses()), timeout=60,
                         what=f"{COUNT + 1} messages DELIVRD at A")
        assert await statuses() == {"DELIVRD": COUNT + 1}
        # The SMSC took every message once (the long one as 2 parts, each once),
        # although it throttled every 7th submit.
        assert smsc.throttled >= (COUNT + 2) // 7
        assert smsc.submits == COUNT + 2 + smsc.throttled
        assert set(smsc.accepted.values()) == {1} and len(smsc.accepted) == COUNT + 2
        assert set(smsc.destinations) == {*numbers, "447811111111"}
        assert smsc.receipts_acked == COUNT + 2
        # A matched the decimal receipts to the hex ids it had stored.
        stored = dict(await a.rows("SELECT dest_addr, upstream_id FROM messages"))
        assert all(stored[n] == smsc.ids[(n, b"hello")][0] for n in numbers)
        assert not await a.rows("SELECT * FROM unmatched_reports")
    finally:
        await session.close()
        await a.terminate()
        await smsc.stop()


async def _done(statuses) -> bool:
    return (await statuses).get("DELIVRD", 0) == COUNT + 1
