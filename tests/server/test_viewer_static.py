"""The viewer's files: served from the package with a strict Content-Security-Policy,
nothing inline, no HTML sinks in the JavaScript, nothing fetched from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from chatdebug.server.app import viewer_files, viewer_routes


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(Starlette(routes=viewer_routes())) as opened:
        yield opened


def test_page_and_assets_carry_the_security_headers(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in viewer_files():
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        for headers in (page.headers, response.headers):
            csp = headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
            assert "require-trusted-types-for 'script'" in csp
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "path", ["/static/../app.py", "/static/%2e%2e%2fapp.py", "/static/nope.js", "/static/"]
)
def test_only_the_viewer_files_are_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_no_inline_code_no_html_sinks_no_network() -> None:
    files = {name: content.decode() for name, (content, _) in viewer_files().items()}
    assert {"index.html", "app.js", "viewer.css"} <= set(files)
    html = files["index.html"]
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="/static/app.js">']
    assert "style=" not in html and " on" not in html.replace("<noscript", "")
    for name, text in files.items():
        code = re.sub(r"//[^\n]*", "", text) if name.endswith(".js") else text
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                     "eval(", "new Function", "setAttribute(\"on"):  # fmt: skip
            assert sink not in code, (name, sink)
        code = code.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a fetch
        assert not re.search(r"https?://", code), name  # nothing from the network


def test_files_ship_inside_the_package() -> None:
    folder = resources.files("chatdebug.server").joinpath("static")
    assert folder.joinpath("index.html").is_file()
