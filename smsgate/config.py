"""The one typed configuration of `smsgate serve`, and the database URL of every command.

Each setting is a field of `Settings` or of the dataclass of one of its tables (`[smpp]`
is `servers.smpp_server.SmppServerConfig`, `[http.callbacks]` is `CallbackConfig`, ...):
its type hint is its type and its default there is its only default. A value comes from,
the later winning:

    default  <  TOML file (`serve --config FILE`)  <  environment  <  command line

- TOML: a key per setting; `[a.b]` tables hold the settings named `a.b.*`. A key that
  is no setting stops `serve` (a typo must not be ignored in silence).
- Environment: `SMSGATE_` + the setting's name in capitals, a table's dot written as a
  double underscore: `smpp_port` is `SMSGATE_SMPP_PORT`, `smpp.bind_timeout` is
  `SMSGATE_SMPP__BIND_TIMEOUT`, `http.callbacks.backoff` (a list) is
  `SMSGATE_HTTP__CALLBACKS__BACKOFF=1,5,15`. A boolean is true/false, yes/no, on/off or
  1/0; an empty value unsets a setting that may be unset. Other `SMSGATE_` variables are
  not settings and are ignored (one close to a setting's name draws a warning).
- Command line: the `serve` options of SPEC §7 (`FLAGS`); an option not given sets
  nothing, so it never hides the file or the environment.

Every value is checked against its type (numbers are never negative; ports are 0 to
65535); a bad one raises `ConfigError`, one line naming the setting and where the value
came from, which `serve` prints before it exits with status 2.

Why no settings library: pydantic-settings does layer TOML, environment and arguments,
but it merges the layers before it validates, so an error could not say which layer gave
the bad value; and it would make the settings dataclasses of core/ and servers/ (read on
the hot path, some with __slots__) pydantic models, with a dependency core/ should not
have. What is left to write is small: walking the dataclasses, and a type check of the
handful of types settings have (below, with `_typed`).

`markdown_table()` renders every setting (docs/operations.md holds it between markers;
`smsgate config table` prints it, `python -m smsgate.config --update FILE` rewrites it);
`smsgate config show` prints each effective value and its source.
"""

import dataclasses
import difflib
import functools
import math
import os
import socket
import sys
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from .core.inbound import InboundSettings
from .core.login_guard import LoginGuardConfig
from .core.submit import SubmitSettings
from .servers.http_api import HttpApiConfig
from .servers.smpp_server import SmppServerConfig

ENV_PREFIX = "SMSGATE_"
DEFAULT = "default"  # the source of a value nobody set


class ConfigError(ValueError):
    """A bad setting: one line, naming the setting and the value's source."""


@dataclass(frozen=True)
class Between:
    """Annotated metadata: the number must lie in [low, high]."""
    low: float
    high: float


Port = Annotated[int, Between(0, 65535)]


@dataclass
class Settings:
    database_url: str = "sqlite:///smsgate.db"
    host: str = "127.0.0.1"
    smpp_port: Port = 8899
    http_port: Port = 8080
    admin_port: Port = 8081
    smpp_tls_port: Port | None = None  # off unless set; 0 picks a free port
    tls_cert: str = ""  # PEM certificate chain for the SMPP TLS port
    tls_key: str = ""  # PEM private key (empty: it is in tls_cert)
    node_id: str = field(default_factory=socket.gethostname)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: servers/log_format.py
    receipt_expiry_hours: float = 72.0  # receipts and MO wait this long for a receiver
    retention_days: float = 90.0  # history older than this is purged (0: kept for ever)
    retention_first_pass: float = 60.0  # seconds after start; then one pass an hour
    refund_upstream_rejections: bool = True
    smpp: SmppServerConfig = field(default_factory=SmppServerConfig)
    http: HttpApiConfig = field(default_factory=HttpApiConfig)
    submit: SubmitSettings = field(default_factory=SubmitSettings)
    login: LoginGuardConfig = field(default_factory=LoginGuardConfig)
    inbound: InboundSettings = field(default_factory=InboundSettings)  # MO


@dataclass(frozen=True)
class Flag:
    """A setting's command-line option. `help` may name `{default}` (the setting's
    default as shown) and `{file}` (the default database URL's file)."""
    option: str
    help: str
    metavar: str | None = None
    switch: bool = False  # given: true; never false (the option takes no value)


