"""A console user for tests: an aiohttp client with its own cookie jar that signs in and posts forms."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass
class ConsoleUser:
    """One browser's worth of cookies against a gateway at ``url``."""

    url: str
    http: aiohttp.ClientSession

    @classmethod
    def open(cls, url: str) -> ConsoleUser:
        # unsafe: the cookie jar keeps cookies of an IP-address host (the tests' 127.0.0.1)
        return cls(url, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))

    async def sign_in(self, key: str) -> aiohttp.ClientResponse:
        async with self.http.get(f"{self.url}/console/sign-in") as resp:
            token = csrf_of(await resp.text())
        return await self.http.post(
            f"{self.url}/console/sign-in", data={"csrf": token, "api_key": key}, allow_redirects=False
        )

    async def page(self, path: str) -> tuple[int, str]:
        async with self.http.get(f"{self.url}{path}", allow_redirects=False) as resp:
            return resp.status, await resp.text()

    async def post(self, form_page: str, action: str, **fields: str) -> aiohttp.ClientResponse:
        """POST a form of ``form_page`` with that page's CSRF token."""
        status, html = await self.page(form_page)
        assert status == 200, html
        return await self.http.post(
            f"{self.url}{action}", data={"csrf": csrf_of(html), **fields}, allow_redirects=False
        )

    async def close(self) -> None:
        await self.http.close()
