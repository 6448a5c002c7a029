"""Who is on the other end of a request: the peer, or the client a trusted proxy names.

``X-Forwarded-For`` is the client's own text unless a proxy we trust wrote it; a
header honoured from anybody would let a guesser pick a fresh address for every login
(and so never be throttled) or pin failures on somebody else's address. So the header
is read only when the peer is one of ``[web] trusted_proxies``, and then from the
right: each trusted proxy appends the address it saw, so the right-most address that
is not itself a trusted proxy is the client (docs/security.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from twisted.web.http import Request
from twisted.web.iweb import IRequest

__all__ = ["Network", "client_host", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses (``10.0.0.1``, ``::1``) and networks (``10.0.0.0/8``); ``ValueError``
    naming the first that is neither."""
    networks: list[Network] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=True))
        except ValueError as error:
            raise ValueError(
                f"{value!r} is not an IP address or network (CIDR, e.g. 10.0.0.0/8): {error}"
            ) from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    try:
        found = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_host(request: IRequest | Request, trusted: Sequence[Network] = ()) -> str:
    """The client's address as text: the peer's, or, when the peer is a trusted proxy,
    the right-most untrusted address of ``X-Forwarded-For`` (all its headers, in order).
    When every address there is trusted, the left-most; when one is not an address
    at all (a proxy that does not append), the last trusted one before it."""
    peer = getattr(request.getClientAddress(), "host", None)
    if not isinstance(peer, str):
        return "?"
    here = _address(peer)
    if not _trusted(here, trusted):
        return peer if here is None else str(here)
    headers = request.requestHeaders.getRawHeaders(b"x-forwarded-for") or []
    hops = [hop for header in headers for hop in header.decode("latin-1").split(",")]
    client = here
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)
