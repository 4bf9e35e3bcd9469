"""Helpers for the SMPP connector tests over real TCP.

- `Recorder` is the core's side of `ConnectorEvents`: it records what the connector
  says (it is what the dispatcher will be, not a stand-in for the network or the peer).
- `RawSmsc` is a small SMSC written with plain `struct` (no smsgate import, like
  bench/sink_smsc.py) whose behaviour a test steers: answer or hold submit_sm, refuse
  binds, drop connections, write raw bytes. Peers with a will of their own (our
  gateway, smpp34, the sink) are used where behaviour, not timing, is tested.
"""

import asyncio
import struct
import time
from dataclasses import dataclass, field

from smpp_harness import eventually

from smsgate.connectors.smpp_client import SmppConnector
from smsgate.core.models import (
    InboundMessage,
    Message,
    StatusUpdate,
    UpstreamFailure,
    UpstreamReport,
)
from smsgate.core.ports import Done

HEADER = struct.Struct(">IIII")
RESPONSE = 0x80000000
BIND_TX, BIND_RX, BIND_TRX = 0x02, 0x01, 0x09
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x04, 0x05, 0x06, 0x15


def message(n: int, dest: str = "447700900001", text: bytes = b"Hello", **fields) -> Message:
    fields.setdefault("source_ton", 5)
    fields.setdefault("source_npi", 0)
    return Message(id=n, account_id=1, source_addr="Acme", dest_addr=dest, payload=text,
                   **fields)


class Recorder:
    """ConnectorEvents on the test's side. Every message must get exactly one outcome;
    `resend` gives temporarily failed messages back to the connector (as the dispatcher
    does when no other route is left)."""

    def __init__(self) -> None:
        self.ids: dict[int, list[str]] = {}  # message id -> upstream ids, per `sent`
        self.failures: dict[int, list[UpstreamFailure]] = {}
        self.outcomes: dict[int, int] = {}  # message id -> sent/failed calls
        self.reports: list[UpstreamReport] = []
        self.inbound_messages: list[InboundMessage] = []
        self.store_ok = True  # what done() says
        self.hold = False  # keep done() for the test to call
        self.held: list[Done] = []
        self.resend: SmppConnector | None = None
        self.resent = 0

    def sent(self, message: Message, upstream_ids) -> None:
        self.ids[message.id] = list(upstream_ids)
        self.outcomes[message.id] = self.outcomes.get(message.id, 0) + 1

    def failed(self, message: Message, failure: UpstreamFailure) -> None:
        self.failures.setdefault(message.id, []).append(failure)
        self.outcomes[message.id] = self.outcomes.get(message.id, 0) + 1
        if failure.temporary and self.resend is not None:
            self.resent += 1
            self.outcomes[message.id] -= 1  # its next outcome is the one that counts
            asyncio.get_running_loop().call_later(0.05, self.resend.send, [message])

    def status(self, message: Message, update: StatusUpdate) -> None:
        raise AssertionError("an SMPP connector reports statuses through report()")

    def report(self, report: UpstreamReport, done: Done) -> None:
        self.reports.append(report)
        self._done(done)

    def inbound(self, inbound: InboundMessage, done: Done) -> None:
        self.inbound_messages.append(inbound)
        self._done(done)

    def _done(self, done: Done) -> None:
        if self.hold:
            self.held.append(done)
        else:
            done(self.store_ok)

    def temporary(self) -> list[int]:
        return [m for m, fs in self.failures.items() if any(f.temporary for f in fs)]

    def permanent(self) -> dict[int, int]:
        return {m: f.status for m, fs in self.failures.items() for f in fs if not f.temporary}


def settings(port: int, **more) -> dict:
    return {"host": "127.0.0.1", "port": port, "system_id": "acme", "password": "secret12",
            "response_timeout": 2, "reconnect_min": 0.1, "reconnect_max": 0.4} | more


async def started(config: dict, recorder: Recorder | None = None,
                  bound: bool = True) -> tuple[SmppConnector, Recorder]:
    connector = SmppConnector("up", config)
    recorder = recorder or Recorder()
    await connector.start(recorder)
    if bound:
        await eventually(lambda: connector.available, what="a bind")
    return connector, recorder


