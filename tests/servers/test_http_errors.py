"""Every `ERROR - HTTPnn` line the HTTP API can produce, with its exact body, and the
precedence of SPEC §3.1 when several checks fail at once.

HTTP12 (submit refused by the upstream synchronously) and HTTP14 (no upstream bound)
cannot happen over HTTP: every connector takes messages asynchronously and the
dispatcher queues them while an upstream is down.
"""

import time

import pytest
from http_harness import LEBANON, PASSWORD, USER, api_fixture, submit_params  # noqa: F401

from smsgate.core.models import Route
from smsgate.core.ports import StoreError

LINES = {
    "HTTP01": "ERROR - HTTP01 --> Invalid HTTP URL Format",
    "HTTP02": "ERROR - HTTP02 --> Invalid query string",
    "HTTP03": "ERROR - HTTP03 --> Message Submission Failed",
    "HTTP04": "ERROR - HTTP04 --> Invalid Password",
    "HTTP05": "ERROR - HTTP05 --> Invalid System ID",
    "HTTP06": "ERROR - HTTP06 --> Invalid Sender ID",
    "HTTP07": "ERROR - HTTP07 --> Invalid Type",
    "HTTP08": "ERROR - HTTP08 --> Invalid Message ID",
    "HTTP09": "ERROR - HTTP09 --> Invalid Destination Address",
    "HTTP10": "ERROR - HTTP10 --> Invalid number of messages",
    "HTTP11": "ERROR - HTTP11 --> Requested service is unavailable",
    "HTTP13": "ERROR - HTTP13 --> Query request failed",
    "HTTP15": "ERROR - HTTP15 --> Not Authorized for the request",
    "HTTP16": "ERROR - HTTP16 --> Invalid Request",
    "HTTP17": "ERROR - HTTP17 --> Invalid Message Length",
    "HTTP18": "ERROR - HTTP18 --> INSUFFICIENT CREDITS/BALANCE",
    "HTTP19": "ERROR - HTTP19 --> Invalid DATA CODING SCHEME",
    "HTTP20": "ERROR - HTTP20 --> Invalid ESM",
    "HTTP21": "ERROR - HTTP21 --> Invalid HEADER",
    "HTTP22": "ERROR - HTTP22 --> Invalid Schedule Time",
    "HTTP23": "ERROR - HTTP23 --> Routing Error",
    "HTTP24": "ERROR - HTTP24 --> Exceeded number of Destination",
    "HTTP25": "ERROR - HTTP25 --> No Record Found",
    "HTTP26": "ERROR - HTTP26 --> Account Expired",
}


def numbers(count: int, start: int = 96170000000) -> str:
    return ",".join(str(start + i) for i in range(count))


async def test_http01_unknown_path(api):
    for path in ("/websmpp/nothing", "/", "/websmpp/websms/", "/WEBSMPP/websms", "/x/y?z=1"):
        assert await api.get(path) == LINES["HTTP01"], path
    assert await api.post("/websmpp/unknown", {"user": USER}) == LINES["HTTP01"]
    async with api.session.put(api.base + "/websmpp/websms") as response:  # not GET/POST
        assert response.status == 200
        assert await response.text() == LINES["HTTP01"]


async def test_http02_missing_or_duplicated_parameter(api):
    await api.seed_account()
    assert await api.submit(text=None) == LINES["HTTP02"]
    assert await api.submit(user=None) == LINES["HTTP02"]
    assert await api.submit(**{"pass": None}) == LINES["HTTP02"]
    duplicated = [*submit_params().items(), ("mno", LEBANON)]
    assert await api.get("/websmpp/websms", duplicated) == LINES["HTTP02"]
    both_spellings = {**submit_params(), "userid": USER}
    assert await api.get("/websmpp/websms", both_spellings) == LINES["HTTP02"]
    repeated_optional = [*submit_params().items(), ("gmt", "+0000"), ("gmt", "+0100")]
    assert await api.get("/websmpp/websms", repeated_optional) == LINES["HTTP02"]
    # in the query string and in the form body: given twice
    assert await api.post("/websmpp/websms", submit_params(),
                          params={"mno": LEBANON}) == LINES["HTTP02"]
    assert await api.get("/websmpp/balanceReport", {"userid": USER}) == LINES["HTTP02"]
    assert await api.get("/websmpp/downloadcoverage", {"password": PASSWORD}) \
        == LINES["HTTP02"]
    assert await api.get("/websmpp/websmsstatus") == LINES["HTTP02"]
    # HTTP02 wins over an unknown user: parameters are read before anything is checked
    assert await api.submit(user="nobody", text=None) == LINES["HTTP02"]


