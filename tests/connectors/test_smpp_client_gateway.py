"""The SMPP connector against our own gateway as the upstream SMSC, over real TCP: the
account's credentials, TRx and Tx+Rx, TLS; the gateway's simulator makes the receipts,
which come back with the ids the submit_sm_resp gave."""

import logging

from smpp_harness import PASSWORD
from upstream_harness import eventually, message, settings, started

from smsgate.core.binds import RX, TX
from smsgate.text import gsm7, segments


def gateway_settings(gateway, **more) -> dict:
    return settings(gateway.port, password=PASSWORD) | more


async def test_trx_sends_and_reports_receipts_with_the_same_ids(gateway):
    account = await gateway.account()
    connector, recorder = await started(gateway_settings(gateway))
    try:
        connector.send([message(n, text=b"Hello %d" % n) for n in range(1, 21)])
        await eventually(lambda: len(recorder.ids) == 20, what="20 sent")
        assert recorder.failures == {} and set(recorder.outcomes.values()) == {1}
        ids = {one for ids in recorder.ids.values() for one in ids}
        stored = await gateway.message(recorder.ids[7][0])
        assert (stored.account_id, stored.payload) == (account.id, b"Hello 7")
        assert stored.registered_delivery == 1 and stored.source_addr == "Acme"
        await eventually(lambda: len(recorder.reports) == 20, what="20 receipts")
        assert {report.upstream_ids[0] for report in recorder.reports} == ids
        assert {report.status for report in recorder.reports} == {"DELIVRD"}
        # Answered ESME_ROK: the gateway holds no receipt for us any more.
        await eventually(lambda: _no_receipts(gateway, account.id), what="receipts acked")
        state = connector.state()
        assert (state["binds_up"], state["sent"], state["reports"]) == (1, 20, 20)
    finally:
        await connector.stop()


async def _no_receipts(gateway, account_id: int) -> bool:
    return await gateway.receipts(account_id) == []


async def test_tx_plus_rx_binds_transmitters_and_a_receiver(gateway):
    await gateway.account()
    connector, recorder = await started(gateway_settings(gateway, mode="tx+rx", binds=2))
    try:
        await eventually(lambda: connector.state()["binds_up"] == 3, what="3 binds")
        kinds = sorted(c.bind_kind for c in gateway.app.smpp.connections)
        assert kinds == sorted([TX, TX, RX])
        connector.send([message(n) for n in range(1, 41)])
        await eventually(lambda: len(recorder.reports) == 40, what="40 receipts")
        assert len(recorder.ids) == 40 and recorder.failures == {}
        sent_ids = {ids[0] for ids in recorder.ids.values()}
        assert {report.upstream_ids[0] for report in recorder.reports} == sent_ids
        assert connector.state()["transmitters_up"] == 2
    finally:
        await connector.stop()
    await eventually(lambda: not gateway.app.smpp.connections, what="unbound")


async def test_a_receipt_is_acknowledged_only_once_stored(gateway):
    account = await gateway.account()
    connector, recorder = await started(gateway_settings(gateway))
    recorder.hold = True
    try:
        connector.send([message(1)])
        await eventually(lambda: recorder.held, what="a receipt")
        stored = await gateway.receipts(account.id)
        assert len(stored) == 1  # not acknowledged yet: the gateway keeps it
        recorder.held.pop()(False)  # could not store it: ESME_RX_T_APPN
        await eventually(lambda: recorder.held, timeout=10, what="the receipt again")
        assert len(recorder.reports) == 2 and len(await gateway.receipts(account.id)) == 1
        recorder.held.pop()(True)
        await eventually(lambda: _no_receipts(gateway, account.id), what="receipt acked")
    finally:
        await connector.stop()


async def test_a_long_text_goes_as_udh_parts(gateway):
    await gateway.account()
    connector, recorder = await started(gateway_settings(gateway))
    text = gsm7.encode("0123456789" * 30)
    try:
        connector.send([message(1, text=text, parts=2)])
        await eventually(lambda: 1 in recorder.ids, what="sent")
        first, second = [await gateway.message(i) for i in recorder.ids[1]]
        assert segments.join([first.payload, second.payload]) == text
        ref = first.payload[3]
        assert first.payload[:6] == bytes((5, 0, 3, ref, 2, 1)) and first.esm_class & 0x40
        assert second.payload[:6] == bytes((5, 0, 3, ref, 2, 2))
        await eventually(lambda: len(recorder.reports) == 2, what="a receipt per part")
        assert sorted(r.upstream_ids[0] for r in recorder.reports) == sorted(recorder.ids[1])
    finally:
        await connector.stop()


async def test_over_tls(tls_gateway, ca, tmp_path):
    await tls_gateway.account()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    _host, port = tls_gateway.app.smpp.tls_address
    config = settings(port, password=PASSWORD, tls=True, tls_ca=str(ca_file))
    connector, recorder = await started(config)
    try:
        connector.send([message(1, text=b"over TLS")])
        await eventually(lambda: recorder.reports, what="a receipt over TLS")
        stored = await tls_gateway.message(recorder.ids[1][0])
        assert stored.payload == b"over TLS"
    finally:
        await connector.stop()


async def test_tls_with_an_untrusted_certificate_does_not_bind(tls_gateway, caplog):
    await tls_gateway.account()
    _host, port = tls_gateway.app.smpp.tls_address
    with caplog.at_level(logging.WARNING, "smsgate.connectors"):
        connector, _ = await started(settings(port, password=PASSWORD, tls=True),
                                     bound=False)
        try:
            await eventually(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text,
                             what="a certificate error")
            assert not connector.available
        finally:
            await connector.stop()
    # Without checking the certificate (a test SMSC), it binds.
    connector, _ = await started(settings(port, password=PASSWORD, tls=True,
                                          tls_verify=False))
    await connector.stop()


async def test_a_refused_bind_backs_off_and_says_why(gateway, caplog):
    await gateway.account()
    with caplog.at_level(logging.WARNING, "smsgate.connectors"):
        connector, _ = await started(gateway_settings(gateway, password="wrong"), bound=False)
        try:
            await eventually(lambda: connector.state()["reconnects"] >= 3, what="3 tries")
            assert not connector.available
        finally:
            await connector.stop()
    lines = [r.getMessage() for r in caplog.records if "bind refused" in r.getMessage()]
    assert lines and "ESME_RINVPASWD" in lines[0] and "reconnecting in 0.1 s" in lines[0]
    assert "reconnecting in 0.2 s" in lines[1] and "reconnecting in 0.4 s" in lines[2]
