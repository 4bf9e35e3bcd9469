from smsgate.core.throttle import Throttle


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


def test_keys_are_bounded_when_asked():
    throttle = Throttle(Clock(), max_keys=3)
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
        assert throttle.allow(ip, 1)
    assert len(throttle) == 3
    assert not throttle.allow("10.0.0.4", 1)  # its bucket is still there, and empty
    assert throttle.allow("10.0.0.1", 1)  # dropped first, so it came back full
