"""Database URLs: which backend, where the data lives, and how to show a URL safely."""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Final, Literal

from ..environment_variables import CHATDEBUG_DATABASE_URL, DEFAULT_DATABASE_URL
from ._errors import StoreConfigError

__all__ = [
    "ACCEPTED_URLS",
    "DatabaseURL",
    "database_location",
    "mask_password",
    "parse_database_url",
    "resolve_url",
    "scrub",
]

ACCEPTED_URLS: Final = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory:, "
    "postgresql://user:password@host:port/dbname (or postgres://)"
)

MEMORY: Final = ":memory:"

_PASSWORD_USERINFO: Final = re.compile(r"(://[^/@:]*:)[^@]*@")
_PASSWORD_QUERY: Final = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A parsed database URL. ``target`` is the SQLite path (``:memory:`` for an in-memory
    database) or the PostgreSQL connection URL as given."""

    backend: Literal["sqlite", "postgresql"]
    target: str
    password: str | None = None

    @property
    def display(self) -> str:
        """Where the data lives, safe to print: the absolute SQLite file, or the
        PostgreSQL URL with its password masked."""
        if self.backend == "sqlite":
            return self.target if self.target == MEMORY else os.path.abspath(self.target)
        return mask_password(self.target)


def resolve_url(url: str | None) -> str:
    """``url``, else ``$CHATDEBUG_DATABASE_URL``, else ``sqlite:///chatdebug.db``."""
    return url or os.environ.get(CHATDEBUG_DATABASE_URL) or DEFAULT_DATABASE_URL


def database_location(url: str | None = None) -> str:
    """Where the data of a database URL (default as :func:`~chatdebug.store.open_store`)
    lives, safe to print: the absolute SQLite file, ``:memory:``, or the PostgreSQL URL
    with its password masked. Raises :class:`StoreConfigError` for an unusable URL."""
    return parse_database_url(resolve_url(url)).display


def parse_database_url(url: str) -> DatabaseURL:
    """Parse ``url``; raises :class:`StoreConfigError` (one line) when it is not usable."""
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        return _parse_sqlite(url, rest)
    if sep and scheme in ("postgresql", "postgres"):
        try:
            password = _password(urllib.parse.urlsplit(url.strip()))
        except ValueError as exc:
            problem = str(exc)
        else:
            return DatabaseURL("postgresql", url.strip(), password)
        raise StoreConfigError(f"chatdebug: invalid PostgreSQL URL: {problem}")
    raise StoreConfigError(
        f"chatdebug: unsupported database URL {_one_line(mask_password(url))}; "
        f"accepted: {ACCEPTED_URLS}"
    )


def _parse_sqlite(url: str, rest: str) -> DatabaseURL:
    # sqlite:///x -> rest "/x" (relative "x"); sqlite:////x -> rest "//x" (absolute "/x").
    if not rest.startswith("/"):
        raise StoreConfigError(
            f"chatdebug: SQLite URL {_one_line(url)} has a host part; use sqlite:///relative/"
            "path.db or sqlite:////absolute/path.db"
        )
    path = urllib.parse.unquote(rest[1:])
    if "?" in path or "#" in path:
        raise StoreConfigError(
            f"chatdebug: SQLite URL {_one_line(url)} has query options, which are not "
            "supported; give only the file path"
        )
    if not path:
        raise StoreConfigError(
            f"chatdebug: SQLite URL {_one_line(url)} has no file path; accepted: {ACCEPTED_URLS}"
        )
    return DatabaseURL("sqlite", path)


def _password(parts: urllib.parse.SplitResult) -> str | None:
    if parts.password:
        return urllib.parse.unquote(parts.password)
    for key, value in urllib.parse.parse_qsl(parts.query):
        if key == "password" and value:
            return value
    return None


def mask_password(url: str) -> str:
    """``url`` with the password (in the user-info part or a ``password=`` query option)
    replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, colon, _password_text = userinfo.partition(":")
            netloc = f"{user}:***@{hostport}" if colon else netloc
        query = parts.query
        if query:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
            if any(key == "password" for key, _ in pairs):
                query = urllib.parse.urlencode(
                    [(k, "***" if k == "password" else v) for k, v in pairs], safe="*"
                )
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:  # not even a URL: mask anything that looks like a password
        return _PASSWORD_QUERY.sub(r"\1***", _PASSWORD_USERINFO.sub(r"\1***@", url))


def scrub(text: str, password: str | None) -> str:
    """``text`` with every occurrence of ``password`` (raw or URL-encoded) masked."""
    if not password:
        return text
    for secret in {password, urllib.parse.quote(password, safe="")}:
        text = text.replace(secret, "***")
    return text


def _one_line(text: str) -> str:
    return repr(" ".join(text.split()))
