"""Coverage: the destinations an account can reach, with its price per SMS part.

The stored table (`coverage`) lists destinations (country, ISO code, operator, MCC, MNC,
prefix). A fresh database gets `default_coverage()`: one row per country or territory
from the numbering plans of `phonenumbers` (libphonenumber's maintained metadata) with
names from `pycountry` (ISO 3166) and the main MCC from `data/e212_mcc.csv`; the MNC is
blank, as the row stands for all networks. Operators replace it with their own table, with
networks and MCC/MNC, through `smsgate coverage import FILE.csv`.

Why a shipped file and not an MCC package: of those on PyPI, `mobile-codes` was last
released in 2014, `mccmnc` scrapes a web site at run time and ships no table, and
`mcc-mnc-p1` (kept up to date) is AGPL-3.0 and 4.7 MB with lxml. The file holds only
facts (ISO code -> MCCs, about 270 lines) taken from mcc-mnc-p1's table; its header
names the source and date. No per-operator rows: libphonenumber's carrier data names
the carrier that was given a number range, not its MNC, and number portability makes a
prefix a poor guide to the network in many countries.

Prices always come from the routing table, exactly as the account would be charged:
a row whose prefix has no usable route is left out of the account's coverage.
"""

import csv
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cache
from importlib import resources
from types import MappingProxyType

import phonenumbers
import pycountry
from phonenumbers import PhoneMetadata

from .errors import GatewayError
from .models import CoverageEntry
from .routing import RoutingTable

ALL_NETWORKS = "All networks"
# Regions libphonenumber numbers that ISO 3166-1 (pycountry) does not list.
_EXTRA_NAMES = {"AC": "Ascension Island", "TA": "Tristan da Cunha", "XK": "Kosovo"}
_MAX_EXPANSION = 64  # a leading-digits pattern wider than this keeps the country code alone
MCC_FILE = "data/e212_mcc.csv"


def account_coverage(entries: Iterable[CoverageEntry], routing: RoutingTable,
                     account_id: int, connectors: set[str]) -> list[CoverageEntry]:
    """The rows the account can reach, each with `price` set to what its routes charge
    per part for that prefix."""
    rows = []
    for entry in entries:
        try:
            route = routing.lookup(account_id, entry.prefix)
        except GatewayError:  # NO_ROUTE: not reachable for this account
            continue
        if route.connector not in connectors:
            continue  # the submit would answer HTTP23 for it
        rows.append(replace(entry, price=route.price))
    return rows


def default_coverage() -> list[CoverageEntry]:
    """One row per country or territory of the world numbering plan."""
    rows = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        code = str(metadata.country_code)
        name, mcc = country_name(region), main_mcc(region)
        for tail in _region_prefixes(metadata):
            rows.append(CoverageEntry(name, region, ALL_NETWORKS, mcc, "", code + tail))
    rows.sort(key=lambda e: (_collation_key(e.country), e.prefix))
    return rows


def _collation_key(name: str) -> str:
    # "Åland Islands" sorts with the A's, as a reader expects, not after "Zimbabwe"
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def country_name(region: str) -> str:
    country = pycountry.countries.get(alpha_2=region)
    if country is None:
        return _EXTRA_NAMES.get(region, region)
    # common_name where ISO's is long ("Bolivia, Plurinational State of" -> "Bolivia")
    return getattr(country, "common_name", None) or country.name


def main_mcc(region: str) -> str:
    """The region's main MCC, '' if it has none. With several, the lowest, which is the
    main one for each such region (US 310 of 310-316, GB 234/235, IN 404-406, AE 424/430/431)."""
    mccs = region_mccs().get(region)
    return mccs[0] if mccs else ""


@cache
def region_mccs() -> Mapping[str, tuple[str, ...]]:
    """ISO 3166 alpha-2 code -> its MCCs (ITU-T E.212), lowest first."""
    text = resources.files(__package__).joinpath(MCC_FILE).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    table: dict[str, list[str]] = {}
    for row in csv.DictReader(lines):
        table.setdefault(row["iso"], []).append(row["mcc"])
    return MappingProxyType({iso: tuple(sorted(mccs)) for iso, mccs in table.items()})


def _region_prefixes(metadata: PhoneMetadata) -> list[str]:
    """National prefixes that pick this region among those sharing its calling code
    (e.g. +1 876 Jamaica); [""] for the code's main country or when there is none."""
    if metadata.main_country_for_code or not metadata.leading_digits:
        return [""]
    try:
        prefixes = expand_digits_pattern(metadata.leading_digits)
    except ValueError:
        return [""]
    return sorted(prefixes) if 0 < len(prefixes) <= _MAX_EXPANSION else [""]


# -- a tiny expander for libphonenumber's leading-digits patterns -----------------------

_TOKEN = re.compile(r"\(\?:|[()|]|\[[0-9\-]+\]|[0-9]")


def expand_digits_pattern(pattern: str) -> set[str]:
    """'658|8[024]9' -> {'658', '809', '829', '849'}. Handles digits, [classes],
    (?:groups) and |; anything else raises ValueError."""
    tokens = _TOKEN.findall(pattern)
    if "".join(tokens) != pattern:
        raise ValueError(f"unsupported pattern {pattern!r}")
    result, position = _alternation(tokens, 0)
    if position != len(tokens):
        raise ValueError(f"unbalanced pattern {pattern!r}")
    return result


def _alternation(tokens: list[str], i: int) -> tuple[set[str], int]:
    result, i = _sequence(tokens, i)
    while i < len(tokens) and tokens[i] == "|":
        more, i = _sequence(tokens, i + 1)
        result |= more
    return result, i


def _sequence(tokens: list[str], i: int) -> tuple[set[str], int]:
    result = {""}
    while i < len(tokens) and tokens[i] not in ("|", ")"):
        token = tokens[i]
        if token in ("(?:", "("):
            options, i = _alternation(tokens, i + 1)
            if i >= len(tokens) or tokens[i] != ")":
                raise ValueError("unclosed group")
            i += 1
        else:
            options = _class_digits(token) if token.startswith("[") else {token}
            i += 1
        result = {head + tail for head in result for tail in options}
        if len(result) > _MAX_EXPANSION:
            raise ValueError("pattern too wide")
    return result, i


def _class_digits(token: str) -> set[str]:
    body, digits = token[1:-1], set()
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            digits.update(str(d) for d in range(int(body[j]), int(body[j + 2]) + 1))
            j += 3
        else:
            digits.add(body[j])
            j += 1
    return digits
