"""Environment variables read by chatdebug. Arguments to :func:`chatdebug.configure` win
over these; these win over the defaults."""

from __future__ import annotations

from typing import Final

CHATDEBUG_DATABASE_URL: Final = "CHATDEBUG_DATABASE_URL"
"""Where runs are stored: ``sqlite:///path`` or ``postgresql://…``.
Default: ``sqlite:///chatdebug.db`` (a file in the working directory)."""

CHATDEBUG_ENABLED: Final = "CHATDEBUG_ENABLED"
"""``1``/``true`` forces recording on for every run (the deployment flag). Otherwise a
run records only when the admin setting ``allow_users`` is on and its user opted in.
Default: unset."""

CHATDEBUG_RAISE_INTERNAL_ERRORS: Final = "CHATDEBUG_RAISE_INTERNAL_ERRORS"
"""``1`` makes chatdebug's own failures raise instead of being logged and counted; for
chatdebug's test suite, never for production. Default: unset."""

CHATDEBUG_STALE_THRESHOLD_SECONDS: Final = "CHATDEBUG_STALE_THRESHOLD_SECONDS"
"""Seconds without a heartbeat after which an in-progress run or step counts as abandoned.
Default: 300."""

CHATDEBUG_QUEUE_SIZE: Final = "CHATDEBUG_QUEUE_SIZE"
"""Capacity of the exporter's write queue (events). Default: 10000."""

CHATDEBUG_EXIT_FLUSH_TIMEOUT: Final = "CHATDEBUG_EXIT_FLUSH_TIMEOUT"
"""Seconds the exporter gets, when the process exits or :func:`chatdebug.shutdown` runs,
to write what it still holds; what it could not write by then is counted
(``reason="shutdown"``) and logged once. Default: 10."""

CHATDEBUG_SPILL_PATH: Final = "CHATDEBUG_SPILL_PATH"
"""Path of the spill journal (``off`` for none). Default: ``chatdebug-spill.db`` in the
working directory with a PostgreSQL store, none with SQLite."""

CHATDEBUG_SPILL_MAX_BYTES: Final = "CHATDEBUG_SPILL_MAX_BYTES"
"""Bytes of events the spill journal holds at most. Default: 1073741824 (1 GiB)."""

DEFAULT_DATABASE_URL: Final = "sqlite:///chatdebug.db"
DEFAULT_SPILL_PATH: Final = "chatdebug-spill.db"


def truthy(value: str | None) -> bool:
    """Whether an environment value means "on" (``1``, ``true``, ``yes``, ``on``)."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")
