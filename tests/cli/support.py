"""Support for the command-line tests: ``chatdebug`` run as a real process on the code
under test, with none of the shell's ``CHATDEBUG_*`` variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "chatdebug", "cli_env"]

ROOT = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    """The environment of a ``chatdebug`` process: this one's, without ``CHATDEBUG_*``
    variables, importing chatdebug from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATDEBUG_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def chatdebug(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m chatdebug *args``, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "chatdebug", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(),
        check=False,
    )
