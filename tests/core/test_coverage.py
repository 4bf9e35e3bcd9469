"""The default coverage table and per-account pricing (no I/O)."""

import pytest

from smsgate.core.coverage import (
    account_coverage,
    default_coverage,
    expand_digits_pattern,
    main_mcc,
    region_mccs,
)
from smsgate.core.models import CoverageEntry, Route
from smsgate.core.routing import RoutingTable


@pytest.mark.parametrize(("pattern", "expected"), [
    ("876", {"876"}),
    ("658|876", {"658", "876"}),
    ("8001|8[024]9", {"8001", "809", "829", "849"}),
    ("1[03-79]|[2-9]", {"10", "13", "14", "15", "16", "17", "19", *"23456789"}),
    ("74576|(?:16|7[56])24", {"74576", "1624", "7524", "7624"}),
])
def test_expand_digits_pattern(pattern, expected):
    assert expand_digits_pattern(pattern) == expected


@pytest.mark.parametrize("pattern", ["7\\d", "[2-9]{2}", "(?:12", "1)", "a"])
def test_expand_digits_pattern_refuses_what_it_does_not_know(pattern):
    with pytest.raises(ValueError):
        expand_digits_pattern(pattern)


def test_default_coverage():
    rows = default_coverage()
    by_iso: dict[str, list[CoverageEntry]] = {}
    for row in rows:
        by_iso.setdefault(row.iso, []).append(row)
    assert len(by_iso) > 240
    assert [r.prefix for r in by_iso["LB"]] == ["961"]
    assert by_iso["LB"][0].country == "Lebanon"
    assert by_iso["BO"][0].country == "Bolivia"  # the common name, not ISO's long one
    assert {r.prefix for r in by_iso["JM"]} == {"1658", "1876"}
    assert [r.prefix for r in by_iso["US"]] == ["1"]
    assert [r.prefix for r in by_iso["KZ"]] == ["77"]
    assert by_iso["XK"][0].country == "Kosovo"
    assert all(r.prefix.isdigit() and r.operator == "All networks" for r in rows)
    assert rows[0].country == "Afghanistan" and rows[1].country == "Åland Islands"


def test_default_coverage_has_the_main_mcc_and_no_mnc():
    rows = default_coverage()
    mcc = {row.iso: row.mcc for row in rows}
    assert (mcc["GB"], mcc["US"], mcc["IN"], mcc["DE"], mcc["JP"]) == \
        ("234", "310", "404", "262", "440")
    assert (mcc["JM"], mcc["IM"], mcc["XK"], mcc["VA"]) == ("338", "234", "221", "222")
    # every region of the numbering plan has one: no international-network exceptions here
    assert all(len(row.mcc) == 3 and row.mcc.isdigit() for row in rows)
    assert all(row.mnc == "" for row in rows)


def test_region_mccs_lists_every_mcc_lowest_first():
    mccs = region_mccs()
    assert mccs["US"] == ("310", "311", "312", "313", "314", "315", "316")
    assert mccs["IN"] == ("404", "405", "406")
    assert mccs["GB"] == ("234", "235")
    assert all(len(m) == 3 and m.isdigit() for codes in mccs.values() for m in codes)
    assert main_mcc("AE") == "424"
    assert main_mcc("AQ") == ""  # Antarctica: no mobile country code


def test_account_coverage_prices_like_the_routing():
    entries = [CoverageEntry("Lebanon", "LB", "All networks", "", "", "961"),
               CoverageEntry("France", "FR", "All networks", "", "", "33"),
               CoverageEntry("Afghanistan", "AF", "All networks", "", "", "93")]
    routing = RoutingTable([
        Route("", "sim", 10_000), Route("961", "sim", 3_500, account_id=7),
        Route("93", "gone", 10_000)])
    rows = account_coverage(entries, routing, 7, {"sim"})
    assert [(r.iso, r.price) for r in rows] == [("LB", 3_500), ("FR", 10_000)]
    assert [(r.iso, r.price) for r in account_coverage(entries, routing, 8, {"sim"})] \
        == [("LB", 10_000), ("FR", 10_000)]
    assert account_coverage(entries, RoutingTable([Route("33", "sim", 1)]), 7, {"sim"})[0].iso \
        == "FR"
