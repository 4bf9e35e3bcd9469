"""Typed settings of the upstream connectors (SPEC §8): one dataclass per type.

A connector row keeps its settings as JSON (`connectors.config`). `settings_for(type,
config)` turns that JSON, or the strings of the CLI's `--option KEY=VALUE`, into the
type's dataclass: every value checked and normalized, defaults filled in, an unknown
key refused (a typo would otherwise be ignored in silence until traffic fails).
`to_config()` gives the JSON back with every setting spelled out, and
`from_config(s.to_config()) == s`. Direct construction checks the same way.

Errors are `SettingsError`, one line naming the setting: the CLI renders names as its
options (`--system-id`), everyone else as the JSON keys (`system_id`).
"""

import contextlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from ..core.models import ACCEPTD, DELIVRD, FINAL_STATUSES, REJECTD, UNDELIV
from .templates import PLACEHOLDERS, TemplateError, placeholders, render

MASK = "********"
# SMPP 3.4 allows 8 password characters; many SMSCs issue longer ones (as ours accepts
# up to 64, SPEC §2). The client sends the whole password whatever its length.
PASSWORD_MAX = 64
TONS = frozenset(range(7))  # SMPP 3.4 §5.2.5
NPIS = frozenset({0, 1, 3, 4, 6, 8, 9, 10, 14, 18})  # SMPP 3.4 §5.2.6
DLR_STATUSES = frozenset({ACCEPTD, *FINAL_STATUSES})
# An HTTP provider's report words, upper-cased, -> our statuses. Our own words map to
# themselves; the numbers are Kannel's DLR types (1 delivered, 2 failed, 4 queued at the
# SMSC, 8 delivered to the SMSC, 16 rejected), which many providers reuse.
DEFAULT_DLR_STATUS = {**{s: s for s in sorted(DLR_STATUSES)},
                      "1": DELIVRD, "2": UNDELIV, "4": ACCEPTD, "8": ACCEPTD, "16": REJECTD}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,128}")
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "content-type"})
# Names under which URLs, bodies and headers usually carry credentials: masked by show.
_SECRET_NAME = r"[\w-]*(?:pass|pwd|secret|token|key|auth|sig|cookie)[\w-]*"
_SECRET_PAIR = re.compile(rf"(?i)(\b{_SECRET_NAME}=)([^&{{\s]+)")
_SECRET_JSON = re.compile(rf'(?i)("{_SECRET_NAME}"\s*:\s*")([^"{{]+)')
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)([^/@\s]+)(@)")


class Ref(str):
    """Another setting's name inside an error message: rendered like the key."""


class SettingsError(ValueError):
    """A bad setting: `key`, then the problem (whose parts may name other settings)."""

    def __init__(self, key: str, *problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(self.render())

    def render(self, name: Callable[[str], str] = str) -> str:
        text = "".join(name(p) if isinstance(p, Ref) else p for p in self.problem)
        return f"{name(self.key)} {text}"


def check_connector_name(name: str) -> str:
    """Connector names go into URLs (`/connectors/NAME/dlr`) and logs: 1-32 letters,
    digits, `_ . -`, starting with a letter or digit."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"connector name {name!r} must be 1 to 32 letters, digits, _ . - "
                         "(starting with a letter or digit)")
    return name


# -- checks: (key, value) -> the normalized value, or SettingsError ----------------------

Check = Callable[[str, Any], Any]


def _integer(low: int, high: int) -> Check:
    def check(key: str, value: Any) -> int:
        number = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, int) \
                or not low <= number <= high:
            raise SettingsError(key, f"must be an integer from {low} to {high}, not {value!r}")
        return number
    return check


def _number(low: float, high: float) -> Check:
    def check(key: str, value: Any) -> float:
        number = None
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            with contextlib.suppress(ValueError, OverflowError):
                number = float(value)
        if number is None or not math.isfinite(number) or not low <= number <= high:
            raise SettingsError(key, f"must be a number from {low:g} to {high:g}, "
                                f"not {value!r}")
        return number
    return check


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise SettingsError(key, f"must be true or false, not {value!r}")


def _one_of(*choices: str) -> Check:
    """One of `choices`, in any case; normalized to the choice's spelling."""
    def check(key: str, value: Any) -> str:
        for choice in choices:
            if isinstance(value, str) and value.strip().lower() == choice.lower():
                return choice
        raise SettingsError(key, f"must be {' or '.join(choices)}, not {value!r}")
    return check


def _text(max_len: int, empty: bool = False) -> Check:
    """Printable ASCII (an SMPP C-Octet String) of at most `max_len` characters."""
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str) or not all(" " <= c <= "~" for c in value):
            raise SettingsError(key, f"must be printable ASCII text, not {value!r}")
        if not value and not empty:
            raise SettingsError(key, "must not be empty")
        if len(value) > max_len:
            raise SettingsError(key, f"must be at most {max_len} characters, not {len(value)}")
        return value
    return check