async def test_http03_storage_failure_charges_nothing(api, monkeypatch):
    account = await api.seed_account()

    async def broken_write(batch):
        raise StoreError("disk full")

    monkeypatch.setattr(api.app.store, "write", broken_write)
    assert await api.submit(mno=numbers(3)) == LINES["HTTP03"]
    monkeypatch.undo()
    assert await api.balance(account.id) == 1000 * 10_000


async def test_http04_wrong_password(api):
    await api.seed_account()
    assert await api.submit(**{"pass": "wrong"}) == LINES["HTTP04"]
    assert await api.get("/websmpp/balanceReport",
                         {"userid": USER, "password": "wrong"}) == LINES["HTTP04"]


async def test_http05_unknown_system_id(api):
    assert await api.submit(user="nobody") == LINES["HTTP05"]
    assert await api.get("/websmpp/balanceReport",
                         {"userid": "nobody", "password": "x"}) == LINES["HTTP05"]


async def test_http06_bad_sender(api):
    await api.seed_account()
    for sid in ("TwelveChars1", "1234567890123456", "", "Tést"):
        assert await api.submit(sid=sid) == LINES["HTTP06"], sid
    await api.account("limited", password=PASSWORD, allowed_senders=("Acme",))
    assert await api.submit(user="limited", sid="Other") == LINES["HTTP06"]
    assert (await api.submit(user="limited", sid="Acme")).startswith("Response: ")


async def test_http07_bad_type(api):
    await api.seed_account()
    for message_type in ("0", "5", "x", "", "1.0"):
        assert await api.submit(type=message_type) == LINES["HTTP07"], message_type


async def test_http08_malformed_message_id(api):
    for resp_id in ("abc", "12345678901234567890", "-1", "", "1e5"):
        assert await api.get("/websmpp/websmsstatus", {"respId": resp_id}) \
            == LINES["HTTP08"], resp_id


async def test_http09_bad_destination(api):
    await api.seed_account()
    for mno in ("123456", "9617012345678901", "96170abc456", "", f"{LEBANON},,{LEBANON}",
                "+-96170123456"):
        assert await api.submit(mno=mno) == LINES["HTTP09"], mno


async def test_http10_too_many_parts_in_one_request(api):
    # 10,000 destinations x 11 parts = 110,000 SMS parts, over the 100,000 cap
    await api.seed_account(max_parts=20)
    answer = await api.post("/websmpp/websms", submit_params(mno=numbers(10_000),
                                                             text="x" * (153 * 10 + 1)))
    assert answer == LINES["HTTP10"]


async def test_http11_throughput_limit(api):
    # A request over the account's tps is paced (test_http_pacing.py); HTTP11 is for
    # one that would queue more than max_paced_backlog seconds of it.
    await api.seed_account(tps=2)
    api.app.pipeline.settings.max_paced_backlog = 10.0
    assert await api.submit(mno=numbers(25)) == LINES["HTTP11"]  # 12 s of traffic
    assert (await api.submit(mno=numbers(3))).startswith("Response: ")


async def test_http13_query_failed(api, monkeypatch):
    await api.seed_account()
    [message_id] = (await api.submit()).removeprefix("Response: ").split(",")

    async def broken_get(message_id):
        raise StoreError("connection lost")

    monkeypatch.setattr(api.app.store, "get_message", broken_get)
    # a genuine id: a made-up one is answered HTTP25 without asking the store
    assert await api.get("/websmpp/websmsstatus", {"respId": message_id}) == LINES["HTTP13"]