# The command-line options of settings, in --help's order (`--database` is every
# command's; the rest are `serve`'s).
FLAGS: dict[str, Flag] = {
    "database_url": Flag("--database", "sqlite:///path.db (default ./{file}) or "
                         "postgresql://user@host/db; env SMSGATE_DATABASE_URL", "URL"),
    "smpp_port": Flag("--smpp-port", "SMPP port (default {default})", "N"),
    "http_port": Flag("--http-port", "HTTP port (default {default})", "N"),
    "admin_port": Flag("--admin-port", "admin port (default {default})", "N"),
    "smpp_tls_port": Flag("--smpp-tls-port",
                          "also serve SMPP over TLS on this port (default off)", "N"),
    "tls_cert": Flag("--tls-cert", "PEM certificate for --smpp-tls-port", "FILE"),
    "tls_key": Flag("--tls-key", "PEM private key for --tls-cert", "FILE"),
    "host": Flag("--host", "listen address (default {default})", "ADDR"),
    "node_id": Flag("--node-id", "this node's name (default hostname)", "NAME"),
    "log_level": Flag("--log-level", "DEBUG, INFO, WARNING (default {default})"),
    "retention_days": Flag("--retention-days", "purge history older than N days in the "
                           "background (default {default}; 0 keeps everything)", "N"),
    "log_format": Flag("--log-format", "log lines on stderr: text, or one JSON object per"
                       " line (default {default})", "{text,json}"),
    "http.callbacks.allow_private": Flag(
        "--callbacks-allow-private",
        "let dlrurl callbacks reach loopback/private/link-local addresses", switch=True),
}

# One line per setting for the table in docs/operations.md (what it is, its unit).
DESCRIPTIONS: dict[str, str] = {
    "database_url": "`sqlite:///path.db` or `postgresql://user@host/db`; every command",
    "host": "address the SMPP, SMPP TLS, HTTP and admin ports listen on",
    "smpp_port": "SMPP 3.4 port; 0 picks a free one (printed at start)",
    "http_port": "HTTP API port (`/websmpp`, `/metrics`, `/health`); 0 picks a free one",
    "admin_port": "admin API and dashboard port (SPEC §10)",
    "smpp_tls_port": "SMPP over TLS on this port too; unset: off, 0: a free one",
    "tls_cert": "PEM certificate chain of the SMPP TLS port",
    "tls_key": "PEM private key of `tls_cert` (empty: it is in `tls_cert`)",
    "node_id": "this node's name (cluster, logs); defaults to the host name",
    "log_level": "lowest level of the log lines on stderr",
    "log_format": "log lines as text, or one JSON object per line",
    "receipt_expiry_hours": "receipts and MO wait this long for a receiver session",
    "retention_days": "history older than this many days is purged in the background"
                      " (0: kept)",
    "retention_first_pass": "seconds after start before the first purge; then hourly",
    "refund_upstream_rejections": "refund a message the upstream rejects",
    "smpp.system_id": "our system_id in bind responses",
    "smpp.max_pdu_size": "largest PDU accepted, bytes",
    "smpp.password_max": "longest bind password accepted (SMPP 3.4 says 8)",
    "smpp.window": "our unanswered deliver_sm per session",
    "smpp.max_pending": "customer's unanswered requests before ESME_RMSGQFUL",
    "smpp.bind_timeout": "seconds from connect to bound, else dropped (0: off)",
    "smpp.enquire_link_interval": "seconds of silence before we send enquire_link",
    "smpp.inactivity_timeout": "seconds of silence before we unbind",
    "smpp.response_timeout": "seconds our deliver_sm / enquire_link / unbind may wait",
    "smpp.tls_handshake_timeout": "seconds a TLS client has to finish its handshake",
    "smpp.max_pdus_before_bind": "PDUs before bound, then the connection closes"
                                 " (0: no limit)",
    "smpp.max_protocol_errors": "protocol errors per session, then it closes (0: no limit)",
    "smpp.log_errors_per_minute": "protocol-error log lines per session; the rest counted",
    "smpp.write_high_water": "bytes the peer has not read: stop reading its requests",
    "smpp.max_write_buffer": "bytes the peer has not read: abort the connection",
    "smpp.receipt_backlog": "receipts and MO waiting for a window slot, per session",
    "smpp.login_backoff_delay": "seconds before a bind refused by the login back-off is"
                                " answered",
    "smpp.caps.max_per_ip": "SMPP connections from one IP at once (plain and TLS)",
    "smpp.caps.max_total": "SMPP connections at once (plain and TLS)",
    "http.max_get_destinations": "numbers in one GET submit",
    "http.max_post_destinations": "numbers in one POST submit",
    "http.max_body": "largest request body, bytes",
    "http.status_requires_auth": "status queries must give user/pass (SPEC §3.2)",
    "http.anonymous_status_rate": "credential-less status queries per second per IP"
                                  " (0: no limit)",
    "http.header_timeout": "seconds from a request head's first byte to its end",
    "http.keepalive_timeout": "seconds an idle connection stays open",
    "http.body_timeout": "seconds to receive a POST body",
    "http.write_timeout": "seconds a client may take to read an answer",
    "http.max_line_size": "longest request line, bytes",
    "http.max_field_size": "longest header line, bytes",
    "http.max_headers": "headers in one request",
    "http.metrics": "serve `GET /metrics` (Prometheus) on the HTTP port",
    "http.connections.max_per_ip": "HTTP connections from one IP at once",
    "http.connections.max_total": "HTTP connections at once",
    "http.callbacks.workers": "dlrurl / mo-url requests in flight at once",
    "http.callbacks.max_in_memory": "callbacks queued or in flight; the rest wait in the"
                                    " store",
    "http.callbacks.page": "callbacks taken from the store at once",
    "http.callbacks.poll": "seconds between looks for due callbacks in the store",
    "http.callbacks.timeout": "seconds per callback attempt",
    "http.callbacks.backoff": "seconds between attempts; then every last one",
    "http.callbacks.max_age": "seconds after its status a callback is given up",
    "http.callbacks.allow_private": "callbacks may reach loopback/private/link-local"
                                    " addresses",
    "http.callbacks.max_answer": "bytes of a customer's answer read",
    "submit.default_validity": "seconds a message stays valid when none is asked",
    "submit.max_validity": "longest validity accepted, seconds",
    "submit.max_parts_per_request": "destinations x parts in one request (HTTP10)",
    "submit.max_paced_backlog": "seconds of an account's tps one paced HTTP request may"
                                " queue",
    "login.max_failures": "failed logins per IP and per system_id before the back-off",
    "login.window": "seconds in which failed logins are counted",
    "login.backoff": "seconds an IP or system_id is then refused unchecked",
    "login.max_tracked": "IPs and system_ids remembered at once",
    "inbound.join_timeout": "seconds a concatenated MO waits for its parts",
    "inbound.numbers_reload": "seconds between reloads of the numbers table",
}


