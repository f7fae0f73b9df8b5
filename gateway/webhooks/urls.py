"""Which endpoint URLs the gateway may call: http(s), and public addresses only (server-side request forgery).

A business unit chooses the URL the gateway then sends requests to, from inside the
enterprise's network. Unless ``webhooks.allow_private_addresses`` is set (a
development setting), a URL is refused when its host is, or resolves to, a
loopback, private, link-local, shared, multicast, reserved or unspecified address.
The rule is checked twice: on the URL when an endpoint is created or changed
(:func:`check_url`), and on every address the host resolves to when the gateway
connects (:class:`PublicOnlyResolver`), so a name that later resolves elsewhere
(DNS rebinding) is refused too.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from gateway.domain.errors import FieldError
from gateway.errors import GatewayError

__all__ = ["MAX_URL_LENGTH", "URL_PATTERN", "PublicOnlyResolver", "UrlRefused", "check_url", "is_public"]

MAX_URL_LENGTH = 2048
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
#: the URLs an endpoint may have: http(s), a host name or IPv4 address, an optional port, path and query; no
#: user, password or fragment (the API's schema says the same; whether the host is public is checked after)
URL_PATTERN = (
    f"^[hH][tT][tT][pP][sS]?://{_LABEL}(?:\\.{_LABEL})*\\.?(?::{_PORT})?(?:[/?][A-Za-z0-9._~!$&'()*+,;=:@/?%-]*)?$"
)
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class UrlRefused(GatewayError, ValueError):
    """An endpoint URL the gateway will not call; ``errors`` points at the URL (``/url`` of a request body)."""

    default_message = "webhook endpoint URL refused"
    status = 422
    slug = "url-refused"

    def __init__(self, message: str, *, pointer: str = "/url") -> None:
        super().__init__(message, errors=[FieldError(pointer, message)])


def is_public(address: str) -> bool:
    """Whether an IP address is a global unicast address (not loopback, private, link-local, …)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> str:
    """``url`` if the gateway may send webhooks to it; ``UrlRefused`` saying why otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if not re.match("^[hH][tT][tT][pP][sS]?://", url):
        raise UrlRefused("the URL must start with https:// or http://")
    # the same test as the API schema's ``pattern`` (whose ``$`` lets one final line break through: dropped)
    url = url.removesuffix("\n")
    if not re.fullmatch(URL_PATTERN, url):
        raise UrlRefused(
            "the URL must be http(s)://host[:port][/path][?query] with a host name or IPv4 address, "
            "no user name, password or fragment"
        )
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise UrlRefused("the URL is not a valid absolute URL") from None
    if parsed.scheme not in ("http", "https"):
        raise UrlRefused("the URL must start with https:// or http://")
    host = parsed.raw_host
    if not host:
        raise UrlRefused("the URL has no host")
    if parsed.user is not None or parsed.password is not None:
        raise UrlRefused("the URL must not carry a user name or password")
    if parsed.fragment:
        raise UrlRefused("the URL must not have a fragment (#…)")
    if allow_private:
        return url
    name = host.rstrip(".").lower()
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        raise UrlRefused("the URL's host is this machine (loopback); use a public address")
    try:
        literal = ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
    except ValueError:
        return url  # a name: its addresses are checked when the gateway connects
    if not is_public(str(literal)):
        raise UrlRefused(f"the URL's host {literal} is not a public address (loopback, private or reserved)")
    return url


class PublicOnlyResolver(AbstractResolver):
    """Resolves as usual, and refuses a host with any address that is not public."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        refused = [r["host"] for r in found if not is_public(r["host"])]
        if refused:
            # errno and strerror: aiohttp's connection error shows the strerror
            raise OSError(errno.EACCES, f"{host} resolves to {refused[0]}, which is not a public address")
        return found

    async def close(self, *args: Any) -> None:
        await self._inner.close()
