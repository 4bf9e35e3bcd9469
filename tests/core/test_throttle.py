from smsgate.core.throttle import Backlog, Throttle


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_bucket_allows_one_second_of_traffic_then_refills():
    clock = Clock()
    throttle = Throttle(clock)
    assert all(throttle.allow(1, 5) for _ in range(5))
    assert not throttle.allow(1, 5)
    clock.now += 0.2  # one token back
    assert throttle.allow(1, 5)
    assert not throttle.allow(1, 5)


def test_parts_count_and_zero_means_unlimited():
    throttle = Throttle(Clock())
    assert throttle.allow(1, 10, 8)
    assert not throttle.allow(1, 10, 3)
    assert all(throttle.allow(2, 0, 1000) for _ in range(100))


def test_a_full_burst_fits_exactly_despite_float_sums():
    throttle = Throttle(Clock())
    assert all(throttle.allow(1, 3) for _ in range(3))  # 3 x 1/3 s
    assert not throttle.allow(1, 3)


def test_pace_spreads_what_exceeds_the_burst_at_the_rate():
    throttle = Throttle(Clock())
    delays = throttle.pace(1, 100, 1, 10_000, max_backlog=3600)
    assert delays is not None and len(delays) == 10_000
    assert delays[:100] == [0.0] * 100  # one second of burst goes at once
    assert abs(delays[100] - 0.01) < 1e-9
    assert abs(delays[-1] - 99.0) < 1e-6
    assert delays == sorted(delays)
    # the account's allowance is spent: an SMPP submit now is refused
    assert not throttle.allow(1, 100)


def test_pace_counts_parts_and_returns_none_when_all_fit():
    throttle = Throttle(Clock())
    assert throttle.pace(1, 100, 2, 50, max_backlog=60) is None  # 100 parts = the burst
    delays = throttle.pace(1, 100, 2, 10, max_backlog=60)  # now paced behind them
    assert delays is not None
    assert abs(delays[0] - 0.02) < 1e-9 and abs(delays[-1] - 0.2) < 1e-9


def test_pace_refuses_a_backlog_past_the_limit_and_takes_nothing():
    clock = Clock()
    throttle = Throttle(clock)
    try:
        throttle.pace(1, 1, 1, 5000, max_backlog=3600)
    except Backlog:
        pass
    else:
        raise AssertionError("a 5000 s backlog was accepted")
    assert throttle.allow(1, 1)  # nothing was taken


def test_a_later_request_is_paced_from_its_own_start():
    throttle = Throttle(Clock())
    delays = throttle.pace(1, 10, 1, 30, max_backlog=60, later=True)
    assert delays is not None and delays[9] == 0.0 and abs(delays[-1] - 2.0) < 1e-9
    assert throttle.allow(1, 10, 10)  # today's allowance untouched


def test_unlimited_accounts_are_never_paced():
    assert Throttle(Clock()).pace(1, 0, 1, 10_000, max_backlog=1) is None


def test_keys_are_bounded_when_asked():
    throttle = Throttle(Clock(), max_keys=3)
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
        assert throttle.allow(ip, 1)
    assert len(throttle) == 3
    assert not throttle.allow("10.0.0.4", 1)  # its bucket is still there, and empty
    assert throttle.allow("10.0.0.1", 1)  # dropped first, so it came back full
