"""The coverage download: XLS, PDF and CSV, each opened by an independent reader, priced
by the account's routes."""

import csv
import io

import pypdf
import xlrd
from http_harness import PASSWORD, USER, api_fixture  # noqa: F401

from smsgate.core.models import CoverageEntry, Route

HEADINGS = ["country", "iso", "operator", "mcc", "mnc", "prefix", "price"]


async def download(api, file_format: str | None) -> tuple[bytes, str, str]:
    params = {"userid": USER, "password": PASSWORD}
    if file_format is not None:
        params["format"] = file_format
    async with api.session.get(api.base + "/websmpp/downloadcoverage", params=params) as r:
        assert r.status == 200
        return await r.read(), r.headers["Content-Type"], r.headers["Content-Disposition"]


async def priced_account(api):
    """The seed's account with a route of its own to Lebanon at 0.35 and Afghanistan's
    prefix routed to a connector that does not exist (so: not reachable)."""
    account = await api.seed_account()
    await api.store.add_route(Route(prefix="961", connector="simulator", price=3_500,
                                    account_id=account.id))
    await api.store.add_route(Route(prefix="93", connector="nowhere", price=10_000))
    await api.app.reload_routes()
    return account


async def test_csv(api):
    await priced_account(api)
    body, content_type, disposition = await download(api, "3")
    assert content_type == "text/csv; charset=utf-8"
    assert disposition == 'attachment; filename="coverage.csv"'
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == HEADINGS
    by_iso = {row[1]: row for row in rows[1:]}
    assert by_iso["LB"] == ["Lebanon", "LB", "All networks", "415", "", "961", "0.35"]
    assert by_iso["GB"][5:] == ["44", "1.00"]
    assert by_iso["JM"][5] in ("1658", "1876")
    assert "AF" not in by_iso  # its route's connector does not exist
    assert len(rows) > 230


async def test_xls_is_the_default(api):
    await priced_account(api)
    body, content_type, disposition = await download(api, None)
    assert content_type == "application/vnd.ms-excel"
    assert disposition == 'attachment; filename="coverage.xls"'
    assert body == (await download(api, "1"))[0]
    sheet = xlrd.open_workbook(file_contents=body).sheet_by_index(0)
    assert sheet.row_values(0)[:6] == ["Country", "ISO", "Operator", "MCC", "MNC", "Prefix"]
    rows = {sheet.cell_value(r, 1): sheet.row_values(r) for r in range(1, sheet.nrows)}
    assert rows["LB"] == ["Lebanon", "LB", "All networks", "415", "", "961", 0.35]
    assert rows["FR"][6] == 1.0
    assert "AF" not in rows


async def test_pdf(api):
    await priced_account(api)
    body, content_type, disposition = await download(api, "2")
    assert content_type == "application/pdf"
    assert disposition == 'attachment; filename="coverage.pdf"'
    reader = pypdf.PdfReader(io.BytesIO(body))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert f"Coverage for {USER}" in text
    assert "Lebanon LB All networks 415 961 0.35" in text
    assert "Åland Islands" in text  # Latin-1 names survive
    assert "Afghanistan" not in text


async def test_imported_table_with_networks(api):
    await api.seed_account()
    await api.store.replace_coverage([
        CoverageEntry("Lebanon", "LB", "Alfa", "415", "01", "9613"),
        CoverageEntry("Lebanon", "LB", "Touch", "415", "03", "96171"),
    ])
    body, _, _ = await download(api, "3")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[1:] == [["Lebanon", "LB", "Alfa", "415", "01", "9613", "1.00"],
                        ["Lebanon", "LB", "Touch", "415", "03", "96171", "1.00"]]
