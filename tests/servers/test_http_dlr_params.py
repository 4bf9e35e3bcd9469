"""The DLR endpoint's parameters without a network (servers/http_dlr.py): the status
word mapped with the connector's table, the token, the bounds; and, as properties, any
parameters at all give a report or a clean refusal (400/403), never anything else."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.connectors.http_client import MAX_UPSTREAM_ID
from smsgate.connectors.settings import HttpSettings
from smsgate.servers import http_dlr
from smsgate.servers.http_dlr import MAX_ID, ConnectorSettingsCache, DlrRefused, parse_report

TOKEN = "0123456789abcdef0123"
SETTINGS = HttpSettings(url="https://p.example/s", dlr_status={"delivered": "DELIVRD",
                                                               "3": "EXPIRED"})
WITH_TOKEN = HttpSettings(url="https://p.example/s", dlr_token=TOKEN)


def report(pairs, settings=SETTINGS):
    return parse_report("prov", settings, pairs, 1000.0)


def refusal(pairs, settings=SETTINGS) -> tuple[int, str]:
    with pytest.raises(DlrRefused) as info:
        report(pairs, settings)
    return info.value.status, info.value.reason


def test_the_endpoint_takes_every_id_the_connector_takes():
    assert MAX_ID == MAX_UPSTREAM_ID


def test_a_report_is_mapped_with_the_connectors_table():
    got = report([("id", "ab-1"), ("status", "Delivered"), ("err", "000")])
    assert (got.connector, got.upstream_ids, got.status, got.at, got.error_code) == \
        ("prov", ("ab-1",), "DELIVRD", 1000.0, 0)
    assert report([("id", "7"), ("status", "3"), ("error", "0x1f")]).error_code == 31
    assert report([("id", "7"), ("status", "3"), ("error", "E17")]).error_code == 0
    assert report([("id", "7"), ("status", "3"), ("err", "9" * 20)]).error_code == 2**31 - 1
    assert report([("id", " 7 "), ("status", " 3 "), ("other", "x")]).upstream_ids == ("7",)


@pytest.mark.parametrize(("pairs", "status", "reason"), [
    ([("status", "3")], 400, "id missing"),
    ([("id", ""), ("status", "3")], 400, "id missing"),
    ([("id", "7")], 400, "status missing"),
    ([("id", "7"), ("status", "GREAT")], 400, "unknown status 'GREAT' for connector prov"),
    ([("id", "7"), ("status", "3"), ("id", "8")], 400, "id given more than once"),
    ([("id", "7"), ("status", "3"), ("err", "1"), ("error", "2")], 400, "both"),
    ([("id", "7" * (MAX_ID + 1)), ("status", "3")], 400, "id longer than 128"),
    ([("id", "7"), ("status", "3" * 33)], 400, "status longer than 32"),
    ([("id", "7"), ("status", "3"), ("err", "1" * 33)], 400, "err longer than 32"),
    ([("id", "7\n8"), ("status", "3")], 400, "control characters"),
])
def test_bad_parameters_are_refused_with_the_reason(pairs, status, reason):
    got_status, got_reason = refusal(pairs)
    assert got_status == status and reason in got_reason


def test_the_unknown_word_answer_lists_the_known_ones():
    assert refusal([("id", "7"), ("status", "x")])[1].endswith("(known: 3 DELIVERED)")


def test_a_token_is_required_when_the_connector_has_one():
    good = [("id", "7"), ("status", "DELIVRD")]
    assert report([*good, ("token", TOKEN)], WITH_TOKEN).status == "DELIVRD"
    for token in ([], [("token", "")], [("token", TOKEN[:-1])], [("token", TOKEN + "x")],
                  [("token", "ü" * 20)], [("token", TOKEN * 100)]):
        assert refusal([*good, *token], WITH_TOKEN) == (403, "missing or wrong token")
    # the token is checked before anything else: no hints without it
    assert refusal([("status", "nonsense")], WITH_TOKEN)[0] == 403
    assert report([("id", "7"), ("status", "3"), ("token", "x")]).status == "EXPIRED"


@given(st.text(st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp", "Zs"]),
               min_size=1, max_size=MAX_ID),
       st.sampled_from(sorted(SETTINGS.dlr_status)), st.booleans())
def test_any_printable_id_and_known_word_make_a_report(upstream_id, word, lower):
    got = report([("id", upstream_id), ("status", word.lower() if lower else word)])
    assert got.upstream_ids == (upstream_id,)
    assert got.status == SETTINGS.dlr_status[word]


PARAMETER = st.tuples(st.sampled_from(["id", "status", "err", "error", "token", "x"]),
                      st.text(max_size=300))


@given(st.lists(PARAMETER, max_size=8), st.sampled_from([SETTINGS, WITH_TOKEN]))
def test_any_parameters_give_a_report_or_a_clean_refusal(pairs, settings):
    try:
        got = report(pairs, settings)
    except DlrRefused as exc:
        assert exc.status in (400, 403) and exc.reason
        return
    assert 1 <= len(got.upstream_ids[0]) <= MAX_ID
    assert got.status in settings.dlr_status.values()
    assert 0 <= got.error_code < 2**31


async def test_settings_are_read_once_per_ttl_and_a_miss_rereads_sooner():
    reads = []

    async def load():
        reads.append(1)
        await asyncio.sleep(0.01)
        return {"prov": SETTINGS}
    cache = ConnectorSettingsCache(load)
    found = await asyncio.gather(*(cache.get("prov") for _ in range(20)))
    assert found == [SETTINGS] * 20 and len(reads) == 1  # one read for all at once
    assert await cache.get("other") is None and len(reads) == 1  # just read: no re-read
    cache._loaded_at -= http_dlr.MISS_TTL + 0.1  # time passes
    assert await cache.get("prov") is SETTINGS and len(reads) == 1
    assert await cache.get("other") is None and len(reads) == 2  # a miss reads again
    cache._loaded_at -= http_dlr.CONFIG_TTL + 0.1
    assert await cache.get("prov") is SETTINGS and len(reads) == 3


async def test_a_failed_read_keeps_the_last_settings():
    answers: list = [{"prov": SETTINGS}, OSError("store down")]

    async def load():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    cache = ConnectorSettingsCache(load)
    assert await cache.get("prov") is SETTINGS
    cache._loaded_at = -1e9  # as if long ago
    assert await cache.get("prov") is SETTINGS  # the store failed: the last table serves
    answers.append(OSError("store down"))
    with pytest.raises(OSError):
        await ConnectorSettingsCache(load).get("prov")  # nothing read yet: an error
