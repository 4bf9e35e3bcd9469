"""An HTTP request with more numbers than the account's tps allows at once is accepted
whole and sent at the account's rate (issue 8 item 12; core/throttle.py)."""

import asyncio
import time

from http_harness import api_fixture as api  # noqa: F401 - the `api` fixture
from http_harness import ids_of, submit_params


def numbers(count: int) -> str:
    return ",".join(str(96170000000 + n) for n in range(count))


async def test_ten_thousand_numbers_at_100_per_second_are_accepted_and_paced(api):  # noqa: F811
    await api.seed_account(tps=100, credits=20_000)
    simulator = api.app.dispatcher.connectors["simulator"]
    started = time.time()
    answer = await api.post("/websmpp/websms", submit_params(mno=numbers(10_000)))
    ids = ids_of(answer)
    assert len(ids) == 10_000
    last = await api.message(ids[-1])
    assert last.schedule_at is not None
    assert 97 < last.schedule_at - started < 101  # 9,900 paced over 99 s
    first = await api.message(ids[0])
    assert first.schedule_at is None  # one second's burst goes at once
    await asyncio.sleep(1.0)
    at_one, elapsed = simulator.sent, time.time() - started  # the POST itself takes time
    await asyncio.sleep(3.0)
    in_three = simulator.sent - at_one
    # the burst, then 100/s since the start; never the batch
    assert 100 <= at_one <= 150 + 100 * elapsed, (at_one, elapsed)
    assert 200 <= in_three <= 450, in_three  # ~300 at 100/s, never the whole batch


async def test_paced_messages_wait_in_the_store_across_restarts(api):  # noqa: F811
    await api.seed_account(tps=5)
    ids = ids_of(await api.post("/websmpp/websms", submit_params(mno=numbers(50))))
    await api.restart()
    message = await api.message(ids[-1])
    assert message.status == "ATES" and message.sent_at is None
    assert await api.get("/websmpp/websmsstatus", {"respId": ids[-1]}) == "Response: ATES"
