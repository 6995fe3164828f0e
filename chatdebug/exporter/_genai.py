"""GenAI traffic metrics recorded from an ended step span or step record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from opentelemetry.sdk.trace import ReadableSpan

from .. import _spans as attr
from .._spans import SpanRecord
from ..metrics import Metrics

__all__ = ["cost_observer", "record_step_metrics"]

# token_type label -> (GenAI attribute, key of the step's usage JSON)
_TOKEN_SOURCES: Final = (
    ("input", attr.GEN_AI_USAGE_INPUT_TOKENS, "input_tokens"),
    ("output", attr.GEN_AI_USAGE_OUTPUT_TOKENS, "output_tokens"),
    ("reasoning", attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "reasoning_tokens"),
    ("cache_read", attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "cache_read_tokens"),
    ("cache_creation", attr.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, "cache_creation_tokens"),
)


def _label(attrs: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = attrs.get(key)
        if value:
            return str(value)
    return ""


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _usage(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = attrs.get(attr.STEP_USAGE)
    if isinstance(raw, dict):
        return raw  # a record's usage: already decoded
    if not isinstance(raw, str):
        return {}
    try:
        usage = orjson.loads(raw)
    except ValueError:
        return {}  # the converter already reported it
    return usage if isinstance(usage, dict) else {}


# (metric id, label values) → (metric, child): ``labels()`` validates and locks on every
# call; the same few label sets repeat on every step.
_CHILDREN: dict[tuple[int, tuple[str, ...]], tuple[Any, Any]] = {}
_MAX_CHILDREN: Final = 10_000


def _child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)`` (label values in the metric's label order), cached."""
    key = (id(metric), values)
    hit = _CHILDREN.get(key)
    if hit is not None and hit[0] is metric:
        return hit[1]
    child = metric.labels(*values)
    if len(_CHILDREN) >= _MAX_CHILDREN:
        _CHILDREN.clear()
    _CHILDREN[key] = (metric, child)
    return child


def cost_observer(metrics: Metrics) -> Callable[[str, str, float], None]:
    """What the writer calls with (provider, model, dollars) for each priced step:
    adds to ``chatdebug_llm_cost_usd_total``. Pricing happens on the writer's thread,
    after :func:`record_step_metrics` has seen the step."""

    def observe(provider: str, model: str, total_usd: float) -> None:
        if total_usd > 0:
            _child(metrics.llm_cost, provider, model).inc(total_usd)

    return observe


def record_step_metrics(metrics: Metrics, span: ReadableSpan | SpanRecord) -> None:
    """Observe duration, token usage and time to first chunk of one ended step span.

    Labels come from the ``gen_ai.*`` attributes (empty when unknown); token counts
    fall back to the step's usage JSON when the ``gen_ai.usage.*`` attribute is absent.
    ``error_type`` is ``error.type`` when set, ``_OTHER`` for a failed step without it,
    and empty otherwise.
    """
    attrs = span.attributes or {}
    start: int | None
    end: int | None
    if isinstance(span, SpanRecord):
        start, end = span.start_ns, span.end_ns
    else:
        start, end = span.start_time, span.end_time
    provider = _label(attrs, attr.GEN_AI_PROVIDER_NAME, attr.RUN_PROVIDER)
    model = _label(attrs, attr.GEN_AI_RESPONSE_MODEL, attr.GEN_AI_REQUEST_MODEL)
    operation = _label(attrs, attr.GEN_AI_OPERATION_NAME)
    error_type = _label(attrs, attr.ERROR_TYPE)
    if not error_type and attrs.get(attr.STEP_STATUS) == "error":
        error_type = "_OTHER"

    if start is not None and end is not None:
        _child(metrics.gen_ai_operation_duration, provider, model, operation, error_type).observe(
            max(0, end - start) / 1e9
        )

    usage: Mapping[str, Any] | None = None
    for token_type, key, usage_key in _TOKEN_SOURCES:
        count = _count(attrs.get(key))
        if count is None:
            if usage is None:
                usage = _usage(attrs)
            count = _count(usage.get(usage_key))
        # Absent and zero counts of the optional types are not observations: a zero
        # would skew their histograms toward "no reasoning / no cache" on every call.
        if count is None or (count == 0 and token_type not in ("input", "output")):
            continue
        _child(metrics.gen_ai_token_usage, provider, model, operation, token_type).observe(count)

    ttft = attrs.get(attr.STEP_TTFT_MS)
    seconds: float | None = None
    if isinstance(ttft, int | float) and not isinstance(ttft, bool) and ttft >= 0:
        seconds = ttft / 1000
    else:
        fallback = attrs.get(attr.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
        if isinstance(fallback, int | float) and not isinstance(fallback, bool):
            seconds = float(fallback)
    if seconds is not None:
        _child(metrics.gen_ai_time_to_first_chunk, provider, model, operation).observe(seconds)
