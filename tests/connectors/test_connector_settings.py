"""Typed connector settings: defaults, one-line errors for bad values, round trips
through the stored JSON, masking for `connector show`."""

import json
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.connectors.settings import (
    DEFAULT_DLR_STATUS,
    MASK,
    SETTINGS,
    HttpSettings,
    SettingsError,
    SimulatorSettings,
    SmppSettings,
    check_connector_name,
    mask_secrets,
    settings_for,
)
from smsgate.connectors.simulator import SimulatorConnector

SMPP = {"host": "smsc.example.com", "port": 2775, "system_id": "acme", "password": "s3cret"}
HTTP = {"url": "https://api.example.com/send?to={to}&text={text}"}


def test_smpp_defaults():
    s = settings_for("smpp", SMPP)
    assert isinstance(s, SmppSettings)
    assert (s.mode, s.binds, s.rx_binds, s.window, s.tps, s.tls, s.tls_verify) == \
        ("trx", 1, 1, 10, 0, False, True)
    assert (s.id_format, s.enquire_link, s.coding_default) == ("auto", 30.0, "gsm")
    assert (s.reconnect_min, s.reconnect_max, s.response_timeout) == (1.0, 60.0, 30.0)
    assert (s.src_ton, s.src_npi, s.dst_ton, s.dst_npi) == (None, None, None, None)


def test_strings_from_the_command_line_are_typed():
    s = settings_for("smpp", {**{k: str(v) for k, v in SMPP.items()}, "mode": "TX+RX",
                              "binds": "3", "tls": "yes", "enquire_link": "15",
                              "src_ton": "5", "src_npi": "0", "id_format": "HEX"})
    assert (s.port, s.mode, s.binds, s.tls, s.enquire_link, s.src_ton, s.id_format) == \
        (2775, "tx+rx", 3, True, 15.0, 5, "hex")
    sim = settings_for("simulator", {"min_latency_ms": "10", "accepted": "true"})
    assert sim == SimulatorSettings(min_latency_ms=10, accepted=True)


def test_http_defaults_and_dlr_map():
    s = settings_for("http", HTTP)
    assert (s.method, s.body, s.ok, s.id, s.tps, s.timeout) == ("GET", "", "", "", 0, 10.0)
    assert (s.concurrency, s.dlr_token, s.circuit_failures, s.circuit_cooldown) == \
        (10, "", 5, 10.0)
    assert s.dlr_status == DEFAULT_DLR_STATUS
    assert s.dlr_status["1"] == "DELIVRD" and s.dlr_status["UNDELIV"] == "UNDELIV"
    custom = settings_for("http", {**HTTP, "dlr_status": {" delivered ": "delivrd", 3: "EXPIRED"}})
    assert custom.dlr_status == {"DELIVERED": "DELIVRD", "3": "EXPIRED"}


def test_simulator_latency_bounds():
    assert SimulatorSettings().latency_bounds == (0.05, 0.5)
    assert SimulatorSettings(min_latency_ms=1000).latency_bounds == (1.0, 1.0)
    assert SimulatorSettings(max_latency_ms=5).latency_bounds == (0.005, 0.005)
    assert SimulatorSettings(max_latency_ms=0).latency_bounds == (0.0, 0.0)
    assert SimulatorSettings(min_latency_ms=5, max_latency_ms=40).latency_bounds == (0.005, 0.04)
    connector = SimulatorConnector("sim", {"min_latency_ms": "5", "max_latency_ms": "40",
                                           "outcomes": {"delivrd": 9, "UNDELIV": "1"}})
    assert (connector.min_latency, connector.max_latency) == (0.005, 0.04)
    assert connector._statuses == ["DELIVRD", "UNDELIV"]


