"""Scheduling over HTTP: the seed's example (long past) is refused; the same request for a
time in the future is stored, shows ATES, survives a restart of the gateway and is sent
within a second of its time.

`schtime` has minutes only, so this waits for the next minute boundary (8-68 s per
backend): the real clock, the real scheduler, no shortcut.
"""

import time
from datetime import UTC, datetime, timedelta, timezone

from http_harness import api_fixture, eventually, ids_of  # noqa: F401

IST = timezone(timedelta(hours=5, minutes=30))
SEED_SCHEDULE = ("/websmpp/websms?user=testUser&pass=12345&sid=Test&mno=96170123456&type=1"
                 "&text=testing Schedule &gmt=+0530&schtime={schtime}")


async def test_seed_example_is_in_the_past(api):
    await api.seed_account()
    response = await api.raw_get(SEED_SCHEDULE.format(schtime="201605101422"))
    assert await response.text() == "ERROR - HTTP22 --> Invalid Schedule Time"


async def test_gmt_zone_is_applied(api):
    await api.seed_account()
    when = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=2)
    for gmt in ("+0530", "-0400", "+0000"):
        zone = IST if gmt == "+0530" else timezone(timedelta(hours=int(gmt[:3])))
        local = when.astimezone(zone).strftime("%Y%m%d%H%M")
        [message_id] = ids_of(await api.submit(gmt=gmt, schtime=local))
        assert (await api.message(message_id)).schedule_at == when.timestamp(), gmt
    [default_zone] = ids_of(await api.submit(schtime=when.strftime("%Y%m%d%H%M")))
    assert (await api.message(default_zone)).schedule_at == when.timestamp()


async def test_future_schedule_survives_restart_and_is_sent_on_time(api):
    account = await api.seed_account()
    target = (int(time.time()) // 60 + 1) * 60
    if target - time.time() < 8:  # leave time for the restart before it is due
        target += 60
    schtime = datetime.fromtimestamp(target, IST).strftime("%Y%m%d%H%M")
    response = await api.raw_get(SEED_SCHEDULE.format(schtime=schtime))
    [message_id] = ids_of(await response.text())
    status = {"respId": str(message_id)}
    assert await api.get("/websmpp/websmsstatus", status) == "Response: ATES"
    message = await api.message(message_id)
    assert (message.schedule_at, message.sent_at) == (target, None)
    assert await api.balance(account.id) == 999 * 10_000  # charged when accepted

    await api.restart()
    assert await api.get("/websmpp/websmsstatus", status) == "Response: ATES"

    async def sent():
        return (await api.message(message_id)).sent_at

    sent_at = await eventually(sent, timeout=target - time.time() + 5, what="the send")
    assert target <= sent_at <= target + 1.0, sent_at - target

    async def delivered():
        return await api.get("/websmpp/websmsstatus", status) == "Response: DELIVRD"

    await eventually(delivered, what="DELIVRD")
