import pytest

from smsgate.core.errors import GatewayError
from smsgate.core.models import Route
from smsgate.core.routing import RoutingTable


def table():
    return RoutingTable([
        Route("", "default", 10),
        Route("961", "lebanon", 20),
        Route("9613", "alfa", 30),
        Route("9613", "alfa-backup", 31, priority=-1),
        Route("44", "uk-vip", 5, account_id=7),
    ])


def test_longest_prefix_wins():
    assert table().lookup(1, "9613123456").connector == "alfa"
    assert table().lookup(1, "9617123456").connector == "lebanon"
    assert table().lookup(1, "3312345678").connector == "default"


def test_priority_breaks_ties_between_equal_prefixes():
    assert table().lookup(1, "96131").price == 30


def test_account_routes_come_before_global_ones():
    assert table().lookup(7, "447700900000").connector == "uk-vip"
    assert table().lookup(7, "9613123456").connector == "alfa"  # no own match: global
    assert table().lookup(8, "447700900000").connector == "default"


def test_no_route():
    with pytest.raises(GatewayError) as info:
        RoutingTable([Route("961", "x", 1)]).lookup(1, "4412345678")
    assert info.value.error.http_code == "HTTP23"
