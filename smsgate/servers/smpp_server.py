"""The SMPP 3.4 server: a thin asyncio adapter around `smpp.Session` and the core.

One `SmppConnection` per TCP connection. Bytes go into the session; the PDUs it accepts
are turned into core calls; answers are coalesced into one socket write per event-loop
turn. submit_sm is answered from the group-commit callback, i.e. only once the message
is durably stored and charged.
"""

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from ..core.binds import RX, TRX, TX
from ..core.errors import UNKNOWN_ID_STATUS_BY_OPERATION, Err, GatewayError
from ..core.gateway import Gateway
from ..core.models import Account, Message, PendingReceipt
from ..core.submit import SubmitRequest
from ..core.validation import user_data_parts
from ..smpp.codec import Codec, encode_tlvs
from ..smpp.constants import (
    ESM_DELIVERY_RECEIPT,
    INTERFACE_VERSION_34,
    CommandId,
    MessageState,
    Status,
    Tag,
)
from ..smpp.layouts import DistributionList, UnsuccessSme
from ..smpp.pdu import Pdu
from ..smpp.receipt import STAT_TO_STATE, Receipt, format_receipt
from ..smpp.session import Role, Session, State
from ..smpp.smpptime import SmppTimeError, format_smpp_time, parse_smpp_time

log = logging.getLogger(__name__)

BIND_KINDS = {
    CommandId.bind_transmitter: TX,
    CommandId.bind_receiver: RX,
    CommandId.bind_transceiver: TRX,
}


@dataclass
class SmppServerConfig:
    host: str = "127.0.0.1"
    port: int = 8899
    system_id: str = "smsgate"
    max_pdu_size: int = 64 * 1024
    password_max: int = 64  # 3.4 says 8; many operators issue longer ones (SPEC §2)
    window: int = 10  # our outstanding deliver_sm per session
    max_pending: int = 1000  # customer's unanswered requests before ESME_RMSGQFUL
    bind_timeout: float = 30.0
    enquire_link_interval: float = 30.0
    inactivity_timeout: float = 300.0
    response_timeout: float = 30.0
    tls_handshake_timeout: float = 10.0  # TLS port: seconds to finish the handshake


