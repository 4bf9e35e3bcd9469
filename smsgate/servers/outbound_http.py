"""Outgoing HTTP to URLs that customers give us (`dlrurl`; MO URLs next): SPEC §11.

A customer's URL must not make the gateway a way into the operator's network (SSRF):
without the operator's consent (`allow_private`, `serve --callbacks-allow-private`)
nothing is sent to a loopback, private, link-local, multicast, unspecified, reserved or
otherwise non-global address.

The check runs where the connection is made, on the address actually connected to:
aiohttp resolves the name, and the connector's `socket_factory` (called with each
resolved address just before connecting) refuses the inner ones. So a name that
resolves inside is refused too, and so is a name whose answer changes between a check
and the connect (DNS rebinding): there is no such gap. IPv6 addresses that embed an
IPv4 one (IPv4-mapped ::ffff:a.b.c.d, 6to4, NAT64 64:ff9b::/96) are judged by it.
Legacy numeric forms (http://2130706433/, http://127.1/, 0x7f.1) are refused by aiohttp
itself, which connects only to canonical IPv4 literals; `url_refusal` refuses them (and
private literals) at submit already.

Redirects are not followed (a public URL could answer 302 to an inner one), and at most
`max_answer` bytes of an answer are read: the answer is not needed, only its status.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_REFUSED_KINDS = ("loopback", "private", "link_local", "multicast", "unspecified",
                  "reserved", "site_local")


class TargetRefused(OSError):
    """A connection to an address that is not public, refused before it was made.
    The message is the same for every address: aiohappyeyeballs reports several
    failed addresses as one error only when their messages are equal."""

    def __init__(self) -> None:
        super().__init__("the target address is not a public one (SPEC §11)")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most max_answer bytes of it


def address_refusal(address: Address) -> str | None:
    """Why a connection to `address` is refused (loopback, private, ...), or None for
    a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
        if embedded is not None:
            return address_refusal(embedded)
    for kind in _REFUSED_KINDS:
        if getattr(address, f"is_{kind}", False):
            return kind.replace("_", "-")
    return None if address.is_global else "not global"


def literal_address(host: str) -> Address | None:
    """The address a URL's host names literally, or None for a name. Raises ValueError
    for the legacy numeric IPv4 forms that only some clients read as addresses."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        socket.inet_aton(host)  # accepts 2130706433, 127.1, 0x7f.0.0.1, 0177.0.0.1
    except OSError:
        return None
    raise ValueError(f"{host!r} is an IPv4 address in a legacy form")


def url_refusal(url: str, allow_private: bool) -> str | None:
    """Why `url` can never be called (checked at submit, so that the customer hears
    at once), or None. Names are checked where we connect, after resolving them."""
    host = urlsplit(url).hostname or ""
    try:
        address = literal_address(host)
    except ValueError as exc:
        return str(exc)
    if address is None or allow_private:
        return None
    return address_refusal(address)


def _public_socket(addr_info: tuple) -> socket.socket:
    """aiohttp's socket_factory: the socket for one resolved address, unless inner."""
    family, type_, proto, _, sockaddr = addr_info
    if address_refusal(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])):
        raise TargetRefused()
    return socket.socket(family=family, type=type_, proto=proto)


def client_session(*, allow_private: bool, timeout: float, connections: int,
                   user_agent: str) -> aiohttp.ClientSession:
    """A session for customers' URLs: inner addresses refused unless allowed, no proxy
    from the environment, `timeout` seconds per request in all."""
    connector = aiohttp.TCPConnector(
        limit=connections, socket_factory=None if allow_private else _public_socket)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": user_agent}, trust_env=False)


async def get(session: aiohttp.ClientSession, url: str, max_answer: int) -> Answer:
    """GET `url` without following redirects, reading at most `max_answer` bytes of the
    answer; a longer answer's connection is closed, not drained. Raises TargetRefused
    (inside aiohttp.ClientConnectorError, see `is_refused`) and aiohttp's errors."""
    async with session.get(url, allow_redirects=False) as response:
        body = await response.content.read(max_answer)
        while len(body) < max_answer and not response.content.at_eof():
            chunk = await response.content.read(max_answer - len(body))
            if not chunk:
                break
            body += chunk
        if not response.content.at_eof():
            response.close()  # drop the connection rather than read the rest
        return Answer(response.status, body)


def is_refused(exc: BaseException) -> bool:
    """Whether a failed request was refused by the guard (a permanent failure)."""
    if isinstance(exc, aiohttp.InvalidURL):  # e.g. a legacy numeric IPv4 host
        return True
    return isinstance(exc, aiohttp.ClientConnectorError) and \
        isinstance(exc.os_error, TargetRefused)
