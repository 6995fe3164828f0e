"""Run summary aggregation and labels.

The summary stored on a run row is its seed (``first_message`` and any other seed keys)
plus keys derived from its steps. Derived keys are always recomputed from scratch, so a
value from an earlier aggregation can never leak into a later one.

Token totals sum only the usage the providers reported: a step without usage adds
nothing (its tokens are unknown, not 0), and one whose metadata says why
(``usage_unavailable``) is counted in ``steps_without_usage``, so a reader knows the
totals are a lower bound.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import orjson

from ..store import EncodedJSON, Step

__all__ = [
    "DERIVED_KEYS",
    "MAX_LABEL_LENGTH",
    "aggregate_run_summary",
    "error_summary",
    "first_user_text",
    "seed_summary",
    "truncate_label",
]

logger = logging.getLogger("chatdebug.exporter")

MAX_LABEL_LENGTH: Final = 200
"""Longest label (``first_message``), in characters."""

DERIVED_KEYS: Final = (
    "step_count",
    "total_input_tokens",
    "total_output_tokens",
    "total_reasoning_tokens",
    "total_cache_creation_tokens",
    "total_cache_read_tokens",
    "endpoint_label",
    "has_error",
    "duration_ms",
    "steps_without_usage",
    "total_cost_usd",
    "unpriced_step_count",
)
"""Summary keys computed by :func:`aggregate_run_summary`; everything else is seed."""

_USAGE_KEYS: Final = (
    ("input_tokens", "total_input_tokens"),
    ("output_tokens", "total_output_tokens"),
    ("reasoning_tokens", "total_reasoning_tokens"),
    ("cache_creation_tokens", "total_cache_creation_tokens"),
    ("cache_read_tokens", "total_cache_read_tokens"),
)
# Input and output totals are always present; the rarer ones only when non-zero, so a
# summary of a plain chat stays small.
_ALWAYS_SET: Final = frozenset({"total_input_tokens", "total_output_tokens"})
_MALFORMED_MARKER: Final = "malformed debug payload"
_USAGE_UNAVAILABLE: Final = "usage_unavailable"
"""Step metadata key of a response without usage (set at capture by the normalizers)."""
_COST_UNAVAILABLE: Final = "cost_unavailable"
"""Step metadata key of a step the exporter could not price (set with the reason)."""
_BILLIONTH: Final = Decimal("0.000000001")
_ELLIPSIS: Final = "…"
_ONE_MS: Final = timedelta(milliseconds=1)


def truncate_label(text: str, max_len: int = MAX_LABEL_LENGTH) -> str:
    """Collapse whitespace runs into single spaces, trim, and cut to ``max_len`` characters.

    A cut label ends with ``…`` and is exactly ``max_len`` characters long; ``max_len``
    of zero or less gives ``""``.
    """
    collapsed = " ".join(text.split())
    if len(collapsed) <= max_len:
        return collapsed
    if max_len <= 0:
        return ""
    if max_len == 1:
        return _ELLIPSIS
    return collapsed[: max_len - 1] + _ELLIPSIS


def seed_summary(label: str) -> dict[str, Any] | None:
    """The seed summary of a run: ``{"first_message": label}``, or ``None`` when empty."""
    if not label:
        return None
    return {"first_message": label}


def _decoded(value: Any) -> Any:
    """A payload as a stored row has it: the steps of a run written within one batch
    are summarized from the batch's own rows, whose payloads may still be encoded
    (:class:`~chatdebug.store.EncodedJSON`); what does not decode is malformed."""
    if type(value) is not EncodedJSON:
        return value
    try:
        return orjson.loads(str(value))  # orjson takes exact str only
    except orjson.JSONDecodeError:
        return {"error": _MALFORMED_MARKER}


def first_user_text(normalized_request: Mapping[str, Any] | EncodedJSON | None) -> str:
    """Concatenated text parts of the first ``user`` message of a normalized request."""
    normalized_request = _decoded(normalized_request)
    if not isinstance(normalized_request, Mapping):
        return ""
    messages = normalized_request.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        parts = message.get("parts")
        if not isinstance(parts, list):
            return ""
        return "".join(
            part["text"]
            for part in parts
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


def _is_malformed_marker(value: object) -> bool:
    return isinstance(value, Mapping) and value.get("error") == _MALFORMED_MARKER


def _usage_tokens(step: Step) -> dict[str, int] | None:
    """Token counts of a step's usage, or ``None`` when the usage is malformed."""
    usage = _decoded(step.usage)
    if not isinstance(usage, Mapping) or _is_malformed_marker(usage):
        return None
    counts: dict[str, int] = {}
    for key, _ in _USAGE_KEYS:
        value = usage.get(key)
        if value is None:
            counts[key] = 0
        elif isinstance(value, int) and not isinstance(value, bool):
            counts[key] = value
        else:
            return None
    return counts


def _usage_unreported(step: Step) -> bool:
    """The step got a model answer whose provider reported no usage."""
    if step.usage is not None:
        return False
    metadata = _decoded(step.metadata)
    return isinstance(metadata, Mapping) and bool(metadata.get(_USAGE_UNAVAILABLE))


def _step_cost(step: Step) -> Decimal | bool:
    """The step's priced total (``metadata.cost.total_usd``); else whether it was found
    to have no price (``metadata.cost_unavailable``, set by the exporter's pricing). A
    step never priced (still open, or recorded before pricing) is neither."""
    metadata = _decoded(step.metadata)
    if not isinstance(metadata, Mapping):
        return False
    cost = metadata.get("cost")
    total = cost.get("total_usd") if isinstance(cost, Mapping) else None
    if isinstance(total, int | float) and not isinstance(total, bool):
        if math.isfinite(total) and total >= 0:
            return Decimal(str(total))
    return bool(metadata.get(_COST_UNAVAILABLE))


