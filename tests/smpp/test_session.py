"""The session state machine (SMPP34.md §7), with an ESME and an SMSC wired back to back."""

from typing import Any

import pytest

from smsgate.smpp.codec import Codec
from smsgate.smpp.constants import MAX_SEQUENCE, NO_RESPONSE, RESPONSE_BIT
from smsgate.smpp.constants import CommandId as C
from smsgate.smpp.constants import Status as S
from smsgate.smpp.layouts import SmeAddress
from smsgate.smpp.pdu import Pdu
from smsgate.smpp.session import LocalProtocolError, Role, Session, State, WindowFull
from smsgate.smpp.timers import SessionConfig

CODEC = Codec()
NOW = 0.0  # the session tests that are not about time all happen at one moment
OPEN, BINDING, TX, RX, TRX = (State.OPEN, State.BINDING, State.BOUND_TX, State.BOUND_RX,
                              State.BOUND_TRX)
UNBINDING, UNBOUND = State.UNBINDING, State.UNBOUND
BOUND_BY = {C.bind_transmitter: TX, C.bind_receiver: RX, C.bind_transceiver: TRX}
BIND_OF = {state: cid for cid, state in BOUND_BY.items()}
BIND_FIELDS = {"system_id": "alice", "password": "secret", "interface_version": 0x34}

# SMPP34.md §7.2, written out independently of session.ALLOWED: who may send which
# request in which state. BINDING (a bind sent, its response not yet) and UNBINDING
# (we sent unbind) are ours: in them only enquire_link passes, and an unbind crossing
# ours.
ALL = {OPEN, BINDING, TX, RX, TRX, UNBINDING}
BOUND = {TX, RX, TRX}
EXPECTED: dict[int, dict[Role, set[State]]] = {
    C.bind_transmitter: {Role.ESME: {OPEN}},
    C.bind_receiver: {Role.ESME: {OPEN}},
    C.bind_transceiver: {Role.ESME: {OPEN}},
    C.outbind: {Role.SMSC: {OPEN}},
    C.unbind: {Role.ESME: BOUND | {UNBINDING}, Role.SMSC: BOUND | {UNBINDING}},
    C.enquire_link: {Role.ESME: ALL, Role.SMSC: ALL},
    C.submit_sm: {Role.ESME: {TX, TRX}},
    C.submit_multi: {Role.ESME: {TX, TRX}},
    C.query_sm: {Role.ESME: {TX, TRX}},
    C.cancel_sm: {Role.ESME: {TX, TRX}},
    C.replace_sm: {Role.ESME: {TX, TRX}},
    C.deliver_sm: {Role.SMSC: {RX, TRX}},
    C.data_sm: {Role.ESME: {TX, TRX}, Role.SMSC: {RX, TRX}},
    C.alert_notification: {Role.SMSC: {RX, TRX}},
}
REQUIRED_FIELDS: dict[int, dict[str, Any]] = {
    C.submit_multi: {"dest_addresses": (SmeAddress(1, 1, "4477"),)},
    **{cid: BIND_FIELDS for cid in BOUND_BY},
}


def request(command_id: int, sequence: int = 0, **fields: Any) -> Pdu:
    return Pdu(command_id, sequence, fields=REQUIRED_FIELDS.get(command_id, {}) | fields)


def wire(a: Session, b: Session, pdu: Pdu) -> list[Pdu]:
    """`a` sends `pdu`; `b` receives the bytes."""
    a.send(pdu, NOW)
    return b.receive_data(a.data_to_send(), NOW)


def answers(session: Session) -> list[Pdu]:
    """The automatic answers `session` queued, decoded."""
    data = session.data_to_send()
    pdus = []
    while data:
        length = int.from_bytes(data[:4], "big")
        pdus.append(CODEC.decode(data[:length]))
        data = data[length:]
    return pdus