async def test_http15_not_authorized(api):
    await api.seed_account()
    await api.account("nohttp", password=PASSWORD, http_enabled=False)
    await api.account("offline", password=PASSWORD, enabled=False)
    await api.account("office", password=PASSWORD, allowed_ips=("10.0.0.0/8",))
    for user in ("nohttp", "offline", "office"):
        assert await api.submit(user=user) == LINES["HTTP15"], user
        assert await api.get("/websmpp/balanceReport",
                             {"userid": user, "password": PASSWORD}) == LINES["HTTP15"]
    # status with credentials that do not own the message
    [message_id] = (await api.submit()).removeprefix("Response: ").split(",")
    await api.account("other", password=PASSWORD)
    assert await api.get("/websmpp/websmsstatus", {"respId": message_id, "user": "other",
                                                   "pass": PASSWORD}) == LINES["HTTP15"]


async def test_http16_invalid_request(api):
    await api.seed_account()
    for file_format in ("0", "4", "xls", "12"):
        assert await api.get("/websmpp/downloadcoverage", {
            "userid": USER, "password": PASSWORD, "format": file_format}) == LINES["HTTP16"]
    for url in ("ftp://example.com/dlr", "javascript:alert(1)", "/relative", "http://",
                "example.com/dlr"):
        assert await api.submit(dlrurl=url) == LINES["HTTP16"], url
    assert await api.submit(ref="r" * 65) == LINES["HTTP16"]


async def test_http17_bad_length(api):
    await api.seed_account()
    assert await api.submit(text="") == LINES["HTTP17"]
    assert await api.submit(type="2", text="") == LINES["HTTP17"]
    assert await api.submit(text="x" * (153 * 10 + 1)) == LINES["HTTP17"]  # 11 parts
    assert await api.submit(text="[" * (153 * 5 + 1)) == LINES["HTTP17"]  # counted twice
    assert (await api.submit(text="x" * (153 * 10))).startswith("Response: ")  # 10 parts


async def test_http18_insufficient_credits(api):
    account = await api.seed_account(credits=2)
    assert await api.submit(mno=numbers(3)) == LINES["HTTP18"]
    assert await api.balance(account.id) == 2 * 10_000


async def test_http19_text_or_coding(api):
    await api.seed_account()
    assert await api.submit(type="1", text="اختبار") == LINES["HTTP19"]
    assert await api.submit(type="3", text="price ¥ 5 — ok") == LINES["HTTP19"]
    assert await api.submit(type="2", text="00G1") == LINES["HTTP19"]
    assert await api.submit(type="2", text="007") == LINES["HTTP19"]
    # a lone surrogate is no character (issue 8, item 13); a whole pair is an emoji
    for lone in ("D83D", "DE00", "0061D83D0061", "DE00D83D"):
        assert await api.submit(type="2", text=lone) == LINES["HTTP19"], lone
    assert (await api.submit(type="2", text="D83DDE00")).startswith("Response: ")
    assert await api.submit(dcs="300") == LINES["HTTP19"]
    assert await api.submit(dcs="x") == LINES["HTTP19"]
    assert await api.submit(dcs="8") == LINES["HTTP19"]  # UCS-2 coding for type-1 text
    assert await api.submit(dcs="64") == LINES["HTTP19"]  # reserved in SMPP 3.4
    assert (await api.submit(dcs="240")).startswith("Response: ")  # 0xF0: flash, GSM


async def test_http20_bad_esm(api):
    await api.seed_account()
    for esm in ("4", "2", "0x1C", "256", "x"):
        assert await api.submit(esm=esm) == LINES["HTTP20"], esm


async def test_http21_bad_header(api):
    await api.seed_account()
    for udh in ("zz", "0600030A0201", "0500030A02", "05000"):
        assert await api.submit(udh=udh) == LINES["HTTP21"], udh
    assert await api.submit(esm="64") == LINES["HTTP21"]  # UDHI without a header
    assert (await api.submit(udh="0500030A0201")).startswith("Response: ")


