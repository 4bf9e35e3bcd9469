"""A's SMPP connectors against SMSCs that are not ours (PyPI smpp34), over TCP: message
ids in hex in submit_sm_resp and the same numbers in decimal in the receipts' text, and
every 7th submit_sm throttled. Two SMSCs, one connector each: `tlv` also gives the hex
id in the receipted_message_id TLV (the CH and PYL vectors of SMPP34.md §6.3), `text`
gives only the decimal id in the text.

Every message ends DELIVRD at A, and each SMSC took each message (each part) once:
throttled submits are sent again, accepted ones never. The SMSCs number from 1, so a
receipt's decimal id ("0000000041" for "29") is often also another message's hex id
("41"): each message must still get its own receipt.
"""

import aiohttp
import pytest
from e2e_harness import eventually, ids_of
from upstreams import Smpp34Smsc

pytest.importorskip("smpp34")

CUSTOMER, PASSWORD = "cust", "cust-pw-1"
COUNT = 150  # messages per SMSC, and one long one (2 parts, split by A)
LONG_TEXT = "abcdefghij" * 20


async def test_hex_ids_decimal_receipts_and_throttling(gateway_at):
    smscs = {"4478": await Smpp34Smsc(throttle_every=7, tlv=True).start(),
             "4479": await Smpp34Smsc(throttle_every=7, tlv=False).start()}
    a = gateway_at("a")
    commands = [["migrate"],
                ["account", "add", CUSTOMER, "--password", PASSWORD, "--credits", "1000"]]
    for prefix, smsc in smscs.items():
        name = "tlv" if smsc.tlv else "text"
        commands += [["connector", "add", name, "--type", "smpp", "--host", "127.0.0.1",
                      "--port", str(smsc.port), "--system-id", "gwa", "--password", "pw",
                      "--window", "10"],
                     ["route", "add", prefix, name, "--price", "0.01"]]
    await a.cli(*commands)
    await a.start()
    session = aiohttp.ClientSession()
    total = 2 * (COUNT + 1)
    try:
        numbers = {prefix: [f"{prefix}0{n:07d}" for n in range(COUNT)] for prefix in smscs}
        for prefix, batch in numbers.items():
            form = {"user": CUSTOMER, "pass": PASSWORD, "sid": "Acme", "type": "1",
                    "text": "hello", "mno": ",".join(batch)}
            async with session.post(f"{a.base}/websmpp/websms", data=form) as response:
                assert len(ids_of(await response.text())) == COUNT
            form.update(mno=f"{prefix}11111111", text=LONG_TEXT)
            async with session.post(f"{a.base}/websmpp/websms", data=form) as response:
                assert len(ids_of(await response.text())) == 1

        async def statuses() -> dict[str, int]:
            return dict(await a.rows("SELECT status, count(*) FROM messages GROUP BY status"))

        async def done() -> bool:
            return (await statuses()).get("DELIVRD", 0) == total
        await eventually(done, timeout=60, what=f"{total} messages DELIVRD at A")
        assert await statuses() == {"DELIVRD": total}
        stored = dict(await a.rows("SELECT dest_addr, upstream_id FROM messages"))
        for prefix, smsc in smscs.items():
            # The SMSC took every message once (the long one as 2 parts, each once),
            # although it throttled every 7th submit.
            assert smsc.throttled >= (COUNT + 2) // 7
            assert smsc.submits == COUNT + 2 + smsc.throttled
            assert set(smsc.accepted.values()) == {1} and len(smsc.accepted) == COUNT + 2
            assert set(smsc.destinations) == {*numbers[prefix], f"{prefix}11111111"}
            assert smsc.receipts_acked == COUNT + 2
            # A matched the decimal receipts to the hex ids it had stored.
            assert all(stored[n] == smsc.ids[(n, b"hello")][0] for n in numbers[prefix])
        assert not await a.rows("SELECT * FROM unmatched_reports")
        print(f"\n{total} messages DELIVRD; throttled "
              f"{sum(s.throttled for s in smscs.values())}, none sent twice")
    finally:
        await session.close()
        await a.terminate()
        for smsc in smscs.values():
            await smsc.stop()
