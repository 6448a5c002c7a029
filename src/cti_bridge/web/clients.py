"""Who is on the other end of a request: the peer, or the client a trusted proxy names.

``X-Forwarded-For`` is the client's own text unless a proxy we trust wrote it; a
header honoured from anybody would let a guesser pick a fresh address for every login
(and so never be throttled) or pin failures on somebody else's address. So the header
is read only when the peer is one of ``[web] trusted_proxies``, and then from the
right: each trusted proxy appends the address it saw, so the right-most address that
is not itself a trusted proxy is the client (docs/security.md).

And which site's page a browser's request comes from (``Origin``): the screens'
WebSocket takes the daemon's own pages and ``[web] allowed_origins`` only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Sequence
from urllib.parse import urlsplit

from twisted.web.http import Request
from twisted.web.iweb import IRequest

__all__ = ["Network", "client_host", "normal_origin", "origin_allowed", "parse_networks"]

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


_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def normal_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` lowercased, without a default port; ``None`` when
    ``origin`` is no such thing (``null``, a path, junk)."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username is not None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and str(port) != _DEFAULT_PORTS[parts.scheme]:
        host += f":{port}"
    return f"{parts.scheme}://{host}"


def origin_allowed(origin: str | None, host: str | None, allowed: Collection[str]) -> bool:
    """May a page of ``origin`` open a screen socket here (``Host: host``)?

    No ``Origin``: not a browser (a bench, a script, another daemon): yes, the token is
    still required. A browser always sends one on a WebSocket, so a page of another site
    cannot ride on a token it got hold of: the origin must be this daemon's own (its
    host and port are the request's ``Host``; the scheme is not compared, as a proxy in
    front may end TLS) or one of ``allowed`` (``[web] allowed_origins``, normalised).
    """
    if origin is None:
        return True
    normal = normal_origin(origin)
    if normal is None:
        return False
    if normal in allowed:
        return True
    if not host:
        return False
    scheme, _, netloc = normal.partition("://")
    own = normal_origin(f"{scheme}://{host}")
    return own is not None and own.partition("://")[2] == netloc
