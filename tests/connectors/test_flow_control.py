"""The connector's pacer and rate meter, with no clock: every test says what time it is."""

from smsgate.connectors.flow_control import Pacer, RateMeter


def sends_in(pacer: Pacer, start: float, seconds: float, step: float) -> int:
    """Sends a greedy sender makes, asking every `step` seconds."""
    total, now = 0, start
    while now < start + seconds:
        allowed = pacer.available(now)
        pacer.take(allowed, now)
        total += allowed
        now += step
    return total


def test_unlimited() -> None:
    pacer = Pacer(0)
    assert pacer.available(0.0) > 10**6 and pacer.next_at(3.0) == 3.0


def test_a_second_holds_at_most_rate_plus_burst() -> None:
    pacer = Pacer(1000)
    assert pacer.burst == 50
    assert sends_in(pacer, 10.0, 1.0, 0.001) <= 1000 + 50
    assert sends_in(pacer, 11.0, 4.0, 0.003) in range(3990, 4051)  # and keeps to it


def test_slow_rates_pace_one_at_a_time() -> None:
    pacer = Pacer(10)
    assert pacer.available(0.0) == 1
    pacer.take(1, 0.0)
    assert pacer.available(0.05) == 0 and pacer.next_at(0.05) == 0.1
    assert pacer.available(0.1) == 1


def test_idle_time_does_not_save_up_more_than_a_burst() -> None:
    pacer = Pacer(200)
    pacer.take(10, 0.0)
    assert pacer.available(100.0) == pacer.burst == 10


def test_rate_meter() -> None:
    meter = RateMeter(seconds=5)
    for second in range(10):
        meter.add(100, second + 0.5)
    assert meter.rate(10.2) == 100.0
    assert meter.rate(30.0) == 0.0
