"""``chatdebug export --chat ID``: the chat's newest runs with their steps as one JSON
document, the same one ``GET /api/chats/{chat_id}/debug/export`` serves (``version`` 1)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from .._documents import chat_export
from ._core import EXIT_OK, CommandError, arg, command, open_from_args


def _write_atomically(path: Path, text: str) -> None:
    """Write the whole file or nothing (a temporary file renamed over the target)."""
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@command(
    "export",
    "write a chat's debug runs (newest 100, with their steps) as the export document",
    arg("--chat", required=True, metavar="CHAT_ID", help="the chat to export"),
    arg("--output", "-o", metavar="FILE", help="write to FILE instead of standard output"),
)
def _export(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        document = chat_export(store, args.chat, datetime.now(UTC))
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if args.output is None or args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    path = Path(args.output)
    if path.is_dir():
        raise CommandError(f"--output {args.output!r} is a directory")
    try:
        _write_atomically(path, text)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output!r}: {exc.strerror or exc}") from None
    runs = document["run_count"]
    print(
        f"wrote {runs} run{'s' if runs != 1 else ''} of chat {args.chat!r} to {path}",
        file=sys.stderr,
    )
    return EXIT_OK
