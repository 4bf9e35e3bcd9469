"""The session's timekeeping and abuse limits, for both roles, with no network and no
clock: every test says what time it is."""

import pytest

from smsgate.smpp.codec import Codec
from smsgate.smpp.constants import CommandId as C
from smsgate.smpp.constants import Status as S
from smsgate.smpp.pdu import Pdu
from smsgate.smpp.session import LocalProtocolError, Role, Session, State
from smsgate.smpp.timers import (
    BindTimeout,
    Inactive,
    LinkDead,
    RequestTimedOut,
    SessionConfig,
)

CODEC = Codec()
BIND = {"system_id": "alice", "password": "secret", "interface_version": 0x34}
TIMERS = SessionConfig(bind_timeout=30, enquire_link_interval=60, inactivity_timeout=300,
                       response_timeout=10)


def deliver(a: Session, b: Session, now: float) -> list[Pdu]:
    """Everything `a` queued arrives at `b` at `now`."""
    return b.receive_data(a.data_to_send(), now)


def bound(config: SessionConfig = TIMERS, at: float = 0.0) -> tuple[Session, Session]:
    esme = Session(Role.ESME, config=config, now=at)
    smsc = Session(Role.SMSC, config=config, now=at)
    esme.send(Pdu(C.bind_transceiver, fields=BIND), at)
    [bind] = deliver(esme, smsc, at)
    smsc.send(bind.response(system_id="smsc"))
    deliver(smsc, esme, at)
    assert esme.state is smsc.state is State.BOUND_TRX
    return esme, smsc


def sent(session: Session) -> list[Pdu]:
    data, pdus = session.data_to_send(), []
    while data:
        length = int.from_bytes(data[:4], "big")
        pdus.append(CODEC.decode(data[:length]))
        data = data[length:]
    return pdus


# -- bind timeout ------------------------------------------------------------------------------


def test_smsc_closes_a_connection_that_does_not_bind() -> None:
    smsc = Session(Role.SMSC, config=TIMERS, now=100.0)
    assert smsc.next_deadline() == 130.0
    assert smsc.handle_timer(129.9) == []
    [event] = smsc.handle_timer(130.0)
    assert isinstance(event, BindTimeout) and event.closes and event.waited == 30
    assert smsc.closing and smsc.close_reason == "bind timeout"
    assert smsc.next_deadline() is None and smsc.handle_timer(1000.0) == []


def test_bind_timeout_runs_while_the_bind_is_checked() -> None:
    smsc = Session(Role.SMSC, config=TIMERS, now=0.0)
    smsc.receive_data(CODEC.encode(Pdu(C.bind_transmitter, 1, fields=BIND)), 29.0)
    assert smsc.state is State.BINDING and smsc.next_deadline() == 30.0
    assert isinstance(smsc.handle_timer(30.0)[0], BindTimeout)


def test_esme_waits_for_bind_resp_at_most_response_timeout() -> None:
    esme = Session(Role.ESME, config=TIMERS, now=0.0)
    esme.send(Pdu(C.bind_transceiver, fields=BIND), 1.0)
    assert esme.state is State.BINDING and esme.next_deadline() == 11.0
    [event] = esme.handle_timer(11.0)
    assert isinstance(event, LinkDead) and event.closes
    assert event.request.command_id == C.bind_transceiver and esme.closing


def test_no_bind_timeout_once_bound() -> None:
    esme, smsc = bound()
    for session in (esme, smsc):
        assert session.next_deadline() == 60.0  # the enquire_link interval, not 30
        assert session.handle_timer(30.0) == []


# -- enquire_link and inactivity ---------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ESME, Role.SMSC])
def test_idle_link_is_checked_with_enquire_link(role: Role) -> None:
    esme, smsc = bound()
    us, peer = (esme, smsc) if role is Role.ESME else (smsc, esme)
    assert us.handle_timer(60.0) == []
    [link] = sent(us)
    assert link.command_id == C.enquire_link and link.sequence in us.pending_out
    assert us.next_deadline() == 70.0  # its response_timeout
    assert us.handle_timer(65.0) == [] and us.data_to_send() == b""  # only one at a time
    peer.receive_data(CODEC.encode(link), 66.0)
    peer.send(link.response())
    [resp] = deliver(peer, us, 67.0)
    assert resp.command_id == C.enquire_link_resp and us.pending_out == {}
    assert us.next_deadline() == 127.0  # idle counts from what was received last


