"""The HTTP connector's requests without a network (properties): whatever the text, the
provider decodes exactly the message's text, sender and numbers from the URL, a form
body or a JSON body, and {text_hex_ucs2} is that text in UCS-2 hex."""

import json
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st
from provider_harness import message
from yarl import URL

from smsgate.connectors.http_client import build_request, template_values
from smsgate.connectors.settings import HttpSettings
from smsgate.smpp.constants import ESM_UDHI
from smsgate.text import DC_UCS2, build_concat_udh, gsm7, ucs2

URL_TEMPLATE = ("https://p.example/send/{to}?from={from}&text={text}&hex={text_hex_ucs2}"
                "&dc={coding}&id={id}&n={parts}")
# any character a UCS-2 message can carry (surrogates only come in pairs, as emoji)
TEXTS = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)
GSM_TEXTS = st.text(st.sampled_from(sorted(gsm7.ALPHABET)), max_size=160)
SENDERS = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=11)


def ucs2_message(text: str, **fields):
    return message(42, payload=ucs2.encode(text), data_coding=DC_UCS2, **fields)


@given(TEXTS, SENDERS)
def test_url_values_come_back_exactly(text, sender):
    request = build_request(HttpSettings(url=URL_TEMPLATE), ucs2_message(text,
                                                                         source_addr=sender))
    url = URL(request.url)  # as aiohttp sends it
    assert url.path == "/send/96170123456"
    assert dict(url.query) == {"from": sender, "text": text,
                               "hex": text.encode("utf-16-be").hex().upper(), "dc": "8",
                               "id": "42", "n": "1"}
    assert request.method == "GET" and request.body is None


@given(TEXTS)
def test_form_body_values_come_back_exactly(text):
    settings = HttpSettings(url="https://p.example/s", method="POST",
                            body="to={to}&text={text}&from={from}")
    request = build_request(settings, ucs2_message(text))
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body is not None and request.body.isascii()
    assert parse_qsl(request.body.decode(), keep_blank_values=True) == \
        [("to", "96170123456"), ("text", text), ("from", "Test")]


@given(TEXTS)
def test_json_body_values_come_back_exactly(text):
    settings = HttpSettings(url="https://p.example/s", method="POST",
                            content_type="application/json; charset=utf-8",
                            body='{{"text": "{text}", "hex": "{text_hex_ucs2}"}}')
    request = build_request(settings, ucs2_message(text))
    assert request.body is not None
    assert json.loads(request.body) == {"text": text,
                                        "hex": text.encode("utf-16-be").hex().upper()}


@given(GSM_TEXTS)
def test_gsm_text_is_decoded(text):
    assert template_values(message(1, text))["text"] == text


@given(TEXTS, st.integers(1, 255), st.integers(1, 255))
def test_a_udh_part_gives_its_text_without_the_header(text, total, seq):
    udh = build_concat_udh(ref=9, total=total, seq=min(seq, total))
    part = message(1, payload=udh + ucs2.encode(text), data_coding=DC_UCS2,
                   esm_class=ESM_UDHI)
    assert template_values(part)["text"] == text
