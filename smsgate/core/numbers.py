"""Which account an inbound SMS (MO) belongs to (SPEC §8): the number or short code
added with `number add` that is the longest prefix of the MO's destination.

A number entry is a prefix, so `number add 4477009001 acme` gives acme the whole range
4477009001xx. Upstreams write destinations in several ways; the digits are matched as
given after a leading `+`, and a destination in the `00` international form that
matches nothing is tried again without the `00`. Anything that is not digits matches
nothing (an MO to no known number is kept as unrouted, not lost).
"""

from collections.abc import Iterable

from .models import InboundNumber

MAX_DIGITS = 15  # E.164; short codes are shorter


def number_digits(text: str) -> str:
    """The digits of a number as `number add` stores it: a leading + dropped; 1 to 15
    ASCII digits, else ValueError with the reason."""
    digits = text.strip().removeprefix("+")
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"number {text!r} must be digits (a leading + is allowed)")
    if len(digits) > MAX_DIGITS:
        raise ValueError(f"number {text!r} has more than {MAX_DIGITS} digits")
    return digits


class NumberTable:
    """The numbers in force, indexed for the longest-prefix match."""

    def __init__(self, numbers: Iterable[InboundNumber]) -> None:
        self._numbers = {n.number: n for n in numbers}
        self._max_len = max(map(len, self._numbers), default=0)

    def __len__(self) -> int:
        return len(self._numbers)

    def match(self, destination: str) -> InboundNumber | None:
        """The entry for an MO to `destination`, or None (unrouted)."""
        digits = destination.strip().removeprefix("+")
        if not (digits.isascii() and digits.isdigit()):
            return None
        found = self._longest(digits)
        if found is None and digits.startswith("00"):
            found = self._longest(digits[2:])
        return found

    def _longest(self, digits: str) -> InboundNumber | None:
        for length in range(min(len(digits), self._max_len), 0, -1):
            found = self._numbers.get(digits[:length])
            if found is not None:
                return found
        return None
