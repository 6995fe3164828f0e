"""The web viewer's files (``chatdebug/server/static/``), served from memory.

The set of files is fixed when the routes are built: a request can only name one of
them (no paths, no traversal). Every response carries the viewer's strict
Content-Security-Policy; the files themselves need no authentication (they hold no
data: the page asks for a token and calls the API with it).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._responses import VIEWER_CSP, error_response, security_headers

__all__ = ["static_routes", "viewer_files"]

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_NAME = re.compile(r"^[a-z0-9_]+\.(html|css|js|svg)$")


def viewer_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the viewer: name → (content, media type)."""
    folder = resources.files("chatdebug.server").joinpath("static")
    files: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        if _NAME.match(entry.name):
            suffix = entry.name[entry.name.rindex(".") :]
            files[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    if "index.html" not in files:  # a packaging mistake: fail loudly at startup
        raise RuntimeError("chatdebug: the viewer's files are missing from the package")
    return files


def static_routes() -> list[BaseRoute]:
    """``GET /`` (the page) and ``GET /static/<file>``."""
    files = viewer_files()
    headers = {**security_headers(VIEWER_CSP), "Cache-Control": "no-cache"}

    def send(name: str) -> Response:
        content, media_type = files[name]
        return Response(content, media_type=media_type, headers=headers)

    async def index(request: Request) -> Response:
        return send("index.html")

    async def asset(request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in files:
            return error_response(404, "Not found.")
        return send(name)

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/static/{name}", asset, methods=["GET", "HEAD"]),
    ]