@dataclass(frozen=True)
class Setting:
    name: str  # dotted: "smpp.caps.max_per_ip"
    hint: Any  # its type, Annotated metadata kept
    spec: dataclasses.Field  # the dataclass field that holds its default

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace(".", "__")

    @property
    def toml(self) -> str:
        table, _, key = self.name.rpartition(".")
        return f"[{table}] {key}" if table else key

    @property
    def flag(self) -> Flag | None:
        return FLAGS.get(self.name)

    @property
    def default(self) -> Any:
        return _default_of(self.spec)


def _default_of(spec: dataclasses.Field) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    return spec.default_factory()  # type: ignore[misc]


def _walk(cls: type, prefix: str = "") -> Iterator[Setting]:
    hints = typing.get_type_hints(cls, include_extras=True)
    for spec in dataclasses.fields(cls):
        hint = hints[spec.name]
        if dataclasses.is_dataclass(hint):  # a table of settings
            yield from _walk(hint, f"{prefix}{spec.name}.")
        else:
            yield Setting(prefix + spec.name, hint, spec)


@functools.cache
def settings() -> dict[str, Setting]:
    """Every setting by its dotted name, in the order of the dataclasses."""
    return {s.name: s for s in _walk(Settings)}


@functools.cache
def _tables() -> frozenset[str]:
    """The dotted names of the tables: "smpp", "smpp.caps", "http", ..."""
    return frozenset(".".join(parts[:n]) for parts in (s.split(".") for s in settings())
                     for n in range(1, len(parts)))


# -- checking values ---------------------------------------------------------------------

