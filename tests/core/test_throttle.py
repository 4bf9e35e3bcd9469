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
