"""The command registry, the argument parser and ``main()`` of the ``chatdebug`` command.

Every command is one function registered with :func:`command` (arguments declared with
:func:`arg`, the store opened with :func:`open_from_args`); its name may have two words
(``"settings retention-days"``) to sit under a group. Errors are raised, not printed:
:class:`CommandError` (or a store error, or ``ValueError`` for an invalid value) and
:func:`main` turns them into one line and an exit code. Every command accepts
``--database-url`` (default ``$CHATDEBUG_DATABASE_URL``, else ``sqlite:///chatdebug.db``),
before or after its name.

Exit codes: 0 success, 1 runtime failure (database unreachable, unknown run, …), 2 bad
usage or configuration (unknown option, bad URL, invalid value). A failure prints
exactly one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from .._version import __version__
from ..store import (
    Store,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    database_location,
    open_store,
)

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "arg",
    "build_parser",
    "command",
    "main",
    "open_from_args",
]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A failure to report as one line on stderr with ``exit_code`` (default 1)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _UsageError(CommandError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as one line (argparse would print the usage block too)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see --help)")


@dataclass(frozen=True, slots=True)
class _Command:
    path: tuple[str, ...]
    help: str
    arguments: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]
    run: Handler


_COMMANDS: list[_Command] = []
_GROUPS: dict[str, str] = {"settings": "show or change enablement and retention settings"}


def arg(*names: str, **options: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One ``add_argument`` call for :func:`command`."""
    return names, options


def command(
    name: str, help: str, *arguments: tuple[tuple[str, ...], dict[str, Any]]
) -> Callable[[Handler], Handler]:
    """Register the decorated ``handler(args) -> exit code`` as ``chatdebug <name>``."""

    def register(handler: Handler) -> Handler:
        _COMMANDS.append(_Command(tuple(name.split()), help, arguments, handler))
        return handler

    return register


def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered command."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--database-url",
        metavar="URL",
        default=argparse.SUPPRESS,  # keep a value given before the command name
        help="sqlite:///path.db or postgresql://… (default: $CHATDEBUG_DATABASE_URL, "
        "else sqlite:///chatdebug.db)",
    )
    parser = _Parser(prog="chatdebug", description="Inspect and manage chatdebug data.")
    parser.add_argument("--version", action="version", version=f"chatdebug {__version__}")
    parser.add_argument("--database-url", metavar="URL", default=None, help=argparse.SUPPRESS)
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, Any] = {}
    for cmd in _COMMANDS:
        parent = top
        if len(cmd.path) == 2:
            group = cmd.path[0]
            if group not in groups:
                group_parser = top.add_parser(group, help=_GROUPS.get(group))
                groups[group] = group_parser.add_subparsers(
                    dest=f"{group}_command", metavar="SUBCOMMAND", required=True
                )
            parent = groups[group]
        sub = parent.add_parser(cmd.path[-1], help=cmd.help, description=cmd.help, parents=[common])
        for names, options in cmd.arguments:
            sub.add_argument(*names, **options)
        sub.set_defaults(handler=cmd.run)
    return parser


@contextmanager
def open_from_args(
    args: argparse.Namespace, *, migrate: bool = True, unwritable_ok: bool = False
) -> Iterator[Store]:
    """The store ``--database-url`` names, closed when the block ends. With
    ``unwritable_ok``, an SQLite file on a file system that refuses writes (read-only or
    full) opens anyway (see :func:`~chatdebug.store.open_store`'s ``unreachable_ok``)."""
    sqlite = not database_location(args.database_url).startswith("postgres")
    opened = open_store(args.database_url, migrate=migrate, unreachable_ok=unwritable_ok and sqlite)
    with closing(opened) as store:
        yield store


def _one_line(text: str) -> str:
    text = " ".join(text.split()) or "unexpected error"
    return text if text.startswith("chatdebug") else f"chatdebug: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        return handler(args)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except CommandError as exc:
        message, code = str(exc), exc.exit_code
    except (StoreConfigError, ValueError) as exc:
        message, code = str(exc), EXIT_USAGE
    except (StoreUnavailable, StoreError) as exc:
        message, code = str(exc), EXIT_FAILURE
    except KeyboardInterrupt:
        message, code = "interrupted", 130
    print(_one_line(message), file=sys.stderr)
    return code