def pair(state: State = OPEN, **options: Any) -> tuple[Session, Session]:
    """An ESME and an SMSC session, bound over the wire into `state` (BINDING: the
    ESME's bind_transceiver sent and received, not answered)."""
    config = SessionConfig(**options)
    esme, smsc = Session(Role.ESME, config=config), Session(Role.SMSC, config=config)
    if state is BINDING:
        wire(esme, smsc, request(C.bind_transceiver))
    elif state is not OPEN:
        [bind] = wire(esme, smsc, request(BIND_OF[state]))
        [resp] = wire(smsc, esme, bind.response(system_id="SMSC"))
        assert resp.status == S.ESME_ROK
    assert esme.state is smsc.state is state
    return esme, smsc


def raw(command_id: int, sequence: int = 7, status: int = 0, **fields: Any) -> bytes:
    """Bytes of a PDU built without a session's checks."""
    if command_id & RESPONSE_BIT:
        return CODEC.encode(Pdu(command_id, sequence, status, fields))
    pdu = request(command_id, sequence, **fields)
    pdu.status = status
    return CODEC.encode(pdu)


# -- binding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command_id", sorted(BOUND_BY))
def test_bind_reaches_bound_state(command_id: int) -> None:
    esme, smsc = pair()
    [bind] = wire(esme, smsc, request(command_id))
    assert bind.command_id == command_id and bind.sequence == 1
    assert esme.state is smsc.state is BINDING and smsc.pending_in == 1
    [resp] = wire(smsc, esme, bind.response(system_id="SMSC"))
    assert resp == Pdu(command_id | RESPONSE_BIT, 1, 0, {"system_id": "SMSC"})
    assert esme.state is smsc.state is BOUND_BY[command_id]
    assert esme.bound and smsc.bound
    assert esme.pending_out == {} and smsc.pending_in == 0
    assert esme.data_to_send() == smsc.data_to_send() == b""


@pytest.mark.parametrize("command_id", sorted(BOUND_BY))
def test_failed_bind_stays_open(command_id: int) -> None:
    esme, smsc = pair()
    [bind] = wire(esme, smsc, request(command_id))
    assert esme.state is smsc.state is BINDING
    [resp] = wire(smsc, esme, bind.response(S.ESME_RINVPASWD))
    assert resp == Pdu(command_id | RESPONSE_BIT, 1, S.ESME_RINVPASWD)
    assert esme.state is smsc.state is OPEN
    assert esme.pending_out == {}
    # ...and the ESME may try again.
    [bind] = wire(esme, smsc, request(command_id))
    wire(smsc, esme, bind.response())
    assert esme.state is smsc.state is BOUND_BY[command_id]


def test_generic_nack_to_bind_stays_open() -> None:
    esme, smsc = pair()
    [bind] = wire(esme, smsc, request(C.bind_transceiver))
    [nack] = esme.receive_data(raw(C.generic_nack, bind.sequence, S.ESME_RSYSERR), NOW)
    assert nack.command_id == C.generic_nack
    assert esme.state is OPEN and esme.pending_out == {}


@pytest.mark.parametrize("state", [BINDING, TX, RX, TRX])
@pytest.mark.parametrize("command_id", sorted(BOUND_BY))
def test_second_bind_is_ralybnd(state: State, command_id: int) -> None:
    esme, smsc = pair(state)
    with pytest.raises(LocalProtocolError):
        esme.send(request(command_id), NOW)
    assert smsc.receive_data(raw(command_id, 42), NOW) == []
    assert answers(smsc) == [Pdu(command_id | RESPONSE_BIT, 42, S.ESME_RALYBND)]
    assert smsc.state is state and [e.status for e in smsc.rejected] == [S.ESME_RALYBND]


# -- the state table ---------------------------------------------------------------------------


