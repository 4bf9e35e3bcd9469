"""Upstream SMSCs for the end-to-end tests, counting what they are given.

`Smpp34Smsc` is PyPI smpp34 (a Rust SMPP implementation with an asyncio face,
independent of our codec) running in the test process. It answers submit_sm with hex
ids, sends a DELIVRD receipt for each accepted one whose id is the decimal value of
that hex id, zero-padded to 10 digits, in the text (with `tlv`, also the
receipted_message_id TLV in hex: the CH and PYL vectors of SMPP34.md §6.3), and can
answer every Nth submit_sm ESME_RTHROTTLED. Its ids start at 1 unless told: then
many hex ids are all digits and read as other ids in decimal ("29" is 41, and "41" is
another message), the hard case for receipt correlation.

Each submit is keyed by (destination, short_message): the tests give every message its
own destination or text, so `accepted[key] > 1` is a message sent twice.
"""

import asyncio
import contextlib
import time
from collections import Counter

import smpp34
from smpp_harness import free_port


class Smpp34Smsc:
    def __init__(self, first_id: int = 1, throttle_every: int = 0,
                 receipts: bool = True, tlv: bool = True) -> None:
        self.next_id = first_id
        self.throttle_every = throttle_every
        self.receipts = receipts
        self.tlv = tlv
        self.port = 0
        self.server: smpp34.Server | None = None
        self.sessions: dict[str, smpp34.Esme] = {}
        self.submits = 0  # every submit_sm, throttled ones included
        self.throttled = 0
        self.accepted: Counter[tuple[str, bytes]] = Counter()
        self.ids: dict[tuple[str, bytes], list[str]] = {}  # key -> hex ids given
        self.receipts_acked = 0
        self._tasks: set[asyncio.Task] = set()
        self._reader: asyncio.Task | None = None

    async def start(self, port: int = 0) -> "Smpp34Smsc":
        self.port = port or free_port()
        self.server = smpp34.Server(host="127.0.0.1", port=self.port, system_id="s34")
        await self.server.start()
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        for task in self._tasks:
            task.cancel()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.stop()

    @property
    def destinations(self) -> Counter[str]:
        """Accepted submits per destination."""
        counts: Counter[str] = Counter()
        for (destination, _), n in self.accepted.items():
            counts[destination] += n
        return counts

    async def _read(self) -> None:
        assert self.server is not None
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.sessions[event.session_id] = event
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._submit(event)

    def _submit(self, event: smpp34.SubmitSmEvent) -> None:
        self.submits += 1
        if self.throttle_every and self.submits % self.throttle_every == 0:
            self.throttled += 1
            event.reject(smpp34.ESME_RTHROTTLED)
            return
        number = self.next_id
        self.next_id += 1
        hex_id = f"{number:x}"
        event.accept(message_id=hex_id)
        key = (event.destination_addr, bytes(event.short_message))
        self.accepted[key] += 1
        self.ids.setdefault(key, []).append(hex_id)
        session = self.sessions.get(event.session_id)
        if self.receipts and session is not None:
            task = asyncio.ensure_future(self._receipt(session, event, number))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _receipt(self, session: smpp34.Esme, event: smpp34.SubmitSmEvent,
                       number: int) -> None:
        stamp = time.strftime("%y%m%d%H%M", time.gmtime()).encode()
        text = (b"id:%010d sub:001 dlvrd:001 submit date:%s done date:%s stat:DELIVRD "
                b"err:000 text:" % (number, stamp, stamp))
        tlvs = []
        if self.tlv:
            tlvs = [smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, f"{number:x}".encode() + b"\0"),
                    smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes((2,)))]
        for _ in range(20):  # answered ESME_ROK once A stored it; else again
            try:
                answer = await session.deliver_sm(
                    destination_addr=event.source_addr, source_addr=event.destination_addr,
                    esm_class=0x04, short_message=text, tlvs=tlvs)
            except Exception:
                return  # the session is gone
            if answer.command_status == 0:
                self.receipts_acked += 1
                return
            await asyncio.sleep(0.5)
