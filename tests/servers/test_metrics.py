"""GET /metrics over real HTTP: the gateway's counters and the process's metrics in
Prometheus' text format, OpenMetrics on request, and the switch that turns it off."""

import aiohttp
from http_harness import LEBANON, USER, api_fixture, eventually, http_settings, ids_of  # noqa: F401
from prometheus_client.parser import text_string_to_metric_families
from smpp_harness import prepare_database

from smsgate.app import App
from smsgate.smpp.constants import Status


async def scrape(api, accept: str = "") -> tuple[str, dict[tuple[str, frozenset], float]]:
    """The content type and every sample, keyed by (name, its labels)."""
    headers = {"Accept": accept} if accept else {}
    async with api.session.get(api.base + "/metrics", headers=headers) as response:
        assert response.status == 200
        text = await response.text()
        content_type = response.headers["Content-Type"]
    if not accept:
        samples = {(s.name, frozenset(s.labels.items())): s.value
                   for family in text_string_to_metric_families(text)
                   for s in family.samples}
        return content_type, samples
    return content_type, {}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_metrics_count_accepted_delivered_and_commits(api):
    await api.seed_account()
    ids = ids_of(await api.submit(mno=f"{LEBANON},+447700900123"))

    async def delivered():
        return [(await api.message(i)).status for i in ids] == ["DELIVRD", "DELIVRD"]

    await eventually(delivered, what="DELIVRD")
    content_type, samples = await scrape(api)
    assert content_type.startswith("text/plain")
    assert value(samples, "smsgate_messages_accepted_total", channel="http") == 2
    assert value(samples, "smsgate_node_info", node=api.app.settings.node_id) == 1
    assert value(samples, "smsgate_message_statuses_total", status="DELIVRD") == 2
    assert value(samples, "smsgate_messages_dispatched_total") == 2
    assert value(samples, "smsgate_connector_sent_total", connector="simulator") == 2
    assert value(samples, "smsgate_store_commits_total") > 0
    assert value(samples, "smsgate_store_commit_items_total") >= 2
    assert value(samples, "smsgate_store_failed_commits_total") == 0
    # every commit timed once it returns (one may be in flight during the scrape)
    timed = value(samples, "smsgate_store_commit_seconds_count")
    assert value(samples, "smsgate_store_commits_total") - 1 <= timed
    assert timed <= value(samples, "smsgate_store_commits_total")
    assert value(samples, "smsgate_store_commit_seconds_bucket", le="+Inf") == timed
    assert 0 < value(samples, "smsgate_store_commit_seconds_sum") < timed * 5
    assert value(samples, "smsgate_smpp_connections") == 0
    assert value(samples, "smsgate_smpp_binds", kind="trx") == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "process_open_fds") > 0
    assert any(name == "python_info" for name, _ in samples)


async def test_metrics_per_account_and_connector_with_latency_histograms(api):
    await api.seed_account()
    ids = ids_of(await api.submit(mno=f"{LEBANON},+447700900123"))

    async def delivered():
        return [(await api.message(i)).status for i in ids] == ["DELIVRD", "DELIVRD"]

    await eventually(delivered, what="DELIVRD")
    _, samples = await scrape(api)
    assert value(samples, "smsgate_account_messages_accepted_total", account=USER) == 2
    assert value(samples, "smsgate_account_message_statuses_total", account=USER,
                 status="DELIVRD") == 2
    assert value(samples, "smsgate_connector_message_statuses_total",
                 connector="simulator", status="DELIVRD") == 2
    assert value(samples, "smsgate_connector_up", connector="simulator", state="up") == 1
    # one HTTP request for both: answered together, after their commit
    assert value(samples, "smsgate_submit_ack_seconds_count", channel="http") == 2
    assert 0 < value(samples, "smsgate_submit_ack_seconds_sum", channel="http") < 10
    assert value(samples, "smsgate_submit_ack_seconds_bucket", channel="http",
                 le="+Inf") == 2
    assert value(samples, "smsgate_submit_final_seconds_count", connector="simulator") == 2
    buckets = [(float(dict(labels)["le"]), n) for (name, labels), n in samples.items()
               if name == "smsgate_submit_final_seconds_bucket"]
    counts = [n for _, n in sorted(buckets)]
    assert counts == sorted(counts) and counts[-1] == 2  # cumulative


async def test_metrics_label_refusals_by_error(api):
    await api.seed_account()
    assert await api.submit(mno="not-a-number") == \
        "ERROR - HTTP09 --> Invalid Destination Address"
    _, samples = await scrape(api)
    assert value(samples, "smsgate_submits_refused_total",
                 channel="http", error="BAD_DESTINATION", code="HTTP09") == 1
    assert value(samples, "smsgate_messages_accepted_total", channel="http") is None


async def test_metrics_count_smpp_binds_and_submits(api):
    await api.account()  # "acme", for SMPP
    client = await api.bound("trx")
    await api.bound("tx")
    assert (await client.submit()).status == Status.ESME_ROK
    assert (await client.submit(destination="not-a-number")).status == Status.ESME_RINVDSTADR
    _, samples = await scrape(api)
    assert value(samples, "smsgate_messages_accepted_total", channel="smpp") == 1
    assert value(samples, "smsgate_account_messages_accepted_total", account="acme") == 1
    assert value(samples, "smsgate_submit_ack_seconds_count", channel="smpp") == 1
    assert value(samples, "smsgate_submits_refused_total",
                 channel="smpp", error="BAD_DESTINATION", code="HTTP09") == 1
    assert value(samples, "smsgate_smpp_connections") == 2
    assert value(samples, "smsgate_smpp_binds", kind="trx") == 1
    assert value(samples, "smsgate_smpp_binds", kind="tx") == 1
    assert value(samples, "smsgate_smpp_binds", kind="rx") == 0


async def test_metrics_in_openmetrics_when_asked(api):
    content_type, _ = await scrape(api, accept="application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")


async def test_metrics_off_is_an_unknown_path(store_url):
    await prepare_database(store_url)
    settings = http_settings(store_url)
    settings.http.metrics = False
    app = App(settings)
    await app.start()
    try:
        host, port = app.http.address
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://{host}:{port}/metrics") as response:
            assert await response.text() == "ERROR - HTTP01 --> Invalid HTTP URL Format"
    finally:
        await app.stop()
