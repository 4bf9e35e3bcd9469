"""The typed configuration (smsgate/config.py): defaults < TOML < environment < command
line, every value checked with a one-line error naming the setting and its source, the
generated settings table, and a real `serve` that listens where its TOML file says."""

import asyncio
import contextlib
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smpp_harness import RawClient, free_port

from smsgate import cli, config
from smsgate.config import ConfigError, Settings, load, loading

ROOT = Path(__file__).resolve().parents[1]

TOML = """
database_url = "sqlite:///from-toml.db"
smpp_port = 1001
http_port = 1002
smpp_tls_port = 1003
log_level = "DEBUG"
[smpp]
bind_timeout = 5
[http.callbacks]
allow_private = false
backoff = [1, 2]
"""


def toml_file(tmp_path: Path, text: str = TOML) -> str:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return str(path)


def value(settings: Settings, name: str):
    for part in name.split("."):
        settings = getattr(settings, part)
    return settings


def options(*argv: str) -> dict[str, object]:
    """The settings given on a real `serve` command line, as cli.py passes them on."""
    return cli._given_options(cli.build_parser().parse_args(["serve", *argv]))


def test_defaults_are_the_dataclasses_defaults():
    loaded = load(environ={})
    assert loaded.settings == Settings()
    assert set(loaded.sources.values()) == {config.DEFAULT}
    assert (loaded.settings.smpp_port, loaded.settings.http_port,
            loaded.settings.admin_port) == (8899, 8080, 8081)
    assert loaded.settings.database_url == "sqlite:///smsgate.db"


# (setting, TOML's value, the environment's text and value, the option and its value)
LAYERS = [
    ("smpp_port", 1001, "2001", 2001, ["--smpp-port", "3001"], 3001),
    ("database_url", "sqlite:///from-toml.db", "sqlite:///env.db", "sqlite:///env.db",
     ["--database", "sqlite:///cli.db"], "sqlite:///cli.db"),
    ("log_level", "DEBUG", "warning", "WARNING", ["--log-level", "ERROR"], "ERROR"),
    ("smpp.bind_timeout", 5.0, "6.5", 6.5, None, None),
    ("http.callbacks.backoff", (1.0, 2.0), "3, 4,5", (3.0, 4.0, 5.0), None, None),
    ("http.callbacks.allow_private", False, "on", True, ["--callbacks-allow-private"],
     True),
    ("smpp_tls_port", 1003, "", None, ["--smpp-tls-port", "0"], 0),
]


@pytest.mark.parametrize(("name", "in_toml", "env_text", "in_env", "argv", "on_cli"), LAYERS)
def test_each_layer_wins_over_the_one_before(tmp_path, name, in_toml, env_text, in_env,
                                             argv, on_cli):
    path = toml_file(tmp_path)
    env = {config.settings()[name].env: env_text}
    default = config.settings()[name].default
    assert value(load(environ={}).settings, name) == default
    loaded = load(path, environ={})
    assert (value(loaded.settings, name), loaded.sources[name]) == (in_toml, path)
    loaded = load(path, options(), environ=env)  # no option given: env stays
    assert value(loaded.settings, name) == in_env
    assert loaded.sources[name] == f"environment {config.settings()[name].env}"
    if argv is not None:
        loaded = load(path, options(*argv), environ=env)
        assert (value(loaded.settings, name), loaded.sources[name]) == (on_cli, argv[0])


def test_options_not_given_leave_the_file_alone(tmp_path):
    """The old `serve` overwrote TOML settings with its options' defaults."""
    path = toml_file(tmp_path)
    assert options("--config", path) == {}
    settings = load(path, options("--config", path), environ={}).settings
    assert (settings.smpp_port, settings.http_port, settings.log_level,
            settings.database_url) == (1001, 1002, "DEBUG", "sqlite:///from-toml.db")
    assert settings.smpp.bind_timeout == 5.0 and settings.smpp.window == 10


def test_the_receipt_park_reaches_the_correlator(tmp_path):
    from smsgate.app import App

    environ = {"SMSGATE_RECEIPT_PARK_SECONDS": "1.5",
               "SMSGATE_DATABASE_URL": f"sqlite:///{tmp_path}/park.db"}
    app = App(load(None, environ=environ).settings)  # not started: nothing opened
    assert app.dispatcher.correlator is not None
    assert app.dispatcher.correlator.park_seconds == 1.5


def test_the_smpp_port_has_one_name(tmp_path):
    """`[smpp] port` used to be read and then overwritten by smpp_port's default: now
    there is one SMPP port setting, and the other spelling is refused, with a hint."""
    with pytest.raises(ConfigError, match=r"unknown setting smpp.port \(did you mean "
                                          r"smpp_port\?\)"):
        load(toml_file(tmp_path, "[smpp]\nport = 2775\n"), environ={})
    with pytest.raises(ConfigError, match=r"unknown setting http.port \(did you mean "
                                          r"http_port\?\)"):
        load(toml_file(tmp_path, "[http]\nport = 2775\n"), environ={})
    assert "port" not in {s.name.rsplit(".", 1)[-1] for s in config.settings().values()}


