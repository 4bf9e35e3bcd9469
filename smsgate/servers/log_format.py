"""How `serve` writes its log: one line per event on stderr, as text or as JSON (SPEC §10).

JSON is one object per line: `ts` (UTC, ISO 8601 with milliseconds), `level`,
`logger`, `message`, `node`, and where the event concerns them `account` (system_id),
`session` (the SMPP peer's address:port) and `message_id`, plus `exc` for a traceback.
Those context fields ride on the record as `extra=` (or through `SessionLog` for an SMPP
connection), so the text format keeps the lines it always had.

The standard library's logging with a small formatter, not a structured-logging
library: every logger of ours, aiohttp's and asyncio's goes through the same handler,
and log_redaction's filter rewrites each record before any formatter sees it, whatever
the format. Nothing of a record other than the fields above is written, so an `extra`
added for some other purpose never leaks into the log by accident.
"""

import json
import logging
import sys
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("account", "session", "message_id")


class JsonFormatter(logging.Formatter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name,
            "message": record.getMessage(), "node": self.node}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value not in (None, ""):
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        # json.dumps escapes newlines: a traceback stays on its event's one line
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, log_format: str, node: str, text_names_node: bool = False) -> None:
    """Send every record at `level` and above to stderr in `log_format`. A worker of
    `serve --workers` names its node in text lines too (the workers share stderr)."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(node) if log_format == "json"
                         else logging.Formatter(text_format(node, text_names_node)))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def text_format(node: str, names_node: bool) -> str:
    if not names_node:
        return TEXT_FORMAT
    return TEXT_FORMAT.replace(" %(name)s", " [" + node.replace("%", "%%") + "] %(name)s")


class SessionLog(logging.LoggerAdapter):
    """A logger for one SMPP connection: each record carries its session and, once it
    is bound, its account. The record's own `extra` (a message_id) is kept too."""

    def __init__(self, logger: logging.Logger, connection: Any) -> None:
        super().__init__(logger, {})
        # Weakly: a strong one would make every connection a reference cycle, freed
        # only by the cyclic GC, which `serve` runs seldom (app.py): the abuse tests'
        # fuzzed connections took the server from 122 to 162 MiB.
        self._connection = weakref.ref(connection)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        connection = self._connection()
        if connection is None:
            return msg, kwargs
        account = connection.account
        context: dict[str, Any] = {"session": connection.peer}
        if account is not None:
            context["account"] = account.system_id
        extra: Mapping[str, Any] | None = kwargs.get("extra")
        kwargs["extra"] = {**context, **extra} if extra else context
        return msg, kwargs
