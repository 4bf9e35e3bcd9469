"""Connection caps for a listening port (SPEC §11): per source IP and in all.

A server asks `admit(ip)` in its protocol's `connection_made`; a refused connection is
aborted there and then (no task, no read, no answer), and an admitted one calls
`release(ip)` exactly once when it is lost. Counting is plain dict arithmetic: a
connection costs two dict operations.
"""

from dataclasses import dataclass


@dataclass
class ConnectionCaps:
    max_per_ip: int = 100  # connections from one source address at once
    max_total: int = 5000  # connections on the port at once


class ConnectionLimiter:
    def __init__(self, caps: ConnectionCaps | None = None) -> None:
        self.caps = caps or ConnectionCaps()
        self._by_ip: dict[str, int] = {}
        self.total = 0
        self.refused = 0  # connections refused, for metrics

    def admit(self, ip: str) -> bool:
        """Count the connection and say yes, or say no (and count nothing)."""
        held = self._by_ip.get(ip, 0)
        if self.total >= self.caps.max_total or held >= self.caps.max_per_ip:
            self.refused += 1
            return False
        self._by_ip[ip] = held + 1
        self.total += 1
        return True

    def release(self, ip: str) -> None:
        held = self._by_ip.get(ip, 0)
        if held <= 0:
            return
        self.total -= 1
        if held == 1:
            del self._by_ip[ip]
        else:
            self._by_ip[ip] = held - 1

    def count(self, ip: str) -> int:
        return self._by_ip.get(ip, 0)
