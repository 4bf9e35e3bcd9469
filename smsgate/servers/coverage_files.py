"""The coverage download (SPEC §3.4) as XLS, PDF or CSV.

All three carry the same columns, in the order `smsgate coverage import` reads them, so
a CSV download can be edited and imported again. The generators are CPU-bound and
synchronous: the HTTP adapter runs them in a worker thread.
"""

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import xlwt
from fpdf import FPDF

from ..core.models import CoverageEntry, format_credits, units_to_credits

HEADINGS = ("country", "iso", "operator", "mcc", "mnc", "prefix", "price")
TITLES = ("Country", "ISO", "Operator", "MCC", "MNC", "Prefix", "Price/part")


@dataclass(frozen=True, slots=True)
class CoverageFile:
    body: bytes
    content_type: str
    filename: str
    charset: str | None = None


def _cells(row: CoverageEntry) -> list[str]:
    return [row.country, row.iso, row.operator, row.mcc, row.mnc, row.prefix,
            format_credits(row.price)]  # type: ignore[arg-type] - set by account_coverage


def to_csv(rows: Sequence[CoverageEntry], account: str) -> CoverageFile:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADINGS)
    writer.writerows(_cells(row) for row in rows)
    # UTF-8 with a BOM: spreadsheet programs then read the accents in country names.
    return CoverageFile(buffer.getvalue().encode("utf-8-sig"), "text/csv", "coverage.csv",
                        "utf-8")


def to_xls(rows: Sequence[CoverageEntry], account: str) -> CoverageFile:
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("Coverage")
    bold = xlwt.easyxf("font: bold on")
    for column, title in enumerate(TITLES):
        sheet.write(0, column, title, bold)
    price_style = xlwt.easyxf(num_format_str="0.00##")
    for number, row in enumerate(rows, start=1):
        for column, value in enumerate(_cells(row)[:6]):
            sheet.write(number, column, value)
        # the price as a number, so that the customer's spreadsheet can compute with it
        sheet.write(number, 6, float(units_to_credits(row.price)), price_style)
    for column, width in enumerate((32, 6, 24, 6, 6, 12, 18)):
        sheet.col(column).width = width * 256
    buffer = io.BytesIO()
    book.save(buffer)
    return CoverageFile(buffer.getvalue(), "application/vnd.ms-excel", "coverage.xls")


def to_pdf(rows: Sequence[CoverageEntry], account: str) -> CoverageFile:
    pdf = FPDF(orientation="portrait", format="A4")
    pdf.set_title("Coverage")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 10, _latin1(f"Coverage for {account}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    pdf.cell(0, 6, f"{len(rows)} destinations, prices in credits per SMS part, {generated}",
             new_x="LMARGIN", new_y="NEXT")
    with pdf.table(col_widths=(52, 10, 40, 12, 12, 22, 24), line_height=5,
                   text_align=("LEFT", "LEFT", "LEFT", "LEFT", "LEFT", "LEFT", "RIGHT"),
                   repeat_headings=1) as table:
        table.row(TITLES)
        for row in rows:
            table.row([_latin1(cell) for cell in _cells(row)])
    return CoverageFile(bytes(pdf.output()), "application/pdf", "coverage.pdf")


def _latin1(text: str) -> str:
    # The PDF's built-in Helvetica covers Latin-1 (every default country name); other
    # characters of an imported table show as '?' rather than failing the download.
    return text.encode("latin-1", "replace").decode("latin-1")


FORMATS: dict[str, Callable[[Sequence[CoverageEntry], str], CoverageFile]] = {
    "1": to_xls,
    "2": to_pdf,
    "3": to_csv,
}