def _completed_endpoint(step: Step) -> str | None:
    """``"METHOD path"`` of the step's first completed attempt with a path, if any."""
    attempts = _decoded(step.attempts)
    if not isinstance(attempts, list):
        return None
    for attempt in attempts:
        if not isinstance(attempt, Mapping):
            continue
        status, path, method = (attempt.get(k) for k in ("status", "path", "method"))
        if not all(isinstance(v, str | None) for v in (status, path, method)):
            # Mistyped fields mean the attempts payload is not what we wrote: skip it
            # whole, like a payload that does not decode.
            return None
        if status == "completed" and path:
            return f"{method} {path}" if method else path
    return None


def _step_has_error(step: Step) -> bool:
    if step.status == "error":
        return True
    # An interrupted step keeps whatever error it saw on the way (e.g. a cancelled
    # retry); the run as a whole did not fail because of it.
    return step.error is not None and step.status != "interrupted"


MAX_ERROR_MESSAGE: Final = 1000
"""Longest ``summary.error.message``, in characters (the step keeps the whole error)."""


def error_summary(error: Mapping[str, Any], step_number: int | None = None) -> dict[str, Any]:
    """``{"type", "message", "step_number"?}`` of a stored error payload (already
    redacted when it was captured), its message cut to :data:`MAX_ERROR_MESSAGE`."""
    kind = error.get("type") or error.get("provider_error_type") or "error"
    message = error.get("message") or error.get("error") or ""
    text = " ".join(str(message).split())
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[: MAX_ERROR_MESSAGE - 1] + "…"
    out: dict[str, Any] = {"type": str(kind)[:200], "message": text}
    if step_number is not None:
        out["step_number"] = step_number
    return out


def _first_step_error(steps: Sequence[Step]) -> dict[str, Any] | None:
    for step in steps:
        if _step_has_error(step):
            # Steps still in the writer's hands carry their payloads encoded.
            decoded = _decoded(step.error)
            error = decoded if isinstance(decoded, Mapping) else {}
            if not error or _is_malformed_marker(error):
                error = {"type": "error", "message": f"step {step.step_number} failed"}
            return error_summary(error, step.step_number)
    return None


def aggregate_run_summary(
    run_id: uuid.UUID | None,
    steps: Sequence[Step],
    base: Mapping[str, Any] | None,
    *,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
) -> dict[str, Any]:
    """The summary of a run: ``base`` with every derived key recomputed from ``steps``.

    ``steps`` are the run's steps in step order. Derived keys: ``step_count``,
    ``total_input_tokens``, ``total_output_tokens`` (always), ``total_reasoning_tokens``,
    ``total_cache_creation_tokens``, ``total_cache_read_tokens`` (only when non-zero),
    ``has_error`` (only when true), ``error`` (the first failing step's error with its
    ``step_number``, else the run's own exception from ``base``; absent when neither),
    ``endpoint_label`` (the first completed attempt with
    a path), ``duration_ms`` (when both times are given) and ``steps_without_usage``
    (steps whose provider reported no usage, only when there are any: the totals cover
    the others), ``total_cost_usd`` (the sum of the steps' ``metadata.cost.total_usd``,
    only when at least one step was priced) and ``unpriced_step_count`` (steps found to
    have no price, only when there are any: the total covers the others). Other keys of
    ``base`` are kept; ``base`` itself is never modified. A missing or nil ``run_id``
    returns a copy of ``base`` unchanged. Malformed usage or attempts are logged and
    skipped; the step is still counted.
    """
    if run_id is None or run_id.int == 0:
        return dict(base) if base is not None else {}
    summary: dict[str, Any] = dict(base) if base is not None else {}
    for key in DERIVED_KEYS:
        summary.pop(key, None)

    summary["step_count"] = len(steps)
    totals = dict.fromkeys((total for _, total in _USAGE_KEYS), 0)
    has_error = False
    without_usage = 0
    # Decimal: a sum of many small float costs would drift in the last digits.
    cost = Decimal(0)
    priced = unpriced = 0
    endpoint_label: str | None = None
    for step in steps:
        step_cost = _step_cost(step)
        if isinstance(step_cost, Decimal):
            priced += 1
            cost += step_cost
        elif step_cost:
            unpriced += 1
        if _usage_unreported(step):
            without_usage += 1
        elif step.usage is not None:
            counts = _usage_tokens(step)
            if counts is None:
                logger.warning(
                    "skipping malformed usage of step %s (run %s) in the run summary",
                    step.id,
                    run_id,
                )
            else:
                for key, total in _USAGE_KEYS:
                    totals[total] += counts[key]
        has_error = has_error or _step_has_error(step)
        if endpoint_label is None:
            endpoint_label = _completed_endpoint(step)

    for total, value in totals.items():
        if total in _ALWAYS_SET or value > 0:
            summary[total] = value
    if has_error:
        summary["has_error"] = True
    step_error = _first_step_error(steps) if has_error else None
    if step_error is not None:
        summary["error"] = step_error
    elif isinstance(summary.get("error"), Mapping):
        summary["error"] = error_summary(summary["error"])
    if without_usage:
        summary["steps_without_usage"] = without_usage
    if priced:
        summary["total_cost_usd"] = float(cost.quantize(_BILLIONTH))
    if unpriced:
        summary["unpriced_step_count"] = unpriced
    if endpoint_label is not None:
        summary["endpoint_label"] = endpoint_label
    if started_at is not None and finished_at is not None:
        summary["duration_ms"] = max(0, (finished_at - started_at) // _ONE_MS)
    return summary