@pytest.mark.parametrize("role", [Role.ESME, Role.SMSC])
def test_unanswered_enquire_link_means_the_link_is_dead(role: Role) -> None:
    esme, smsc = bound()
    us = esme if role is Role.ESME else smsc
    us.handle_timer(60.0)
    [event] = us.handle_timer(70.0)
    assert isinstance(event, LinkDead) and event.request.command_id == C.enquire_link
    assert us.closing and us.close_reason == "enquire_link unanswered"


def test_traffic_pushes_the_enquire_link_back() -> None:
    esme, smsc = bound()
    esme.send(Pdu(C.enquire_link), 50.0)
    deliver(esme, smsc, 50.0)
    assert smsc.next_deadline() == 110.0
    assert smsc.handle_timer(60.0) == [] and smsc.data_to_send() == b""


def test_bytes_of_a_frame_that_never_completes_do_not_keep_the_link_alive() -> None:
    esme, _ = bound()
    header = CODEC.encode(Pdu(C.enquire_link, 7))[:10]  # the start of a PDU, no more
    assert esme.receive_data(header, 50.0) == []
    assert esme.next_deadline() == 60.0  # idle since the last whole PDU (bound at 0)
    assert esme.handle_timer(60.0) == []
    [link] = sent(esme)
    assert link.command_id == C.enquire_link


def test_an_unanswered_request_probes_the_link_at_once() -> None:
    config = SessionConfig(enquire_link_interval=60, response_timeout=10,
                           probe_on_timeout=True)
    esme, smsc = bound(config)
    esme.send(Pdu(C.submit_sm, fields={"short_message": b"a"}), 1.0)
    deliver(esme, smsc, 1.0)
    [event] = esme.handle_timer(11.0)
    assert isinstance(event, RequestTimedOut) and not esme.closing
    [probe] = deliver(esme, smsc, 11.0)
    assert probe.command_id == C.enquire_link  # not waiting for 60 s of silence
    smsc.send(probe.response())
    deliver(smsc, esme, 12.0)  # answered: slow, not dead
    assert esme.pending_out == {} and esme.next_deadline() == 72.0
    # Unanswered, the probe ends the link one response_timeout later.
    esme.send(Pdu(C.submit_sm, fields={"short_message": b"b"}), 20.0)
    esme.handle_timer(30.0)
    [event] = esme.handle_timer(40.0)
    assert isinstance(event, LinkDead) and esme.close_reason == "enquire_link unanswered"


def test_without_probe_on_timeout_no_enquire_link_is_sent() -> None:
    esme, _ = bound()
    esme.send(Pdu(C.submit_sm, fields={"short_message": b"a"}), 1.0)
    esme.data_to_send()
    [event] = esme.handle_timer(11.0)
    assert isinstance(event, RequestTimedOut) and esme.data_to_send() == b""


@pytest.mark.parametrize("role", [Role.ESME, Role.SMSC])
def test_inactivity_unbinds_then_closes_without_unbind_resp(role: Role) -> None:
    config = SessionConfig(enquire_link_interval=0, inactivity_timeout=300,
                           response_timeout=10)
    esme, smsc = bound(config)
    us = esme if role is Role.ESME else smsc
    assert us.next_deadline() == 300.0
    [event] = us.handle_timer(300.0)
    assert isinstance(event, Inactive) and not event.closes and event.idle == 300
    assert [p.command_id for p in sent(us)] == [C.unbind] and us.state is State.UNBINDING
    assert us.next_deadline() == 310.0
    [event] = us.handle_timer(310.0)
    assert isinstance(event, LinkDead) and event.request.command_id == C.unbind


def test_inactivity_ends_cleanly_when_the_peer_answers_the_unbind() -> None:
    esme, smsc = bound(SessionConfig(enquire_link_interval=0, inactivity_timeout=5))
    smsc.handle_timer(5.0)
    [unbind] = deliver(smsc, esme, 6.0)
    esme.send(unbind.response())
    [resp] = deliver(esme, smsc, 6.0)
    assert resp.command_id == C.unbind_resp
    assert smsc.state is State.UNBOUND and smsc.closing and not smsc.close_reason
    assert smsc.next_deadline() is None


def test_timers_set_to_zero_are_off() -> None:
    off = SessionConfig(bind_timeout=0, enquire_link_interval=0, inactivity_timeout=0,
                        response_timeout=0)
    assert Session(Role.SMSC, config=off).next_deadline() is None
    esme, smsc = bound(off)
    esme.send(Pdu(C.submit_sm, fields={"destination_addr": "1"}), 0.0)
    assert esme.next_deadline() is smsc.next_deadline() is None
    assert esme.handle_timer(1e9) == [] and esme.pending_out


