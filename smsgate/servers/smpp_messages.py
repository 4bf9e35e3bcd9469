"""What a bound SMPP session does with messages: submit_sm, data_sm, submit_multi,
query_sm, cancel_sm, replace_sm, and deliver_sm to Rx/TRx (delivery receipts and MO,
built in one place: `deliver_sm_pdu`).

`MessageHandlers` is a part of `SmppConnection` (smpp_server.py), kept apart so that the
connection's life (transport, timers, binds, limits) and the message operations each
read in one place. It uses the connection's `gw`, `cfg`, `session`, `account`,
`_respond`, `_respond_message_ids`, `_spawn`, `_who`, `_now` and `_after_request`.
"""

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from logging import DEBUG

from ..core.errors import UNKNOWN_ID_STATUS_BY_OPERATION, Err, GatewayError
from ..core.models import MO, Account, Message, PendingReceipt
from ..core.submit import SubmitRequest
from ..core.validation import user_data_parts
from ..smpp.codec import decode_tlvs, encode_tlvs
from ..smpp.constants import (
    ESM_DELIVERY_RECEIPT,
    CommandId,
    MessageState,
    Status,
    Tag,
)
from ..smpp.layouts import DistributionList, UnsuccessSme
from ..smpp.pdu import Pdu
from ..smpp.receipt import STAT_TO_STATE, Receipt, format_receipt
from ..smpp.smpptime import SmppTimeError, format_smpp_time, parse_smpp_time
from .log_format import SessionLog

MAX_PRIORITY = 3  # SMPP 3.4 §5.2.14: priority_flag 0-3
MAX_SHORT_MESSAGE = 254  # octets (sm_length is one octet; 255 is reserved)
Done = Callable[[bool], None]