@pytest.mark.parametrize(("type_", "config"), [
    ("smpp", SMPP),
    ("smpp", {**SMPP, "mode": "tx+rx", "binds": 4, "rx_binds": 2, "tls": True,
              "tls_verify": False, "tls_ca": "/etc/ca.pem", "src_ton": 5, "src_npi": 0,
              "dst_ton": 1, "dst_npi": 1, "coding_default": "latin1", "password": ""}),
    ("http", HTTP),
    ("http", {**HTTP, "method": "post", "body": "to={to}&msg={text_hex_ucs2}&c={coding}",
              "ok": "^OK", "id": r"id=(\d+)", "headers": {"X-Api-Key": "k"}, "tps": 50,
              "timeout": 2.5, "content_type": "application/json"}),
    ("simulator", {}),
    ("simulator", {"min_latency_ms": 1, "max_latency_ms": 2, "outcomes": {"UNDELIV": 1},
                   "accepted": True}),
])
def test_round_trip_through_stored_json(type_, config):
    first = settings_for(type_, config)
    stored = json.loads(json.dumps(first.to_config()))
    assert settings_for(type_, stored) == first
    assert set(stored) == {f.name for f in fields(SETTINGS[type_])}


@pytest.mark.parametrize(("type_", "config", "key", "match"), [
    ("smpp", {}, "host", "required"),
    ("smpp", {**SMPP, "port": 0}, "port", "1 to 65535"),
    ("smpp", {**SMPP, "port": "http"}, "port", "integer"),
    ("smpp", {**SMPP, "port": True}, "port", "integer"),
    ("smpp", {**SMPP, "port": 2775.5}, "port", "integer"),
    ("smpp", {**SMPP, "host": ""}, "host", "empty"),
    ("smpp", {**SMPP, "host": "smsc:2775"}, "host", "port"),
    ("smpp", {**SMPP, "host": "a b"}, "host", "host name"),
    ("smpp", {**SMPP, "system_id": "x" * 16}, "system_id", "15"),
    ("smpp", {**SMPP, "system_id": ""}, "system_id", "empty"),
    ("smpp", {**SMPP, "password": "p" * 65}, "password", "64"),
    ("smpp", {**SMPP, "password": "pä"}, "password", "ASCII"),
    ("smpp", {**SMPP, "system_type": "x" * 13}, "system_type", "12"),
    ("smpp", {**SMPP, "mode": "rx"}, "mode", "trx or tx+rx"),
    ("smpp", {**SMPP, "binds": 0}, "binds", "1 to 64"),
    ("smpp", {**SMPP, "window": -1}, "window", "1 to 1000"),
    ("smpp", {**SMPP, "tps": "fast"}, "tps", "integer"),
    ("smpp", {**SMPP, "tls": "maybe"}, "tls", "true or false"),
    ("smpp", {**SMPP, "tls_ca": "/ca.pem"}, "tls_ca", "only with"),
    ("smpp", {**SMPP, "tls_verify": False}, "tls_verify", "only with"),
    ("smpp", {**SMPP, "id_format": "octal"}, "id_format", "auto or dec or hex"),
    ("smpp", {**SMPP, "enquire_link": 0}, "enquire_link", "1 to 3600"),
    ("smpp", {**SMPP, "enquire_link": "nan"}, "enquire_link", "number"),
    ("smpp", {**SMPP, "enquire_link": "inf"}, "enquire_link", "number"),
    ("smpp", {**SMPP, "enquire_link": 10**400}, "enquire_link", "number"),
    ("smpp", {**SMPP, "window": "9" * 5000}, "window", "integer"),
    ("smpp", {**SMPP, "reconnect_min": 10, "reconnect_max": 5}, "reconnect_max", "below"),
    ("smpp", {**SMPP, "src_ton": 7, "src_npi": 1}, "src_ton", "TON"),
    ("smpp", {**SMPP, "src_ton": 1, "src_npi": 2}, "src_npi", "NPI"),
    ("smpp", {**SMPP, "src_ton": 1}, "src_ton", "together"),
    ("smpp", {**SMPP, "dst_npi": 1}, "dst_ton", "together"),
    ("smpp", {**SMPP, "coding_default": "ucs2"}, "coding_default", "gsm or latin1"),
    ("smpp", {**SMPP, "url": "http://x"}, "url", "not a setting of a smpp"),
    ("http", {}, "url", "required"),
    ("http", {"url": "ftp://host/x"}, "url", "http://"),
    ("http", {"url": "https://"}, "url", "http://"),
    ("http", {"url": "api.example.com/send"}, "url", "http://"),
    ("http", {"url": "https://{to}.example.com/"}, "url", "host"),
    ("http", {"url": "https://host:99999/"}, "url", "URL"),
    ("http", {"url": "https://host/send?to={dest}"}, "url", "{dest}"),
    ("http", {"url": "https://host/send?to={to"}, "url", "stray brace"),
    ("http", {**HTTP, "method": "PUT"}, "method", "GET or POST"),
    ("http", {**HTTP, "body": "x={text}"}, "body", "POST"),
    ("http", {**HTTP, "method": "POST", "body": "x={txt}"}, "body", "{txt}"),
    ("http", {**HTTP, "ok": "(unclosed"}, "ok", "regular expression"),
    ("http", {**HTTP, "id": r"id=\d+"}, "id", "group"),
    ("http", {**HTTP, "id": "[z-a]"}, "id", "regular expression"),
    ("http", {**HTTP, "headers": {"Bad Name": "x"}}, "headers", "header name"),
    ("http", {**HTTP, "headers": {"X-A": "a\r\nInjected: 1"}}, "headers", "bad value"),
    ("http", {**HTTP, "headers": {"Content-Length": "1"}}, "headers", "Content-Length"),
    ("http", {**HTTP, "headers": "X-A: b"}, "headers", "table"),
    ("http", {**HTTP, "content_type": "json"}, "content_type", "media type"),
    ("http", {**HTTP, "dlr_status": {"ok": "GREAT"}}, "dlr_status", "GREAT"),
    ("http", {**HTTP, "dlr_status": {"ok": "ATES"}}, "dlr_status", "ATES"),
    ("http", {**HTTP, "timeout": 0}, "timeout", "0.1 to 300"),
    ("http", {**HTTP, "concurrency": 0}, "concurrency", "1 to 1000"),
    ("http", {**HTTP, "dlr_token": "short"}, "dlr_token", "16 to 128"),
    ("http", {**HTTP, "dlr_token": "x" * 15 + "&"}, "dlr_token", "letters, digits"),
    ("http", {**HTTP, "dlr_token": "x" * 129}, "dlr_token", "16 to 128"),
    ("http", {**HTTP, "circuit_failures": 0}, "circuit_failures", "1 to 1000"),
    ("http", {**HTTP, "circuit_cooldown": 0}, "circuit_cooldown", "0.05 to 3600"),
    ("simulator", {"min_latency_ms": -1}, "min_latency_ms", "0 to"),
    ("simulator", {"min_latency_ms": 5, "max_latency_ms": 1}, "max_latency_ms", "below"),
    ("simulator", {"outcomes": {"LOST": 1}}, "outcomes", "LOST"),
    ("simulator", {"outcomes": {"DELIVRD": 0}}, "outcomes", "above 0"),
    ("simulator", {"outcomes": {"DELIVRD": "lots"}}, "outcomes DELIVRD", "number"),
    ("simulator", {"outcomes": {"DELIVRD": -1}}, "outcomes DELIVRD", "number"),
    ("simulator", {"accepted": 2}, "accepted", "true or false"),
    ("simulator", {"latency": 5}, "latency", "not a setting"),
    ("carrier-pigeon", {}, "type", "smpp, http, simulator"),
])
def test_bad_settings(type_, config, key, match):
    with pytest.raises(SettingsError) as info:
        settings_for(type_, config)
    assert info.value.key == key
    assert match in str(info.value)
    assert "\n" not in str(info.value)