BAD = [  # (source, setting, text or TOML value, what the line says)
    ("smpp_port", "28x", "must be a port number, not '28x'"),
    ("smpp_port", "70000", "must be 0 to 65535"),
    ("smpp.bind_timeout", "-1", "must not be negative"),
    ("smpp.bind_timeout", "nan", "must be a number"),
    ("http.metrics", "maybe", "must be true or false"),
    ("http.callbacks.backoff", "1,x", "http.callbacks.backoff[1] must be a number"),
    ("log_format", "xml", "must be text or json"),
    ("smpp.max_pending", "1.5", "must be an integer"),
]


@pytest.mark.parametrize(("name", "text", "says"), BAD)
def test_bad_environment_values_are_one_line(name, text, says):
    env = config.settings()[name].env
    with pytest.raises(ConfigError) as caught:
        load(environ={env: text})
    line = str(caught.value)
    assert "\n" not in line and line.startswith(f"environment {env}: {name}") and says in line


@pytest.mark.parametrize(("argv", "says"), [
    (["--smpp-port", "many"], "--smpp-port: smpp_port must be a port number, not 'many'"),
    (["--http-port", "-5"], "--http-port: http_port must be 0 to 65535, not -5"),
    (["--retention-days", "soon"], "--retention-days: retention_days must be a number"),
    (["--log-format", "xml"], "--log-format: log_format must be text or json, not 'xml'"),
    (["--log-level", "LOUD"], "--log-level: log_level must be DEBUG or INFO"),
])
def test_bad_options_are_one_line(argv, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        load(cli=options(*argv), environ={})


@pytest.mark.parametrize(("toml", "says"), [
    ("smpp_port = '2775'", "smpp_port must be a port number, not '2775'"),
    ("[smpp]\nbind_timeout = -3", "smpp.bind_timeout must not be negative, not -3"),
    ("[smpp.caps]\nmax_total = 1.5", "smpp.caps.max_total must be an integer"),
    ("[smpp]\nwindoww = 3", "unknown setting smpp.windoww (did you mean smpp.window?)"),
    ("[nosuch]\nx = 1", "unknown setting nosuch"),
    ("http = 3", "http must be a table ([http]), not 3"),
    ("[smpp.caps.deeper]\nx = 1", "smpp.caps.deeper"),
    ("smpp_port = inf", "smpp_port must be a port number"),
])
def test_bad_file_values_are_one_line(tmp_path, toml, says):
    path = toml_file(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    line = str(caught.value)
    assert "\n" not in line and line.startswith(f"{path}: ") and says in line


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the settings file"):
        load(str(tmp_path / "missing.toml"), environ={})


def test_near_miss_environment_names_warn_and_others_are_ignored():
    loaded = load(environ={"SMSGATE_SMPP_BIND_TIMEOUT": "3", "SMSGATE_TEST_PG_DSN": "x",
                           "SMSGATE_HTTP_PORT": "81"})
    assert loaded.settings.smpp.bind_timeout == 30.0 and loaded.settings.http_port == 81
    assert loaded.warnings == ["environment SMSGATE_SMPP_BIND_TIMEOUT is not a setting,"
                               " ignored (did you mean SMSGATE_SMPP__BIND_TIMEOUT?)"]


def test_the_database_url_of_other_commands():
    env = {"SMSGATE_DATABASE_URL": "sqlite:///env.db"}
    assert config.resolve_database(None, {}) == "sqlite:///smsgate.db"
    assert config.resolve_database(None, env) == "sqlite:///env.db"
    assert config.resolve_database("sqlite:///cli.db", env) == "sqlite:///cli.db"


def test_each_default_is_written_once():
    """The default database URL used to be written in three places."""
    sources = [p.read_text() for p in (ROOT / "smsgate").rglob("*.py")]
    assert sum(text.count("smsgate.db") for text in sources) == 1


def test_every_setting_is_described_and_typed():
    names = set(config.settings())
    assert set(config.DESCRIPTIONS) == names
    assert set(config.FLAGS) <= names
    assert len({s.env for s in config.settings().values()}) == len(names)
    for setting in config.settings().values():
        kind = config.type_name(setting.hint)
        assert "<" not in kind and "typing" not in kind, (setting.name, kind)
        # the default passes its own check
        loading.typed(setting.default, setting.hint, setting.name, "default")


def test_the_docs_table_is_current():
    doc = (ROOT / "docs" / "operations.md").read_text()
    assert config.updated_doc(doc) == doc, (
        "docs/operations.md's settings table is stale: "
        "python -m smsgate.config --update docs/operations.md")
    assert config.markdown_table() in doc


def test_the_docs_example_file_loads(tmp_path):
    """The TOML example of docs/operations.md names only settings, with good values."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    example = doc.split("An example file", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    loaded = load(toml_file(tmp_path, example), environ={})
    assert loaded.settings.smpp_port == 2775 and loaded.settings.log_format == "json"


# -- the parser of environment / command-line text, property-based -------------------------

def from_text(text: str, name: str):
    setting = config.settings()[name]
    return loading.checked_text(text, setting, "test")


@given(st.integers(min_value=0, max_value=10**12))
def test_integers_read_back(number):
    assert from_text(str(number), "smpp.max_pending") == number
    assert from_text(f" {number} ", "http.max_body") == number


@given(st.floats(min_value=0, allow_infinity=False, allow_nan=False))
def test_numbers_read_back(number):
    assert from_text(repr(number), "smpp.bind_timeout") == number


@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), max_size=8),
       st.booleans())
def test_lists_read_back(numbers, brackets):
    text = ", ".join(map(repr, numbers))
    assert from_text(f"[{text}]" if brackets else text, "http.callbacks.backoff") == \
        tuple(numbers)


@given(st.sampled_from(sorted(config.settings())), st.text(max_size=30))
def test_any_text_is_a_value_or_a_config_error(name, text):
    try:
        result = from_text(text, name)
    except ConfigError as exc:
        assert "\n" not in str(exc) and name in str(exc)
        return
    hint = loading.unannotated(config.settings()[name].hint)[0]
    if isinstance(result, float):
        assert math.isfinite(result) and result >= 0
    if hint is bool:
        assert isinstance(result, bool)


# -- the real CLI -------------------------------------------------------------------------

def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(config.ENV_PREFIX)}
    return subprocess.run([sys.executable, "-m", "smsgate.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env={**clean, **(env or {})})


def test_serve_stops_on_a_bad_environment_value_in_one_line(tmp_path):
    result = run_cli("serve", "--database", f"sqlite:///{tmp_path}/x.db",
                     env={"SMSGATE_SMPP__BIND_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert result.stderr == ("smsgate: error: environment SMSGATE_SMPP__BIND_TIMEOUT: "
                             "smpp.bind_timeout must be a number, not 'soon'\n")
    assert not (tmp_path / "x.db").exists()  # stopped before anything started


def test_config_show_and_table(tmp_path):
    path = toml_file(tmp_path)
    result = run_cli("config", "show", "--config", path, "--http-port", "7",
                     env={"SMSGATE_SMPP__BIND_TIMEOUT": "9",
                          "SMSGATE_DATABASE_URL": "postgresql://gw:s3cret@db/gw"})
    assert result.returncode == 0, result.stderr
    lines = {line.split(" = ")[0]: line for line in result.stdout.splitlines()}
    assert re.fullmatch(r"smpp_port = 1001 +# " + re.escape(path), lines["smpp_port"])
    assert re.fullmatch(r"http_port = 7 +# --http-port", lines["http_port"])
    assert re.fullmatch(r"smpp.bind_timeout = 9 +# environment SMSGATE_SMPP__BIND_TIMEOUT",
                        lines["smpp.bind_timeout"])
    assert re.fullmatch(r"smpp.window = 10 +# default", lines["smpp.window"])
    assert "s3cret" not in result.stdout and "postgresql://gw:***@db/gw" in result.stdout
    assert set(lines) == set(config.settings())
    table = run_cli("config", "table")
    assert table.returncode == 0 and table.stdout == config.markdown_table()


async def test_serve_listens_where_its_file_says(tmp_path):
    """No port option: the TOML file's SMPP port and `[smpp]` table are used, and the
    environment's HTTP port wins over the file's."""
    smpp, http_in_file, http = free_port(), free_port(), free_port()
    path = toml_file(tmp_path, f'database_url = "sqlite:///{tmp_path}/gw.db"\n'
                               f'smpp_port = {smpp}\nhttp_port = {http_in_file}\n'
                               'log_level = "WARNING"\n[smpp]\nsystem_id = "tomlgw"\n')
    clean = {k: v for k, v in os.environ.items() if not k.startswith(config.ENV_PREFIX)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgate.cli", "serve", "--config", path,
        "--node-id", "cfg", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=ROOT, env={**clean, "SMSGATE_HTTP_PORT": str(http)})
    try:
        lines = []
        async with asyncio.timeout(30):
            while not lines or not lines[-1].startswith("HTTP listening"):
                line = (await proc.stdout.readline()).decode()
                assert line, (await proc.stderr.read()).decode()
                lines.append(line.strip())
        assert f"SMPP listening on 127.0.0.1:{smpp}" in lines
        assert f"HTTP listening on 127.0.0.1:{http}" in lines
        password = re.search(r"password=(\S+)", lines[0]).group(1)
        client = await RawClient.connect("127.0.0.1", smpp)
        try:
            response = await client.bind("trx", "demo", password)
            assert response.status == 0 and response.fields["system_id"] == "tomlgw"
        finally:
            await client.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", http)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        assert (tmp_path / "gw.db").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