@pytest.mark.parametrize("state", [OPEN, BINDING, TX, RX, TRX], ids=lambda s: s.value)
@pytest.mark.parametrize("sender", [Role.ESME, Role.SMSC], ids=lambda r: r.value)
@pytest.mark.parametrize("command_id", sorted(EXPECTED), ids=lambda c: C(c).name)
def test_state_table(command_id: int, sender: Role, state: State) -> None:
    esme, smsc = pair(state)
    local, peer = (esme, smsc) if sender is Role.ESME else (smsc, esme)
    allowed = state in EXPECTED[command_id].get(sender, set())
    data = raw(command_id, 0x1234)
    outstanding = dict(local.pending_out)  # BINDING: the ESME's bind
    if allowed:
        local.send(request(command_id), NOW)
        assert local.data_to_send() != b""
    else:
        with pytest.raises(LocalProtocolError):
            local.send(request(command_id), NOW)
        assert local.pending_out == outstanding

    unanswered = peer.pending_in  # BINDING: the SMSC has the bind to answer
    received = peer.receive_data(data, NOW)
    if allowed:
        assert [p.command_id for p in received] == [command_id]
        assert peer.data_to_send() == b"" and peer.rejected == []
        assert peer.pending_in == unanswered + (0 if command_id in NO_RESPONSE else 1)
        return
    assert received == []
    if not EXPECTED[command_id].get(sender):
        status = S.ESME_RINVCMDID  # this role never sends it
    elif command_id in BOUND_BY and state is not OPEN:
        status = S.ESME_RALYBND
    else:
        status = S.ESME_RINVBNDSTS
    [answer] = answers(peer)
    assert (answer.sequence, answer.status) == (0x1234, status)
    expected_id = C.generic_nack if command_id in NO_RESPONSE else command_id | RESPONSE_BIT
    if status != S.ESME_RINVCMDID:
        assert answer.command_id == expected_id
    else:
        assert answer.command_id in (expected_id, C.generic_nack)
    assert peer.state is state and peer.pending_in == unanswered
    assert [(e.status, e.sequence) for e in peer.rejected] == [(status, 0x1234)]


def test_submit_sm_before_bind_is_rinvbndsts() -> None:
    esme, smsc = pair()
    with pytest.raises(LocalProtocolError):
        esme.send(request(C.submit_sm), NOW)
    assert smsc.receive_data(raw(C.submit_sm, 9), NOW) == []
    assert answers(smsc) == [Pdu(C.submit_sm_resp, 9, S.ESME_RINVBNDSTS)]
    assert smsc.state is OPEN and not smsc.closing


def test_submit_sm_on_rx_is_rinvbndsts() -> None:
    esme, smsc = pair(RX)
    with pytest.raises(LocalProtocolError):
        esme.send(request(C.submit_sm), NOW)
    assert smsc.receive_data(raw(C.submit_sm, 10), NOW) == []
    assert answers(smsc) == [Pdu(C.submit_sm_resp, 10, S.ESME_RINVBNDSTS)]


@pytest.mark.parametrize("state", [TX, RX, TRX])
def test_deliver_sm_only_rx_trx(state: State) -> None:
    esme, smsc = pair(state)
    assert smsc.can_receive is (state in (RX, TRX))
    if state is TX:
        with pytest.raises(LocalProtocolError):
            smsc.send(request(C.deliver_sm), NOW)
        assert esme.receive_data(raw(C.deliver_sm, 5), NOW) == []
        assert answers(esme) == [Pdu(C.deliver_sm_resp, 5, S.ESME_RINVBNDSTS)]
        return
    [deliver] = wire(smsc, esme, request(C.deliver_sm, short_message=b"hi"))
    assert deliver["short_message"] == b"hi"
    [resp] = wire(esme, smsc, deliver.response())
    assert resp == Pdu(C.deliver_sm_resp, deliver.sequence, 0, {"message_id": ""})
    assert smsc.pending_out == {}


def test_enquire_link_in_open_is_returned_to_app() -> None:
    esme, smsc = pair()
    [link] = wire(esme, smsc, Pdu(C.enquire_link))
    assert link.command_id == C.enquire_link and smsc.data_to_send() == b""
    [resp] = wire(smsc, esme, link.response())
    assert resp == Pdu(C.enquire_link_resp, link.sequence)
    assert esme.state is smsc.state is OPEN and esme.pending_out == {}


