"""1,000 idle connections on the SMPP port and 1,000 on the HTTP port, from ten source
addresses (100 each, the default per-IP cap): the server holds them without harm, a
normal customer is served meanwhile, one more from a full address or past the total
cap is refused at once, and the server closes every idle one within its timeout
(SMPP `bind_timeout`, HTTP `keepalive_timeout`)."""

import asyncio
import time

from abuse_harness import (
    ATTACKER_IPS,
    MIB,
    IdleConnections,
    closed_within,
    connect_unless_reset,
    normal_customer,
    open_idle,
    refused_at_once,
    serving,
)

PER_IP = 100  # the default [smpp.caps] / [http.connections] max_per_ip
SOURCES = 10
IDLE = PER_IP * SOURCES  # 1,000 per port
# The total cap: the idle ones and EXTRA more (room for the normal customer while it is
# served during the attack), which the test then fills to see the next one refused.
EXTRA = 20
MAX_TOTAL = IDLE + EXTRA
OVER = 3  # tried past the total cap
TIMEOUT = 8.0  # bind_timeout and keepalive_timeout (defaults 30 s): long enough to set
# up 2,000 connections and check the caps on a slow machine before the first closes
CLOSE_MARGIN = 10.0  # an idle connection is closed within TIMEOUT + this
REFUSAL_BOUND = 1.0  # seconds: a refused connection sees its RST at once (~1 ms seen)
# Server RSS: 82 MiB after start; 94 MiB with the 2,000 idle connections held (some
# 6 KiB each), peak 109-110 MiB (a first bind's scrypt buffers, 16 MiB), 94-95 MiB
# after they closed. Bound: the start figure plus twice the growth to the peak, so
# that a per-connection cost of a few tens of KiB (x 2,000) fails.
RSS_BOUND = 140 * MIB

CONFIG = {
    "smpp": {"bind_timeout": TIMEOUT,
             "caps": {"max_per_ip": PER_IP, "max_total": MAX_TOTAL}},
    "http": {"keepalive_timeout": TIMEOUT,
             "connections": {"max_per_ip": PER_IP, "max_total": MAX_TOTAL}},
}


def fill_to_the_cap(port: int, source: str, idle: IdleConnections) -> list[bool]:
    """Open EXTRA + OVER connections from `source`, one after the other, and see which
    the server dropped at once; the ones it kept are added to `idle`."""
    tried = [connect_unless_reset(source, port) for _ in range(EXTRA + OVER)]
    opened = time.monotonic()
    socks = [sock for sock in tried if sock is not None]  # None: reset while connecting
    kept = {sock for sock, end in zip(socks, closed_within(socks, 1.0), strict=True)
            if end is None}
    for sock in socks:
        if sock in kept:
            idle.socks.append(sock)
            idle.opened.append(opened)
        else:
            sock.close()
    return [sock not in kept for sock in tried]


async def test_a_thousand_idle_connections_per_port(tmp_path):
    async with serving(tmp_path, CONFIG) as gw:
        started_rss, started_fds = gw.rss(), gw.open_fds()
        gw.reset_peak()
        started = time.monotonic()
        attackers = ATTACKER_IPS[:SOURCES]
        smpp, http = await asyncio.gather(
            asyncio.to_thread(open_idle, gw.smpp_port, attackers, PER_IP),
            asyncio.to_thread(open_idle, gw.http_port, attackers, PER_IP))
        try:
            opened = time.monotonic() - started
            # The per-IP cap: one more from a full address is dropped at once.
            refusals = []
            for port in (gw.smpp_port, gw.http_port):
                dropped = await asyncio.to_thread(refused_at_once, port, attackers[0])
                assert dropped is not None and dropped < REFUSAL_BOUND, (port, dropped)
                refusals.append(dropped)
            # A normal customer is served meanwhile (from an address of its own).
            await normal_customer(gw, RSS_BOUND)
            held_rss = gw.rss()
            await asyncio.sleep(0.5)  # the server sees the customer's connections go
            # The total cap: fill it from a fresh address; the next one is refused.
            for port, idle in ((gw.smpp_port, smpp), (gw.http_port, http)):
                dropped = await asyncio.to_thread(fill_to_the_cap, port,
                                                  ATTACKER_IPS[SOURCES], idle)
                assert dropped == [False] * EXTRA + [True] * OVER, (port, dropped)
                dropped = await asyncio.to_thread(refused_at_once, port,
                                                  ATTACKER_IPS[SOURCES + 1])
                assert dropped is not None and dropped < REFUSAL_BOUND, (port, dropped)
                refusals.append(dropped)
            checked = time.monotonic() - started
            assert checked < TIMEOUT, f"set-up took {checked:.1f} s: too slow for TIMEOUT"
            # Every idle connection is closed by the server within its timeout.
            lives = await asyncio.gather(
                asyncio.to_thread(smpp.lifetimes, TIMEOUT + CLOSE_MARGIN + 5),
                asyncio.to_thread(http.lifetimes, TIMEOUT + CLOSE_MARGIN + 5))
        finally:
            smpp.close()
            http.close()
        for port, lifetimes in zip(("smpp", "http"), lives, strict=True):
            assert None not in lifetimes, f"{port}: {lifetimes.count(None)} still open"
            assert min(lifetimes) >= TIMEOUT * 0.9, (port, min(lifetimes))
            assert max(lifetimes) <= TIMEOUT + CLOSE_MARGIN, (port, max(lifetimes))
        peak = gw.peak_rss()
        figures = await normal_customer(gw, RSS_BOUND)
        assert gw.open_fds() <= started_fds + 5, (started_fds, gw.open_fds())
        print(f"idle: opened 2x{IDLE} in {opened:.2f} s; refused past the caps within "
              f"{max(refusals) * 1000:.1f} ms; lifetimes "
              f"smpp {min(lives[0]):.2f}-{max(lives[0]):.2f} s, "
              f"http {min(lives[1]):.2f}-{max(lives[1]):.2f} s; rss start "
              f"{started_rss / MIB:.1f} MiB, held {held_rss / MIB:.1f}, peak {peak / MIB:.1f}, "
              f"after {figures.rss / MIB:.1f}")
        assert peak < RSS_BOUND
