"""Bind leases on both backends (SPEC §9): the bind policy over every live node's
sessions; a stopped node's, or an earlier run's, count no more."""


async def test_one_receiver_and_max_tx_over_the_leases(store) -> None:
    await store.claim_node("a", "run-a")
    assert await store.take_bind("a", "run-a", "1", 7, "trx", 2) is None
    assert "receiver" in await store.take_bind("a", "run-a", "2", 7, "rx", 2)
    assert await store.take_bind("a", "run-a", "3", 7, "tx", 2) is None
    assert await store.take_bind("a", "run-a", "4", 7, "tx", 2) is None
    assert "max_tx 2" in await store.take_bind("a", "run-a", "5", 7, "tx", 2)
    assert await store.take_bind("a", "run-a", "6", 8, "rx", 1) is None  # another account
    await store.give_back_bind("a", "1")
    assert await store.take_bind("a", "run-a", "7", 7, "rx", 2) is None


async def test_a_stopped_node_or_an_earlier_run_holds_nothing(store) -> None:
    await store.claim_node("a", "run-a")
    assert await store.take_bind("a", "run-a", "1", 7, "rx", 1) is None
    await store.stop_node("a", "run-a")
    await store.claim_node("b", "run-b")
    assert await store.take_bind("b", "run-b", "1", 7, "rx", 1) is None  # a stopped
    await store.claim_node("b", "run-c")  # b restarted: its earlier run's lease is gone
    assert await store.take_bind("b", "run-c", "2", 7, "rx", 1) is None
