#!/usr/bin/env python3
"""Developer entry point: ``python3 dev.py demo`` and ``python3 dev.py test``.

Creates ``.venv`` when it is missing (or when ``pyproject.toml`` changed since the last
install), installs chatdebug with its development extras into it, then runs the demo or
the whole test command (ruff, mypy strict, pytest). Needs nothing but Python 3.11+.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".chatdebug-installed"


def _run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    """Create the virtual environment and install the project when needed."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def demo() -> None:
    ensure_venv()
    _run(BIN / "chatdebug", "demo")


def test(extra: list[str]) -> None:
    ensure_venv()
    _run(BIN / "ruff", "check", "chatdebug", "tests", "benchmarks", "dev.py")
    _run(BIN / "mypy")
    _run(BIN / "python", "-m", "pytest", *extra)


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] not in ("demo", "test"):
        print("usage: python3 dev.py demo | test [pytest args...]", file=sys.stderr)
        sys.exit(2)
    if args[0] == "demo":
        demo()
    else:
        test(args[1:])


if __name__ == "__main__":
    main()
