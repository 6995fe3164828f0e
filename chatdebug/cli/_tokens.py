"""The bearer tokens of ``chatdebug serve``: where they come from and what is refused.

Each token comes from one place: its option (``--token`` / ``--admin-token``, visible
to anyone who can list processes), its file (``--token-file`` / ``--admin-token-file``:
the first line, surrounding whitespace removed, e.g. a mounted secret) or its
environment variable (``$CHATDEBUG_API_TOKEN`` / ``$CHATDEBUG_ADMIN_TOKEN``; an empty
variable counts as unset). Refused, with exit code 2 and one line saying why: an option
and its file together, an unreadable file, a token that is empty or only whitespace,
shorter than :data:`MIN_TOKEN_LENGTH` characters or with whitespace inside, and a read
token equal to the admin token (the read token would then change settings).
"""

from __future__ import annotations

import argparse
import os
from typing import Final

from ._core import EXIT_USAGE, CommandError

__all__ = ["ADMIN_TOKEN_VARIABLE", "API_TOKEN_VARIABLE", "MIN_TOKEN_LENGTH", "serve_tokens"]

API_TOKEN_VARIABLE: Final = "CHATDEBUG_API_TOKEN"
ADMIN_TOKEN_VARIABLE: Final = "CHATDEBUG_ADMIN_TOKEN"
MIN_TOKEN_LENGTH: Final = 16


def _read_file(option: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandError(f"cannot read {option} {path!r}: {why}", EXIT_USAGE) from None


def _token(option: str, value: str | None, file: str | None, variable: str) -> str | None:
    if value is not None and file is not None:
        raise CommandError(f"give {option} or {option}-file, not both", EXIT_USAGE)
    source = option
    if file is not None:
        value, source = _read_file(f"{option}-file", file).strip(), f"{option}-file"
    elif value is None:
        value, source = os.environ.get(variable) or None, f"${variable}"
    if value is None:
        return None
    if not value.strip():
        raise CommandError(f"the token from {source} is empty", EXIT_USAGE)
    if any(c.isspace() for c in value):
        raise CommandError(f"the token from {source} contains whitespace", EXIT_USAGE)
    if len(value) < MIN_TOKEN_LENGTH:
        raise CommandError(
            f"the token from {source} is {len(value)} characters long: "
            f"use at least {MIN_TOKEN_LENGTH} (e.g. `openssl rand -hex 24`)",
            EXIT_USAGE,
        )
    return value


def serve_tokens(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The read and admin tokens (``None``: not configured), or :class:`CommandError`."""
    read = _token("--token", args.token, args.token_file, API_TOKEN_VARIABLE)
    admin = _token("--admin-token", args.admin_token, args.admin_token_file, ADMIN_TOKEN_VARIABLE)
    if read is not None and read == admin:
        raise CommandError(
            "the read token equals the admin token: give them different values "
            "(the read token would otherwise change settings and delete)",
            EXIT_USAGE,
        )
    return read, admin
