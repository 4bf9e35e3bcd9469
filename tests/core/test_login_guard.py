from smsgate.core.login_guard import LoginGuard, LoginGuardConfig


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, **config) -> LoginGuard:
    return LoginGuard(LoginGuardConfig(**config), clock=clock)


def test_ten_failures_in_a_minute_block_the_ip_and_the_id():
    clock = Clock()
    g = guard(clock)
    for _ in range(9):
        g.failed("10.0.0.1", "alice")
        clock.now += 1
    assert not g.blocked("10.0.0.1", "alice")
    g.failed("10.0.0.1", "alice")
    assert g.blocked("10.0.0.1", "alice")
    assert g.blocked("10.0.0.1", "bob")  # the IP is blocked for every id
    assert g.blocked("10.0.0.2", "alice")  # and the id from every IP
    assert not g.blocked("10.0.0.2", "bob")


def test_the_backoff_ends():
    clock = Clock()
    g = guard(clock, backoff=30.0)
    for _ in range(10):
        g.failed("10.0.0.1", "alice")
    clock.now += 29.9
    assert g.blocked("10.0.0.1", "alice")
    clock.now += 0.2
    assert not g.blocked("10.0.0.1", "alice")
    g.failed("10.0.0.1", "alice")  # one more failure, long after the others
    assert not g.blocked("10.0.0.1", "alice")


def test_failures_spread_wider_than_the_window_never_block():
    clock = Clock()
    g = guard(clock)
    for _ in range(100):
        g.failed("10.0.0.1", "alice")
        clock.now += 7  # 10 failures take 63 s > 60 s
    assert not g.blocked("10.0.0.1", "alice")


def test_memory_is_bounded():
    clock = Clock()
    g = guard(clock, max_tracked=50)
    for n in range(1000):
        g.failed(f"10.0.{n // 256}.{n % 256}", f"user{n}")
    assert g.tracked <= 50


def test_zero_disables_the_guard():
    clock = Clock()
    g = guard(clock, max_failures=0)
    for _ in range(100):
        g.failed("10.0.0.1", "alice")
    assert not g.blocked("10.0.0.1", "alice")
    assert g.tracked == 0