class MessageHandlers:
    # deliver_sm we sent, by sequence -> told True/False on its response or timeout
    _receipts: dict[int, Done]
    # receipts waiting for a window slot (at most cfg.receipt_backlog)
    _receipt_backlog: deque[tuple[PendingReceipt, Done]]
    _writing_paused: bool
    log: SessionLog  # adds the session and account to each line

    # -- submissions -------------------------------------------------------------------

    def _on_submits(self, pdus: list[Pdu]) -> None:
        """A read's submit_sm and data_sm, in order: each checked on its own (a refusal
        answered at once), the accepted stored together and answered once their commit
        returns (one waiter for the run: `_StoredAnswers`)."""
        pipeline, now = self.gw.pipeline, time.time()
        accepted: list[Pdu] = []
        messages: list[Message] = []
        try:
            account = self.gw.current(self.account)  # once a read: one moment's account
        except GatewayError as exc:  # expired or disabled since the bind
            for pdu in pdus:
                self._refuse(pdu, exc)
            return
        for pdu in pdus:
            try:
                fields = pdu.fields
                request = submit_request(pdu, account, fields.get("destination_addr", ""),
                                         fields.get("dest_addr_ton", 1),
                                         fields.get("dest_addr_npi", 1))
                message = pipeline.prepare_one(request, now)
            except GatewayError as exc:
                self._refuse(pdu, exc)
                continue
            except Exception:  # one PDU's failure must not cost the others' answers
                self._handler_failed(pdu)
                continue
            accepted.append(pdu)
            messages.append(message)
        if not messages:
            return
        try:
            pipeline.store_each(messages, _StoredAnswers(self, accepted))
        except Exception:
            for pdu in accepted:
                self._handler_failed(pdu)

    def _refuse(self, pdu: Pdu, exc: GatewayError) -> None:
        self.gw.refused["smpp", exc.error] += 1
        self.log.debug("%s refused: %s", pdu.name, exc)
        self._respond(pdu, exc.smpp_status)

    def _stored(self, pdus: list[Pdu], messages: list[Message],
                refused: set[int] | Exception) -> None:
        """Answer stored submits: their message ids, or why they were not stored."""
        failed = isinstance(refused, Exception)
        if failed:
            self.log.error("storing %d messages from %s failed: %s", len(messages),
                           self._who(), refused, extra={"message_id": messages[0].id})
        if not refused:  # all stored: the common case, answered in one go
            self._respond_message_ids(pdus, [str(m.id) for m in messages])
        else:
            for pdu, message in zip(pdus, messages, strict=True):
                if failed:
                    self._respond(pdu, Status.ESME_RSYSERR)
                elif message.id in refused:
                    self.gw.refused["smpp", Err.NO_CREDIT] += 1
                    self._respond(pdu, Err.NO_CREDIT.smpp_status)
                else:
                    self._respond(pdu, Status.ESME_ROK, message_id=str(message.id))
        if self.log.isEnabledFor(DEBUG):  # the hot path: no dict per message otherwise
            for pdu, message in zip(pdus, messages, strict=True):
                outcome = "failed" if failed else \
                    "refused: no credit" if message.id in refused else "stored"
                self.log.debug("%s %s: %s", pdu.name, message.id, outcome,
                               extra={"message_id": message.id})

    def _on_submit_multi(self, pdu: Pdu) -> None:
        self._spawn(self._guarded(pdu, self._submit_multi))

    async def _submit_multi(self, pdu: Pdu) -> None:
        unsuccess: list[UnsuccessSme] = []
        stored: list[tuple[Message, object]] = []
        for dest in pdu.get("dest_addresses", ()):
            if isinstance(dest, DistributionList):
                unsuccess.append(UnsuccessSme(0, 0, dest.name[:20], Status.ESME_RINVDLNAME))
                continue
            try:
                message = self.gw.pipeline.prepare_one(submit_request(
                    pdu, self.gw.current(self.account), dest.addr, dest.ton, dest.npi),
                    time.time())
            except GatewayError as exc:
                self.gw.refused["smpp", exc.error] += 1
                unsuccess.append(UnsuccessSme(dest.ton, dest.npi, dest.addr, exc.smpp_status))
                continue
            future = self._loop.create_future()
            self.gw.pipeline.store(message, future.set_result)
            stored.append((message, future))
        first_id = ""
        for message, future in stored:
            result = await future  # type: ignore[misc]
            if result is True:
                first_id = first_id or str(message.id)
                continue
            status = Err.NO_CREDIT.smpp_status if result is False else Status.ESME_RSYSERR
            if result is False:
                self.gw.refused["smpp", Err.NO_CREDIT] += 1
            unsuccess.append(UnsuccessSme(message.dest_ton, message.dest_npi,
                                          message.dest_addr, status))
        self._respond(pdu, Status.ESME_ROK if first_id else Status.ESME_RSUBMITFAIL,
                      message_id=first_id, unsuccess_smes=tuple(unsuccess))

    # -- query, cancel, replace --------------------------------------------------------

    def _on_query_sm(self, pdu: Pdu) -> None:
        self._spawn(self._guarded(pdu, self._query_sm))

    async def _query_sm(self, pdu: Pdu) -> None:
        message = await self.gw.find_message(self.account, pdu.get("message_id", ""))
        final = message.done_at is not None
        self._respond(pdu, Status.ESME_ROK, message_id=str(message.id),
                      final_date=format_smpp_time(datetime.fromtimestamp(message.done_at, UTC))
                      if final else "",
                      message_state=STAT_TO_STATE.get(message.status, MessageState.ENROUTE),
                      error_code=min(message.error_code, 255))

    def _on_cancel_sm(self, pdu: Pdu) -> None:
        self._spawn(self._guarded(pdu, self._cancel_sm))

    async def _cancel_sm(self, pdu: Pdu) -> None:
        await self.gw.cancel(self.account, pdu.get("message_id", ""),
                             pdu.get("source_addr", ""), pdu.get("destination_addr", ""),
                             pdu.get("service_type", ""))
        self._respond(pdu, Status.ESME_ROK)

    def _on_replace_sm(self, pdu: Pdu) -> None:
        self._spawn(self._guarded(pdu, self._replace_sm))

    async def _replace_sm(self, pdu: Pdu) -> None:
        message = await self.gw.find_message(self.account, pdu.get("message_id", ""))
        payload = pdu.get("short_message", b"")
        user_data_parts(payload, message.data_coding, message.esm_class, 1, True)
        await self.gw.replace(
            self.account, str(message.id), payload,
            _smpp_time(pdu.get("schedule_delivery_time", ""), Err.BAD_SCHEDULE),
            _smpp_time(pdu.get("validity_period", ""), Err.BAD_VALIDITY),
            pdu.get("registered_delivery", 0))
        self._respond(pdu, Status.ESME_ROK)

    async def _guarded(self, pdu: Pdu, operation) -> None:
        """Run an operation that answers later, answering its core errors with the
        operation's status and anything else with ESME_RSYSERR."""
        try:
            self.gw.current(self.account)
            await operation(pdu)
        except GatewayError as exc:
            status = exc.smpp_status
            if exc.error is Err.UNKNOWN_MESSAGE_ID:
                status = UNKNOWN_ID_STATUS_BY_OPERATION.get(pdu.name, status)
            self._respond(pdu, status)
        except Exception:
            self._handler_failed(pdu)

    # -- receipts and MO (core.receipts.ReceiverSession) --------------------------------

    def send_receipt(self, receipt: PendingReceipt, done: Done) -> None:
        """A receipt's or MO's deliver_sm now if the window has room; else wait in a
        bounded backlog; else (or when the peer is gone) done(False) at once, and the
        receipt service retries later. So a receiver that does not read costs at most
        window + backlog."""
        if not self.session.can_receive or self.transport is None or \
                self.transport.is_closing():
            return done(False)
        if self.session.can_send_request and not self._writing_paused \
                and not self._receipt_backlog:
            return self._send_receipt(receipt, done)
        if len(self._receipt_backlog) >= self.cfg.receipt_backlog:
            return done(False)
        self._receipt_backlog.append((receipt, done))

    def _send_receipt(self, receipt: PendingReceipt, done: Done) -> None:
        sequence = self.session.send(deliver_sm_pdu(receipt), self._now())
        self._receipts[sequence] = done
        self._after_request()

    def _send_receipt_backlog(self) -> None:
        backlog = self._receipt_backlog
        while backlog and self.session.can_send_request and not self._writing_paused:
            if not self.session.can_receive:
                break
            self._send_receipt(*backlog.popleft())

    def _on_deliver_sm_resp(self, pdu: Pdu) -> None:
        done = self._receipts.pop(pdu.sequence, None)
        if done is not None:
            done(pdu.status == Status.ESME_ROK)
        self._send_receipt_backlog()

    _on_generic_nack = _on_deliver_sm_resp

    def _receipt_timed_out(self, request: Pdu) -> None:
        """No deliver_sm_resp within response_timeout: free the slot, retry later."""
        done = self._receipts.pop(request.sequence, None)
        if done is not None:
            done(False)

    def _fail_receipts(self) -> None:
        """The connection is gone: every receipt it held goes back to be retried."""
        for done in self._receipts.values():
            done(False)
        for _receipt, done in self._receipt_backlog:
            done(False)
        self._receipts.clear()
        self._receipt_backlog.clear()


