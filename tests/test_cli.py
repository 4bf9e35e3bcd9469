"""The operator CLI (SPEC §7) on each backend; every bad input exits non-zero with exactly
one line on stderr. Each command runs in a process of its own, forked by one runner
that imported smsgate once (cli_runner.py: Python's start cost more than most commands);
`test_forked_commands_answer_as_python_m_smsgate_cli` holds it to what
`python -m smsgate.cli` answers."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import CliRunner

from smsgate.core.accounts import check_password
from smsgate.core.models import CREDIT_SCALE, ConnectorState
from smsgate.store import open_store

ROOT = Path(__file__).resolve().parents[1]
RUNNER = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _runner():
    yield
    RUNNER.close()


def cli(*args: str, database: str | None = None) -> subprocess.CompletedProcess:
    return RUNNER.run([*args, *(("--database", database) if database is not None else ())])


def process(*args: str, database: str | None = None) -> subprocess.CompletedProcess:
    """The command as `python -m smsgate.cli`, started afresh."""
    command = [sys.executable, "-m", "smsgate.cli", *args]
    if database is not None:
        command += ["--database", database]
    return subprocess.run(command, capture_output=True, text=True, input="", timeout=60,
                          cwd=ROOT)


def ok(*args: str, database: str) -> str:
    result = cli(*args, database=database)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: str, database: str | None = None, match: str = "") -> str:
    result = cli(*args, database=database)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"stderr is not one line: {result.stderr!r}"
    assert match.lower() in lines[0].lower(), lines[0]
    return lines[0]


async def test_commands_on_each_backend(store_url, tmp_path):
    db = store_url
    assert "schema up to date" in ok("migrate", database=db)
    assert "schema up to date" in ok("migrate", database=db)  # again: nothing to do
    routes = ok("route", "list", database=db)
    assert "simulator" in routes and "*" in routes  # seeded catch-all route
    ok("account", "add", "acme", "--password", "pw-1", "--credits", "100", "--max-tx", "3",
       "--tps", "50", "--sender", "Acme", "12345", "--allow-ip", "10.0.0.0/8",
       "--expires", "2099-12-31", database=db)
    ok("account", "add", "beta", "--password", "pw-2", database=db)
    listing = ok("account", "list", database=db)
    assert "acme" in listing and "100.00" in listing and "beta" in listing
    shown = ok("account", "show", "acme", database=db)
    for expected in ("balance:     100.00", "max_tx:      3", "tps:         50",
                     "senders:     Acme 12345", "allowed ips: 10.0.0.0/8",
                     "expires:     2099-12-31", "enabled:     yes"):
        assert expected in shown, shown
    assert "125.50" in ok("credit", "acme", "25.5", database=db)
    assert "120.50" in ok("credit", "acme", "-5", database=db)
    ok("account", "passwd", "acme", "--password", "new-pw", database=db)
    assert "disabled" in ok("account", "disable", "acme", database=db)
    assert "enabled:     no" in ok("account", "show", "acme", database=db)
    ok("connector", "add", "fast", "--type", "simulator", "--option", "min_latency_ms=1",
       "--outcome", "DELIVRD=9", "--outcome", "UNDELIV=1", database=db)
    assert "fast" in ok("connector", "list", database=db)
    ok("route", "add", "44", "fast", "--price", "0.5", "--account", "acme", "--priority", "2",
       database=db)
    routes = ok("route", "list", database=db)
    assert any("44" in line and "fast" in line and "0.50" in line and "acme" in line
               for line in routes.splitlines()), routes
    coverage = tmp_path / "coverage.csv"
    coverage.write_text("country,iso,operator,mcc,mnc,prefix,price\n"
                        "United Kingdom,GB,EE,234,30,447,0.8\n"
                        "France,FR,Orange,208,01,336,\n")
    assert "2 rows imported" in ok("coverage", "import", str(coverage), database=db)

    store = open_store(db)
    await store.open()
    try:
        acme = await store.get_account("acme")
        assert acme is not None and not acme.enabled
        assert acme.balance == 120_5000
        assert check_password("new-pw", acme.password_hash)
        assert "new-pw" not in acme.password_hash
        ledger = await store.ledger(acme.id, 100)
        assert sorted(e.amount for e in ledger) == [-5 * CREDIT_SCALE, 25_5000, 100 * CREDIT_SCALE]
        entries = {(c.iso, c.prefix, c.price) for c in await store.list_coverage()}
        assert entries == {("GB", "447", 8000), ("FR", "336", None)}
    finally:
        await store.close()


async def test_purge_deletes_history_at_once(store_url):
    """`smsgate purge --older-than DAYS` (SPEC §10): the ledger's details of a top-up go
    with --older-than 0; the balance they made stays."""
    db = store_url
    ok("account", "add", "acme", "--password", "pw-1", "--credits", "100", database=db)
    ok("credit", "acme", "5", database=db)
    kept = ok("purge", "--older-than", "30", database=db)
    assert "ledger: 0 deleted" in kept and "messages: 0 deleted" in kept, kept
    gone = ok("purge", "--older-than", "0", database=db)
    assert "ledger: 2 deleted" in gone, gone
    assert "105.00" in ok("account", "show", "acme", database=db)


async def test_account_status_auth(store_url):
    """SPEC §3.2's per-account setting: set at `account add`, changed by `account
    status-auth`, shown by `account show`."""
    db = store_url
    ok("account", "add", "strict", "--password", "pw", "--status-auth", database=db)
    ok("account", "add", "loose", "--password", "pw", database=db)
    assert "status auth: required" in ok("account", "show", "strict", database=db)
    assert "status auth: optional" in ok("account", "show", "loose", database=db)
    assert "must give" in ok("account", "status-auth", "loose", "on", database=db)
    assert "need not give" in ok("account", "status-auth", "strict", "off", database=db)
    assert "status auth: optional" in ok("account", "show", "strict", database=db)
    store = open_store(db)
    await store.open()
    try:
        flags = {a.system_id: a.status_auth for a in await store.list_accounts()}
        assert flags == {"strict": False, "loose": True}
    finally:
        await store.close()


SMPP_ARGS = ("--host", "smsc.example.com", "--port", "2775", "--system-id", "acme",
             "--password", "up-s3cret")


async def test_connectors_routes_and_numbers(store_url):
    """SPEC §8's commands on each backend: connectors of every type (secrets never
    printed), their live state, route options, numbers."""
    db = store_url
    added = ok("connector", "add", "up", "--type", "smpp", *SMPP_ARGS, "--system-type", "VMA",
               "--mode", "tx+rx", "--binds", "2", "--window", "20", "--tps", "100", "--tls",
               "--id-format", "hex", "--enquire-link", "15", "--src-ton", "5", "--src-npi", "0",
               "--dst-ton", "1", "--dst-npi", "1", "--coding-default", "latin1", database=db)
    assert "up-s3cret" not in added
    ok("connector", "add", "prov", "--type", "http", "--url",
       "https://api.example/send?key=k3y&to={to}&text={text}", "--method", "POST",
       "--body", "from={from}&id={id}", "--ok", "^OK", "--id", "id=(\\w+)", "--tps", "5",
       "--header", "Authorization: Bearer t0ken", "--dlr-status", "delivered=DELIVRD",
       "--concurrency", "4", "--dlr-token", "dlr-t0ken-0123456789", database=db)
    listing = ok("connector", "list", database=db)
    for secret in ("up-s3cret", "k3y", "t0ken"):
        assert secret not in listing
    line = next(x for x in listing.splitlines() if x.startswith("up "))
    assert "smpp" in line and " - " in line and "acme@smsc.example.com:2775" in line
    shown = ok("connector", "show", "up", database=db)
    for expected in ("password:         ********", "mode:             tx+rx",
                     "binds:            2", "tls:              yes", "src_ton:          5",
                     "coding_default:   latin1", "state:            - (no gateway"):
        assert expected in shown, shown
    assert "up-s3cret" not in shown
    shown = ok("connector", "show", "prov", database=db)
    assert "k3y" not in shown and "t0ken" not in shown and "DELIVERED=DELIVRD" in shown
    assert "concurrency:      4" in shown, shown

    store = open_store(db)
    await store.open()
    try:
        up = await store.get_connector("up")
        assert up.config["password"] == "up-s3cret"  # the bind needs it
        assert (up.config["binds"], up.config["mode"], up.config["enquire_link"]) == \
            (2, "tx+rx", 15.0)
        await store.report_connector_state(ConnectorState(
            "up", "node-a", {"available": True, "binds_up": 1, "binds_wanted": 2,
                             "window_in_use": 3, "window": 20, "sent_per_second": 12.5,
                             "errors": 4, "throttled": 7}, time.time()))
    finally:
        await store.close()
    line = next(x for x in ok("connector", "list", database=db).splitlines()
                if x.startswith("up "))
    assert "up binds 1/2 window 3/20 12.5/s errors 4" in line, line
    shown = ok("connector", "show", "up", database=db)
    assert "node-a: available=True binds_up=1" in shown and "throttled=7" in shown, shown

    added = ok("route", "add", "+44", "up", "--price", "0.05", "--cost", "0.02", "--priority",
               "-1", "--weight", "3", "--sender", "Acme", "12345", database=db)
    route_id = added.split()[1].rstrip(":")
    line = next(x for x in ok("route", "list", database=db).splitlines()
                if x.split()[0] == route_id)
    assert line.split() == [route_id, "44", "up", "0.05", "0.02", "-1", "3", "(all)", "Acme",
                            "12345"]
    assert f"route {route_id}" in fails("connector", "remove", "up", database=db)
    assert "disabled" in ok("connector", "disable", "up", database=db)
    assert "enabled:          no" in ok("connector", "show", "up", database=db)
    assert "enabled" in ok("connector", "enable", "up", database=db)
    ok("route", "remove", route_id, database=db)
    assert "removed" in ok("connector", "remove", "up", database=db)
    assert "up " not in ok("connector", "list", database=db)

    ok("account", "add", "acme", "--password", "pw", database=db)
    ok("number", "add", "+447700900", "acme", "--mo-url", "https://acme.example/mo", database=db)
    ok("number", "add", "12345", "acme", database=db)
    fails("number", "add", "12345", "acme", database=db, match="exists")
    numbers = ok("number", "list", database=db).splitlines()
    assert numbers[1].split() == ["12345", "acme", "-"]
    assert numbers[2].split() == ["447700900", "acme", "https://acme.example/mo"]
    ok("number", "remove", "12345", database=db)
    assert "12345" not in ok("number", "list", database=db)

    # the last connector removed stays removed: the simulator is seeded once, not again
    ok("route", "remove", "1", database=db)  # the seeded catch-all
    ok("connector", "remove", "prov", database=db)
    ok("connector", "remove", "simulator", database=db)
    assert ok("connector", "list", database=db).splitlines()[1:] == []
    assert ok("route", "list", database=db).splitlines()[1:] == []


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    """One SQLite database with an account `acme`, for the bad-input cases."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli')}/cli.db"
    ok("account", "add", "acme", "--password", "pw", database=url)
    return url


@pytest.mark.parametrize("args", [
    ("account", "show", "acme"),
    ("account", "show", "ghost"),  # an error of the command (exit 2)
    ("frobnicate",),  # argparse's (SystemExit)
    ("account", "passwd", "acme"),  # would read a password from stdin: none there
])
def test_forked_commands_answer_as_python_m_smsgate_cli(db, args):
    forked, started = cli(*args, database=db), process(*args, database=db)
    assert (forked.returncode, forked.stdout, forked.stderr) == \
        (started.returncode, started.stdout, started.stderr)


@pytest.mark.parametrize(("args", "match"), [
    (("account", "add", "acme", "--password", "x"), "exists"),
    (("account", "add", "a" * 17, "--password", "x"), "system_id"),
    (("account", "add", "new", "--password", ""), "password"),
    (("account", "add", "new", "--password", "x", "--credits", "lots"), "--credits"),
    (("account", "add", "new", "--password", "x", "--expires", "2030-13-01"), "--expires"),
    (("account", "add", "new", "--password", "x", "--allow-ip", "10.0.0.300"), "--allow-ip"),
    (("account", "add", "new", "--password", "x", "--max-tx", "many"), "--max-tx"),
    (("account", "add", "new"), "required"),
    (("account", "show", "ghost"), "ghost"),
    (("account", "disable", "ghost"), "ghost"),
    (("account", "passwd", "ghost", "--password", "x"), "ghost"),
    (("account", "passwd", "acme"), "--password"),  # no terminal to ask on
    (("account", "status-auth", "ghost", "on"), "ghost"),
    (("account", "status-auth", "acme", "maybe"), "invalid choice"),
    (("account", "status-auth", "acme"), "required"),
    (("account", "frobnicate"), "invalid choice"),
    (("credit", "ghost", "10"), "ghost"),
    (("credit", "acme", "ten"), "not a number"),
    (("credit", "acme", "0"), "zero"),
    (("credit", "acme"), "required"),
    (("route", "add", "4x4", "simulator"), "digits"),
    (("route", "add", "44", "nowhere"), "nowhere"),
    (("route", "add", "44", "simulator", "--price", "-1"), "negative"),
    (("route", "add", "44", "simulator", "--price", "cheap"), "--price"),
    (("route", "add", "44", "simulator", "--account", "ghost"), "ghost"),
    (("connector", "add", "up", "--type", "smpp"), "--host is required"),
    (("connector", "add", "up", "--type", "carrier-pigeon"), "invalid choice"),
    (("connector", "add", "simulator", "--type", "simulator"), "exists"),
    (("connector", "add", "up", "--type", "simulator", "--option", "novalue"), "KEY=VALUE"),
    (("connector", "add", "up", "--type", "simulator", "--outcome", "DELIVRD=x"), "--outcome"),
    (("connector", "add", "up", "--type", "simulator", "--outcome", "LOST=1"), "LOST"),
    *[(("connector", "add", "up", *args), match) for args, match in (
        (("--type", "smpp", *SMPP_ARGS[:-2]), "--password is required"),
        (("--type", "smpp", *SMPP_ARGS, "--port", "99999"), "--port"),
        (("--type", "smpp", "--host", "smsc:2775", *SMPP_ARGS[2:]), "--port"),
        (("--type", "smpp", *SMPP_ARGS, "--system-id", "x" * 16), "--system-id"),
        (("--type", "smpp", *SMPP_ARGS, "--mode", "rx"), "--mode"),
        (("--type", "smpp", *SMPP_ARGS, "--binds", "0"), "--binds"),
        (("--type", "smpp", *SMPP_ARGS, "--window", "lots"), "--window"),
        (("--type", "smpp", *SMPP_ARGS, "--tps", "-1"), "--tps"),
        (("--type", "smpp", *SMPP_ARGS, "--id-format", "oct"), "--id-format"),
        (("--type", "smpp", *SMPP_ARGS, "--enquire-link", "0"), "--enquire-link"),
        (("--type", "smpp", *SMPP_ARGS, "--src-ton", "5"), "--src-npi"),
        (("--type", "smpp", *SMPP_ARGS, "--dst-ton", "9", "--dst-npi", "1"), "--dst-ton"),
        (("--type", "smpp", *SMPP_ARGS, "--coding-default", "ucs2"), "--coding-default"),
        (("--type", "smpp", *SMPP_ARGS, "--tls-insecure"), "--tls"),
        (("--type", "smpp", *SMPP_ARGS, "--reconnect-min", "9", "--reconnect-max", "2"),
         "--reconnect-max"),
        (("--type", "smpp", *SMPP_ARGS, "--url", "http://x/"), "--url is for --type http"),
        (("--type", "smpp", *SMPP_ARGS, "--option", "port=1"), "both"),
        (("--type", "smpp", *SMPP_ARGS, "--option", "bogus=1"), "--option bogus"),
        (("--type", "http"), "--url is required"),
        (("--type", "http", "--url", "https://h/?to={dest}"), "{dest}"),
        (("--type", "http", "--url", "https://h/?to={to"), "brace"),
        (("--type", "http", "--url", "mailto:x@h"), "--url"),
        (("--type", "http", "--url", "https://h/", "--body", "x={text}"), "--method POST"),
        (("--type", "http", "--url", "https://h/", "--method", "POST", "--body", "{txt}"),
         "--body"),
        (("--type", "http", "--url", "https://h/", "--method", "PUT"), "--method"),
        (("--type", "http", "--url", "https://h/", "--ok", "("), "--ok"),
        (("--type", "http", "--url", "https://h/", "--id", "id=\\d+"), "--id"),
        (("--type", "http", "--url", "https://h/", "--header", "nocolon"), "NAME:VALUE"),
        (("--type", "http", "--url", "https://h/", "--dlr-status", "1=GREAT"), "--dlr-status"),
        (("--type", "http", "--url", "https://h/", "--host", "h"), "--host is for --type smpp"),
        (("--type", "simulator", "--tps", "5"), "--tps is for --type smpp or http"),
        (("--type", "http", "--url", "https://h/", "--outcome", "DELIVRD=1"), "--outcome"),
    )],
    (("connector", "add", "bad name", "--type", "simulator"), "connector name"),
    (("connector", "show", "ghost"), "ghost"),
    (("connector", "enable", "ghost"), "ghost"),
    (("connector", "disable", "ghost"), "ghost"),
    (("connector", "remove", "ghost"), "ghost"),
    (("connector", "remove", "simulator"), "route 1"),  # the seeded catch-all uses it
    (("connector", "show"), "required"),
    (("route", "add", "44", "simulator", "--cost", "-1"), "--cost"),
    (("route", "add", "44", "simulator", "--cost", "free"), "--cost"),
    (("route", "add", "44", "simulator", "--weight", "0"), "--weight"),
    (("route", "add", "44", "simulator", "--weight", "heavy"), "--weight"),
    (("route", "add", "44", "simulator", "--priority", "high"), "--priority"),
    (("route", "add", "44", "simulator", "--sender", "Way too long sender"), "--sender"),
    (("route", "add", "44", "simulator", "--sender"), "--sender"),
    (("route", "remove", "999"), "no route 999"),
    (("route", "remove", "one"), "ID"),
    (("number", "add", "44x", "acme"), "digits"),
    (("number", "add", "1" * 16, "acme"), "15"),
    (("number", "add", "447700", "ghost"), "ghost"),
    (("number", "add", "447700", "acme", "--mo-url", "ftp://h/"), "--mo-url"),
    (("number", "add", "447700", "acme", "--mo-url", "https://h:99999/"), "--mo-url"),
    (("number", "add", "447700"), "required"),
    (("number", "remove", "12345"), "no number"),
    (("number", "remove", "+"), "digits"),
    (("coverage", "import", "/nonexistent/coverage.csv"), "nonexistent"),
    (("frobnicate",), "invalid choice"),
    (("purge",), "--older-than"),
    (("purge", "--older-than", "-1"), "--older-than"),
    (("purge", "--older-than", "ninety"), "--older-than"),
])
def test_bad_input_is_one_line_and_non_zero(db, args, match):
    fails(*args, database=db, match=match)


@pytest.mark.parametrize(("rows", "match"), [
    ("United Kingdom,GB,EE\n", "expected country"),
    ("United Kingdom,GB,EE,234,30,44x7,0.8\n", "digits"),
    ("United Kingdom,GB,EE,234,30,447,free\n", "price"),
])
def test_bad_coverage_file(db, tmp_path, rows, match):
    path = tmp_path / "bad.csv"
    path.write_text(rows)
    fails("coverage", "import", str(path), database=db, match=match)


@pytest.mark.parametrize(("database", "match"), [
    ("bogus://host/db", "unsupported"),
    ("sqlite:///", "file name"),
    ("postgresql://", "host"),
])
def test_bad_database_url(database, match):
    fails("account", "list", database=database, match=match)
    fails("migrate", database=database, match=match)


def test_serve_bad_input(db, tmp_path):
    fails("serve", "--smpp-port", "many", database=db, match="--smpp-port")
    fails("serve", "--log-format", "xml", database=db, match="--log-format")
    fails("serve", "--config", str(tmp_path / "missing.toml"), database=db, match="missing")
    config = tmp_path / "bad.toml"
    config.write_text("no_such_setting = 1\n")
    fails("serve", "--config", str(config), database=db, match="no_such_setting")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        fails("serve", "--smpp-port", port, "--http-port", "0", database=db, match="in use")


def test_serve_tls_bad_input(db, tmp_path):
    tls = ("serve", "--smpp-port", "0", "--http-port", "0", "--smpp-tls-port", "0")
    missing = str(tmp_path / "missing.pem")
    fails(*tls, "--tls-cert", missing, "--tls-key", missing, database=db, match="missing.pem")
    fails(*tls, database=db, match="--tls-cert")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    fails(*tls, "--tls-cert", str(junk), "--tls-key", str(junk), database=db,
          match="cannot be used")
    fails("serve", "--smpp-tls-port", "0x", database=db, match="--smpp-tls-port")
    config = tmp_path / "tls.toml"
    config.write_text(f'smpp_tls_port = 0\ntls_cert = "{missing}"\n')
    fails("serve", "--config", str(config), database=db, match="missing.pem")


def test_config_maps_nested_tables(tmp_path):
    """Tables map onto the nested settings dataclasses, to any depth."""
    from smsgate.config import load
    config = tmp_path / "smsgate.toml"
    config.write_text("""
smpp_port = 2775
smpp_tls_port = 2776
tls_cert = "cert.pem"
receipt_expiry_hours = 24        # an integer where a float is declared
[smpp]
window = 20
[http]
max_body = 1024
[http.callbacks]
workers = 4
backoff = [1, 2.5, 10]
[submit]
max_validity = 3600
""")
    settings = load(str(config), environ={}).settings
    assert (settings.smpp_port, settings.smpp_tls_port, settings.tls_cert) == \
        (2775, 2776, "cert.pem")
    assert settings.receipt_expiry_hours == 24.0
    assert settings.smpp.window == 20 and settings.smpp.bind_timeout == 30.0
    assert settings.http.max_body == 1024
    assert settings.http.callbacks.workers == 4
    assert settings.http.callbacks.backoff == (1.0, 2.5, 10.0)
    assert settings.http.callbacks.timeout == 10.0  # untouched keys keep their default
    assert settings.submit.max_validity == 3600.0


@pytest.mark.parametrize(("toml", "match"), [
    ("no_such_setting = 1", "unknown setting no_such_setting"),
    ("[smpp]\nwindoww = 3", "unknown setting smpp.windoww"),
    ("[http.callbacks]\nretries = 3", "unknown setting http.callbacks.retries"),
    ("[http.callbacks]\nworkers = 'many'", "http.callbacks.workers must be an integer"),
    ("[http.callbacks]\nbackoff = [1, 'x']", "http.callbacks.backoff[1] must be a number"),
    ("[http.callbacks]\nbackoff = 5", "http.callbacks.backoff must be a list"),
    ("[http]\ncallbacks = 3", "http.callbacks must be a table"),
    ("smpp = 3", "smpp must be a table"),
    ("smpp_port = '2775'", "smpp_port must be a port number"),
    ("smpp_port = 65536", "smpp_port must be 0 to 65535"),
    ("smpp_tls_port = true", "smpp_tls_port must be a port number"),
    ("[smpp]\nport = 2775", "unknown setting smpp.port (did you mean smpp_port?)"),
    ("[submit]\nmax_validity = -1", "submit.max_validity must not be negative"),
    ("refund_upstream_rejections = 1", "must be true or false"),
    ("receipt_expiry_hours = 'soon'", "receipt_expiry_hours must be a number"),
    ("log_format = 'xml'", "log_format must be text or json"),
    ("[smpp\nwindow = 3", "smsgate.toml"),  # TOML syntax error
])
def test_bad_config_is_one_line(db, tmp_path, toml, match):
    config = tmp_path / "smsgate.toml"
    config.write_text(toml + "\n")
    fails("serve", "--config", str(config), database=db, match=match)
