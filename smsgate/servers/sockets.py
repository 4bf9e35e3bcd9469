"""Socket options the servers set on their connections' transports."""

import asyncio
import contextlib
import socket
import struct

LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets, drops the queue


def set_option(transport: asyncio.BaseTransport, option: int, value: int | bytes) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:  # a socket the loop owns; None only for unusual transports
        with contextlib.suppress(OSError):  # already reset by the peer: nothing to tune
            sock.setsockopt(socket.SOL_SOCKET, option, value)


def reset(transport: asyncio.BaseTransport, not_lost: bool = False) -> None:
    """Drop the connection now: an RST, and what the kernel still holds for the peer
    discarded. A plain abort closes the socket, which queues a FIN behind that unsent
    data: a peer that does not read never receives it, stays connected, and our socket
    lingers (FIN-WAIT-1, its buffer held) for minutes.

    A closing transport's descriptor may be gone, or reused by another connection, so
    it is left alone, unless the caller knows the connection is `not_lost` yet (a
    transport closing with data left keeps its socket until `connection_lost`)."""
    if not_lost or not transport.is_closing():
        set_option(transport, socket.SO_LINGER, LINGER_RESET)
    transport.abort()