class _StoredAnswers:
    """The waiter of a read's stored submits: told once per commit that carries some of
    them, in order (a commit may take the first part of a run and the next the rest),
    it answers each its PDU."""

    __slots__ = ("connection", "pdus", "start")

    def __init__(self, connection: MessageHandlers, pdus: list[Pdu]) -> None:
        self.connection, self.pdus, self.start = connection, pdus, 0

    def __call__(self, messages: list[Message], refused: set[int] | Exception) -> None:
        start = self.start
        self.start = end = start + len(messages)
        pdus = self.pdus if start == 0 and end == len(self.pdus) else self.pdus[start:end]
        self.connection._stored(pdus, messages, refused)


def submit_request(pdu: Pdu, account: Account, destination: str, dest_ton: int,
                   dest_npi: int) -> SubmitRequest:
    """A submit_sm's, data_sm's or submit_multi's request to one destination."""
    get = pdu.fields.get  # not Pdu.get: a Python call a field, ~15 a message
    payload = get("short_message", b"")
    single = True
    options = []
    for tag, value in pdu.tlvs:
        if tag == Tag.message_payload:
            if payload:
                raise GatewayError(Err.BAD_LENGTH, "short_message and message_payload")
            payload, single = value, False
        else:
            options.append((tag, value))
    priority = get("priority_flag", 0)
    if priority > MAX_PRIORITY:
        raise GatewayError(Err.BAD_PRIORITY, f"priority_flag {priority}")
    schedule, validity = get("schedule_delivery_time"), get("validity_period")
    # Positional, in SubmitRequest's field order: a third of the keyword call's cost
    # (~1 µs a message; tests/servers/test_smpp_request.py checks every field).
    return SubmitRequest(
        account, get("source_addr", ""), [destination], payload,
        get("data_coding", 0), get("esm_class", 0), single, None,  # parts: not known
        get("source_addr_ton", 0), get("source_addr_npi", 0), dest_ton, dest_npi,
        get("protocol_id", 0), priority, get("registered_delivery", 0),
        _smpp_time(schedule, Err.BAD_SCHEDULE) if schedule else None,
        _smpp_time(validity, Err.BAD_VALIDITY) if validity else None,
        get("service_type", ""), encode_tlvs(options) if options else b"",
        "smpp", "", "",  # channel, ref, dlr_url
        254, False,  # max_destinations (submit_multi's limit), paced
        pdu.command_id == CommandId.data_sm)  # allow_transaction_mode


