"""The admin dashboard (SPEC §10, issue 11 item 3) in a real headless Chromium, driven
by Playwright, against a real `smsgate serve` process on SQLite, with SMPP traffic
flowing over TCP while it looks. Playwright rather than Selenium: a PyPI package alone
(its driver inside), no chromedriver whose version must match the browser, and
assertions that wait by themselves (`expect`), so the test has no sleeps.

One browser session walks through what an operator does: a wrong token is refused on
the login form; the right one opens the dashboard; the throughput chart and its figures
rise while a customer submits; searches by time range, account (two pages), destination
and status find what they should, and a message's timeline shows its statuses; an SMPP
session is kicked (the client gets an unbind, the row leaves the list); a token revoked
meanwhile sends the page back to the login form, emptied. A screenshot of the
dashboard under load is saved as docs/dashboard.png.

Message ids here are above 2**53 (the id counter is moved up before the start): a
browser's JSON.parse would round them, so this also checks that the page keeps them
exact (api.js parseJson) and opens the right message's timeline.
"""

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_harness import ROOT, Gateway, eventually
from smpp_harness import RawClient, submit_sm

from smsgate.smpp.constants import Status
from smsgate.store import sqlite_path

playwright = pytest.importorskip("playwright.async_api",
                                 reason="playwright is not installed (pip install -e '.[test]')")

CHROMIUM = os.environ.get("SMSGATE_TEST_CHROMIUM", "/usr/bin/chromium")
# As root in a container: no sandbox; no calls home (this machine has no network).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SCREENSHOT = ROOT / "docs" / "dashboard.png"
CUSTOMER, PASSWORD = "acme", "acme-pw-1"
MARKUP_NAME = "<i>x</i>&amp;"  # a system_id that is also markup: must show as text
FIRST_COUNTER = 1 << 32  # ids = counter << 23: above 2**53 from the first message

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)",
                allow_module_level=True)


# How many points of the accepted line are above the zero line, at least `arg`?
LINE_ABOVE_ZERO = """least => {
  const zero = Number(document.querySelector("#chart line.grid").getAttribute("y1"));
  const path = document.querySelector("path[data-series=accepted]").getAttribute("d");
  const ys = [...path.matchAll(/[ML](-?[\\d.]+),(-?[\\d.]+)/g)].map(m => Number(m[2]));
  return ys.filter(y => y < zero - 1).length >= least;
}"""


class Traffic:
    """A customer's transmitter submitting about `rate` messages a second, each to a
    number of its own, until `stop()`; `acked` maps destination -> message id."""

    def __init__(self, client: RawClient, rate: int = 150) -> None:
        self.client, self.rate = client, rate
        self.acked: dict[str, str] = {}
        self._stopping = False

    async def run(self) -> None:
        sent, tick = 0, 0.05
        while not self._stopping and not self.client.eof.is_set():
            for _ in range(max(1, int(self.rate * tick))):
                sent += 1
                dest = f"4477{sent:08d}"
                future = self.client.send(submit_sm(dest, b"dashboard %d" % sent))
                future.add_done_callback(lambda f, d=dest: self._answered(d, f))
            await asyncio.sleep(tick)

    def _answered(self, dest: str, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is None:
            answer = future.result()
            if answer.status == Status.ESME_ROK:
                self.acked[dest] = answer["message_id"]

    def stop(self) -> None:
        self._stopping = True


async def prepared_gateway(gateway_at) -> tuple[Gateway, str]:
    """A gateway with an admin token, a customer, a simulator that fails one message in
    five, and ids above 2**53; returns it started, with the token."""
    gw: Gateway = gateway_at("dash")
    out = await gw.cli(
        ["admin", "token", "add", "ops"],
        ["account", "add", CUSTOMER, "--password", PASSWORD, "--credits", "100000"],
        ["account", "add", MARKUP_NAME, "--password", "x-pw-1"],
        ["connector", "add", "sim", "--type", "simulator", "--outcome", "DELIVRD=4",
         "--outcome", "UNDELIV=1", "--option", "max_latency_ms=300"],
        ["route", "add", "4477", "sim", "--price", "0.01"])
    token = out.split()[2]
    with contextlib.closing(sqlite3.connect(sqlite_path(gw.url))) as db, db:
        db.execute("UPDATE id_sequence SET value = ? WHERE name = 'message'",
                   (FIRST_COUNTER,))
    return await gw.start(), token


async def test_the_dashboard_under_load(gateway_at):
    gw, token = await prepared_gateway(gateway_at)
    traffic_client = await RawClient.connect("127.0.0.1", gw.smpp_port)
    victim = await RawClient.connect("127.0.0.1", gw.smpp_port)
    for client, kind in ((traffic_client, "tx"), (victim, "rx")):
        assert (await client.bind(kind, CUSTOMER, PASSWORD)).status == Status.ESME_ROK
    traffic = Traffic(traffic_client)
    sending = asyncio.create_task(traffic.run())
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900},
                                          timezone_id="UTC")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"http://127.0.0.1:{gw.admin_port}/")
            await log_in(page, token)
            await big_ids_stay_exact(page)
            await chart_rises(page)
            await panels_show_the_gateway(page)
            message_id = await find_a_delivered_message(page, gw, traffic)
            await open_its_timeline(page, message_id)
            await kick_the_receiver(page, victim)
            # some seconds of traffic in the chart for the picture
            await page.wait_for_function(LINE_ABOVE_ZERO, arg=10, timeout=20_000)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            revoke(gw, "ops")  # as `smsgate admin token revoke ops` does
            await back_to_login(page, "revoked")
            assert errors == []
        finally:
            traffic.stop()
            await browser.close()
            await sending
            await traffic_client.close()
            await victim.close()


