"""SMPP port limits (SPEC §11, issue 8) over real sockets: a client that never reads,
floods before binding, sends garbage, opens too many connections or guesses passwords
gets a bounded cost, and the server drops it by abort when it must."""

import asyncio
import contextlib
import errno
import logging
import select
import socket
import time

import pytest
from smpp_harness import PASSWORD, eventually

from smsgate.smpp.codec import Codec
from smsgate.smpp.constants import CommandId, Status
from smsgate.smpp.pdu import Pdu

CODEC = Codec(field_limits={"password": 100})
ENQUIRE_LINKS = b"".join(CODEC.encode(Pdu(CommandId.enquire_link, n)) for n in range(1, 4097))


@pytest.fixture
def store_url(tmp_path) -> str:
    """SQLite only: the SMPP server's sockets, buffers, caps and timers have nothing to
    do with the backend (its paths through SMPP are tested in the other modules)."""
    return f"sqlite:///{tmp_path}/smsgate.db"


def flood(host: str, port: int, limit: int, bind: bytes = b"") -> tuple[int, socket.socket]:
    """A blocking client (run in a thread): optionally binds, then writes enquire_link
    and never reads, until `limit` bytes are out or a write has been stuck for 2 s.
    Returns the bytes it got out (within 64 KiB) and its socket, still open: the test
    closes it, so that only the server can have ended the connection."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it reads nothing anyway
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.connect((host, port))
    sent = 0
    try:
        if bind:
            sock.sendall(bind)
            header = sock.recv(16, socket.MSG_WAITALL)
            sock.recv(int.from_bytes(header[:4], "big") - 16, socket.MSG_WAITALL)
        sock.settimeout(2.0)
        while sent < limit:
            sock.sendall(ENQUIRE_LINKS)  # whole PDUs: a cut one would break framing
            sent += len(ENQUIRE_LINKS)
    except (TimeoutError, OSError):
        pass  # stuck: the server stopped reading (or dropped us)
    return sent, sock


async def flooding(gateway, limit: int, bind: bytes = b"") -> tuple[int, int, socket.socket]:
    """Run `flood` against the gateway: (bytes sent, the largest write buffer a server
    connection held meanwhile, the client's socket)."""
    sending = asyncio.ensure_future(asyncio.to_thread(
        flood, gateway.host, gateway.port, limit, bind))
    largest = await watch_write_buffer(gateway, sending)
    sent, sock = sending.result()
    gateway.clients.append(_Closer(sock))
    return sent, largest, sock


class _Closer:
    """Lets the harness close a plain socket with its clients."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def close(self) -> None:
        self.sock.close()


async def watch_write_buffer(gateway, stop: asyncio.Future) -> int:
    """The largest write buffer any SMPP connection held while `stop` was pending."""
    largest = 0
    while not stop.done():
        for connection in list(gateway.app.smpp.connections):
            if connection.transport is not None:
                largest = max(largest, connection.transport.get_write_buffer_size())
        await asyncio.sleep(0.005)
    return largest


def bind_pdu(system_id: str = "acme", command: int = CommandId.bind_transceiver) -> bytes:
    return CODEC.encode(Pdu(command, 1, fields={
        "system_id": system_id, "password": PASSWORD, "interface_version": 0x34}))


async def test_a_bound_client_that_never_reads_is_paused_not_buffered(gateway):
    await gateway.account()
    limit = 64 * 1024 * 1024  # over what kernel buffers can hold (tcp_rmem max is 32 MiB)
    sent, largest, _ = await flooding(gateway, limit, bind_pdu())
    config = gateway.app.smpp.config
    # Reading paused at the high-water mark: what is buffered stays near it (one read
    # of at most 256 KiB may still be answered), and the client got stuck.
    assert largest <= config.write_high_water + 512 * 1024, largest
    assert sent < limit
    # A well-behaved customer is not held up meanwhile.
    client = await gateway.bound("tx")
    assert (await client.submit()).status == Status.ESME_ROK


def answers_unread(host: str, port: int, bind: bytes, requests: bytes, wait: float) -> int:
    """A blocking client (run in a thread): binds, sends `requests` and then nothing,
    reads none of their answers, and waits up to `wait` s for the server to drop it.
    Returns the socket's error then: ECONNRESET for an RST, 0 for none."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it reads nothing
        sock.connect((host, port))
        sock.sendall(bind)
        header = sock.recv(16, socket.MSG_WAITALL)
        sock.recv(int.from_bytes(header[:4], "big") - 16, socket.MSG_WAITALL)
        sock.sendall(requests)
        poller = select.poll()
        poller.register(sock, select.POLLHUP | select.POLLERR | select.POLLRDHUP)
        poller.poll(wait * 1000)
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


async def test_a_dropped_client_is_reset_though_answers_wait_for_it(gateway):
    """The server read all the client sent; 64 KiB of answers wait in its kernel send
    buffer, unread. The link check drops the client: an RST reaches it at once. (A
    plain close queued the FIN behind those answers: the client was never told, and
    the server's socket lingered in FIN-WAIT-1, holding them.)"""
    await gateway.account()
    config = gateway.app.smpp.config
    config.enquire_link_interval = config.response_timeout = 0.5
    started = time.monotonic()
    error = await asyncio.to_thread(answers_unread, gateway.host, gateway.port,
                                    bind_pdu(), ENQUIRE_LINKS, 5.0)
    assert error == errno.ECONNRESET, errno.errorcode.get(error, error)
    assert time.monotonic() - started < 4.0  # the link check: 1 s after the last read
    await eventually(lambda: _no_connections(gateway), what="the server's side gone")


async def test_the_kernel_send_buffer_is_capped_per_connection(gateway):
    """Autotuned, the kernel would take up to 4 MiB of answers a client does not read
    before write_high_water pauses our reading of it; capped, it holds that little."""
    config = gateway.app.smpp.config
    for send_buffer in (96 * 1024, 0):
        config.socket_send_buffer = send_buffer
        client = await gateway.client()
        await eventually(lambda: len(gateway.app.smpp.connections) == 1,
                         what="the connection")
        [connection] = gateway.app.smpp.connections
        sock = connection.transport.get_extra_info("socket")
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        if send_buffer:
            assert size == 2 * send_buffer  # Linux doubles it for its bookkeeping
        else:  # the kernel's default (tcp_wmem's), left to grow
            assert size != 2 * 96 * 1024
        await client.close()
        await eventually(lambda: _no_connections(gateway), what="the connection gone")


async def test_an_unbound_flood_is_dropped_at_bind_timeout(gateway):
    config = gateway.app.smpp.config
    config.bind_timeout, config.max_pdus_before_bind = 1.0, 0  # no cap: the timer's job
    started = time.monotonic()
    _, largest, _ = await flooding(gateway, 64 * 1024 * 1024)  # its socket stays open
    await eventually(lambda: _no_connections(gateway), timeout=5.0, what="the abort")
    assert time.monotonic() - started < 8.0  # a close() would wait for a flush forever
    assert largest <= config.write_high_water + 512 * 1024, largest
    assert gateway.app.smpp.limiter.total == 0


async def _no_connections(gateway) -> bool:
    return not gateway.app.smpp.connections


async def test_write_buffer_past_the_cap_aborts(gateway):
    await gateway.account()
    config = gateway.app.smpp.config
    config.write_high_water, config.max_write_buffer = 64 * 1024 * 1024, 256 * 1024
    _, largest, _ = await flooding(gateway, 64 * 1024 * 1024, bind_pdu())
    assert largest <= config.max_write_buffer + 512 * 1024, largest
    await eventually(lambda: _no_connections(gateway), timeout=5.0, what="the abort")


async def test_receipts_to_a_receiver_that_never_reads_stay_bounded(gateway):
    account = await gateway.account()
    config = gateway.app.smpp.config
    config.window, config.receipt_backlog = 2, 5
    receiver = await gateway.bound("rx")
    receiver.writer.transport.pause_reading()  # reads nothing more from here on
    connection = gateway.connection(receiver)
    sender = await gateway.bound("tx")
    for _ in range(30):
        assert (await sender.submit(registered_delivery=1)).status == Status.ESME_ROK
    held = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        held = max(held, len(connection._receipt_backlog))
        assert len(connection.session.pending_out) <= 2
        await asyncio.sleep(0.01)
    assert 0 < held <= 5
    # Nothing is lost: every receipt is still stored, to be retried.
    assert len(await gateway.receipts(account.id)) == 30


async def test_unbound_connection_may_send_only_a_few_pdus(gateway):
    assert gateway.app.smpp.config.max_pdus_before_bind == 10
    client = await gateway.client()
    client.send_raw(ENQUIRE_LINKS[: 16 * 11])
    await client.wait_closed(5.0)
    answered = [p for p in client.unmatched if p.command_id == CommandId.enquire_link_resp]
    assert len(answered) == 10


async def test_unknown_command_flood_logs_a_few_lines_and_closes(gateway, caplog):
    await gateway.account()
    client = await gateway.bound("trx")
    caplog.clear()
    caplog.set_level(logging.INFO, logger="smsgate.servers.smpp_server")
    unknown = b"".join((16).to_bytes(4, "big") + (0x666).to_bytes(4, "big") + bytes(4)
                       + n.to_bytes(4, "big") for n in range(1, 30_000))  # 468 KB
    client.send_raw(unknown)
    await client.wait_closed(10.0)
    await eventually(lambda: _no_connections(gateway), what="the server's side closed")
    lines = [r for r in caplog.records if r.name == "smsgate.servers.smpp_server"]
    config = gateway.app.smpp.config
    # the budgeted error lines, "closing: 100 protocol errors", "N more errors not
    # logged", "unbound"
    assert len(lines) <= config.log_errors_per_minute + 3, [r.getMessage() for r in lines]
    assert any("100 protocol errors" in r.getMessage() for r in lines)
    nacks = [p for p in client.unmatched if p.command_id == CommandId.generic_nack]
    assert len(nacks) == config.max_protocol_errors


# -- connection caps and the login back-off ----------------------------------------------------


async def test_connection_caps_refuse_at_once_and_release_exactly_once(gateway):
    await gateway.account()
    caps = gateway.app.smpp.config.caps
    caps.max_per_ip, caps.max_total = 2, 3
    limiter = gateway.app.smpp.limiter
    first = [await gateway.client("127.0.0.1") for _ in range(2)]
    refused = await gateway.client("127.0.0.1")
    await refused.wait_closed(2.0)  # dropped with no answer, no task
    other = await gateway.bound("tx", source="127.0.0.2")
    over_total = await gateway.client("127.0.0.3")
    await over_total.wait_closed(2.0)
    assert (limiter.total, limiter.count("127.0.0.1"), limiter.refused) == (3, 2, 2)
    assert len(gateway.app.smpp.connections) == 3
    assert (await other.submit()).status == Status.ESME_ROK
    for client in first:
        await client.close()
    await eventually(lambda: _total_is(limiter, 1), what="released connections")
    again = await gateway.bound("tx", source="127.0.0.1")
    assert (await again.submit()).status == Status.ESME_ROK
    await gateway.close_clients()
    await eventually(lambda: _total_is(limiter, 0), what="all released")
    assert limiter.count("127.0.0.1") == limiter.count("127.0.0.2") == 0


async def _total_is(limiter, total: int) -> bool:
    return limiter.total == total


async def test_bind_brute_force_is_refused_after_a_delay_from_any_address(gateway):
    await gateway.account("acme")
    await gateway.account("bob")
    gateway.app.smpp.config.login_backoff_delay = 0.5
    for _ in range(10):
        client = await gateway.client("127.0.0.1")
        assert (await client.bind("tx", "acme", "wrong")).status == Status.ESME_RINVPASWD
    for source in ("127.0.0.1", "127.0.0.2"):  # the id is blocked, whatever the address
        client = await gateway.client(source)
        started = time.monotonic()
        assert (await client.bind("tx", "acme")).status == Status.ESME_RBINDFAIL
        assert time.monotonic() - started >= 0.45
        await client.wait_closed(2.0)
    bob = await gateway.client("127.0.0.3")
    assert (await bob.bind("tx", "bob")).status == Status.ESME_ROK


async def test_peer_gone_during_the_backoff_delay_leaks_nothing(gateway):
    await gateway.account()
    gateway.app.smpp.config.login_backoff_delay = 0.5
    for _ in range(10):
        client = await gateway.client()
        await client.bind("tx", "acme", "wrong")
    client = await gateway.client()
    client.send(Pdu(CommandId.bind_receiver, fields={
        "system_id": "acme", "password": PASSWORD, "interface_version": 0x34}))
    await asyncio.sleep(0.1)
    await client.close()
    await eventually(lambda: _no_connections(gateway), what="the connection gone")
    await asyncio.sleep(0.6)  # past the delay: nothing is answered, nothing taken
    assert gateway.app.gateway.binds.count(1) == (0, 0)
    assert gateway.app.smpp.limiter.total == 0
    with contextlib.suppress(Exception):
        await client.wait_closed(0.1)


def test_every_limit_is_a_setting_in_the_toml_file(tmp_path):
    from smsgate.config import load

    config = tmp_path / "smsgate.toml"
    config.write_text("""
[smpp]
max_pdus_before_bind = 3
max_protocol_errors = 7
log_errors_per_minute = 2
write_high_water = 1000
max_write_buffer = 9000
socket_send_buffer = 65536
receipt_backlog = 50
login_backoff_delay = 0.25

[smpp.caps]
max_per_ip = 4
max_total = 40
""")
    settings = load(str(config), environ={}).settings
    smpp = settings.smpp
    assert (smpp.max_pdus_before_bind, smpp.max_protocol_errors, smpp.log_errors_per_minute,
            smpp.write_high_water, smpp.max_write_buffer, smpp.socket_send_buffer,
            smpp.receipt_backlog, smpp.login_backoff_delay) == (3, 7, 2, 1000, 9000, 65536,
                                                                50, 0.25)
    assert (smpp.caps.max_per_ip, smpp.caps.max_total) == (4, 40)
    session = smpp.session_config()
    assert (session.max_pdus_before_bind, session.max_protocol_errors) == (3, 7)
