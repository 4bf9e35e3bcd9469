"""Failed-login back-off (SPEC §11), shared by SMPP binds and HTTP requests.

After `max_failures` failed logins within `window` seconds from one source IP, or for
one system_id, every further attempt from that IP / for that id is refused *without
checking the password* for `backoff` seconds; then the count starts afresh. Refusals
during the back-off are not failures. A correct password inside the back-off is
refused too: otherwise a guesser would learn the moment it was right. A success
resets nothing, so that one valid account cannot wash out the failures of an IP.

Memory is bounded: at most `max_tracked` keys are remembered (the oldest are forgotten
first), so a flood of random system_ids or source addresses costs a fixed amount.
"""

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class LoginGuardConfig:
    max_failures: int = 10  # failed logins per window before the back-off starts
    window: float = 60.0  # seconds in which failures are counted
    backoff: float = 60.0  # seconds an IP / a system_id stays refused
    max_tracked: int = 100_000  # IPs + system_ids remembered at once


class _Failures:
    __slots__ = ("blocked_until", "times")

    def __init__(self, size: int) -> None:
        self.times: deque[float] = deque(maxlen=size)
        self.blocked_until = 0.0


class LoginGuard:
    def __init__(self, config: LoginGuardConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or LoginGuardConfig()
        self._clock = clock
        self._keys: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self.refused = 0  # attempts refused by the back-off, for metrics
        self.failures = 0  # failed logins counted, for metrics

    def blocked(self, ip: str | None, system_id: str) -> bool:
        """Whether an attempt from `ip` for `system_id` must be refused unchecked."""
        now = self._clock()
        for key in _keys(ip, system_id):
            entry = self._keys.get(key)
            if entry is not None and entry.blocked_until > now:
                self.refused += 1
                return True
        return False

    def failed(self, ip: str | None, system_id: str) -> None:
        """Count a failed login (unknown id, wrong password, refused IP)."""
        config = self.config
        if config.max_failures <= 0:
            return
        self.failures += 1
        now = self._clock()
        for key in _keys(ip, system_id):
            entry = self._keys.get(key)
            if entry is None:
                entry = self._keys[key] = _Failures(config.max_failures)
                if len(self._keys) > config.max_tracked:
                    self._keys.popitem(last=False)
            else:
                self._keys.move_to_end(key)
            entry.times.append(now)
            if len(entry.times) == config.max_failures and now - entry.times[0] <= config.window:
                entry.blocked_until = now + config.backoff
                entry.times.clear()

    @property
    def tracked(self) -> int:
        return len(self._keys)


def _keys(ip: str | None, system_id: str) -> tuple[tuple[str, str], ...]:
    # An empty system_id is still a key: a client that sends none is guessing too.
    return (("id", system_id),) if ip is None else (("ip", ip), ("id", system_id))
