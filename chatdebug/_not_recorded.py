"""Requests made inside a recording run that were passed through without being recorded,
counted by reason for ``chatdebug_requests_not_recorded_total{reason}``.

The instrumentation counts (a dict increment under a lock: cheap on the caller's
thread); the metrics collector reads the counts at scrape time, so no metrics object has
to exist when the request is made.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Final

__all__ = ["NOT_A_MODEL_CALL", "REASONS", "count_not_recorded", "not_recorded_counts"]

NOT_A_MODEL_CALL: Final = "not_a_model_call"
"""A process-wide instrumented client sent a request that is not a model API call (a
tool fetching a web page, an SDK's telemetry exporter)."""

REASONS: Final = (NOT_A_MODEL_CALL,)
"""Values of the ``reason`` label."""

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def count_not_recorded(reason: str) -> None:
    """Count one request passed through unrecorded for ``reason``."""
    with _lock:
        _counts[reason] += 1


def not_recorded_counts() -> dict[str, int]:
    """The counts so far, by reason (every known reason present, 0 when none)."""
    with _lock:
        return {reason: _counts.get(reason, 0) for reason in REASONS} | dict(_counts)
