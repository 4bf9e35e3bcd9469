"""MO numbers (SPEC §8): the longest `number add` prefix of an MO's destination."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgate.core.models import InboundNumber
from smsgate.core.numbers import NumberTable, number_digits

TABLE = NumberTable([InboundNumber("447700900", 1, "https://acme.example/mo"),
                     InboundNumber("4477009001", 2), InboundNumber("12345", 3)])


@pytest.mark.parametrize(("destination", "account"), [
    ("447700900999", 1),  # inside the range
    ("447700900123", 2),  # the longer entry wins
    ("4477009001", 2),  # exactly the entry
    ("+447700900999", 1),  # a leading + is dropped
    ("00447700900123", 2),  # 00 form, matched again without the 00
    ("12345", 3),  # a short code
    ("123456", 3),  # a short code with a keyword or suffix digits
])
def test_longest_prefix(destination, account):
    found = TABLE.match(destination)
    assert found is not None and found.account_id == account


@pytest.mark.parametrize("destination", ["", "+", "44770090", "1234", "4477 00900",
                                         "abc", "٤٤٧٧٠٠٩٠٠١٢٣", "0012344"])
def test_no_match(destination):
    assert TABLE.match(destination) is None


def test_empty_table():
    assert NumberTable([]).match("447700900123") is None
    assert len(NumberTable([])) == 0 and len(TABLE) == 3


@given(numbers=st.lists(st.text("0123", min_size=1, max_size=5), unique=True, max_size=12),
       destination=st.text("0123", max_size=8))
def test_match_is_the_longest_prefix(numbers, destination):
    table = NumberTable([InboundNumber(n, i) for i, n in enumerate(numbers)])
    found = table.match(destination)
    prefixes = [n for n in numbers if destination.startswith(n)]
    if prefixes:
        assert found is not None and found.number == max(prefixes, key=len)
    elif not destination.startswith("00"):
        assert found is None


@pytest.mark.parametrize(("text", "digits"), [("+447700900", "447700900"), ("12345", "12345"),
                                              (" 999 ", "999"), ("1" * 15, "1" * 15)])
def test_number_digits(text, digits):
    assert number_digits(text) == digits


@pytest.mark.parametrize(("text", "match"), [("", "digits"), ("+", "digits"), ("12a", "digits"),
                                             ("1" * 16, "15"), ("٤٤", "digits"),
                                             ("++44", "digits"), ("-44", "digits")])
def test_bad_number(text, match):
    with pytest.raises(ValueError, match=match):
        number_digits(text)