def _typed(value: Any, hint: Any, name: str, source: str) -> Any:
    """`value` (as TOML gives it) as `hint`, or a one-line ConfigError."""
    base, bounds = _unannotated(hint)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arm in args:
            if arm is not type(None):
                try:
                    return _typed(value, arm, name, source)
                except ConfigError:
                    pass
    elif origin is Literal:
        for choice in args:
            if isinstance(value, str) and value.lower() == str(choice).lower():
                return choice
    elif base is bool:
        if isinstance(value, bool):
            return value
    elif base in (int, float):
        if isinstance(value, int | float) and not isinstance(value, bool) and \
                (base is float or isinstance(value, int)) and math.isfinite(value):
            return _bounded(base(value), bounds, name, source, value)
    elif base is str:
        if isinstance(value, str):
            return value
    elif origin is tuple and isinstance(value, list | tuple):
        return tuple(_typed(item, args[0], f"{name}[{n}]", source)
                     for n, item in enumerate(value))
    raise ConfigError(f"{source}: {name} must be {type_name(hint)}, not {value!r}")


def _unannotated(hint: Any) -> tuple[Any, Between]:
    bounds = Between(0, math.inf)  # no setting is a negative number
    if typing.get_origin(hint) is Annotated:
        bounds = next((m for m in hint.__metadata__ if isinstance(m, Between)), bounds)
        hint = typing.get_args(hint)[0]
    return hint, bounds


def _bounded(number: float, bounds: Between, name: str, source: str, given: Any) -> Any:
    if bounds.low <= number <= bounds.high:
        return number
    if bounds.high == math.inf:
        raise ConfigError(f"{source}: {name} must not be negative, not {given!r}")
    raise ConfigError(f"{source}: {name} must be {bounds.low:g} to {bounds.high:g},"
                      f" not {given!r}")


def type_name(hint: Any) -> str:
    base, bounds = _unannotated(hint)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return " or ".join(map(str, args))
    if origin is tuple:
        return f"a list of {type_name(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if base is int and bounds.high == 65535:
        return "a port number"
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(base, str(base))


TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _from_text(text: str, hint: Any) -> Any:
    """A value of the environment or the command line (a string) as TOML would give it,
    for `_typed` to check: what does not parse stays a string, and `_typed` refuses it."""
    base = _unannotated(hint)[0]
    origin, args = typing.get_origin(base), typing.get_args(base)
    word = text.strip()
    if origin in (typing.Union, types.UnionType):
        if not word:
            return None
        return _from_text(text, next(a for a in args if a is not type(None)))
    if base is bool:
        lower = word.lower()
        return True if lower in TRUE else False if lower in FALSE else text
    if base in (int, float):
        try:
            return int(word) if base is int else float(word)
        except ValueError:
            return text
    if origin is tuple:
        items = word.removeprefix("[").removesuffix("]").split(",")
        return [_from_text(item, args[0]) for item in items if item.strip()]
    return text


# -- loading -----------------------------------------------------------------------------

@dataclass
class Loaded:
    settings: Settings
    sources: dict[str, str]  # setting name -> DEFAULT, the file, "environment X", "--opt"
    warnings: list[str] = field(default_factory=list)


