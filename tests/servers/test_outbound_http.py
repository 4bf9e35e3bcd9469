"""servers/outbound_http.py's address rules (SPEC §11), property-tested: which literal
addresses a callback may name, in every spelling a URL parser might accept."""

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.servers.outbound_http import address_refusal, literal_address, url_refusal

FAST = settings(max_examples=300, deadline=None)
ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
INNER_V4 = [ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4")]
inner_v4 = st.sampled_from(INNER_V4).flatmap(
    lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net[i]))


@FAST
@given(ipv4)
def test_an_ipv4_address_is_refused_unless_global(address) -> None:
    assert literal_address(str(address)) == address
    assert (address_refusal(address) is None) == (address.is_global and not address.is_multicast)


@FAST
@given(inner_v4)
def test_inner_ipv4_is_refused_however_it_is_wrapped(address) -> None:
    assert address_refusal(address) is not None
    for wrapped in (f"::ffff:{address}", f"64:ff9b::{address}"):
        assert address_refusal(ipaddress.IPv6Address(wrapped)) is not None, wrapped
    six_to_four = ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80))
    assert address_refusal(six_to_four) is not None
    assert url_refusal(f"http://[::ffff:{address}]:8080/dlr", allow_private=False)
    assert url_refusal(f"http://{address}/dlr", allow_private=False)
    assert url_refusal(f"http://{address}/dlr", allow_private=True) is None


@FAST
@given(ipv4)
def test_legacy_numeric_forms_are_refused_even_when_private_ones_are_allowed(address) -> None:
    """aiohttp connects only to canonical IPv4 literals: the customer hears at once."""
    a, b, c, d = address.packed
    for form in (str(int(address)), f"0x{int(address):08x}", f"{a}.{(b << 16) | (c << 8) | d}",
                 f"0{a:o}.0{b:o}.0{c:o}.0{d:o}"):
        assert url_refusal(f"http://{form}/dlr", allow_private=True), form


@FAST
@given(ipv6)
def test_an_ipv6_literal_is_allowed_only_when_global(address) -> None:
    """Never an address Python does not call global (and not even all of those: ::2 is
    global to Python 3.11 but in the reserved ::/8)."""
    assert literal_address(f"{address}") == address
    embeds_ipv4 = address.ipv4_mapped or address.sixtofour or address in NAT64
    if address_refusal(address) is None and not embeds_ipv4:  # those: the test above
        assert address.is_global and not (address.is_multicast or address.is_reserved)


def test_public_ipv4_inside_ipv6_is_allowed() -> None:
    for wrapped in ("::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"):
        assert address_refusal(ipaddress.IPv6Address(wrapped)) is None, wrapped


def test_names_are_left_to_the_connect_time_check() -> None:
    for url in ("https://example.com/dlr", "http://localhost:8080/", "http://intranet/"):
        assert url_refusal(url, allow_private=False) is None
    assert literal_address("example.com") is None
    assert address_refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert address_refusal(ipaddress.ip_address("2606:2800:220:1::1")) is None