def test_unknown_command_is_generic_nack_rinvcmdid() -> None:
    _, smsc = pair(TRX)
    data = bytes.fromhex("0000001000000110000000000a342ee7")
    assert smsc.receive_data(data, NOW) == []
    assert answers(smsc) == [Pdu(C.generic_nack, 0x0A342EE7, S.ESME_RINVCMDID)]
    assert smsc.state is TRX and not smsc.closing


def test_outbind() -> None:
    esme, smsc = pair()
    [outbind] = wire(smsc, esme, request(C.outbind, system_id="smsc", password="pw"))
    assert outbind.sequence != 0  # numbered like any request
    assert smsc.pending_out == {} and esme.pending_in == 0  # no response exists
    with pytest.raises(LocalProtocolError):
        esme.send(Pdu(C.outbind), NOW)
    [bind] = wire(esme, smsc, request(C.bind_receiver))
    wire(smsc, esme, bind.response())
    assert esme.state is RX


def test_alert_notification_is_numbered_and_not_pending() -> None:
    esme, smsc = pair(TRX)
    [alert] = wire(smsc, esme, request(C.alert_notification))
    assert alert.sequence == 1  # the SMSC's first request
    assert smsc.pending_out == {} and esme.pending_in == 0


# -- responses -------------------------------------------------------------------------------


def test_unexpected_response_dropped_and_recorded() -> None:
    esme, _ = pair(TX)
    assert esme.receive_data(raw(C.submit_sm_resp, 99, message_id="x"), NOW) == []
    assert esme.data_to_send() == b""
    assert [(e.command_id, e.sequence) for e in esme.rejected] == [(C.submit_sm_resp, 99)]
    assert esme.receive_data(raw(C.generic_nack, 0, S.ESME_RINVCMDLEN), NOW) == []
    assert esme.data_to_send() == b"" and len(esme.rejected) == 2


def test_response_of_the_wrong_kind_is_unexpected() -> None:
    esme, smsc = pair()
    [bind] = wire(esme, smsc, request(C.bind_transmitter))
    # An OK submit_sm_resp carrying the bind's sequence neither binds nor ends the bind.
    assert esme.receive_data(raw(C.submit_sm_resp, bind.sequence, message_id="1"), NOW) == []
    assert esme.state is BINDING and bind.sequence in esme.pending_out
    assert [e.command_id for e in esme.rejected] == [C.submit_sm_resp]
    [resp] = wire(smsc, esme, bind.response())
    assert resp.command_id == C.bind_transmitter_resp and esme.state is TX


def test_garbled_response_ends_the_request() -> None:
    esme, smsc = pair(TX)
    [submit] = wire(esme, smsc, request(C.submit_sm))
    # submit_sm_resp whose message_id has 65 characters: ESME_RINVMSGID.
    bad = Codec(field_limits={"message_id": 80}).encode(
        Pdu(C.submit_sm_resp, submit.sequence, 0, {"message_id": "9" * 65}))
    [nack] = esme.receive_data(bad, NOW)
    assert nack == Pdu(C.generic_nack, submit.sequence, S.ESME_RINVMSGID)
    assert esme.pending_out == {} and esme.data_to_send() == b""


def test_response_to_nothing_is_local_protocol_error() -> None:
    esme, smsc = pair(TX)
    with pytest.raises(LocalProtocolError):
        smsc.send(Pdu(C.submit_sm_resp, 5, 0, {"message_id": "1"}), NOW)
    [submit] = wire(esme, smsc, request(C.submit_sm))
    with pytest.raises(LocalProtocolError):  # answers a request that does not exist
        smsc.send(Pdu(C.query_sm_resp, submit.sequence), NOW)
    smsc.send(submit.response(message_id="1"), NOW)
    with pytest.raises(LocalProtocolError):  # answered twice
        smsc.send(submit.response(message_id="1"), NOW)
    assert smsc.pending_in == 0


