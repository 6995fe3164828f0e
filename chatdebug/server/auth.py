"""Who may call which route of the read API.

Two bearer tokens: the *read* token (``--token`` / ``$CHATDEBUG_API_TOKEN``) opens the
read routes; the *admin* token (``--admin-token`` / ``$CHATDEBUG_ADMIN_TOKEN``) opens
them too, and is the only one that changes settings or deletes data.

* A request without a token, with a malformed ``Authorization`` header or with a token
  that matches neither gets **401**, always with the same body, so nothing tells which
  part was wrong. A read token on an admin route gets **403**.
* Tokens are compared in constant time: the SHA-256 digests of the presented token and
  of *each* configured token are compared with :func:`hmac.compare_digest` (equal
  lengths, no early exit), every time, whichever matches.
* With a read token but no admin token, the admin routes are closed (403): nobody can
  change settings or delete over HTTP.
* With **no token at all** (``chatdebug serve`` then listens on loopback only) every
  route is open to the local machine. To keep a web page from reaching it through DNS
  rebinding, the ``Host`` header must then name a loopback host (``localhost``,
  ``127.0.0.1``, ``[::1]``), else 403.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request

__all__ = ["Access", "AuthDenied", "Tokens", "authorize", "host_is_loopback"]

_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
# A Host header: "[IPv6]" or a name, then an optional ":port"; nothing else.
_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^\[\]:/@\s]+))(?::[0-9]{1,5})?")


class Access(enum.Enum):
    """What a route needs."""

    READ = "read"
    ADMIN = "admin"


class AuthDenied(Exception):
    """The request may not use the route: ``status`` is 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


UNAUTHORIZED: Final = "Unauthorized: send 'Authorization: Bearer <token>' with a valid token."


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True, slots=True)
class Tokens:
    """The configured tokens (``None`` = not configured), kept as digests."""

    read: bytes | None
    admin: bytes | None

    @classmethod
    def of(cls, read_token: str | None, admin_token: str | None) -> Tokens:
        return cls(
            read=_digest(read_token) if read_token else None,
            admin=_digest(admin_token) if admin_token else None,
        )

    @property
    def open(self) -> bool:
        """No token configured: loopback-only mode."""
        return self.read is None and self.admin is None


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def host_is_loopback(host: str) -> bool:
    """Whether a ``Host`` header names this machine: ``localhost``, ``127.0.0.1`` or
    ``[::1]``, with or without a port. Anything else after the name (``[::1]evil.example``,
    ``localhost@evil``) is not a loopback host."""
    match = _HOST.fullmatch(host)
    if match is None:
        return False
    return (match["v6"] or match["name"] or "").lower() in _LOOPBACK_HOSTS


def authorize(request: Request, tokens: Tokens, needed: Access) -> None:
    """Return when the request may use a route needing ``needed``; else raise
    :class:`AuthDenied`."""
    if tokens.open:
        if not host_is_loopback(request.headers.get("host", "")):
            raise AuthDenied(403, "Forbidden: without tokens only loopback host names are served.")
        return
    token = _presented(request)
    # Always hash and compare against both configured tokens: the work done does not
    # depend on which one (if any) matches.
    presented = _digest(token or "")
    is_read = hmac.compare_digest(presented, tokens.read or _digest("\x00unset-read"))
    is_admin = hmac.compare_digest(presented, tokens.admin or _digest("\x00unset-admin"))
    is_read = is_read and token is not None and tokens.read is not None
    is_admin = is_admin and token is not None and tokens.admin is not None
    if not (is_read or is_admin):
        raise AuthDenied(401, UNAUTHORIZED)
    if needed is Access.ADMIN and not is_admin:
        if tokens.admin is None:
            raise AuthDenied(403, "Forbidden: no admin token is configured on this server.")
        raise AuthDenied(403, "Forbidden: this route needs the admin token.")
