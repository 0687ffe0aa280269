"""Where workflows may send requests: ``FLOWCRON_EGRESS`` = ``any`` | ``public``.

Workflow graphs are user-supplied, so an ``http_request`` or ``slack_message`` node
could aim at the cloud metadata endpoint (169.254.169.254), the database, or anything
else on the private network the executors sit in. With ``public``, only globally
routable addresses are allowed: loopback, private (RFC 1918, fc00::/7), link-local
(169.254/16, fe80::/10), carrier-grade NAT (100.64/10), multicast, reserved and
unspecified addresses are refused, including when written as IPv4-mapped IPv6.

Use both halves, since the name is resolved again when the connection is made:

* :func:`check_url` before a request: refuses literal addresses and names that resolve
  to a refused address (raises :class:`EgressDenied`);
* :class:`EgressResolver` as the aiohttp connector's resolver, so the addresses actually
  connected to (after DNS changes, and on every redirect) are checked too::

      connector = aiohttp.TCPConnector(resolver=EgressResolver(settings.egress))
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Literal
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

Egress = Literal["any", "public"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressDenied(Exception):  # noqa: N818  # reads as the outcome: "egress denied"
    """The target is not allowed by the egress setting; the message says why."""


def address_allowed(address: str | IPAddress) -> bool:
    """Whether ``address`` is a globally routable unicast address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def check_url(url: str, egress: Egress) -> None:
    """Raise :class:`EgressDenied` if ``url``'s host is not allowed under ``egress``.

    ``any`` allows everything. A name that does not resolve is left to the request
    itself to fail (its error is the clearer one).
    """
    if egress == "any":
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise EgressDenied(f"no host in {url!r}")
    literal = _literal(host)
    if literal is not None:
        if not address_allowed(literal):
            raise EgressDenied(f"{host} is not a public address (FLOWCRON_EGRESS=public)")
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError:
        return
    refused = [a for a in addresses if not address_allowed(a)]
    if refused:
        raise EgressDenied(
            f"{host} resolves to {', '.join(refused)}, not a public address "
            "(FLOWCRON_EGRESS=public)"
        )


class EgressResolver(AbstractResolver):
    """An aiohttp resolver that refuses names resolving to non-public addresses."""

    def __init__(self, egress: Egress, inner: AbstractResolver | None = None) -> None:
        self._egress = egress
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._egress == "public":
            refused = [r["host"] for r in results if not address_allowed(r["host"])]
            if refused:
                raise EgressDenied(
                    f"{host} resolves to {', '.join(refused)}, not a public address "
                    "(FLOWCRON_EGRESS=public)"
                )
        return results

    async def close(self) -> None:
        await self._inner.close()