def test_send_message_ids_is_send_of_each_answer() -> None:
    esme, smsc = pair(TRX)
    requests = []
    for command_id in (C.submit_sm, C.data_sm, C.submit_sm):
        requests += wire(esme, smsc, request(command_id))
    ids = ["101", "102", "x" * 65]  # the last does not fit: `send` would raise
    with pytest.raises(ValueError):
        smsc.send(requests[2].response(message_id=ids[2]))
    with pytest.raises(ValueError):
        smsc.send_message_ids(requests, ids)
    assert smsc.pending_in == 3 and not smsc.has_data_to_send  # nothing queued nor counted
    smsc.send_message_ids(requests[:2], ids[:2])
    expected = b"".join(CODEC.encode(r.response(message_id=i))
                        for r, i in zip(requests[:2], ids[:2], strict=True))
    assert smsc.data_to_send() == expected
    assert smsc.pending_in == 1
    with pytest.raises(LocalProtocolError):  # answered already
        smsc.send_message_ids(requests[:1], ["101"])
    [query] = wire(esme, smsc, request(C.query_sm, message_id="1"))
    with pytest.raises(LocalProtocolError):  # owed an answer, but not one with a message_id
        smsc.send_message_ids([query], ["1"])
    assert smsc.pending_in == 2


def test_generic_nack_answers_a_pending_request() -> None:
    esme, smsc = pair(TX)
    [submit] = wire(esme, smsc, request(C.submit_sm))
    [nack] = wire(smsc, esme, Pdu(C.generic_nack, submit.sequence, S.ESME_RSYSERR))
    assert nack.status == S.ESME_RSYSERR
    assert smsc.pending_in == 0 and esme.pending_out == {}


# -- unbind ----------------------------------------------------------------------------------


@pytest.mark.parametrize("initiator", [Role.ESME, Role.SMSC])
def test_unbind(initiator: Role) -> None:
    esme, smsc = pair(TRX)
    a, b = (esme, smsc) if initiator is Role.ESME else (smsc, esme)
    [unbind] = wire(a, b, Pdu(C.unbind))
    assert a.state is UNBINDING and b.state is TRX
    [resp] = wire(b, a, unbind.response())
    assert resp.command_id == C.unbind_resp
    assert a.state is b.state is UNBOUND
    assert a.closing and b.closing
    assert a.receive_data(raw(C.enquire_link), NOW) == []  # closing: nothing more is read


def test_unbinding_sends_no_new_work_but_takes_what_crossed_it() -> None:
    esme, smsc = pair(TRX)
    [deliver] = wire(smsc, esme, request(C.deliver_sm))
    assert smsc.unbind(NOW) and smsc.state is UNBINDING
    assert smsc.unbind(NOW) and smsc.data_to_send() != b""  # once only
    [submit] = smsc.receive_data(raw(C.submit_sm, 8), NOW)  # sent before our unbind arrived
    assert submit.sequence == 8 and smsc.pending_in == 1 and smsc.rejected == []
    assert not smsc.can_receive
    with pytest.raises(LocalProtocolError):
        smsc.send(request(C.deliver_sm), NOW)
    [resp] = wire(esme, smsc, deliver.response())  # what was outstanding still settles
    assert resp.command_id == C.deliver_sm_resp and deliver.sequence not in smsc.pending_out
    [link] = smsc.receive_data(raw(C.enquire_link, 9), NOW)  # still answered
    smsc.send(link.response())


def test_unbinding_still_refuses_what_the_bound_state_refused() -> None:
    _, smsc = pair(RX)
    assert smsc.unbind(NOW) and smsc.data_to_send() != b""
    assert smsc.receive_data(raw(C.submit_sm, 8), NOW) == []  # an RX bind never submits
    assert answers(smsc) == [Pdu(C.submit_sm_resp, 8, S.ESME_RINVBNDSTS)]


