"""The admin API's coverage CSV parser (core/admin.py), property-based: rows written
by the csv module come back as the same entries; any text either parses or fails with
a ValueError naming a line, never another exception."""

import csv
import io
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from smsgate.core.admin import parse_coverage_csv
from smsgate.core.models import CREDIT_SCALE, CoverageEntry

cell = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).map(str.strip)
digits = st.text("0123456789", min_size=1, max_size=8)
price = st.none() | st.integers(0, 10**9)


@st.composite
def entries(draw) -> CoverageEntry:
    return CoverageEntry(draw(cell.filter(lambda c: c.lower() != "country")), draw(cell),
                         draw(cell), draw(cell), draw(cell), draw(digits), draw(price))


def as_csv(rows: list[CoverageEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["country", "iso", "operator", "mcc", "mnc", "prefix", "price"])
    for e in rows:
        shown = "" if e.price is None else str(Decimal(e.price) / CREDIT_SCALE)
        writer.writerow([e.country, e.iso, e.operator, e.mcc, e.mnc, e.prefix, shown])
    return out.getvalue()


@given(st.lists(entries(), max_size=20))
def test_rows_round_trip(rows):
    assert parse_coverage_csv(as_csv(rows)) == rows


@given(st.text(max_size=300))
def test_any_text_parses_or_names_its_line(text):
    try:
        parse_coverage_csv(text)
    except ValueError as exc:
        assert str(exc).startswith("line "), exc