def test_errors_render_with_the_callers_names():
    with pytest.raises(SettingsError) as info:
        settings_for("smpp", {**SMPP, "src_ton": 1})
    option = info.value.render(lambda k: "--" + k.replace("_", "-"))
    assert option == "--src-ton and --src-npi go together: give both or neither"


def test_direct_construction_is_checked_too():
    with pytest.raises(SettingsError, match="port"):
        SmppSettings(host="h", port=70000, system_id="a", password="")
    assert SmppSettings(host="h", port="2775", system_id="a", password="").port == 2775


def test_password_and_credentials_are_masked():
    smpp = settings_for("smpp", SMPP).masked()
    assert smpp["password"] == MASK and "s3cret" not in json.dumps(smpp)
    http = settings_for("http", {
        "url": "https://user:pw1@api.example/send?user=me&password=pw2&api_key=pw3&to={to}"
               "&token={id}",
        "method": "POST", "body": '{{"secret": "pw4", "to": "{to}"}}',
        "content_type": "application/json",
        "headers": {"Authorization": "Bearer pw5", "Accept": "text/plain"}})
    shown = json.dumps(http.masked())
    for secret in ("pw1", "pw2", "pw3", "pw4", "pw5"):
        assert secret not in shown, shown
    masked = http.masked()
    assert "user=me" in masked["url"] and "to={to}" in masked["url"]
    assert "token={id}" in masked["url"]  # a placeholder is no secret
    assert masked["headers"]["Accept"] == "text/plain"
    assert "pw" not in http.summary()
    token = settings_for("http", {**HTTP, "dlr_token": "t0ken-" * 4}).masked()
    assert token["dlr_token"] == MASK
    assert mask_secrets("https://h/x?pass=abc&to=1") == f"https://h/x?pass={MASK}&to=1"


