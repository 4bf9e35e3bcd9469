"""kill -9 of gateway A while it sends at full speed to an upstream SMSC, then a restart
on the same database (issue 9, "Must show").

The upstream is bench/sink_smsc.py (a separate process: answers every submit_sm at once
with a hex id, sends a receipt with the decimal id, and records the text of every
submit_sm it accepted). A's customers flood it over SMPP with a text of their own per
message. After the restart every message A acknowledged reaches the sink and ends
DELIVRD at A; a text the sink recorded twice is a message sent twice, and there may be
at most as many as A's connector can have in flight: binds x window.
"""

import asyncio
import time
from collections import Counter

from e2e_harness import FLOOD_CUSTOMER as CUSTOMER
from e2e_harness import FLOOD_PASSWORD as PASSWORD
from e2e_harness import Flood, eventually, recorded, start_sink

BINDS, WINDOW = 2, 10  # A's connector to the sink
FLOOD_SECONDS = 3.0
# The sink numbers from 1: hex ids like "29" are then also decimal spellings of other
# ids ("0000000041" = 0x29, while "41" is another message's), which receipt correlation
# must tell apart (core/correlation.py: the relation it learns per connector).
FIRST_ID = 1


async def test_kill_9_while_sending_then_restart(gateway_at, store_url, tmp_path, processes):
    record = tmp_path / "sink.txt"
    sink_port = await start_sink(processes, "--id-format", "hex", "--receipt-ids", "dec",
                                 "--first-id", str(FIRST_ID), "--record", str(record))
    a = gateway_at("a", store_url)
    await a.cli(
        ["migrate"],
        ["account", "add", CUSTOMER, "--password", PASSWORD, "--credits", "1000000"],
        ["connector", "add", "sink", "--type", "smpp", "--host", "127.0.0.1", "--port",
         str(sink_port), "--system-id", "gwa", "--password", "pw", "--binds", str(BINDS),
         "--window", str(WINDOW)],
        ["route", "add", "4477", "sink", "--price", "0.001"])
    await a.start()

    def at_sink() -> Counter[bytes]:
        return recorded(record)

    flood = Flood()
    flooding = asyncio.ensure_future(flood.run(a.smpp_port))
    await eventually(lambda: len(at_sink()) > 100, timeout=30, what="traffic at the sink")
    await asyncio.sleep(FLOOD_SECONDS)
    await a.kill()
    killed = time.monotonic()
    await asyncio.wait_for(flooding, 10)
    sent_before = sum(at_sink().values())
    assert flood.acked and not flood.refused, flood.refused

    await a.start()
    acked_texts = set(flood.acked.values())
    await eventually(lambda: acked_texts <= set(at_sink()), timeout=60,
                     what=f"all {len(acked_texts)} acknowledged messages at the sink")

    statuses: dict[str, int] = {}

    async def all_final() -> bool:
        statuses.clear()
        statuses.update(await a.rows("SELECT status, count(*) FROM messages GROUP BY status"))
        return set(statuses) == {"DELIVRD"}
    try:
        await eventually(all_final, timeout=60, what="every message DELIVRD at A")
    except AssertionError as timed_out:
        learned = await a.rows("SELECT key, value FROM settings WHERE key LIKE 'receipt%'")
        stuck = await a.rows("SELECT id, status, upstream_id FROM messages "
                             "WHERE status <> 'DELIVRD' LIMIT 5")
        raise AssertionError(f"{timed_out}: {statuses}, e.g. {stuck}; {learned}") from None
    recovered = time.monotonic() - killed
    [(stored,)] = await a.rows("SELECT count(*) FROM messages")
    counts = at_sink()
    twice = {text: n for text, n in counts.items() if n > 1}
    print(f"\n{store_url.split(':')[0]}: {len(flood.acked)} acknowledged ({stored} stored), "
          f"{sent_before} at the sink before the kill, {sum(counts.values())} after; "
          f"sent twice: {len(twice)} (bound {BINDS * WINDOW}); all DELIVRD "
          f"{recovered:.1f} s after the kill")
    assert set(counts) >= acked_texts and len(counts) == stored
    assert max(twice.values(), default=1) <= 2
    assert len(twice) <= BINDS * WINDOW, f"{len(twice)} sent twice"
    await a.terminate()