def test_crossing_unbinds_both_end_unbound() -> None:
    esme, smsc = pair(TRX)
    esme.send(Pdu(C.unbind), NOW)
    smsc.send(Pdu(C.unbind), NOW)
    [from_smsc] = esme.receive_data(smsc.data_to_send(), NOW)
    [from_esme] = smsc.receive_data(esme.data_to_send(), NOW)
    esme.send(from_smsc.response())
    smsc.send(from_esme.response())
    assert esme.state is smsc.state is UNBOUND and esme.closing and smsc.closing


def test_unbound_reads_nothing_but_may_still_answer() -> None:
    esme, smsc = pair(TX)
    [submit] = wire(esme, smsc, request(C.submit_sm))  # stored while the peer unbinds
    [unbind] = wire(esme, smsc, Pdu(C.unbind))
    smsc.send(unbind.response())
    assert smsc.state is UNBOUND
    assert smsc.receive_data(raw(C.enquire_link, 4), NOW) == []
    assert smsc.data_to_send() != b"" and smsc.rejected == []
    smsc.send(submit.response(message_id="1"))  # the answer it owed still goes out
    with pytest.raises(LocalProtocolError):
        smsc.send(Pdu(C.enquire_link), NOW)


def test_unbind_in_open_is_rinvbndsts() -> None:
    esme, smsc = pair()
    with pytest.raises(LocalProtocolError):
        esme.send(Pdu(C.unbind), NOW)
    assert smsc.receive_data(raw(C.unbind, 3), NOW) == []
    assert answers(smsc) == [Pdu(C.unbind_resp, 3, S.ESME_RINVBNDSTS)]


def test_closed_session() -> None:
    esme, smsc = pair(TX)
    wire(esme, smsc, request(C.submit_sm))
    lost = esme.close()
    assert [p.command_id for p in lost] == [C.submit_sm]
    assert esme.state is State.CLOSED and esme.pending_out == {}
    with pytest.raises(LocalProtocolError):
        esme.send(Pdu(C.enquire_link), NOW)
    assert esme.receive_data(raw(C.enquire_link), NOW) == []


# -- sequence numbers --------------------------------------------------------------------------


def test_sequence_numbers_start_at_one_and_increase() -> None:
    esme, smsc = pair(TX)  # the bind took 1
    seqs = [wire(esme, smsc, request(C.submit_sm))[0].sequence for _ in range(3)]
    assert seqs == [2, 3, 4]


def test_sequence_wraps_to_one() -> None:
    session = Session(Role.ESME)
    session._last_sequence = MAX_SEQUENCE - 2  # skip ahead: 2**31 requests take too long
    assert [session.next_sequence() for _ in range(4)] == [MAX_SEQUENCE - 1, MAX_SEQUENCE, 1, 2]


def test_sequence_wrap_skips_outstanding() -> None:
    esme, _ = pair()
    assert esme.send(Pdu(C.enquire_link), NOW) == 1  # still outstanding
    esme._last_sequence = MAX_SEQUENCE
    assert esme.next_sequence() == 2


def test_peer_sequence_echoed() -> None:
    esme, smsc = pair(TRX)
    for seq in (0x806A179B, 0, 0xFFFFFFFF):
        [submit] = smsc.receive_data(raw(C.submit_sm, seq), NOW)
        assert submit.sequence == seq
        assert smsc.send(submit.response(message_id="m")) == seq
        assert CODEC.decode(smsc.data_to_send()).sequence == seq
    # Auto-answers echo it too.
    assert esme.receive_data(raw(C.submit_sm, 0x806A179B), NOW) == []
    assert answers(esme) == [Pdu(C.submit_sm_resp, 0x806A179B, S.ESME_RINVCMDID)]


def test_explicit_sequence_kept_but_not_reused_while_outstanding() -> None:
    esme, smsc = pair(TX)
    [submit] = wire(esme, smsc, request(C.submit_sm, 1000))
    assert submit.sequence == 1000
    with pytest.raises(LocalProtocolError):
        esme.send(request(C.submit_sm, 1000), NOW)
    assert list(esme.pending_out) == [1000]


