"""Which outbound URLs a transport may call (server-side request forgery guard).

By default only `http`/`https` URLs whose host resolves exclusively to public
addresses are allowed: loopback, private, link-local, multicast, reserved and
unspecified addresses are refused, since an agent URL can come from untrusted
input (an agent card, a planner's tool arguments). Allow them explicitly with
`allow_private=True` or by naming hosts in `allowed_hosts`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import InvalidArgumentError

__all__ = ["UnsafeURLError", "URLPolicy", "same_origin"]


class UnsafeURLError(InvalidArgumentError):
    """An outbound URL the policy refuses; the message says which and why."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(first: str, second: str) -> bool:
    """Whether two URLs share scheme, host and port."""
    return _origin(first) == _origin(second)


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


@dataclass(frozen=True, slots=True)
class URLPolicy:
    """Checks outbound URLs; `await policy.check(url)` raises `UnsafeURLError`."""

    allow_private: bool = False
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    schemes: frozenset[str] = frozenset({"http", "https"})

    @classmethod
    def build(cls, *, allow_private: bool = False, allowed_hosts: Iterable[str] = ()) -> URLPolicy:
        """A policy from plain arguments (host names compared case-insensitively)."""
        return cls(
            allow_private=allow_private,
            allowed_hosts=frozenset(host.lower() for host in allowed_hosts),
        )

    async def check(self, url: str) -> None:
        """Refuse a URL with a bad scheme, no host, credentials, or a non-public target."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            raise UnsafeURLError(f"refusing {url!r}: scheme {scheme or '(none)'!r} is not allowed")
        host = (parts.hostname or "").lower()
        if not host:
            raise UnsafeURLError(f"refusing {url!r}: no host")
        if parts.username or parts.password:
            raise UnsafeURLError(f"refusing {url!r}: credentials in the URL")
        if self.allow_private or host in self.allowed_hosts:
            return
        for address in await self._resolve(host, parts.port or 0, url):
            if not _is_public(address):
                raise UnsafeURLError(
                    f"refusing {url!r}: {host} resolves to non-public address {address}"
                    " (pass allow_private=True or allowed_hosts to permit it)"
                )

    @staticmethod
    async def _resolve(
        host: str, port: int, url: str
    ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass  # a name, not a literal address: resolve it below
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnsafeURLError(f"refusing {url!r}: cannot resolve {host}: {exc}") from exc
        addresses = []
        for info in infos:
            raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
            addresses.append(ipaddress.ip_address(raw))
        if not addresses:
            raise UnsafeURLError(f"refusing {url!r}: {host} has no addresses")
        return addresses
