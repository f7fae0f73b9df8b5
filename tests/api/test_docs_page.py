"""The browsable API reference at /docs: served whole by the gateway, nothing fetched from elsewhere."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser

from gateway.api.docs_page import ASSETS
from tests.support import REPO, LiveGateway

STATIC = REPO / "gateway" / "api" / "static"


class _References(HTMLParser):
    """Every URL a page makes the browser load: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src", "iframe": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


async def test_the_front_page_leads_to_the_reference(intake_gateway: LiveGateway) -> None:
    async with intake_gateway.session.get(f"{intake_gateway.url}/", allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "/docs"
    async with intake_gateway.session.get(f"{intake_gateway.url}/") as resp:
        assert resp.status == 200
        assert str(resp.url).endswith("/docs")
        assert resp.content_type == "text/html"


async def test_the_reference_page_and_every_asset_it_loads_come_from_the_gateway(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    async with gw.session.get(f"{gw.url}/docs") as resp:
        assert resp.status == 200
        page = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "default-src 'self'" in csp
    assert "http" not in csp  # no other origin is allowed to serve anything
    parser = _References()
    parser.feed(page)
    assert len(parser.urls) == 4, parser.urls  # icon, stylesheet, Swagger UI, its start-up script
    assert not re.search(r"<script>\s*\S", page), "an inline script would need 'unsafe-inline'"
    for url in parser.urls:
        assert not re.match(r"^(https?:)?//", url), f"{url} is off-host"
        async with gw.session.get(f"{gw.url}{url}") as resp:
            assert resp.status == 200, url
            body = await resp.read()
            assert len(body) > 100, url
            name = url.rsplit("/", 1)[-1]
            assert resp.content_type == ASSETS[name], url
    init = (STATIC / "docs-init.js").read_text()
    assert 'url: "/openapi.json"' in init and "validatorUrl: null" in init
    async with gw.session.get(f"{gw.url}/openapi.json") as resp:
        assert resp.status == 200
        assert (await resp.json())["openapi"].startswith("3.1")  # Swagger UI 5 renders 3.1


def test_the_stylesheet_loads_nothing_but_inline_images() -> None:
    css = (STATIC / "swagger-ui.css").read_text()
    targets = re.findall(r"url\(\s*[\"']?([^\"')]*)", css)
    assert targets
    assert all(t.startswith("data:") for t in targets), [t for t in targets if not t.startswith("data:")][:3]


async def test_only_the_listed_assets_are_served(intake_gateway: LiveGateway) -> None:
    for name in ("SOURCES.md", "..%2F..%2Fapp.py", "docs.html", "nothing.js"):
        async with intake_gateway.session.get(f"{intake_gateway.url}/docs/assets/{name}") as resp:
            assert resp.status == 404, name
            assert resp.content_type == "application/problem+json"
    async with intake_gateway.session.get(f"{intake_gateway.url}/docs/assets/swagger-ui.LICENSE") as resp:
        assert "Apache License" in await resp.text()


def test_every_asset_ships_in_the_wheel_as_package_data() -> None:
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["gateway.api.static"]
    shipped = [p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert {"docs.html", *ASSETS} <= {p.split("/")[-1] for p in shipped}
    for path in shipped:
        assert any(fnmatch.fnmatch(path, pattern) for pattern in patterns), path