# -- the app's requests ------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ESME, Role.SMSC])
def test_unanswered_request_is_returned_to_the_app(role: Role) -> None:
    esme, smsc = bound()
    us, peer = (esme, smsc) if role is Role.ESME else (smsc, esme)
    command = C.submit_sm if role is Role.ESME else C.deliver_sm
    first = us.send(Pdu(command, fields={"short_message": b"a"}), 1.0)
    second = us.send(Pdu(command, fields={"short_message": b"b"}), 2.0)
    [answered, _] = deliver(us, peer, 2.0)
    peer.send(answered.response(message_id="1"))
    assert [p.sequence for p in deliver(peer, us, 3.0)] == [first]
    assert us.next_deadline() == 12.0  # the first one's deadline went with its answer
    [event] = us.handle_timer(12.0)
    assert isinstance(event, RequestTimedOut) and not event.closes
    assert event.request.sequence == second and event.request["short_message"] == b"b"
    assert us.pending_out == {} and us.can_send_request and not us.closing
    # A response arriving after that is unexpected: dropped, not given to the app.
    late = Pdu(command | 0x80000000, second, fields={"message_id": "2"})
    assert us.receive_data(CODEC.encode(late), 13.0) == []
    assert [e.reason for e in us.rejected] == [f"unexpected {late.name}"]


def test_send_numbers_a_copy_and_leaves_the_callers_pdu_alone() -> None:
    esme, _ = bound()
    pdu = Pdu(C.submit_sm, fields={"destination_addr": "1"})
    sequence = esme.send(pdu, 0.0)
    assert pdu.sequence == 0 and esme.pending_out[sequence].sequence == sequence
    assert esme.send(pdu, 0.0) == sequence + 1  # the same PDU may be sent again
    with pytest.raises(LocalProtocolError):  # a request's deadline needs the time
        esme.send(pdu)


# -- abuse limits ------------------------------------------------------------------------------


def test_pdus_before_bind_are_capped() -> None:
    smsc = Session(Role.SMSC, config=SessionConfig(max_pdus_before_bind=3))
    links = b"".join(CODEC.encode(Pdu(C.enquire_link, n)) for n in range(1, 6))
    assert [p.sequence for p in smsc.receive_data(links[:32], 0.0)] == [1, 2]
    assert [p.sequence for p in smsc.receive_data(links[32:], 0.0)] == [3]
    assert smsc.closing and smsc.close_reason == "over 3 PDUs before bind"
    assert smsc.receive_data(links, 0.0) == []


def test_what_follows_the_bind_resp_in_one_read_is_not_before_bind() -> None:
    esme = Session(Role.ESME, config=SessionConfig(max_pdus_before_bind=3))
    sequence = esme.send(Pdu(C.bind_transceiver, fields=BIND), 0.0)
    resp = Pdu(C.bind_transceiver_resp, sequence, fields={"system_id": "smsc"})
    receipts = [Pdu(C.deliver_sm, n, fields={"esm_class": 4}) for n in range(1, 11)]
    data = b"".join(CODEC.encode(p) for p in [resp, *receipts])
    assert len(esme.receive_data(data, 0.0)) == 11
    assert esme.state is State.BOUND_TRX and not esme.closing


def test_the_cap_before_bind_does_not_apply_once_bound() -> None:
    _, smsc = bound(SessionConfig(max_pdus_before_bind=2))
    links = b"".join(CODEC.encode(Pdu(C.enquire_link, n)) for n in range(1, 11))
    assert len(smsc.receive_data(links, 0.0)) == 10 and not smsc.closing


def test_protocol_errors_close_the_session_past_the_limit() -> None:
    _, smsc = bound(SessionConfig(max_protocol_errors=3))
    unknown = b"".join(bytes.fromhex("00000010000006660000000000000000")[:12]
                       + n.to_bytes(4, "big") for n in range(1, 6))
    assert smsc.receive_data(unknown, 0.0) == []
    assert [p.sequence for p in sent(smsc)] == [1, 2, 3]  # nothing after the third
    assert smsc.closing and smsc.close_reason == "3 protocol errors"
    assert smsc.protocol_errors == 3


def test_a_malformed_field_is_not_a_protocol_error() -> None:
    _, smsc = bound(SessionConfig(max_protocol_errors=2))
    bad = Codec(field_limits={"source_addr": 40}).encode(
        Pdu(C.submit_sm, 7, fields={"source_addr": "1" * 30}))
    for _ in range(3):
        assert smsc.receive_data(bad, 0.0) == []
    assert [p.status for p in sent(smsc)] == [S.ESME_RINVSRCADR] * 3
    assert smsc.protocol_errors == 0 and not smsc.closing