def _host(key: str, value: Any) -> str:
    host = _text(253)(key, value).strip()
    if not host or any(c in host for c in " /@?#"):
        raise SettingsError(key, f"must be a host name or IP address, not {value!r}")
    if host.count(":") == 1:  # IPv6 addresses have several
        raise SettingsError(key, f"{value!r} must not include the port (give it with ",
                            Ref("port"), ")")
    return host.strip("[]")


def _optional(check: Check) -> Check:
    """None (or "" from the CLI) means "not set"."""
    def optional(key: str, value: Any) -> Any:
        return None if value is None or value == "" else check(key, value)
    return optional


def _in(values: frozenset[int], what: str) -> Check:
    number = _integer(0, 255)

    def check(key: str, value: Any) -> int:
        result = number(key, value)
        if result not in values:
            allowed = ", ".join(map(str, sorted(values)))
            raise SettingsError(key, f"must be an SMPP {what} ({allowed}), not {value!r}")
        return result
    return check


def _template(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError(key, f"must be text, not {value!r}")
    try:
        placeholders(value)
    except TemplateError as exc:
        raise SettingsError(key, str(exc)) from None
    return value


def _url_template(key: str, value: Any) -> str:
    template = _template(key, value)
    head = template.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    if "{" in head:
        raise SettingsError(key, "must not have a placeholder in its host")
    example = render(template, dict.fromkeys(PLACEHOLDERS, "0"), str)
    try:
        parts = urlsplit(example)
        parts.port  # noqa: B018 -- parsing the port raises ValueError when it is bad
    except ValueError as exc:
        raise SettingsError(key, f"is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname \
            or any(c.isspace() for c in example):
        raise SettingsError(key, f"must be an http:// or https:// URL, not {value!r}")
    return template


def _regex(groups: int) -> Check:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise SettingsError(key, f"must be a regular expression, not {value!r}")
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise SettingsError(key, f"is not a regular expression: {exc}") from None
        if value and compiled.groups < groups:
            raise SettingsError(key, "needs a group ( ) around the upstream id")
        return value
    return check


def _content_type(key: str, value: Any) -> str:
    text = _text(200)(key, value)
    if "/" not in text.partition(";")[0]:
        raise SettingsError(key, f"must be a media type like application/json, not {value!r}")
    return text


def _mapping(key: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise SettingsError(key, f"must be a table of NAME = VALUE, not {value!r}")
    return value


def _headers(key: str, value: Any) -> dict[str, str]:
    headers = {}
    for name, text in _mapping(key, value).items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise SettingsError(key, f"has a bad header name {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise SettingsError(key, f"must not set {name} (the connector does)")
        if not isinstance(text, str) or any(c in text for c in "\r\n\0"):
            raise SettingsError(key, f"has a bad value for {name}")
        headers[name] = text.strip()
    return headers


def _status_map(key: str, value: Any) -> dict[str, str]:
    mapping = {}
    for word, status in _mapping(key, value).items():
        word_text = str(word).strip().upper()
        if not word_text or not isinstance(status, str) \
                or status.strip().upper() not in DLR_STATUSES:
            raise SettingsError(key, f"maps {word!r} to {status!r}: must be WORD = one of "
                                + " ".join(sorted(DLR_STATUSES)))
        mapping[word_text] = status.strip().upper()
    return mapping


def _outcomes(key: str, value: Any) -> dict[str, float]:
    weight = _number(0, 1e9)
    outcomes = {}
    for status, share in _mapping(key, value).items():
        name = str(status).strip().upper()
        if name not in FINAL_STATUSES:
            finals = " ".join(sorted(FINAL_STATUSES))
            raise SettingsError(key, f"must name final statuses ({finals}), not {status!r}")
        outcomes[name] = weight(f"{key} {name}", share)
    if not any(outcomes.values()):
        raise SettingsError(key, "needs a weight above 0")
    return outcomes


def _token(key: str, value: Any) -> str:
    """A shared secret for a URL: 16 to 128 letters, digits, `- _ . ~` (no escaping
    needed where the provider puts it), or "" for none."""
    if value == "":
        return ""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise SettingsError(key, "must be 16 to 128 letters, digits, - _ . ~ "
                            "(e.g. from `openssl rand -hex 16`)")
    return value


def _checked(check: Check, secret: bool = False) -> dict[str, Any]:
    """A field's metadata: how to check its value; whether `show` masks it."""
    return {"check": check, "secret": secret}


# -- the settings classes ------------------------------------------------------------------

class ConnectorSettings:
    """What every type's settings do: check on construction, load, dump, mask."""

    TYPE: ClassVar[str]

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = f.metadata["check"](f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self._check_together()

    def _check_together(self) -> None:
        """Rules between settings; one type's own."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """From the JSON of a connector row (or the CLI's strings): SettingsError for an
        unknown key, a missing required one or a bad value."""
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        for key in config:
            if key not in known:
                raise SettingsError(str(key), f"is not a setting of a {cls.TYPE} connector "
                                    f"(settings: {', '.join(known)})")
        for f in fields(cls):  # type: ignore[arg-type]
            if f.default is MISSING and f.default_factory is MISSING and f.name not in config:
                raise SettingsError(f.name, "is required")
        return cls(**config)

    def to_config(self) -> dict[str, Any]:
        """Every setting, as JSON values (dicts copied)."""
        return {f.name: _copy(getattr(self, f.name))
                for f in fields(self)}  # type: ignore[arg-type]

    def masked(self) -> dict[str, Any]:
        """to_config() fit to print: passwords, and credentials that URLs, bodies and
        headers seem to carry, replaced by MASK."""
        config = self.to_config()
        for f in fields(self):  # type: ignore[arg-type]
            if f.metadata["secret"] and config[f.name]:
                config[f.name] = MASK
        return config

    def summary(self) -> str:
        """One short line for `connector list`."""
        raise NotImplementedError


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def mask_secrets(text: str) -> str:
    """`text` with the values of credential-like query/form/JSON fields and a URL's
    password replaced by MASK (placeholders are left: they are not secrets)."""
    text = _URL_PASSWORD.sub(rf"\1{MASK}\3", text)
    text = _SECRET_PAIR.sub(rf"\1{MASK}", text)
    return _SECRET_JSON.sub(rf"\1{MASK}", text)


_TON = _optional(_in(TONS, "TON"))
_NPI = _optional(_in(NPIS, "NPI"))


@dataclass(frozen=True)
class SmppSettings(ConnectorSettings):
    """An SMPP 3.4 client to an upstream SMSC. `binds` counts the sessions that send
    (TRx, or Tx in tx+rx mode) across the cluster; tx+rx mode adds `rx_binds` receivers
    (one by default: many SMSCs, ours too, allow one receiver per system_id)."""

    TYPE: ClassVar[str] = "smpp"
    host: str = field(metadata=_checked(_host))
    port: int = field(metadata=_checked(_integer(1, 65535)))
    system_id: str = field(metadata=_checked(_text(15)))
    password: str = field(metadata=_checked(_text(PASSWORD_MAX, empty=True), secret=True))
    system_type: str = field(default="", metadata=_checked(_text(12, empty=True)))
    mode: str = field(default="trx", metadata=_checked(_one_of("trx", "tx+rx")))
    binds: int = field(default=1, metadata=_checked(_integer(1, 64)))
    rx_binds: int = field(default=1, metadata=_checked(_integer(0, 64)))  # 0: no receiver
    window: int = field(default=10, metadata=_checked(_integer(1, 1000)))
    # messages a second over all binds; 0 = no limit
    tps: int = field(default=0, metadata=_checked(_integer(0, 1_000_000)))
    tls: bool = field(default=False, metadata=_checked(_flag))
    # check the SMSC's certificate and name (off for a self-signed one without its CA)
    tls_verify: bool = field(default=True, metadata=_checked(_flag))
    # a PEM file of CAs to trust, on the gateway's machine; "" = the system's
    tls_ca: str = field(default="", metadata=_checked(_text(4096, empty=True)))
    id_format: str = field(default="auto", metadata=_checked(_one_of("auto", "dec", "hex")))
    # seconds: between enquire_links; to wait for any *_resp; reconnect backoff bounds
    enquire_link: float = field(default=30.0, metadata=_checked(_number(1, 3600)))
    response_timeout: float = field(default=30.0, metadata=_checked(_number(1, 600)))
    reconnect_min: float = field(default=1.0, metadata=_checked(_number(0.1, 3600)))
    reconnect_max: float = field(default=60.0, metadata=_checked(_number(0.1, 3600)))
    # None = as the message has them
    src_ton: int | None = field(default=None, metadata=_checked(_TON))
    src_npi: int | None = field(default=None, metadata=_checked(_NPI))
    dst_ton: int | None = field(default=None, metadata=_checked(_TON))
    dst_npi: int | None = field(default=None, metadata=_checked(_NPI))
    # the data_coding of GSM-7 text upstream: 0 (SMSC default alphabet) or 3 (Latin-1)
    coding_default: str = field(default="gsm", metadata=_checked(_one_of("gsm", "latin1")))

    def _check_together(self) -> None:
        for ton, npi in (("src_ton", "src_npi"), ("dst_ton", "dst_npi")):
            if (getattr(self, ton) is None) != (getattr(self, npi) is None):
                raise SettingsError(ton, "and ", Ref(npi), " go together: give both or neither")
        if self.reconnect_max < self.reconnect_min:
            raise SettingsError("reconnect_max", "must not be below ", Ref("reconnect_min"))
        if not self.tls and (self.tls_ca or not self.tls_verify):
            key = "tls_ca" if self.tls_ca else "tls_verify"
            raise SettingsError(key, "applies only with ", Ref("tls"))

    def summary(self) -> str:
        text = f"{self.system_id}@{self.host}:{self.port} {self.mode} x{self.binds}"
        if self.tls:
            text += " tls"
        return text + (f" {self.tps}/s" if self.tps else "")


@dataclass(frozen=True)
class HttpSettings(ConnectorSettings):
    """An HTTP provider: one request per message from the URL (and body) templates;
    success = 2xx and `ok` matches the body ("" = any body); the upstream id = the
    first group of `id` ("" = none: reports then carry our id, given as {id})."""

    TYPE: ClassVar[str] = "http"
    url: str = field(metadata=_checked(_url_template))
    method: str = field(default="GET", metadata=_checked(_one_of("GET", "POST")))
    body: str = field(default="", metadata=_checked(_template))
    content_type: str = field(default="application/x-www-form-urlencoded",
                              metadata=_checked(_content_type))
    headers: dict = field(default_factory=dict, metadata=_checked(_headers))
    ok: str = field(default="", metadata=_checked(_regex(0)))
    id: str = field(default="", metadata=_checked(_regex(1)))
    tps: int = field(default=0, metadata=_checked(_integer(0, 1_000_000)))
    timeout: float = field(default=10.0, metadata=_checked(_number(0.1, 300)))
    # the provider's report words (upper case) -> our statuses
    dlr_status: dict = field(default_factory=lambda: dict(DEFAULT_DLR_STATUS),
                             metadata=_checked(_status_map))
    # requests in flight at once (the provider's own limit, or what it copes with)
    concurrency: int = field(default=10, metadata=_checked(_integer(1, 1000)))
    # the provider's delivery reports must carry token=THIS ("" = no token asked)
    dlr_token: str = field(default="", metadata=_checked(_token, secret=True))
    # this many temporary failures in a row make the connector unavailable (failover to
    # the next route) for circuit_cooldown seconds; then one request tries again
    circuit_failures: int = field(default=5, metadata=_checked(_integer(1, 1000)))
    circuit_cooldown: float = field(default=10.0, metadata=_checked(_number(0.05, 3600)))

    def _check_together(self) -> None:
        if self.body and self.method != "POST":
            raise SettingsError("body", "needs ", Ref("method"), " POST (GET sends no body)")

    def masked(self) -> dict[str, Any]:
        config = super().masked()
        config["url"] = mask_secrets(self.url)
        config["body"] = mask_secrets(self.body)
        config["headers"] = {name: MASK if re.fullmatch(_SECRET_NAME, name, re.I) else text
                             for name, text in self.headers.items()}
        return config

    def summary(self) -> str:
        return f"{self.method} {mask_secrets(self.url)}" + (f" {self.tps}/s" if self.tps else "")


_LATENCY = _optional(_number(0, 3_600_000))


@dataclass(frozen=True)
class SimulatorSettings(ConnectorSettings):
    """The built-in SMSC simulator. Latencies in ms, each None = its default (50 and
    500) moved as far as the other one given needs: `max_latency_ms=5` alone means
    5-5 ms, as it always has; `outcomes` weighs the final statuses; `accepted` sends an
    intermediate ACCEPTD first."""

    TYPE: ClassVar[str] = "simulator"
    min_latency_ms: float | None = field(default=None, metadata=_checked(_LATENCY))
    max_latency_ms: float | None = field(default=None, metadata=_checked(_LATENCY))
    outcomes: dict = field(default_factory=lambda: {DELIVRD: 1.0}, metadata=_checked(_outcomes))
    accepted: bool = field(default=False, metadata=_checked(_flag))

    def _check_together(self) -> None:
        low, high = self.min_latency_ms, self.max_latency_ms
        if low is not None and high is not None and high < low:
            raise SettingsError("max_latency_ms", "must not be below ", Ref("min_latency_ms"))

    @property
    def latency_bounds(self) -> tuple[float, float]:
        """(min, max) in seconds."""
        high = self.max_latency_ms
        low = self.min_latency_ms if self.min_latency_ms is not None else \
            min(50.0, high if high is not None else 50.0)
        if high is None:
            high = max(500.0, low)
        return low / 1000, high / 1000

    def summary(self) -> str:
        low, high = self.latency_bounds
        mix = " ".join(f"{s}={w:g}" for s, w in self.outcomes.items())
        return f"{low * 1000:g}-{high * 1000:g} ms {mix}"


SETTINGS: dict[str, type[ConnectorSettings]] = {
    cls.TYPE: cls for cls in (SmppSettings, HttpSettings, SimulatorSettings)}
CONNECTOR_TYPES = tuple(SETTINGS)


def settings_for(type_: str, config: Mapping[str, Any]) -> ConnectorSettings:
    """The settings of a connector of `type_` from its JSON config."""
    cls = SETTINGS.get(type_)
    if cls is None:
        raise SettingsError("type", f"must be one of {', '.join(CONNECTOR_TYPES)}, "
                            f"not {type_!r}")
    return cls.from_config(config)
