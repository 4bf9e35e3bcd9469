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
handful of types settings have.

- `model.py`: `Settings`, each setting's option (`FLAGS`) and description, and
  `settings()`, the flat list of every setting walked from the dataclasses;
- `loading.py`: `load()`, the layers and the type checks (`typed`);
- `render.py`: the Markdown table (docs/operations.md holds it between markers;
  `smsgate config table` prints it, `python -m smsgate.config --update FILE` rewrites
  it), the options' help, and `smsgate config show`'s lines (each value in effect and
  its source).
"""

from .loading import Loaded, load, resolve_database, type_name
from .model import (
    DEFAULT,
    DESCRIPTIONS,
    ENV_PREFIX,
    FLAGS,
    ConfigError,
    Flag,
    Setting,
    Settings,
    settings,
)
from .render import effective_lines, flag_help, markdown_table, updated_doc

__all__ = ["DEFAULT", "DESCRIPTIONS", "ENV_PREFIX", "FLAGS", "ConfigError", "Flag", "Loaded",
           "Setting", "Settings", "effective_lines", "flag_help", "load", "markdown_table",
           "resolve_database", "settings", "type_name", "updated_doc"]
