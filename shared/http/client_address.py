"""Which address a request came from, for the login limits.

`X-Forwarded-For` is believed only as far as the proxies this deployment names
(`PORTAL_MFA_TRUSTED_PROXIES`): walking the header from the right, past the peer and
each trusted proxy, the first address that is not one is the client. Anything a client
writes further left is its own claim and ignored. With no trusted proxies the header is
ignored altogether and the client is the TCP peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(value: str) -> tuple[Network, ...]:
    """A comma-separated CIDR list ("10.0.0.0/8, 127.0.0.1"); ValueError names a bad item."""
    networks: list[Network] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {item!r}") from None
    return tuple(networks)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            try:
                # Normalised, so one address is one counter however it is spelled.
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from a trusted proxy's client: count it on the proxy
    # Every hop is a trusted proxy (or there are none): the left-most is as far as we know.
    return hops[0] if hops else peer
