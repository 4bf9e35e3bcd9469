"""servers/log_format.py: one JSON object per line, context fields only where given,
a traceback kept on its event's line, and the redaction applied before formatting."""

import json
import logging
import sys

from smsgate.servers.log_format import JsonFormatter, text_format
from smsgate.servers.log_redaction import REDACTOR


def record(message: str, *args, exc: bool = False, **extra) -> logging.LogRecord:
    made = logging.LogRecord("smsgate.test", logging.ERROR, __file__, 1, message, args,
                             exc_info=None)
    if exc:
        try:
            raise ValueError("bad request b'GET /x?pass=hunter2 HTTP/1.1'")
        except ValueError:
            made.exc_info = sys.exc_info()
    made.__dict__.update(extra)
    return made


def formatted(made: logging.LogRecord) -> dict:
    assert REDACTOR.filter(made)
    line = JsonFormatter("n1").format(made)
    assert "\n" not in line
    return json.loads(line)


def test_fields_and_context():
    entry = formatted(record("stored %s", 7, account="acme", message_id=7, session="",
                             other="not logged"))
    assert entry.keys() == {"ts", "level", "logger", "message", "node", "account",
                            "message_id"}
    assert (entry["level"], entry["logger"], entry["message"], entry["node"]) == \
        ("ERROR", "smsgate.test", "stored 7", "n1")
    assert entry["ts"].endswith("+00:00")


def test_a_traceback_stays_on_the_line_without_the_secret():
    entry = formatted(record("request %s failed", "/x?user=a&password=hunter2", exc=True))
    assert entry["message"] == "request /x?user=a&password=*** failed"
    assert "ValueError" in entry["exc"] and "hunter2" not in json.dumps(entry)


def test_a_worker_names_its_node_in_text_lines():
    line = logging.Formatter(text_format("gw1-2", names_node=True)).format(record("up"))
    assert line.endswith(" ERROR [gw1-2] smsgate.test: up")
    plain = logging.Formatter(text_format("gw1", names_node=False)).format(record("up"))
    assert plain.endswith(" ERROR smsgate.test: up")
    odd = logging.Formatter(text_format("a%b", names_node=True)).format(record("x"))
    assert odd.endswith("[a%b] smsgate.test: x")