def _smpp_time(value: str, error: Err) -> float | None:
    if not value:
        return None
    try:
        moment = parse_smpp_time(value, datetime.now(UTC))
    except SmppTimeError:
        raise GatewayError(error, f"bad time {value!r}") from None
    return moment.timestamp() if moment is not None else None


def deliver_sm_pdu(item: PendingReceipt) -> Pdu:
    """The deliver_sm of a stored receipt or MO (the one place that builds either)."""
    fields = {"source_addr_ton": item.source_ton, "source_addr_npi": item.source_npi,
              "source_addr": item.source_addr, "dest_addr_ton": item.dest_ton,
              "dest_addr_npi": item.dest_npi, "destination_addr": item.dest_addr}
    if item.kind == MO:
        return _mo_pdu(item, fields)
    return _receipt_pdu(item, fields)


def _mo_pdu(mo: PendingReceipt, fields: dict) -> Pdu:
    """An MO as the upstream gave it: its data_coding, its user data (with its UDH and
    esm_class 0x40, or its sar_* TLVs), in short_message, or in message_payload when
    longer than short_message can hold (an upstream's message_payload MO)."""
    tlvs = decode_tlvs(mo.options) if mo.options else []
    fields.update(esm_class=mo.esm_class, data_coding=mo.data_coding)
    if len(mo.payload) <= MAX_SHORT_MESSAGE:
        fields["short_message"] = mo.payload
    else:
        tlvs.append((Tag.message_payload, mo.payload))
    return Pdu(CommandId.deliver_sm, fields=fields, tlvs=tlvs)


def _receipt_pdu(receipt: PendingReceipt, fields: dict) -> Pdu:
    text = format_receipt(Receipt(
        id=str(receipt.message_id), submit_date=receipt.submitted_at,
        done_date=receipt.done_at,
        stat=receipt.status, sub=1, dlvrd=int(receipt.status == "DELIVRD"),
        err=f"{receipt.error_code:03d}", text=_printable(receipt.text)))
    fields.update(esm_class=ESM_DELIVERY_RECEIPT,
                  short_message=text.encode("latin-1", "replace")[:MAX_SHORT_MESSAGE])
    return Pdu(CommandId.deliver_sm, fields=fields, tlvs=[
        (Tag.receipted_message_id, str(receipt.message_id)),
        (Tag.message_state, STAT_TO_STATE.get(receipt.status, MessageState.UNKNOWN))])


def _printable(text: str) -> str:
    # The receipt's text: field goes out as plain Latin-1; keep it to one line.
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else " " for ch in text)
