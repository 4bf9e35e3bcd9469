"""No password or token in any log line (SPEC §10; issue 8, item 9).

Credentials travel in URLs and form bodies (`pass=`, `password=`), and a library that
logs a request line or an exception about it writes them out: aiohttp logged the whole
100 KB request line of a too-long GET, `pass=` included. `SecretRedactor` is a logging
filter that rewrites a record's message, its traceback text and its stack text with
the value of every secret-looking parameter replaced by `***`, before any handler
formats it.

In `key=value` and `key%3Dvalue` (an encoded URL inside a URL) a key counts as secret
when its name contains pass, pwd, token, secret, key or auth (`pass`, `password`,
`access_token`, `api_key`, `password_hash` in a repr, ...): redacting a harmless value
by mistake costs nothing, missing a secret costs a leak. In `key: value` and `'key':
'value'` (headers, dict reprs) only well-known names count (Authorization, password,
token, ...), so that an exception such as "KeyError: 'x'" keeps its detail.

`install()` puts one filter on every handler of the root logger (what `serve` logs
through) and on the loggers that may carry request data: aiohttp's, asyncio's and ours
(a filter on a logger changes the record itself, so whatever handler sees it later, a
test's capture included, sees the redacted text).
"""

import logging
import re

_NAME = r"[\w.-]*(?:pass|pwd|token|secret|key|auth)[\w.-]*"
_QUOTED = "'[^']*'|\"[^\"]*\""
_PLAIN = r"""[^&\s"'\\<>]"""
# key=value in a query, a form body or a repr; an unquoted value stops at the next
# parameter, a quote, a space or a backslash (request lines are often logged as bytes
# reprs: b'...\r\n').
_PARAMETER = re.compile(rf"(?i)({_NAME}=)(?:{_QUOTED}|{_PLAIN}+)")
# the same percent-encoded inside another URL's parameter: %3D is '=', %26 is '&'
_NESTED = re.compile(rf"(?i)({_NAME}%3D)(?:(?!%26){_PLAIN})+")
# 'key': 'value' and headers (Authorization: Basic x): only well-known names here, so
# that "KeyError: 'x'" keeps its detail.
_HEADER = r"(?:pass(?:word|wd)?|pwd|token|secret|api[-_]?key|access[-_]?token|authorization" \
    r"|proxy-authorization|x-auth-token|x-api-key)"
_MAPPING = re.compile(rf"""(?i)(?<![\w-])(['"]?{_HEADER}['"]?\s*:\s*)(?:{_QUOTED}|[^\r\n'",}}]+)""")
MASK = "***"

AIOHTTP_LOGGERS = ("aiohttp.access", "aiohttp.client", "aiohttp.internal", "aiohttp.server",
                   "aiohttp.web", "aiohttp.websocket")


def redact(text: str) -> str:
    """`text` with the values of secret-looking parameters replaced by ***."""
    if "=" in text:
        text = _PARAMETER.sub(rf"\g<1>{MASK}", text)
    if "%3D" in text or "%3d" in text:
        text = _NESTED.sub(rf"\g<1>{MASK}", text)
    if ":" in text:
        text = _MAPPING.sub(rf"\g<1>{MASK}", text)
    return text


class SecretRedactor(logging.Filter):
    """Rewrites each record in place; never drops one."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


REDACTOR = SecretRedactor()


def install() -> None:
    """Put the redactor on the root logger's handlers and on the loggers that may log
    request data (idempotent: call it once per App or per `serve`)."""
    names = [*AIOHTTP_LOGGERS, "asyncio", "smsgate"]
    names += [name for name in logging.root.manager.loggerDict if name.startswith("smsgate.")]
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in names]
    targets += logging.root.handlers
    for target in targets:
        if REDACTOR not in target.filters:
            target.addFilter(REDACTOR)
