"""10,000 fuzzed PDUs at a real server, from several connections at once, bound and
unbound: seeded random bytes and mutated valid PDUs (bad command_length, unknown
command ids, truncated bodies, unterminated and over-long C-strings, huge and broken
TLVs, flipped bytes). The server never crashes; everything it answers is a well-formed
PDU (the request's response or generic_nack, with a known command_status); a session
it cannot go on with is closed; and its log stays within a few lines per connection.

Each batch ends one of two ways, so that no wait depends on a timer: a batch whose
framing is intact ends with an enquire_link probe, which must be answered (or the
connection closed); a batch with a framing-breaking PDU ends with FILLER, zeros that
complete any frame the server still waits for and then read as a length of 0, so the
server must close the connection.
"""

import asyncio
import contextlib
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from abuse_harness import ATTACKER_IPS, HOST, MIB, normal_customer, serving
from smpp_harness import PASSWORD, submit_sm

from smsgate.smpp.codec import Codec, PduError
from smsgate.smpp.constants import RESPONSE_BIT, CommandId, Status, Tag
from smsgate.smpp.layouts import DistributionList, SmeAddress
from smsgate.smpp.pdu import Pdu

SEED = 20261130  # change it to explore; a failure message names the seed
TOTAL = 10_000  # fuzzed PDUs, half in bound sessions, half in unbound ones
BOUND_WORKERS = UNBOUND_WORKERS = 4  # connections at once of each kind
FILLER = bytes(70_000)  # past max_pdu_size (64 KiB) + a header: completes any frame
PROBE_SEQUENCE = 0x7FFFFF00
ANSWER_TIMEOUT = 10.0  # a probe's answer or the close; seen in milliseconds
MAX_PDU = 64 * 1024  # the server's max_pdu_size (default)
LOG_LINES_PER_CONNECTION = 5 + 4  # log_errors_per_minute, then bound/refused, closing,
# "N more errors not logged", unbound
# Server RSS: 82 MiB after start, 113 MiB as soon as both scrypt threads have checked
# a wrong password (fuzzed binds for "victim"; glibc keeps each thread's 16 MiB in its
# arena), then flat: 121-122 MiB peak and after the fuzz (some 1,600 connections);
# 60 rounds of 300 PDUs more level off at 117 MiB (no leak). Bound: 30% over the peak.
RSS_BOUND = 160 * MIB

FUZZ_ACCOUNTS = tuple(f"fuzz{n}" for n in range(BOUND_WORKERS))
CODEC = Codec(field_limits={"password": 100})
KNOWN_COMMANDS = frozenset(int(c) for c in CommandId)
KNOWN_STATUSES = frozenset(int(s) for s in Status)


def corpus() -> list[bytes]:
    """Valid PDUs of every kind an ESME may (or may not) send. Binds name no account
    of the bound workers (a failed login for one would start its back-off)."""
    ids = [str(random.Random(n).getrandbits(60)) for n in range(3)]
    long_sms = submit_sm(text=b"x" * 160, registered_delivery=1)
    udh = submit_sm(text=b"\x05\x00\x03\x01\x02\x01hello", esm_class=0x40)
    payload = submit_sm(text=b"")
    payload.tlvs.append((Tag.message_payload, b"p" * 300))
    sar = submit_sm(text=b"part")
    sar.tlvs += [(Tag.sar_msg_ref_num, 7), (Tag.sar_total_segments, 2),
                 (Tag.sar_segment_seqnum, 1)]
    pdus = [
        *(Pdu(c, 1, fields={"system_id": who, "password": "wrong", "interface_version": 0x34})
          for c in (CommandId.bind_transmitter, CommandId.bind_receiver,
                    CommandId.bind_transceiver) for who in ("nobody", "victim")),
        submit_sm(), long_sms, udh, payload, sar,
        submit_sm(data_coding=8, text="héllo".encode("utf-16-be")),
        Pdu(CommandId.data_sm, fields={"source_addr": "Acme", "dest_addr_ton": 1,
                                       "destination_addr": "447700900002"},
            tlvs=[(Tag.message_payload, b"data")]),
        Pdu(CommandId.submit_multi, fields={
            "source_addr": "Acme", "short_message": b"multi",
            "dest_addresses": (SmeAddress(1, 1, "447700900003"), DistributionList("dl"))}),
        *(Pdu(CommandId.query_sm, fields={"message_id": i, "source_addr": "Acme"}) for i in ids),
        Pdu(CommandId.cancel_sm, fields={"message_id": ids[0], "source_addr": "Acme",
                                         "destination_addr": "447700900001"}),
        Pdu(CommandId.replace_sm, fields={"message_id": ids[1], "source_addr": "Acme",
                                          "short_message": b"new"}),
        Pdu(CommandId.enquire_link), Pdu(CommandId.enquire_link), Pdu(CommandId.unbind),
        Pdu(CommandId.deliver_sm, fields={"source_addr": "1", "destination_addr": "2",
                                          "short_message": b"mo"}),
        Pdu(CommandId.alert_notification, fields={"source_addr": "1", "esme_addr": "2"}),
        Pdu(CommandId.outbind, fields={"system_id": "x", "password": "y"}),
        Pdu(CommandId.deliver_sm_resp, fields={"message_id": ""}),
        Pdu(CommandId.submit_sm_resp, fields={"message_id": "1"}),
        Pdu(CommandId.generic_nack, status=Status.ESME_RINVCMDID),
    ]
    encoded = []
    for n, pdu in enumerate(pdus, 1):
        pdu.sequence = n
        encoded.append(CODEC.encode(pdu))
    return encoded


