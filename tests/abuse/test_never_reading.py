"""SMPP clients that write as fast as they can and never read an answer: bound ones
flooding submit_sm and enquire_link, and an unbound one flooding enquire_link. The
server stops reading a client whose answers it cannot hand over (its write buffer past
`write_high_water`), so its memory does not follow what the clients send; then the
unanswered link check (`enquire_link_interval` + `response_timeout`) drops the bound
ones, and the unbound one is dropped after `max_pdus_before_bind` PDUs."""

import asyncio
import select
import socket
import time

from abuse_harness import ATTACKER_IPS, HOST, MIB, normal_customer, serving
from smpp_harness import PASSWORD, RawClient, submit_sm

from smsgate.smpp.codec import Codec
from smsgate.smpp.constants import CommandId, Status
from smsgate.smpp.pdu import Pdu

LINK_CHECK = 3.0  # [smpp] enquire_link_interval and response_timeout (defaults 30 s each)
# A bound client that reads nothing is dropped within the link check (2 x LINK_CHECK
# after the server last read from it) + this margin.
DROP_MARGIN = 10.0
STUCK = 2.0  # a client's write blocked this long: the server has stopped reading it
LIMIT = 256 * MIB  # what one client tries to write, far over every buffer on the way
# Server RSS: 82 MiB after start; measured peak 93-95 MiB while three bound clients
# pushed 4-7 MiB each and read nothing (decoding one 250 KB read of 16-byte PDUs makes
# some 6 MB of objects, which the allocator partly keeps), 92-95 MiB after. Once paused,
# nothing more is read, however long a client keeps trying. Before issue 8 (item 2)
# memory grew ~1:1 with what a client sent, without end. Bounds: a fair margin over
# the peak, and over the growth (12-13 MiB measured).
RSS_BOUND = 120 * MIB
GROWTH_BOUND = 30 * MIB
FLOODERS = ("flood1", "flood2", "flood3")
CONFIG = {"smpp": {"enquire_link_interval": LINK_CHECK, "response_timeout": LINK_CHECK}}

CODEC = Codec(field_limits={"password": 100})


def _blocks() -> dict[str, bytes]:
    """What the flooders write, over and over: whole PDUs, so that framing holds."""
    links = b"".join(CODEC.encode(Pdu(CommandId.enquire_link, n)) for n in range(1, 2001))
    submits = b"".join(CODEC.encode(Pdu(CommandId.submit_sm, n, fields=submit_sm().fields))
                       for n in range(1, 201))
    return {"links": links, "mixed": submits + links}


BLOCKS = _blocks()


def bind_pdu(system_id: str, command: int = CommandId.bind_transmitter) -> bytes:
    return CODEC.encode(Pdu(command, 1, fields={
        "system_id": system_id, "password": PASSWORD, "interface_version": 0x34}))


def never_reading(port: int, source: str, block: bytes, bind: bytes = b"") -> dict:
    """A blocking client (run it in a thread): binds (reading only the bind_resp) if
    `bind`, then writes `block` until LIMIT bytes are out or a write is stuck for STUCK
    s, and reads nothing. Then waits for the server to drop the connection (an RST,
    or its FIN). Returns the bytes it sent, when (seconds from its connect) it got
    stuck and was dropped, and whether the drop was an RST."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it reads nothing anyway
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.bind((source, 0))
    sock.connect((HOST, port))
    started = time.monotonic()
    sent, stuck = 0, None
    try:
        if bind:
            sock.sendall(bind)
            header = sock.recv(16, socket.MSG_WAITALL)
            assert int.from_bytes(header[8:12], "big") == Status.ESME_ROK, header
            sock.recv(int.from_bytes(header[:4], "big") - 16, socket.MSG_WAITALL)
        sock.settimeout(STUCK)
        while sent < LIMIT:
            sock.sendall(block)
            sent += len(block)
    except TimeoutError:
        stuck = time.monotonic() - started - STUCK  # when the write that never ended began
    except OSError:
        pass  # dropped while writing
    poller = select.poll()
    # dropped: an RST (POLLHUP / POLLERR), or a FIN (POLLRDHUP: the peer closed its
    # side; POLLIN would fire on the answers waiting unread). A FIN only comes after
    # the answers the server still holds, which this client never reads.
    poller.register(sock, select.POLLHUP | select.POLLERR | select.POLLRDHUP)
    events = poller.poll((2 * LINK_CHECK + DROP_MARGIN + 5) * 1000)
    dropped = time.monotonic() - started if events else None
    reset = any(mask & (select.POLLHUP | select.POLLERR) for _, mask in events)
    sock.close()
    return {"sent": sent, "stuck": stuck, "dropped": dropped, "reset": reset}


async def test_clients_that_never_read_are_paused_then_dropped(tmp_path):
    async with serving(tmp_path, CONFIG, accounts=("customer", *FLOODERS)) as gw:
        before = await normal_customer(gw, RSS_BOUND)
        for system_id in FLOODERS:  # a first bind each: the password check is done,
            client = await RawClient.connect(HOST, gw.smpp_port)  # its scrypt buffers
            assert (await client.bind("tx", system_id)).status == Status.ESME_ROK  # freed
            await client.close()
        await asyncio.sleep(0.5)
        base = gw.rss()
        gw.reset_peak()
        port = gw.smpp_port
        floods = [
            asyncio.to_thread(never_reading, port, ATTACKER_IPS[0], BLOCKS["mixed"],
                              bind_pdu("flood1")),
            asyncio.to_thread(never_reading, port, ATTACKER_IPS[1], BLOCKS["mixed"],
                              bind_pdu("flood2", CommandId.bind_transceiver)),
            asyncio.to_thread(never_reading, port, ATTACKER_IPS[2], BLOCKS["links"],
                              bind_pdu("flood3", CommandId.bind_receiver)),
            asyncio.to_thread(never_reading, port, ATTACKER_IPS[3], BLOCKS["links"]),
        ]
        results = await asyncio.gather(*floods)
        peak = gw.peak_rss()
        log = gw.log_text()
        after = await normal_customer(gw, RSS_BOUND, mode="tx+rx")
    *bound, unbound = results
    for result in bound:
        assert result["stuck"] is not None, result  # the server stopped reading it
        assert result["dropped"] is not None, result
        assert result["dropped"] - result["stuck"] <= 2 * LINK_CHECK + DROP_MARGIN, result
        # An abort: the answers the kernel held for it discarded. (A close of the socket
        # alone left the FIN behind them, and the client connected: it failed so.)
        assert result["reset"], result
    # The unbound one: closed after max_pdus_before_bind (10) PDUs, long before the
    # 30 s bind_timeout (seen: 0.02-0.7 s, as the machine's load goes).
    assert unbound["dropped"] is not None and unbound["dropped"] < 5.0, unbound
    assert peak < RSS_BOUND and peak - base < GROWTH_BOUND, (peak, base)
    assert "unread by the peer" not in log  # paused, never over max_write_buffer
    print(f"never reading: clients sent {_listed(results, 'sent', MIB)} MiB; bound ones "
          f"stuck after {_listed(bound, 'stuck')} s, dropped after "
          f"{_listed(bound, 'dropped')} s; unbound dropped after {unbound['dropped']:.2f} s; "
          f"rss before {before.rss / MIB:.1f} MiB, base {base / MIB:.1f}, "
          f"peak {peak / MIB:.1f}, after {after.rss / MIB:.1f}")


def _listed(rows: list[dict], key: str, unit: float = 1.0) -> str:
    return ", ".join(f"{row[key] / unit:.1f}" for row in rows)