async def test_http22_bad_schedule(api):
    await api.seed_account()
    # the seed's own example: 2016-05-10 14:22 +0530 is long past
    assert await api.submit(gmt="+0530", schtime="201605101422") == LINES["HTTP22"]
    next_year = time.strftime("%Y%m%d%H%M", time.gmtime(time.time() + 370 * 86400))
    for gmt, schtime in (("+0000", next_year), ("+0000", "2030013"), ("+0000", "203001011261"),
                         ("+0000", "20301301x000"), ("+9930", "203001011200"),
                         ("IST", "203001011200")):
        assert await api.submit(gmt=gmt, schtime=schtime) == LINES["HTTP22"], (gmt, schtime)
    for validity in ("0", "-5", "abc"):
        assert await api.submit(validity=validity) == LINES["HTTP22"], validity


async def test_http23_no_route(api):
    await api.seed_account()
    await api.store.add_route(Route(prefix="999", connector="nowhere", price=10_000))
    await api.app.reload_routes()
    assert await api.submit(mno="99912345678") == LINES["HTTP23"]
    assert await api.submit(mno=f"{LEBANON},99912345678") == LINES["HTTP23"]


async def test_http24_too_many_destinations(api):
    await api.seed_account(credits=20_000)
    assert await api.submit(mno=numbers(101)) == LINES["HTTP24"]
    assert await api.post("/websmpp/websms", submit_params(mno=numbers(10_001))) \
        == LINES["HTTP24"]
    assert len((await api.submit(mno=numbers(100))).split(",")) == 100


async def test_http25_unknown_message_id(api):
    assert await api.get("/websmpp/websmsstatus", {"respId": "1234567"}) == LINES["HTTP25"]


async def test_http26_account_expired(api):
    await api.account("expired", password=PASSWORD, expires_at=time.time() - 60)
    assert await api.submit(user="expired") == LINES["HTTP26"]
    assert await api.get("/websmpp/balanceReport",
                         {"userid": "expired", "password": PASSWORD}) == LINES["HTTP26"]


PRECEDENCE = [
    # (what fails, parameters, expected code) - the first failing check of SPEC §3.1 wins
    ("missing param before auth", {"user": "nobody", "sid": None}, "HTTP02"),
    ("unknown user before type", {"user": "nobody", "type": "9"}, "HTTP05"),
    ("password before type", {"pass": "bad", "type": "9"}, "HTTP04"),
    ("type before sid", {"type": "9", "sid": "TwelveChars1"}, "HTTP07"),
    ("sid before mno", {"sid": "TwelveChars1", "mno": "1"}, "HTTP06"),
    ("mno before count", {"mno": numbers(120) + ",1"}, "HTTP09"),
    ("count before dcs", {"mno": numbers(101), "dcs": "999"}, "HTTP24"),
    ("dcs before esm", {"dcs": "999", "esm": "4"}, "HTTP19"),
    ("esm before udh", {"esm": "4", "udh": "zz"}, "HTTP20"),
    ("udh before text", {"udh": "zz", "text": "اختبار"}, "HTTP21"),
    ("text before length", {"type": "2", "text": "00G"}, "HTTP19"),
    ("length before schedule", {"text": "", "schtime": "201605101422"}, "HTTP17"),
    ("schedule before route", {"schtime": "2016", "mno": "99912345678"}, "HTTP22"),
    ("route before credits", {"mno": "99912345678,99912345679"}, "HTTP23"),
]


async def test_error_precedence(api):
    await api.seed_account(credits=1)
    await api.store.add_route(Route(prefix="999", connector="nowhere", price=10_000))
    await api.app.reload_routes()
    for what, params, code in PRECEDENCE:
        assert await api.submit(**params) == LINES[code], what
    assert await api.submit(mno=numbers(2)) == LINES["HTTP18"]


@pytest.mark.parametrize("path", ["/websmpp/balanceReport", "/websmpp/downloadcoverage"])
async def test_auth_order_on_queries(api, path):
    await api.account("expired", password=PASSWORD, expires_at=time.time() - 60,
                      http_enabled=False)
    assert await api.get(path, {"userid": "expired", "password": "bad"}) == LINES["HTTP04"]
    assert await api.get(path, {"userid": "expired", "password": PASSWORD}) \
        == LINES["HTTP26"]
