"""The HTTP connector's URL and body templates (SPEC §8).

A template is text with placeholders in braces, exactly these: `{to} {from} {text}
{text_hex_ucs2} {coding} {id} {parts}`; `{{` and `}}` stand for literal braces. Anything
else in braces (another name, `{}`, a format spec `{to:>5}`, a conversion `{to!r}`) is
refused when the connector is added, not when the first message goes out.

Values are escaped for where they stand: URL-encoded in a URL and in a form body,
JSON-escaped in a JSON body, as they are in any other body.
"""

import json
import string
from collections.abc import Callable, Mapping
from urllib.parse import quote

PLACEHOLDERS = ("to", "from", "text", "text_hex_ucs2", "coding", "id", "parts")

Escape = Callable[[str], str]


class TemplateError(ValueError):
    """A template that cannot be rendered: the reason in one line."""


def placeholders(template: str) -> tuple[str, ...]:
    """The placeholder names of `template`, in order; TemplateError for a stray brace or
    anything but the known placeholders."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"has a stray brace ({exc}; write {{{{ or }}}} for a brace "
                            "itself)") from None
    names = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            written = "{" + name + (f"!{conversion}" if conversion else "") + \
                (f":{spec}" if spec else "") + "}"
            raise TemplateError(f"has an unknown placeholder {written} (known: "
                                + " ".join(f"{{{p}}}" for p in PLACEHOLDERS) + ")")
        names.append(name)
    return tuple(names)


def url_escape(value: str) -> str:
    return quote(value, safe="")


def json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def body_escape(content_type: str) -> Escape:
    """How values are escaped in a body of this content type."""
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return url_escape
    if media == "application/json" or media.endswith("+json"):
        return json_escape
    return str


def render(template: str, values: Mapping[str, str], escape: Escape) -> str:
    """`template` with every placeholder replaced by its escaped value (all of
    PLACEHOLDERS must be in `values`)."""
    return template.format_map({name: escape(values[name]) for name in PLACEHOLDERS})
