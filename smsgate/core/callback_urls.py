"""The URLs of the HTTP callbacks a customer gets (docs/api.md): a GET of the customer's
own URL with our query parameters after its own (kept as given; a fragment dropped).

- dlrurl, on every status change of a message: `status`, `id`, `ref`, `time`, `error`.
- a number's mo-url, for each MO (a concatenated one once, joined): `from`, `to`,
  `text` (decoded, UTF-8 in the URL), `coding` (the SMPP data_coding, decimal), `id`
  (the MO's id; a joined message's first part's), `time` (when it was received; a
  joined message's last part), `parts` (how many parts `text` joins) and `total` (how
  many the message announced: more than `parts` only for one given up incomplete).

Times are ISO 8601 UTC to the second, `2024-01-01T12:00:00Z`.
"""

from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

from .models import Message, StatusUpdate


def with_query(url: str, params: dict[str, object]) -> str:
    """`url` with `params` added after its own query parameters. ValueError (or
    TypeError) for a URL that cannot be read."""
    parts = urlsplit(url)
    ours = urlencode(params)
    query = f"{parts.query}&{ours}" if parts.query else ours
    return urlunsplit(parts._replace(query=query, fragment=""))


def iso_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dlr_url(message: Message, update: StatusUpdate) -> str:
    """The message's dlrurl, for this status change."""
    return with_query(message.dlr_url, {
        "status": update.status, "id": message.id, "ref": message.ref,
        "time": iso_time(update.at), "error": update.error_code})


def mo_url(base: str, *, source: str, dest: str, text: str, coding: int, mo_id: int,
           at: float, parts: int = 1, total: int = 1) -> str:
    """A number's mo-url, for one MO (or one concatenated MO, joined)."""
    return with_query(base, {
        "from": source, "to": dest, "text": text, "coding": coding, "id": mo_id,
        "time": iso_time(at), "parts": parts, "total": total})
