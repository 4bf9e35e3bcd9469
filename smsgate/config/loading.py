"""Loading: defaults < TOML file < environment < command line, each value checked
against its setting's type (`typed`), with a one-line `ConfigError` naming the setting
and the value's source."""

import difflib
import math
import os
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from .model import DEFAULT, ENV_PREFIX, Between, ConfigError, Setting, Settings, settings, tables

# -- checking values ---------------------------------------------------------------------

def typed(value: Any, hint: Any, name: str, source: str) -> Any:
    """`value` (as TOML gives it) as `hint`, or a one-line ConfigError."""
    base, bounds = unannotated(hint)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin in (typing.Union, types.UnionType):  # settings have X | None only
        if value is None and type(None) in args:
            return None
        arm, = (a for a in args if a is not type(None))
        return typed(value, arm, name, source)
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
        return tuple(typed(item, args[0], f"{name}[{n}]", source)
                     for n, item in enumerate(value))
    raise ConfigError(f"{source}: {name} must be {type_name(hint)}, not {value!r}")


def unannotated(hint: Any) -> tuple[Any, Between]:
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
    base, bounds = unannotated(hint)
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


def from_text(text: str, hint: Any) -> Any:
    """A value of the environment or the command line (a string) as TOML would give it,
    for `_typed` to check: what does not parse stays a string, and `_typed` refuses it."""
    base = unannotated(hint)[0]
    origin, args = typing.get_origin(base), typing.get_args(base)
    word = text.strip()
    if origin in (typing.Union, types.UnionType):
        if not word:
            return None
        return from_text(text, next(a for a in args if a is not type(None)))
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
        return [from_text(item, args[0]) for item in items if item.strip()]
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
            _assign(loaded, name, typed(value, settings()[name].hint, name, config_file),
                    config_file)
    for setting in settings().values():
        if setting.env in environ:
            source = f"environment {setting.env}"
            _assign(loaded, setting.name, checked_text(environ[setting.env], setting,
                                                        source), source)
    loaded.warnings += _near_misses(environ)
    for name, given in (cli or {}).items():
        setting = settings()[name]
        flag = setting.flag
        source = flag.option if flag else f"--{name}"
        value = given if isinstance(given, bool) else checked_text(given, setting, source)
        _assign(loaded, name, value, source)
    return loaded


def checked_text(text: str, setting: Setting, source: str) -> Any:
    return typed(from_text(text, setting.hint), setting.hint, setting.name, source)


def _assign(loaded: Loaded, name: str, value: Any, source: str) -> None:
    *path, key = name.split(".")
    target: Any = loaded.settings
    for table in path:
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
    known_tables = tables()
    for key, value in table.items():
        name = prefix + key
        if name in known_tables:
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
        return checked_text(cli_value, setting, setting.flag.option)  # type: ignore[union-attr]
    if setting.env in environ:
        return checked_text(environ[setting.env], setting, f"environment {setting.env}")
    return setting.default
