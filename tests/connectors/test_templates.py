"""HTTP connector templates: exactly the SPEC §8 placeholders, escaped where they stand."""

import json
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.connectors.templates import (
    PLACEHOLDERS,
    TemplateError,
    body_escape,
    json_escape,
    placeholders,
    render,
    url_escape,
)

VALUES = {"to": "447700900123", "from": "Acme & Co", "text": "héllo {world} 100%",
          "text_hex_ucs2": "00680065", "coding": "0", "id": "123456789", "parts": "1"}


def test_every_placeholder_is_known():
    template = " ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    assert placeholders(template) == PLACEHOLDERS
    assert placeholders("no placeholders, {{literal}} braces") == ()


@pytest.mark.parametrize(("template", "match"), [
    ("{foo}", "{foo}"), ("{}", "{}"), ("{0}", "{0}"), ("{to:>5}", "{to:>5}"),
    ("{to!r}", "{to!r}"), ("{to.real}", "{to.real}"), ("{to[0]}", "{to[0]}"), ("{TO}", "{TO}"),
    ("{to", "stray brace"), ("to}", "stray brace"), ("{{to}", "stray brace"),
])
def test_bad_templates(template, match):
    with pytest.raises(TemplateError, match=match.replace("{", r"\{").replace("[", r"\[")):
        placeholders(template)


def test_url_rendering_encodes_values():
    url = render("https://api.example/send?to={to}&from={from}&text={text}", VALUES, url_escape)
    query = parse_qs(urlsplit(url).query)
    assert query == {"to": ["447700900123"], "from": ["Acme & Co"],
                     "text": ["héllo {world} 100%"]}


def test_body_escaping_follows_the_content_type():
    body = render('{{"to": "{to}", "text": "{text}"}}', {**VALUES, "text": 'say "hi"\n'},
                  body_escape("application/json"))
    assert json.loads(body) == {"to": "447700900123", "text": 'say "hi"\n'}
    assert body_escape("application/x-www-form-urlencoded; charset=utf-8") is url_escape
    assert body_escape("application/vnd.api+json") is json_escape
    assert body_escape("text/plain") is str


@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_escaped_values_come_back(value):
    assert unquote(url_escape(value)) == value
    assert json.loads(f'"{json_escape(value)}"') == value


@given(st.text(max_size=40))
def test_any_text_is_a_template_or_refused_cleanly(text):
    try:
        names = placeholders(text)
    except TemplateError:
        return
    assert set(names) <= set(PLACEHOLDERS)
    render(text, VALUES, str)  # a template that passed always renders