def revoke(gw: Gateway, name: str) -> None:
    with contextlib.closing(sqlite3.connect(sqlite_path(gw.url), timeout=10)) as db, db:
        db.execute("UPDATE admin_tokens SET revoked_at = ? WHERE name = ?",
                   (time.time(), name))


async def log_in(page, token: str) -> None:
    expect = playwright.expect
    await expect(page.locator("#login")).to_be_visible()
    await page.fill("#token", "not-the-token")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("not accepted")
    await expect(page.locator("#dashboard")).to_be_hidden()
    await page.fill("#token", token)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#dashboard")).to_be_visible()
    await expect(page.locator("#login")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 1
    await page.reload()  # the tab keeps its token
    await expect(page.locator("#dashboard")).to_be_visible()


def random_json(rng: random.Random, depth: int = 0):
    """A JSON value with integers on both sides of 2**53, digit strings, floats."""
    kinds = ["big", "int", "float", "digits", "bool", "null"] + \
        (["list", "dict"] * 2 if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "big":
        return rng.choice([-1, 1]) * rng.randint(2**53 - 2, 2**63)
    if kind == "int":
        return rng.randint(-(2**53) + 1, 2**53 - 1)
    if kind == "float":
        return rng.uniform(-1e9, 1e9)
    if kind == "digits":
        return str(rng.randint(0, 2**64))
    if kind in ("bool", "null"):
        return rng.choice([True, False]) if kind == "bool" else None
    items = [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "list":
        return items
    return {rng.choice(["id", "next_cursor", "n", "é"]) + str(i): v for i, v in enumerate(items)}


def exact(value):
    """What parseJson must give: integers past 2**53 - 1 as their decimal string."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > 2**53 - 1 else value
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    return value


async def big_ids_stay_exact(page) -> None:
    """api.js parseJson on 300 random documents in this Chromium: every integer a
    double cannot hold comes out as its exact digits, everything else as JSON.parse."""
    rng = random.Random(11)
    values = [random_json(rng) for _ in range(300)]
    parsed = await page.evaluate(
        "async texts => { const { parseJson } = await import('/dashboard/api.js');"
        " return texts.map(parseJson); }", [json.dumps(v) for v in values])
    assert parsed == [exact(v) for v in values]


async def chart_rises(page) -> None:
    """The plotted lines and the figures beside them go above 0, and the chart moves."""
    for series in ("accepted", "delivered", "failed"):
        await page.wait_for_function(
            "name => Number(document.querySelector(`path[data-series=${name}]`)"
            "?.dataset.peak) > 0", arg=series, timeout=15_000)
    await page.wait_for_function(
        "() => Number(document.getElementById('rate-accepted').textContent) > 0",
        timeout=10_000)
    before = await page.get_attribute("path[data-series=accepted]", "d")
    await page.wait_for_function(
        "old => document.querySelector('path[data-series=accepted]')"
        ".getAttribute('d') !== old", arg=before, timeout=5_000)
    # the line is drawn above the zero line
    await page.wait_for_function(LINE_ABOVE_ZERO, arg=1, timeout=1_000)


async def panels_show_the_gateway(page) -> None:
    expect = playwright.expect
    await expect(page.locator(f"#accounts tr[data-account='{CUSTOMER}']")).to_be_visible()
    # markup in a name is text: shown as typed, no element made of it
    markup = page.locator("#accounts tr").filter(has_text=MARKUP_NAME)
    await expect(markup).to_have_count(1)
    assert await page.locator("#accounts i").count() == 0
    await expect(page.locator("#connectors tr[data-connector=sim] .state")).to_have_text("up")
    await expect(page.locator("#nodes tr[data-node=dash] .state")).to_have_text("alive")
    await expect(page.locator("#statuses tr[data-status=DELIVRD]")).to_be_visible(
        timeout=20_000)  # (the panel is read at login, then every 15 s)
    await expect(page.locator(f"#sessions tr[data-account='{CUSTOMER}']")).to_have_count(2)


async def find_a_delivered_message(page, gw: Gateway, traffic: Traffic) -> str:
    """A message the store has as DELIVRD, found through the search form."""
    async def delivered() -> tuple[str, str] | None:
        ids = {v: d for d, v in list(traffic.acked.items())}
        found = await gw.rows("SELECT id FROM messages WHERE status = 'DELIVRD' "
                              "ORDER BY id LIMIT 50")
        return next(((str(i), ids[str(i)]) for (i,) in found if str(i) in ids), None)
    message_id, dest = await eventually(delivered, timeout=10, what="a delivered message")
    assert int(message_id) > 2**53
    form = page.locator("#search-form")
    rows = page.locator("#messages tr[data-message]")
    # a time range that ended an hour ago holds none of today's messages
    await form.locator("[name=until]").fill(local_time(time.time() - 3600))
    await form.locator("button[type=submit]").click()
    await playwright.expect(page.locator("#messages tr.empty")).to_have_text(
        "no message matches")
    # pages of 50, newest first, the next one below the last
    await form.locator("[name=until]").fill("")
    await form.locator("[name=account]").fill(CUSTOMER)
    await form.locator("button[type=submit]").click()
    await playwright.expect(rows).to_have_count(50)
    await page.click("#more")
    await playwright.expect(rows).to_have_count(100)
    ids = [int(i) for i in await rows.evaluate_all("rows => rows.map(r => r.dataset.message)")]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 100
    await form.locator("[name=dest]").fill(dest)
    await form.locator("[name=status]").select_option("DELIVRD")
    await form.locator("[name=since]").fill(local_time(time.time() - 600))
    await form.locator("[name=until]").fill(local_time(time.time() + 600))
    await form.locator("button[type=submit]").click()
    await playwright.expect(rows).to_have_count(1)
    assert await rows.first.get_attribute("data-message") == message_id
    await playwright.expect(rows.first).to_contain_text(dest)
    return message_id


def local_time(epoch: float) -> str:
    """A datetime-local input's value in the page's time zone (the test sets UTC)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S")


async def open_its_timeline(page, message_id: str) -> None:
    expect = playwright.expect
    await page.click(f"#messages tr[data-message='{message_id}'] button")
    await expect(page.locator("#timeline")).to_be_visible()
    await expect(page.locator("#timeline-title")).to_have_text(f"Message {message_id}")
    events = page.locator("#timeline-events tr[data-event]")
    for event in ("accepted", "sent", "DELIVRD"):
        await expect(events.filter(has_text=event).first).to_be_visible()
    fields = await page.locator("#timeline-fields").inner_text()
    assert message_id in fields and "sim" in fields


async def kick_the_receiver(page, victim: RawClient) -> None:
    row = page.locator(f"#sessions tr[data-account='{CUSTOMER}'][data-kind=rx]")
    await playwright.expect(row).to_have_count(1)
    await row.locator("button.kick").click()
    unbind = await victim.next_request(timeout=5)
    assert unbind.name == "unbind"
    victim.respond(unbind)
    await victim.wait_closed()
    await playwright.expect(row).to_have_count(0, timeout=5_000)
    # the transmitter was not touched
    tx = page.locator(f"#sessions tr[data-account='{CUSTOMER}'][data-kind=tx]")
    await playwright.expect(tx).to_have_count(1)


async def back_to_login(page, reason: str) -> None:
    expect = playwright.expect
    await expect(page.locator("#login")).to_be_visible(timeout=10_000)
    await expect(page.locator("#login-error")).to_contain_text(reason)
    await expect(page.locator("#dashboard")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0
    # what the dashboard showed is gone from the page, not only hidden
    for shown in ("#accounts tr", "#sessions tr", "#messages tr[data-message]",
                  "#chart path"):
        await expect(page.locator(shown)).to_have_count(0)
    await expect(page.locator("#timeline")).to_be_hidden()
