"""The settings: `Settings` and its tables (the dataclasses of core/ and servers/, whose
defaults are the only defaults), the command-line option of each setting that has one,
and a line of description each. `settings()` walks the dataclasses into one flat
list of `Setting`s, by dotted name."""

import dataclasses
import functools
import socket
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from ..core.inbound import InboundSettings
from ..core.login_guard import LoginGuardConfig
from ..core.submit import SubmitSettings
from ..servers.http_api import HttpApiConfig
from ..servers.smpp_server import SmppServerConfig

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
    """Every setting of `serve`: these and the tables' (what each is: DESCRIPTIONS)."""
    database_url: str = "sqlite:///smsgate.db"
    host: str = "127.0.0.1"
    smpp_port: Port = 8899
    http_port: Port = 8080
    admin_port: Port = 8081
    smpp_tls_port: Port | None = None
    tls_cert: str = ""
    tls_key: str = ""
    node_id: str = field(default_factory=socket.gethostname)
    # processes sharing the ports, each a node (cluster/workers.py); PostgreSQL only
    workers: Annotated[int, Between(1, 64)] = 1
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # servers/log_format.py
    receipt_expiry_hours: float = 72.0
    receipt_park_seconds: float = 10.0  # core/correlation.py: the park
    retention_days: float = 90.0
    retention_first_pass: float = 60.0
    refund_upstream_rejections: bool = True
    dispatch_max_queued: int = 100_000
    commit_gather_ms: Annotated[float, Between(0, 100)] = 2.0  # store/writer.py
    commit_gather_below: Annotated[int, Between(1, 100_000)] = 32
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
    "workers": Flag("--workers", "worker processes sharing the ports, each a cluster node "
                    "NAME-1..N (PostgreSQL only; default {default})", "N"),
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
    "workers": "processes sharing the listening ports, each the cluster node"
               " `node_id-1`..`-N` (PostgreSQL only): one core each",
    "log_level": "lowest level of the log lines on stderr",
    "log_format": "log lines as text, or one JSON object per line",
    "receipt_expiry_hours": "receipts and MO wait this long for a receiver session",
    "receipt_park_seconds": "an upstream's receipt no sent message explains yet waits this"
                            " long for one, then a last look in the store",
    "retention_days": "history older than this many days is purged in the background"
                      " (0: kept)",
    "retention_first_pass": "seconds after start before the first purge; then hourly",
    "refund_upstream_rejections": "refund a message the upstream rejects",
    "dispatch_max_queued": "messages waiting in memory per connector; past it they wait"
                           " in the store only (a long upstream outage)",
    "commit_gather_ms": "under steady load, a group commit that would carry fewer than"
                        " `commit_gather_below` items waits this long for more (0: never)",
    "commit_gather_below": "items from which a group commit starts at once",
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
    "smpp.socket_send_buffer": "kernel send buffer (SO_SNDBUF) per connection, bytes"
                               " (0: the kernel's autotuning)",
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
def tables() -> frozenset[str]:
    """The dotted names of the tables: "smpp", "smpp.caps", "http", ..."""
    return frozenset(".".join(parts[:n]) for parts in (s.split(".") for s in settings())
                     for n in range(1, len(parts)))
