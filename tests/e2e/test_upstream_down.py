"""The upstream goes away for 30 s and comes back (issue 9, "Must show").

Gateway A sends to gateway B through its SMPP connector while A's customer keeps
submitting (SMPP Tx, a receipt asked for each message, SMPP Rx bound throughout). B is
stopped with SIGTERM in the middle of that traffic and started again 30 s later on the
same ports and database. Meanwhile A keeps answering its customer (every submit_sm gets
ESME_ROK and an id) and the messages wait at A.

How duplicates are counted: every customer message has its own text, and B stores what
it was given; a text stored at B more than once is a message A sent twice. B stopped
with SIGTERM answers what it took before it unbinds, so nothing it acknowledged may come
twice: the test allows no duplicate at all.
"""

import asyncio
import time
from collections import Counter

from e2e_harness import customer_tx_rx, eventually, receipted_id
from smpp_harness import submit_sm

from smsgate.smpp.constants import CommandId, Status

A_ACCOUNT, A_PASSWORD = "gwa", "gwa-pass-1"
CUSTOMER, PASSWORD = "cust", "cust-pw-1"
OUTAGE = 30.0
RATE = 20  # customer submits a second


class Customer:
    """Submits one message every 1/RATE s (own text and destination each), counts
    its receipts."""

    def __init__(self, tx, rx) -> None:
        self.tx, self.rx = tx, rx
        self.acked: dict[str, str] = {}  # A's id -> text
        self.refused: list[int] = []
        self.receipts: Counter[str] = Counter()
        self.statuses: dict[str, bytes] = {}
        self.running = True
        self.tasks = [asyncio.ensure_future(self._send()), asyncio.ensure_future(self._read())]

    async def _send(self) -> None:
        n = 0
        while self.running:
            n += 1
            text = b"m%05d" % n
            answer = await self.tx.request(submit_sm(f"4479{n:08d}", text,
                                                     registered_delivery=1))
            if answer.status == Status.ESME_ROK:
                self.acked[answer["message_id"]] = text.decode()
            else:
                self.refused.append(answer.status)
            await asyncio.sleep(1 / RATE)

    async def _read(self) -> None:
        while True:
            pdu = await self.rx.requests.get()
            if pdu.command_id == CommandId.deliver_sm:
                self.rx.respond(pdu)
                message_id = receipted_id(pdu)
                self.receipts[message_id] += 1
                self.statuses[message_id] = pdu["short_message"].split(b"stat:")[1][:7]

    async def stop_sending(self) -> None:
        self.running = False
        await self.tasks[0]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.tx.close()
        await self.rx.close()


async def test_b_down_for_30_s_then_everything_once(gateway_at):
    b = gateway_at("b")
    await b.cli(["migrate"], ["account", "add", A_ACCOUNT, "--password", A_PASSWORD,
                              "--credits", "100000"])
    await b.start()
    a = gateway_at("a")
    await a.cli(
        ["migrate"],
        ["account", "add", CUSTOMER, "--password", PASSWORD, "--credits", "100000"],
        ["connector", "add", "b", "--type", "smpp", "--host", "127.0.0.1", "--port",
         str(b.smpp_port), "--system-id", A_ACCOUNT, "--password", A_PASSWORD,
         "--reconnect-min", "0.5", "--reconnect-max", "2"],
        ["route", "add", "4479", "b", "--price", "0.01"])
    await a.start()
    customer = Customer(*await customer_tx_rx(a.smpp_port, CUSTOMER, PASSWORD))
    try:
        await eventually(lambda: len(customer.receipts) >= 20, timeout=30,
                         what="traffic through B")
        await b.terminate()  # in the middle of the traffic
        stopped, before = time.monotonic(), len(customer.acked)
        await asyncio.sleep(OUTAGE)
        # A kept answering: about RATE a second, every one ESME_ROK; they wait at A.
        during = len(customer.acked) - before
        assert during >= OUTAGE * RATE / 3 and not customer.refused
        waiting = await a.rows("SELECT count(*) FROM messages WHERE sent_at IS NULL")
        assert waiting[0][0] >= during

        await b.start(same_ports=True)
        back = time.monotonic()
        await asyncio.sleep(2)
        await customer.stop_sending()
        acked = dict(customer.acked)
        await eventually(lambda: len(customer.receipts) >= len(acked), timeout=60,
                         what=f"receipts for all {len(acked)} messages")
        delivered_after = time.monotonic() - back
        assert set(customer.receipts) == set(acked)
        assert set(customer.statuses.values()) == {b"DELIVRD"}
        statuses = dict(await a.rows("SELECT status, count(*) FROM messages GROUP BY status"))
        assert statuses == {"DELIVRD": len(acked)}
        # At B: every message A accepted, each exactly once.
        at_b = Counter(bytes(p).decode() for (p,) in await b.rows(
            "SELECT payload FROM messages"))
        assert set(at_b) == set(acked.values())
        twice = {text: n for text, n in at_b.items() if n > 1}
        assert not twice, f"sent twice: {twice}"
        # No receipt twice either.
        assert set(customer.receipts.values()) == {1}
        print(f"\n{len(acked)} messages ({during} during the {OUTAGE:.0f} s outage, "
              f"outage {back - stopped:.1f} s); all DELIVRD {delivered_after:.1f} s after "
              f"B returned; duplicates at B: 0")
    finally:
        await customer.close()
        for gateway in (a, b):
            if gateway.proc is not None and gateway.proc.returncode is None:
                await gateway.terminate()
