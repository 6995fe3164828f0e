"""JSON responses of the API and the security headers every response of the API and
the viewer carries."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from starlette.responses import JSONResponse, Response

__all__ = [
    "API_HEADERS",
    "VIEWER_CSP",
    "error_response",
    "json_response",
    "no_content",
    "security_headers",
]

VIEWER_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'"
)
"""The viewer's policy: only our own files, no inline script or style, no plugins, no
framing, and Trusted Types so that no string can ever reach an HTML sink."""

_API_CSP: Final = "default-src 'none'; frame-ancestors 'none'; sandbox"


def security_headers(csp: str) -> dict[str, str]:
    """Headers that keep captured text inert wherever a response ends up."""
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }


API_HEADERS: Final[Mapping[str, str]] = {
    **security_headers(_API_CSP),
    "Cache-Control": "no-store",
}


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except ValueError:  # NaN/inf decoded from a malformed stored payload
            return super().render(_finite(content))


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``content`` as JSON with the API headers."""
    return _JSON(content, status_code=status, headers={**API_HEADERS, **(headers or {})})


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """``{"message": ...}`` with ``status``: the one error shape of the API."""
    return json_response({"message": message}, status, headers)


def no_content() -> Response:
    """204 with the API headers."""
    return Response(status_code=204, headers=dict(API_HEADERS))