CORPUS = corpus()


def _with_length(body: bytes, length: int | None = None) -> bytes:
    """`body` (a PDU without its first 4 bytes) under a command_length (its own by
    default)."""
    size = len(body) + 4
    return (size if length is None else length).to_bytes(4, "big") + body


class Fuzzer:
    """Fuzzed PDUs from one seeded Random. `next()` gives (bytes, framing_intact)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.kinds: Counter[str] = Counter()
        self._mutations = [
            (self.valid, 1), (self.flipped, 4), (self.truncated, 3), (self.bad_length, 2),
            (self.unknown_command, 2), (self.bad_cstrings, 3), (self.huge_tlv, 2),
            (self.random_bytes, 2), (self.odd_header, 2),
        ]

    def next(self) -> tuple[bytes, bool]:
        rng = self.rng
        mutate = rng.choices([m for m, _ in self._mutations],
                             [w for _, w in self._mutations])[0]
        self.kinds[mutate.__name__] += 1
        data, intact = mutate(bytearray(rng.choice(CORPUS)))
        return bytes(data), intact

    # Each takes a valid PDU and returns (bytes, whether command_length is still right).

    def valid(self, pdu: bytearray) -> tuple[bytes, bool]:
        return pdu, True

    def flipped(self, pdu: bytearray) -> tuple[bytes, bool]:
        for _ in range(self.rng.randint(1, 6)):  # anywhere but command_length
            pdu[self.rng.randrange(4, len(pdu))] = self.rng.randrange(256)
        return pdu, True

    def truncated(self, pdu: bytearray) -> tuple[bytes, bool]:
        return _with_length(pdu[4:self.rng.randint(16, len(pdu))]), True

    def bad_length(self, pdu: bytearray) -> tuple[bytes, bool]:
        size = len(pdu)
        length = self.rng.choice([
            self.rng.randint(0, 15), self.rng.randint(16, max(16, size - 1)),
            self.rng.randint(size + 1, size + 3000), self.rng.randint(MAX_PDU + 1, 2**32 - 1),
        ])
        return _with_length(pdu[4:], length), False

    def unknown_command(self, pdu: bytearray) -> tuple[bytes, bool]:
        command = self.rng.getrandbits(32)
        while command in KNOWN_COMMANDS:
            command = self.rng.getrandbits(32)
        pdu[4:8] = command.to_bytes(4, "big")
        return pdu, True

    def bad_cstrings(self, pdu: bytearray) -> tuple[bytes, bool]:
        body = pdu[16:]
        if self.rng.random() < 0.5:  # unterminated: every NUL becomes a letter
            body = body.replace(b"\0", b"A")
        else:  # an over-long C-string where the first field starts
            body = b"9" * self.rng.randint(20, 2000) + b"\0" + body
        return _with_length(pdu[4:16] + body), True

    def huge_tlv(self, pdu: bytearray) -> tuple[bytes, bool]:
        rng = self.rng
        tag = rng.choice([Tag.message_payload, Tag.sar_msg_ref_num, Tag.receipted_message_id,
                          Tag.sc_interface_version, rng.getrandbits(16)])
        declared = rng.choice([0xFFFF, rng.randint(1000, 60_000), 0, 1])
        actual = rng.choice([declared, rng.randint(0, 64), min(declared, 60_000) // 2])
        tlv = int(tag).to_bytes(2, "big") + declared.to_bytes(2, "big") + bytes(
            rng.getrandbits(8) for _ in range(min(actual, 200))) + b"\x42" * max(0, actual - 200)
        return _with_length(pdu[4:] + tlv), len(pdu) + len(tlv) <= MAX_PDU

    def random_bytes(self, pdu: bytearray) -> tuple[bytes, bool]:
        body = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(12, 300)))
        if self.rng.random() < 0.7:  # a request-looking command id
            body = self.rng.choice([*KNOWN_COMMANDS, 0x666]).to_bytes(4, "big") + body[4:]
        return _with_length(body), True

    def odd_header(self, pdu: bytearray) -> tuple[bytes, bool]:
        pdu[8:12] = self.rng.choice([0, 1, 0xFFFFFFFF, self.rng.getrandbits(32)]).to_bytes(4,
                                                                                        "big")
        pdu[12:16] = self.rng.choice([0, 0xFFFFFFFF, self.rng.getrandbits(32)]).to_bytes(4,
                                                                                       "big")
        if self.rng.random() < 0.3:
            pdu[4:8] = (int.from_bytes(pdu[4:8], "big") | RESPONSE_BIT).to_bytes(4, "big")
        return pdu, True


@dataclass
class Tally:
    sent: int = 0  # fuzzed PDUs written
    connections: int = 0
    closed_by_server: int = 0
    answers: Counter = field(default_factory=Counter)  # (command name, status) -> count

    def take(self, wanted: int) -> int:
        """Reserve up to `wanted` of the PDUs left to send."""
        count = min(wanted, TOTAL // 2 - self.sent)
        self.sent += count
        return count


def _frames(data: bytes) -> tuple[list[bytes], bytes]:
    """The complete frames at the start of what the server sent, and the rest. Each
    must have a sane command_length."""
    frames, pos = [], 0
    while len(data) - pos >= 4:
        length = int.from_bytes(data[pos:pos + 4], "big")
        assert 16 <= length <= MAX_PDU, \
            f"seed {SEED}: a broken frame from the server: {data[pos:pos + 32]!r}"
        if len(data) - pos < length:
            break
        frames.append(data[pos:pos + length])
        pos += length
    return frames, data[pos:]


def _decoded(frame: bytes) -> Pdu:
    try:
        return CODEC.decode(frame)
    except PduError as exc:
        raise AssertionError(f"seed {SEED}: undecodable answer {frame!r}: {exc}") from None


def check_answer(pdu: Pdu) -> None:
    assert pdu.command_id & RESPONSE_BIT, f"seed {SEED}: the server sent a request {pdu}"
    assert pdu.command_id in KNOWN_COMMANDS, f"seed {SEED}: {pdu}"
    known = pdu.status in KNOWN_STATUSES or 0x400 <= pdu.status <= 0x4FF
    assert known, f"seed {SEED}: unknown command_status in {pdu}"
    if pdu.command_id == CommandId.generic_nack:
        assert pdu.status != Status.ESME_ROK, f"seed {SEED}: generic_nack without error"


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   batch: list[tuple[bytes, bool]]) -> tuple[list[Pdu], bool]:
    """Write a batch, ended by the probe or FILLER (module docstring); read until the
    probe's answer or the server's close. Returns the answers and whether it closed."""
    data = b"".join(pdu for pdu, _ in batch)
    intact = all(ok for _, ok in batch)
    if intact:
        data += CODEC.encode(Pdu(CommandId.enquire_link, PROBE_SEQUENCE))
    else:
        data += FILLER
    with contextlib.suppress(ConnectionError):
        writer.write(data)
    frames: list[bytes] = []
    rest, closed = b"", False
    probe = CODEC.encode(Pdu(CommandId.enquire_link_resp, PROBE_SEQUENCE))
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while not (intact and probe in frames):
                try:
                    chunk = await reader.read(65536)
                except ConnectionError:
                    chunk = b""
                if not chunk:
                    closed = True
                    break
                complete, rest = _frames(rest + chunk)
                frames += complete
    except TimeoutError:
        sent = "\n".join(pdu[:48].hex() for pdu, _ in batch)
        raise AssertionError(f"seed {SEED}: neither an answer to the probe nor a close in "
                             f"{ANSWER_TIMEOUT} s after\n{sent}\n(answers: "
                             f"{b''.join(frames).hex()})") from None
    assert intact or closed, f"seed {SEED}: a broken frame and the connection still open"
    return [_decoded(frame) for frame in frames if frame != probe], closed


async def bound_worker(port: int, source: str, system_id: str, fuzzer: Fuzzer,
                       tally: Tally) -> None:
    """Keeps a bound Tx session (binding again after each close) and sends batches."""
    reader = writer = None
    while True:
        if writer is None:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
            tally.connections += 1
            writer.write(CODEC.encode(Pdu(CommandId.bind_transmitter, 1, fields={
                "system_id": system_id, "password": PASSWORD, "interface_version": 0x34})))
            head = await reader.readexactly(16)
            await reader.readexactly(int.from_bytes(head[:4], "big") - 16)
            assert int.from_bytes(head[8:12], "big") == Status.ESME_ROK, head
        count = tally.take(fuzzer.rng.randint(1, 40))
        if not count:
            writer.close()
            return
        closed = await _batch(reader, writer, fuzzer, count, tally)
        if closed:
            writer.close()
            writer = None


async def unbound_worker(port: int, source: str, fuzzer: Fuzzer, tally: Tally) -> None:
    """A new connection for every batch, never bound: at most max_pdus_before_bind
    (10) PDUs each, sometimes more (the server then closes)."""
    while count := tally.take(fuzzer.rng.randint(1, 12)):
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
        tally.connections += 1
        await _batch(reader, writer, fuzzer, count, tally)
        writer.close()


async def _batch(reader, writer, fuzzer: Fuzzer, count: int, tally: Tally) -> bool:
    """Send `count` fuzzed PDUs (cut after the first that breaks framing: the rest
    would be read as its body). Returns whether the server closed the connection."""
    batch = []
    for _ in range(count):
        batch.append(fuzzer.next())
        if not batch[-1][1]:
            break
    tally.sent -= count - len(batch)  # not sent: given back
    answers, closed = await exchange(reader, writer, batch)
    for pdu in answers:
        check_answer(pdu)
        tally.answers[pdu.name, Status(pdu.status).name if pdu.status in KNOWN_STATUSES
                      else hex(pdu.status)] += 1
    tally.closed_by_server += closed
    return closed


async def test_ten_thousand_fuzzed_pdus(tmp_path):
    async with serving(tmp_path, {}, accounts=("customer", "victim", *FUZZ_ACCOUNTS)) as gw:
        base = gw.rss()
        gw.reset_peak()
        started = time.monotonic()
        bound, unbound = Tally(), Tally()
        fuzzers = [Fuzzer(SEED + n) for n in range(BOUND_WORKERS + UNBOUND_WORKERS)]
        workers = [bound_worker(gw.smpp_port, ATTACKER_IPS[n], FUZZ_ACCOUNTS[n], fuzzers[n],
                                bound) for n in range(BOUND_WORKERS)]
        workers += [unbound_worker(gw.smpp_port, ATTACKER_IPS[10 + n],
                                   fuzzers[BOUND_WORKERS + n], unbound)
                    for n in range(UNBOUND_WORKERS)]
        await asyncio.gather(*workers)
        took = time.monotonic() - started
        gw.assert_alive()
        peak = gw.peak_rss()
        after = await normal_customer(gw, RSS_BOUND)
        log = gw.log_text()
    assert bound.sent + unbound.sent == TOTAL
    assert peak < RSS_BOUND
    assert "Traceback" not in log and " ERROR " not in log and " CRITICAL " not in log
    # Source ports get reused over ~1,000 connections, so lines are counted per
    # connection on average; each session's own budget is tests/servers' business.
    connections = bound.connections + unbound.connections
    lines = len(re.findall(r" smsgate\.servers\.smpp_server: smpp 127\.0\.0\.\d+:", log))
    assert lines <= LOG_LINES_PER_CONNECTION * connections, (lines, connections)
    kinds = Counter()
    for fuzzer in fuzzers:
        kinds.update(fuzzer.kinds)
    answers = bound.answers + unbound.answers
    print(f"fuzz (seed {SEED}): {TOTAL} PDUs in {took:.1f} s over "
          f"{bound.connections} bound + {unbound.connections} unbound connections, "
          f"{bound.closed_by_server + unbound.closed_by_server} closed by the server; "
          f"{answers.total()} answers; log {len(log) / 1024:.0f} KiB, {lines} lines "
          f"({lines / connections:.1f} per connection); rss base {base / MIB:.1f} MiB, "
          f"peak {peak / MIB:.1f}, after {after.rss / MIB:.1f}")
    print("  mutations:", dict(kinds))
    print("  answers:", dict(answers.most_common(12)))