class SmppServer:
    def __init__(self, gateway: Gateway, config: SmppServerConfig | None = None) -> None:
        self.gateway = gateway
        self.config = config or SmppServerConfig()
        self.connections: set[SmppConnection] = set()
        self._servers: list[asyncio.Server] = []
        self.address: tuple[str, int] = ("", 0)
        self.tls_address: tuple[str, int] | None = None

    async def start(self) -> tuple[str, int]:
        self.address = await self._listen(self.config.port)
        return self.address

    async def start_tls(self, context: ssl.SSLContext, port: int) -> tuple[str, int]:
        """Also listen on `port` with TLS: the same sessions, limits and accounts. The
        transport does the handshake (in memory, never blocking the loop) before
        `connection_made`; a peer that fails it or stays silent past
        `tls_handshake_timeout` is dropped there and never becomes a session."""
        self.tls_address = await self._listen(
            port, ssl=context, ssl_handshake_timeout=self.config.tls_handshake_timeout)
        return self.tls_address

    async def _listen(self, port: int, **tls) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SmppConnection(self), self.config.host, port,
            reuse_address=True, backlog=1024, **tls)
        self._servers.append(server)
        return server.sockets[0].getsockname()[:2]

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening, unbind every session, wait briefly for unbind_resp."""
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.unbind()
        deadline = time.monotonic() + grace
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.close()


class SmppConnection(asyncio.Protocol):
    def __init__(self, server: SmppServer) -> None:
        self.server = server
        self.gw = server.gateway
        cfg = server.config
        self.cfg = cfg
        codec = Codec(cfg.max_pdu_size, field_limits={"password": cfg.password_max + 1})
        self.session = Session(Role.SMSC, codec, window=cfg.window,
                               max_pending_in=cfg.max_pending)
        self.account: Account | None = None
        self.bind_kind = ""
        self.peer = ""
        self.transport: asyncio.Transport | None = None
        self._out = bytearray()
        self._flush_scheduled = False
        self._receipts: dict[int, tuple] = {}  # sequence -> (done, deadline)
        self._receipt_backlog: list[tuple[PendingReceipt, object]] = []
        self._opened = self._last_rx = self._last_tx = time.monotonic()
        self._enquire_sent: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- transport events --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.server.connections.add(self)
        self._timer = asyncio.get_running_loop().call_later(1.0, self._tick)

    def data_received(self, data: bytes) -> None:
        self._last_rx = time.monotonic()
        for pdu in self.session.receive_data(data):
            handler = _HANDLERS.get(pdu.command_id)
            if handler is not None:
                handler(self, pdu)
        self._write(self.session.data_to_send())
        if self.session.rejected:
            for error in self.session.rejected:
                log.info("smpp %s %s: %s (status 0x%x)", self.peer, self._who(), error.reason,
                         error.status)
            self.session.rejected.clear()
        if self.session.closing:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self._timer:
            self._timer.cancel()
        self.session.close()
        if self.account is not None:
            self.gw.binds.release(self.account.id, self)
            if self.bind_kind in (RX, TRX):
                self.gw.receipts.unregister(self.account.id, self)
            log.info("smpp %s %s unbound", self.peer, self._who())
        for done, _deadline in self._receipts.values():
            done(False)
        for _receipt, done in self._receipt_backlog:
            done(False)
        self._receipts.clear()
        self._receipt_backlog.clear()

    # -- writing -----------------------------------------------------------------------

    def send(self, pdu: Pdu) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._write(self.session.send(pdu))

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self._out += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(self._out))
            self._last_tx = time.monotonic()
        self._out.clear()

    def close(self) -> None:
        self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # asyncio writes what is buffered first

    def unbind(self) -> None:
        if self.session.bound:
            self.send(Pdu(CommandId.unbind))
        else:
            self.close()

    def _respond(self, request: Pdu, status: int, **fields: object) -> None:
        self.send(request.response(status, **fields))

    def _who(self) -> str:
        return self.account.system_id if self.account else "(not bound)"

    # -- timers ------------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        cfg = self.cfg
        self._timer = asyncio.get_running_loop().call_later(1.0, self._tick)
        if self.session.state is State.OPEN and now - self._opened > cfg.bind_timeout:
            log.info("smpp %s: no bind within %.0f s, closing", self.peer, cfg.bind_timeout)
            return self.close()
        if now - self._last_rx > cfg.inactivity_timeout:
            log.info("smpp %s %s: inactive, closing", self.peer, self._who())
            return self.unbind()
        if self._enquire_sent is not None and now - self._enquire_sent > cfg.response_timeout:
            log.info("smpp %s %s: enquire_link unanswered, closing", self.peer, self._who())
            return self.close()
        idle = now - max(self._last_rx, self._last_tx)
        if self.session.bound and self._enquire_sent is None and \
                idle > cfg.enquire_link_interval and self.session.can_send_request:
            self._enquire_sent = now
            self.send(Pdu(CommandId.enquire_link))
        for seq, (done, deadline) in list(self._receipts.items()):
            if now > deadline:  # unanswered deliver_sm: free the slot, retry later
                del self._receipts[seq]
                self.session.pending_out.pop(seq, None)
                done(False)
        self._send_receipt_backlog()

    # -- bind and session control ------------------------------------------------------

    def _on_bind(self, pdu: Pdu) -> None:
        asyncio.get_running_loop().create_task(self._bind(pdu))

    async def _bind(self, pdu: Pdu) -> None:
        kind = BIND_KINDS[pdu.command_id]
        system_id = pdu.get("system_id", "")
        try:
            peer_ip = self.peer.rsplit(":", 1)[0]
            account = await self.gw.authenticate(system_id, pdu.get("password", ""),
                                                 channel="smpp", peer_ip=peer_ip)
            if self.session.state is State.CLOSED:
                return  # the peer left during the password check: take no bind slot
            self.gw.binds.acquire(account, kind, self)
        except GatewayError as exc:
            log.info("smpp %s bind %s as %s refused: %s", self.peer, system_id, kind, exc)
            self._respond(pdu, _bind_status(exc))
            self.close()
            return
        except Exception:
            log.exception("smpp %s bind %s failed", self.peer, system_id)
            self._respond(pdu, Status.ESME_RSYSERR)
            self.close()
            return
        self.account, self.bind_kind = account, kind
        response = pdu.response(system_id=self.cfg.system_id)
        if pdu.get("interface_version", 0) >= INTERFACE_VERSION_34:
            response.tlvs.append((Tag.sc_interface_version, INTERFACE_VERSION_34))
        self.send(response)
        log.info("smpp %s bound %s as %s", self.peer, system_id, kind)
        if kind in (RX, TRX):
            self.gw.receipts.register(account.id, self)

    def _on_enquire_link(self, pdu: Pdu) -> None:
        self._respond(pdu, Status.ESME_ROK)

    def _on_enquire_link_resp(self, pdu: Pdu) -> None:
        self._enquire_sent = None

    def _on_unbind(self, pdu: Pdu) -> None:
        self._respond(pdu, Status.ESME_ROK)  # the session is now closing

    def _on_unbind_resp(self, pdu: Pdu) -> None:
        self.close()

    # -- submissions -------------------------------------------------------------------

    def _on_submit_sm(self, pdu: Pdu) -> None:
        try:
            request = self._request(pdu, [pdu.get("destination_addr", "")])
            [message] = self.gw.pipeline.prepare(request)
        except GatewayError as exc:
            self.gw.refused["smpp", exc.error] += 1
            return self._respond(pdu, exc.smpp_status)
        self.gw.pipeline.store(message, partial(self._stored, pdu, message))

    _on_data_sm = _on_submit_sm

    def _stored(self, pdu: Pdu, message: Message, result: bool | Exception) -> None:
        if result is True:
            self._respond(pdu, Status.ESME_ROK, message_id=str(message.id))
        elif result is False:
            self.gw.refused["smpp", Err.NO_CREDIT] += 1
            self._respond(pdu, Err.NO_CREDIT.smpp_status)
        else:
            log.error("storing message from %s failed: %s", self._who(), result)
            self._respond(pdu, Status.ESME_RSYSERR)

    def _request(self, pdu: Pdu, destinations: list[str]) -> SubmitRequest:
        account = self.gw.current(self.account)  # type: ignore[arg-type]
        payload = pdu.get("short_message", b"")
        single = True
        options = []
        for tag, value in pdu.tlvs:
            if tag == Tag.message_payload:
                if payload:
                    raise GatewayError(Err.BAD_LENGTH, "short_message and message_payload")
                payload, single = value, False
            else:
                options.append((tag, value))
        if pdu.get("priority_flag", 0) > 3:
            raise GatewayError(Err.BAD_ESM, "priority_flag over 3")
        return SubmitRequest(
            account=account, source_addr=pdu.get("source_addr", ""),
            destinations=destinations, payload=payload,
            data_coding=pdu.get("data_coding", 0), esm_class=pdu.get("esm_class", 0),
            single_part=single, source_ton=pdu.get("source_addr_ton", 0),
            source_npi=pdu.get("source_addr_npi", 0), dest_ton=pdu.get("dest_addr_ton", 1),
            dest_npi=pdu.get("dest_addr_npi", 1), protocol_id=pdu.get("protocol_id", 0),
            priority=pdu.get("priority_flag", 0),
            registered_delivery=pdu.get("registered_delivery", 0),
            schedule_at=_smpp_time(pdu.get("schedule_delivery_time", ""), Err.BAD_SCHEDULE),
            expires_at=_smpp_time(pdu.get("validity_period", ""), Err.BAD_VALIDITY),
            service_type=pdu.get("service_type", ""),
            options=encode_tlvs(options) if options else b"",
            max_destinations=254,
        )

    def _on_submit_multi(self, pdu: Pdu) -> None:
        asyncio.get_running_loop().create_task(self._submit_multi(pdu))

    async def _submit_multi(self, pdu: Pdu) -> None:
        unsuccess: list[UnsuccessSme] = []
        stored: list[tuple[Message, asyncio.Future]] = []
        for dest in pdu.get("dest_addresses", ()):
            if isinstance(dest, DistributionList):
                unsuccess.append(UnsuccessSme(0, 0, dest.name[:20], Status.ESME_RINVDLNAME))
                continue
            try:
                [message] = self.gw.pipeline.prepare(self._request(pdu, [dest.addr]))
            except GatewayError as exc:
                self.gw.refused["smpp", exc.error] += 1
                unsuccess.append(UnsuccessSme(dest.ton, dest.npi, dest.addr, exc.smpp_status))
                continue
            future = asyncio.get_running_loop().create_future()
            self.gw.pipeline.store(message, future.set_result)
            stored.append((message, future))
        first_id = ""
        for message, future in stored:
            result = await future
            ok = result is True
            status = Err.NO_CREDIT.smpp_status if result is False else Status.ESME_RSYSERR
            if ok:
                first_id = first_id or str(message.id)
            else:
                if result is False:
                    self.gw.refused["smpp", Err.NO_CREDIT] += 1
                unsuccess.append(UnsuccessSme(message.dest_ton, message.dest_npi,
                                              message.dest_addr, status))
        self._respond(pdu, Status.ESME_ROK if first_id else Status.ESME_RSUBMITFAIL,
                      message_id=first_id, unsuccess_smes=tuple(unsuccess))

    # -- query, cancel, replace --------------------------------------------------------

    def _on_query_sm(self, pdu: Pdu) -> None:
        asyncio.get_running_loop().create_task(self._guarded(pdu, self._query_sm))

    async def _query_sm(self, pdu: Pdu) -> None:
        message = await self.gw.find_message(self.account, pdu.get("message_id", ""))
        final = message.done_at is not None
        self._respond(pdu, Status.ESME_ROK, message_id=str(message.id),
                      final_date=format_smpp_time(datetime.fromtimestamp(message.done_at, UTC))
                      if final else "",
                      message_state=STAT_TO_STATE.get(message.status, MessageState.ENROUTE),
                      error_code=min(message.error_code, 255))

    def _on_cancel_sm(self, pdu: Pdu) -> None:
        asyncio.get_running_loop().create_task(self._guarded(pdu, self._cancel_sm))

    async def _cancel_sm(self, pdu: Pdu) -> None:
        await self.gw.cancel(self.account, pdu.get("message_id", ""),  # type: ignore[arg-type]
                             pdu.get("source_addr", ""), pdu.get("destination_addr", ""),
                             pdu.get("service_type", ""))
        self._respond(pdu, Status.ESME_ROK)

    def _on_replace_sm(self, pdu: Pdu) -> None:
        asyncio.get_running_loop().create_task(self._guarded(pdu, self._replace_sm))

    async def _replace_sm(self, pdu: Pdu) -> None:
        message = await self.gw.find_message(self.account, pdu.get("message_id", ""))
        payload = pdu.get("short_message", b"")
        user_data_parts(payload, message.data_coding, message.esm_class, 1, True)
        await self.gw.replace(
            self.account, str(message.id), payload,  # type: ignore[arg-type]
            _smpp_time(pdu.get("schedule_delivery_time", ""), Err.BAD_SCHEDULE),
            _smpp_time(pdu.get("validity_period", ""), Err.BAD_VALIDITY),
            pdu.get("registered_delivery", 0))
        self._respond(pdu, Status.ESME_ROK)

    async def _guarded(self, pdu: Pdu, operation) -> None:
        """Run query/cancel/replace, answering core errors with the operation's status."""
        try:
            self.gw.current(self.account)  # type: ignore[arg-type]
            await operation(pdu)
        except GatewayError as exc:
            status = exc.smpp_status
            if exc.error is Err.UNKNOWN_MESSAGE_ID:
                status = UNKNOWN_ID_STATUS_BY_OPERATION.get(pdu.name, status)
            self._respond(pdu, status)
        except Exception:
            log.exception("smpp %s %s failed", self._who(), pdu.name)
            self._respond(pdu, Status.ESME_RSYSERR)

    # -- receipts (ReceiverSession) ----------------------------------------------------

    def send_receipt(self, receipt: PendingReceipt, done) -> None:
        if self.transport is None or self.transport.is_closing() or not self.session.can_receive:
            return done(False)
        if not self.session.can_send_request:
            self._receipt_backlog.append((receipt, done))
            return
        pdu = _receipt_pdu(receipt)
        self.send(pdu)
        self._receipts[pdu.sequence] = (done, time.monotonic() + self.cfg.response_timeout)

    def _send_receipt_backlog(self) -> None:
        while self._receipt_backlog and self.session.can_send_request:
            receipt, done = self._receipt_backlog.pop(0)
            self.send_receipt(receipt, done)

    def _on_deliver_sm_resp(self, pdu: Pdu) -> None:
        entry = self._receipts.pop(pdu.sequence, None)
        if entry is not None:
            entry[0](pdu.status == Status.ESME_ROK)
        self._send_receipt_backlog()

    _on_generic_nack = _on_deliver_sm_resp


