"""The ``chatdebug`` command (also ``python -m chatdebug``): a thin shell over the store,
the instrumentation and ``chatdebug serve``.

:mod:`._core` holds the command registry, the parser and :func:`main`; each public module
is one command group and registers its commands when imported here (the private ones
render runs, explain empty results and serve the demo's fake LLM).
"""

from __future__ import annotations

from . import (  # noqa: F401  (register their commands)
    demo,
    export,
    maintenance,
    reprice,
    runs,
    serve,
    settings,
    spill,
    tail,
)
from ._core import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    arg,
    build_parser,
    command,
    main,
    open_from_args,
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