def load(config_file: str | None = None, cli: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Loaded:
    """The settings of defaults < `config_file` < `environ` (default: os.environ) <
    `cli` (setting name -> the option's text, or True for a switch given)."""
    environ = os.environ if environ is None else environ
    loaded = Loaded(Settings(), dict.fromkeys(settings(), DEFAULT))
    if config_file:
        for name, value in _toml_values(config_file):
            _assign(loaded, name, _typed(value, settings()[name].hint, name, config_file),
                    config_file)
    for setting in settings().values():
        if setting.env in environ:
            source = f"environment {setting.env}"
            _assign(loaded, setting.name, _checked_text(environ[setting.env], setting,
                                                        source), source)
    loaded.warnings += _near_misses(environ)
    for name, given in (cli or {}).items():
        setting = settings()[name]
        flag = setting.flag
        source = flag.option if flag else f"--{name}"
        value = given if isinstance(given, bool) else _checked_text(given, setting, source)
        _assign(loaded, name, value, source)
    return loaded


def _checked_text(text: str, setting: Setting, source: str) -> Any:
    return _typed(_from_text(text, setting.hint), setting.hint, setting.name, source)


def _assign(loaded: Loaded, name: str, value: Any, source: str) -> None:
    *tables, key = name.split(".")
    target: Any = loaded.settings
    for table in tables:
        target = getattr(target, table)
    setattr(target, key, value)
    loaded.sources[name] = source


def _toml_values(path: str) -> Iterator[tuple[str, Any]]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read the settings file: {reason}") from None
    yield from _flattened(data, path, "")


def _flattened(table: dict, path: str, prefix: str) -> Iterator[tuple[str, Any]]:
    tables = _tables()
    for key, value in table.items():
        name = prefix + key
        if name in tables:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {name} must be a table ([{name}]), not {value!r}")
            yield from _flattened(value, path, name + ".")
        elif name in settings():
            yield name, value
        else:
            raise ConfigError(f"{path}: unknown setting {name}{_hint(name, settings())}")


def _hint(name: str, known: Mapping[str, Any]) -> str:
    """' (did you mean X?)' for a near miss: `[smpp] port` is `smpp_port`, say."""
    flat = name.replace(".", "_")
    if flat in known:
        return f" (did you mean {flat}?)"
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


def _near_misses(environ: Mapping[str, str]) -> list[str]:
    """Warnings for SMSGATE_ variables that are no setting but look like one."""
    known = {s.env: s for s in settings().values()}
    return [f"environment {name} is not a setting, ignored{_hint(name, known)}"
            for name in environ
            if name.startswith(ENV_PREFIX) and name not in known and _hint(name, known)]


def resolve_database(cli_value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The database URL of a command without --config: option < env < default."""
    environ = os.environ if environ is None else environ
    setting = settings()["database_url"]
    if cli_value is not None:
        return _checked_text(cli_value, setting, setting.flag.option)  # type: ignore[union-attr]
    if setting.env in environ:
        return _checked_text(environ[setting.env], setting, f"environment {setting.env}")
    return setting.default


# -- showing -----------------------------------------------------------------------------

def shown(value: Any) -> str:
    """A value as it is written in TOML (unset: `unset`)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{int(value)}" if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return str(value)


def default_text(setting: Setting) -> str:
    """The default as the docs show it: a computed one by what computes it."""
    factory = setting.spec.default_factory
    if setting.spec.default is dataclasses.MISSING and factory is not dataclasses.MISSING:
        return f"{factory.__qualname__}()"
    return shown(setting.default)


def flag_help(setting: Setting) -> str:
    """The help of a setting's option, its default filled in from the one default."""
    from .store import sqlite_path
    assert setting.flag is not None
    default = setting.default
    file = sqlite_path(default) if isinstance(default, str) and "://" in default else ""
    return setting.flag.help.format(default=shown(default).strip('"'), file=file)


def markdown_table() -> str:
    lines = ["| setting | TOML | environment | option | type | default | description |",
             "|---|---|---|---|---|---|---|"]
    for s in settings().values():
        option = f"`{s.flag.option}`" if s.flag else ""
        kind = type_name(s.hint).removeprefix("a ").removeprefix("an ")
        cells = (f"`{s.name}`", f"`{s.toml}`", f"`{s.env}`", option, kind,
                 f"`{default_text(s)}`", DESCRIPTIONS.get(s.name, ""))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def masked(name: str, value: Any) -> Any:
    """A database URL without its password, for printing."""
    if name == "database_url" and isinstance(value, str) and "@" in value:
        from urllib.parse import urlsplit
        parts = urlsplit(value)
        if parts.password:
            return value.replace(f":{parts.password}@", ":***@", 1)
    return value


def effective_lines(loaded: Loaded) -> list[str]:
    """`name = value   # source` for every setting, as `smsgate config show` prints."""
    rows = []
    for name in settings():
        target: Any = loaded.settings
        for part in name.split("."):
            target = getattr(target, part)
        rows.append((name, shown(masked(name, target)), loaded.sources[name]))
    width = max(len(f"{n} = {v}") for n, v, _ in rows) + 2
    return [f"{f'{n} = {v}':{width}}# {s}" for n, v, s in rows]


TABLE_START = "<!-- settings table: generated by `python -m smsgate.config --update"
TABLE_END = "<!-- end of the settings table -->"


def updated_doc(text: str) -> str:
    """`text` with the table between the markers replaced by the current one."""
    start = text.index(TABLE_START)
    start = text.index("\n", start) + 1
    end = text.index(TABLE_END, start)
    return text[:start] + markdown_table() + text[end:]


def main(argv: list[str] | None = None) -> int:
    """`python -m smsgate.config` prints the table; `--update FILE` rewrites FILE's."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--update"] and len(argv) == 2:
        path = Path(argv[1])
        path.write_text(updated_doc(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    if argv:
        print("usage: python -m smsgate.config [--update FILE]", file=sys.stderr)
        return 2
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