def _bind_status(exc: GatewayError) -> int:
    if exc.error in (Err.UNKNOWN_ACCOUNT, Err.BAD_PASSWORD):
        return exc.smpp_status
    return Status.ESME_RBINDFAIL


def _smpp_time(value: str, error: Err) -> float | None:
    if not value:
        return None
    try:
        moment = parse_smpp_time(value, datetime.now(UTC))
    except SmppTimeError:
        raise GatewayError(error, f"bad time {value!r}") from None
    return moment.timestamp() if moment is not None else None


def _receipt_pdu(receipt: PendingReceipt) -> Pdu:
    text = format_receipt(Receipt(
        id=str(receipt.message_id),
        submit_date=datetime.fromtimestamp(receipt.submitted_at, UTC),
        done_date=datetime.fromtimestamp(receipt.done_at, UTC),
        stat=receipt.status, sub=1, dlvrd=int(receipt.status == "DELIVRD"),
        err=f"{receipt.error_code:03d}", text=_printable(receipt.text)))
    return Pdu(CommandId.deliver_sm, fields={
        "source_addr_ton": receipt.source_ton, "source_addr_npi": receipt.source_npi,
        "source_addr": receipt.source_addr, "dest_addr_ton": receipt.dest_ton,
        "dest_addr_npi": receipt.dest_npi, "destination_addr": receipt.dest_addr,
        "esm_class": ESM_DELIVERY_RECEIPT,
        "short_message": text.encode("latin-1", "replace")[:254],
    }, tlvs=[(Tag.receipted_message_id, str(receipt.message_id)),
             (Tag.message_state, STAT_TO_STATE.get(receipt.status, MessageState.UNKNOWN))])


def _printable(text: str) -> str:
    # The receipt's text: field goes out as plain Latin-1; keep it to one line.
    return "".join(ch if ch.isprintable() else " " for ch in text)


_HANDLERS = {
    CommandId.bind_transmitter: SmppConnection._on_bind,
    CommandId.bind_receiver: SmppConnection._on_bind,
    CommandId.bind_transceiver: SmppConnection._on_bind,
    CommandId.enquire_link: SmppConnection._on_enquire_link,
    CommandId.enquire_link_resp: SmppConnection._on_enquire_link_resp,
    CommandId.unbind: SmppConnection._on_unbind,
    CommandId.unbind_resp: SmppConnection._on_unbind_resp,
    CommandId.submit_sm: SmppConnection._on_submit_sm,
    CommandId.data_sm: SmppConnection._on_data_sm,
    CommandId.submit_multi: SmppConnection._on_submit_multi,
    CommandId.query_sm: SmppConnection._on_query_sm,
    CommandId.cancel_sm: SmppConnection._on_cancel_sm,
    CommandId.replace_sm: SmppConnection._on_replace_sm,
    CommandId.deliver_sm_resp: SmppConnection._on_deliver_sm_resp,
    CommandId.generic_nack: SmppConnection._on_generic_nack,
}