# -- a steerable raw SMSC ---------------------------------------------------------------


@dataclass
class Submit:
    connection: "RawConnection"
    sequence: int
    body: bytes


@dataclass
class RawSmsc:
    """Binds anyone unless `bind_status` says otherwise; answers submit_sm with ids
    "1", "2", ... unless `hold` (then they wait in `held`)."""

    bind_status: int = 0
    hold: bool = False
    answer_enquire_link: bool = True
    connections: list["RawConnection"] = field(default_factory=list)
    held: list[Submit] = field(default_factory=list)
    submits: list[Submit] = field(default_factory=list)
    binds: list[tuple[float, int]] = field(default_factory=list)  # (time, command)
    next_id: int = 1
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> "RawSmsc":
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: RawConnection(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.drop_all()
        if self.server is not None:
            self.server.close()

    def drop_all(self) -> None:
        for connection in list(self.connections):
            connection.transport.abort()

    def answer(self, submit: Submit, status: int = 0) -> None:
        body = b"" if status else f"{self.next_id}".encode() + b"\0"
        self.next_id += 0 if status else 1
        submit.connection.write(SUBMIT_SM | RESPONSE, status, submit.sequence, body)

    @property
    def live(self) -> list["RawConnection"]:
        return [c for c in self.connections if c.bound and not c.transport.is_closing()]


class RawConnection(asyncio.Protocol):
    def __init__(self, smsc: RawSmsc) -> None:
        self.smsc = smsc
        self.buffer = bytearray()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.bound = False
        self.deliver_answers: dict[int, int] = {}  # our deliver_sm sequence -> status
        self.unbind_answered = False  # our unbind (`unbind`) answered

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.smsc.connections.append(self)

    def connection_lost(self, exc) -> None:
        self.smsc.connections.remove(self)

    def write(self, command: int, status: int, sequence: int, body: bytes = b"") -> None:
        if not self.transport.is_closing():
            self.transport.write(HEADER.pack(16 + len(body), command, status, sequence) + body)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 16:
            length, command, status, sequence = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < length:
                return
            body = bytes(self.buffer[16:length])
            del self.buffer[:length]
            self.handle(command, status, sequence, body)

    def handle(self, command: int, status: int, sequence: int, body: bytes) -> None:
        smsc = self.smsc
        if command in (BIND_TX, BIND_RX, BIND_TRX):
            smsc.binds.append((time.monotonic(), command))
            self.bound = not smsc.bind_status
            self.write(command | RESPONSE, smsc.bind_status, sequence,
                       b"" if smsc.bind_status else b"raw\0")
        elif command == SUBMIT_SM:
            submit = Submit(self, sequence, body)
            smsc.submits.append(submit)
            if smsc.hold:
                smsc.held.append(submit)
            else:
                smsc.answer(submit)
        elif command == ENQUIRE_LINK and smsc.answer_enquire_link:
            self.write(ENQUIRE_LINK | RESPONSE, 0, sequence)
        elif command == UNBIND:
            self.write(UNBIND | RESPONSE, 0, sequence)
            self.transport.close()
        elif command == DELIVER_SM | RESPONSE:
            self.deliver_answers[sequence] = status
        elif command == UNBIND | RESPONSE:
            self.unbind_answered = True

    def unbind(self, sequence: int = 0x7000_0001) -> None:
        """The SMSC ends the session (a drain): unbind, answered later or not."""
        self.write(UNBIND, 0, sequence)

    def deliver(self, sequence: int, body: bytes) -> None:
        self.write(DELIVER_SM, 0, sequence, body)


def deliver_body(esm_class: int, text: bytes, source: str = "447700900001",
                 dest: str = "Acme") -> bytes:
    """A deliver_sm body: addresses, esm_class, the text in short_message."""
    return (b"\0" + bytes((1, 1)) + source.encode() + b"\0" + bytes((5, 0)) + dest.encode()
            + b"\0" + bytes((esm_class, 0, 0)) + b"\0\0" + bytes((0, 0, 0, 0, len(text)))
            + text)
