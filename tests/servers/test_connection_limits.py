from smsgate.servers.connection_limits import ConnectionCaps, ConnectionLimiter


def test_per_ip_and_total_caps():
    limiter = ConnectionLimiter(ConnectionCaps(max_per_ip=2, max_total=3))
    assert limiter.admit("a") and limiter.admit("a")
    assert not limiter.admit("a")
    assert limiter.admit("b")
    assert not limiter.admit("c")  # total reached
    assert limiter.refused == 2
    limiter.release("a")
    assert limiter.admit("c")
    assert limiter.total == 3 and limiter.count("a") == 1


def test_release_of_an_unknown_ip_changes_nothing():
    limiter = ConnectionLimiter(ConnectionCaps(max_per_ip=1, max_total=1))
    limiter.release("x")
    assert limiter.total == 0
    assert limiter.admit("x")
    limiter.release("x")
    limiter.release("x")
    assert limiter.total == 0 and limiter.count("x") == 0