# -- windows ---------------------------------------------------------------------------------


def test_window_full_and_freed_by_response() -> None:
    esme, smsc = pair(TX, window=2)
    received = [wire(esme, smsc, request(C.submit_sm))[0] for _ in range(2)]
    assert not esme.can_send_request
    with pytest.raises(WindowFull):
        esme.send(request(C.submit_sm), NOW)
    assert len(esme.pending_out) == 2
    wire(smsc, esme, received[1].response(message_id="b"))  # out of order is fine
    assert esme.can_send_request
    [third] = wire(esme, smsc, request(C.submit_sm))
    assert third.sequence == 4  # the refused one did not take a number
    with pytest.raises(WindowFull):
        esme.send(request(C.query_sm, message_id="1"), NOW)
    # The session's own requests are not held up by a full window.
    assert esme.send(Pdu(C.enquire_link), NOW) == 5


def test_failed_encode_does_not_take_a_window_slot() -> None:
    esme, _ = pair(TX, window=1)
    with pytest.raises(ValueError):
        esme.send(request(C.submit_sm, destination_addr="1" * 30), NOW)
    assert esme.pending_out == {} and esme.can_send_request
    esme.send(request(C.submit_sm), NOW)


def test_max_pending_in_is_rmsgqful() -> None:
    esme, smsc = pair(TX, max_pending_in=2)
    esme.window = 10
    got = [p for _ in range(3) for p in wire(esme, smsc, request(C.submit_sm))]
    assert [p.sequence for p in got] == [2, 3]
    assert smsc.pending_in == 2
    assert answers(smsc) == [Pdu(C.submit_sm_resp, 4, S.ESME_RMSGQFUL)]
    assert esme.receive_data(smsc.data_to_send(), NOW) == []
    # The ESME gets the refusal as the response to its request 4.
    [refusal] = esme.receive_data(CODEC.encode(Pdu(C.submit_sm_resp, 4, S.ESME_RMSGQFUL)), NOW)
    assert refusal.status == S.ESME_RMSGQFUL and 4 not in esme.pending_out
    smsc.send(got[0].response(message_id="a"), NOW)
    assert smsc.pending_in == 1
    assert len(wire(esme, smsc, request(C.submit_sm))) == 1


# -- framing errors ----------------------------------------------------------------------------


def test_bad_length_nacked_and_closing() -> None:
    _, smsc = pair(TRX)
    good = raw(C.enquire_link, 1)
    bad = bytes.fromhex("7FFFFFFF000000040000000000000033")
    assert [p.sequence for p in smsc.receive_data(good + bad, NOW)] == [1]
    assert answers(smsc) == [Pdu(C.generic_nack, 0x33, S.ESME_RINVCMDLEN)]
    assert smsc.closing
    assert smsc.receive_data(good, NOW) == [] and smsc.data_to_send() == b""


def test_decode_error_in_request_answered_with_field_status() -> None:
    _, smsc = pair(TX)
    data = Codec(field_limits={"source_addr": 40}).encode(
        request(C.submit_sm, 8, source_addr="1" * 21))
    assert smsc.receive_data(data, NOW) == []
    assert answers(smsc) == [Pdu(C.submit_sm_resp, 8, S.ESME_RINVSRCADR)]
    assert not smsc.closing


def test_local_protocol_errors() -> None:
    esme, smsc = pair(TX)
    for session, pdu in [
        (esme, request(C.deliver_sm)),
        (esme, request(C.alert_notification)),
        (smsc, request(C.submit_sm)),
        (smsc, request(C.bind_transmitter)),
        (esme, request(C.bind_receiver)),
    ]:
        with pytest.raises(LocalProtocolError):
            session.send(pdu, NOW)
    assert esme.pending_out == smsc.pending_out == {}
