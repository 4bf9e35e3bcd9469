"""A gateway stopped (SIGTERM's path: App.stop) while the simulator still owes some
messages their outcome: after the restart those messages are sent again and get one.

The simulator forgets its pending outcomes when it stops, and the dispatcher holds the
sent marks of its messages (core/statuses.py). Writing those marks at stop left the
messages ATES for good (found by tests/e2e/test_upstream_down.py: gateway B restarted
while gateway A sent through it, 5 of 648 messages never final)."""

from http_harness import api_fixture, eventually, ids_of  # noqa: F401

from smsgate.core.models import CREDIT_SCALE, Connector, Route


async def test_a_message_whose_outcome_was_pending_at_stop_is_final_after_restart(api):
    await api.seed_account()
    await api.store.add_connector(Connector("slow", "simulator", {
        "min_latency_ms": 700, "max_latency_ms": 800}))
    await api.store.add_route(Route("4470", "slow", CREDIT_SCALE))
    await api.app.connectors.reload()
    await api.app.reload_routes()
    [message_id] = ids_of(await api.submit(mno="447000000001"))
    async def taken() -> bool:
        return api.app.dispatcher.sent_not_stored(message_id)
    await eventually(taken, what="the simulator took it")
    await api.restart()  # before its outcome (0.7 s) and before its mark's hold (1 s)

    async def delivered() -> bool:
        return (await api.message(message_id)).status == "DELIVRD"
    await eventually(delivered, timeout=10, what="DELIVRD after the restart")