@pytest.mark.parametrize("name", ["up", "smsc-1", "a.b_c", "X" * 32, "9lives"])
def test_connector_names(name):
    assert check_connector_name(name) == name


@pytest.mark.parametrize("name", ["", "-up", ".x", "a b", "a/b", "X" * 33, "ünï", "a?b"])
def test_bad_connector_names(name):
    with pytest.raises(ValueError, match="connector name"):
        check_connector_name(name)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(type_=st.sampled_from(sorted(SETTINGS)), base=st.booleans(),
       changes=st.dictionaries(st.sampled_from(sorted(
           {f.name for cls in SETTINGS.values() for f in fields(cls)})), _json,
           max_size=4))
def test_any_config_is_settings_or_one_clean_error(type_, base, changes):
    """Whatever JSON a row holds, loading it gives settings that round-trip, or a
    SettingsError: never another exception."""
    start = {"smpp": SMPP, "http": HTTP, "simulator": {}}[type_] if base else {}
    try:
        loaded = settings_for(type_, {**start, **changes})
    except SettingsError as exc:
        assert "\n" not in str(exc)
        return
    assert settings_for(type_, json.loads(json.dumps(loaded.to_config()))) == loaded


@given(port=st.integers(1, 65535), binds=st.integers(1, 64), window=st.integers(1, 1000),
       tps=st.integers(0, 10**6), mode=st.sampled_from(["trx", "tx+rx", "TRX", "Tx+Rx"]),
       link=st.floats(1, 3600), ton=st.sampled_from([None, 0, 1, 5]))
def test_valid_smpp_settings_round_trip(port, binds, window, tps, mode, link, ton):
    config = {**SMPP, "port": port, "binds": binds, "window": window, "tps": tps,
              "mode": mode, "enquire_link": link, "src_ton": ton,
              "src_npi": None if ton is None else 1}
    first = settings_for("smpp", config)
    assert first.mode == mode.lower()
    assert SmppSettings.from_config(first.to_config()) == first
    assert settings_for("smpp", {k: str(v) for k, v in config.items() if v is not None}) \
        == first


def test_http_settings_keep_their_regexes():
    s = HttpSettings.from_config({**HTTP, "ok": r"^OK\b", "id": r"ID:(\w+)"})
    assert s.ok == r"^OK\b" and s.id == r"ID:(\w+)"
