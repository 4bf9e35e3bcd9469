"""Exceptions raised by the text package.

Everything derives from TextError (a ValueError), so callers that only need to know
"the text/payload was unusable" can catch one class and map it to an API error.
"""

from __future__ import annotations


class TextError(ValueError):
    """Base class for every error raised by smsgate.text."""


class NotEncodable(TextError):
    """The text holds a character the chosen alphabet cannot carry."""

    def __init__(self, char: str, position: int, alphabet: str) -> None:
        self.char = char
        self.position = position
        self.alphabet = alphabet
        super().__init__(
            f"character {char!r} (U+{ord(char):04X}) at position {position} "
            f"is not encodable in {alphabet}"
        )


class BadHex(TextError):
    """Hex UCS-2 text (message type 2) is malformed."""


class BadType(TextError):
    """Unknown HTTP message type."""

    def __init__(self, msg_type: object) -> None:
        self.msg_type = msg_type
        super().__init__(f"unknown message type {msg_type!r} (expected 1, 2, 3 or 4)")


class BadUdh(TextError):
    """A user data header is truncated, malformed or inconsistent across parts."""


class TooManyParts(TextError):
    """A payload needs more concatenated parts than a UDH can number."""

    def __init__(self, parts: int, limit: int) -> None:
        self.parts = parts
        self.limit = limit
        super().__init__(f"message needs {parts} parts; at most {limit} are possible")
