"""Span helpers for the exporter tests: attributes as the instrumentation sets them, runs
and steps started on a real tracer, polling, metric samples and a blocked store.

Spans use the attribute keys of ``chatdebug._spans``, exactly as the instrumentation
sets them.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.trace import Span, Tracer, set_span_in_context

from chatdebug import _spans as attr
from chatdebug.metrics import Metrics


def run_attributes(
    run_id: uuid.UUID, extra: Mapping[str, Any] | None = None, *, chat_id: str = "chat-1"
) -> dict[str, Any]:
    attrs: dict[str, Any] = {attr.RUN_ID: str(run_id), attr.CHAT_ID: chat_id}
    attrs.update(extra or {})
    return attrs


def step_attributes(
    run_id: uuid.UUID,
    step_id: uuid.UUID,
    number: int,
    extra: Mapping[str, Any] | None = None,
    *,
    chat_id: str = "chat-1",
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        attr.RUN_ID: str(run_id),
        attr.CHAT_ID: chat_id,
        attr.STEP_ID: str(step_id),
        attr.STEP_NUMBER: number,
        attr.STEP_OPERATION: "generate",
    }
    attrs.update(extra or {})
    return attrs


def user_request(text: str) -> str:
    return json.dumps({"messages": [{"role": "user", "parts": [{"type": "text", "text": text}]}]})


def finished_step_attributes(
    input_tokens: int = 10, output_tokens: int = 5, path: str = "/v1/chat/completions"
) -> dict[str, Any]:
    """What the instrumentation sets on a successful step before ending it."""
    return {
        attr.STEP_STATUS: "completed",
        attr.STEP_NORMALIZED_RESPONSE: json.dumps(
            {"content": [{"type": "text", "text": "hi"}], "finish_reason": "stop"}
        ),
        attr.STEP_USAGE: json.dumps({"input_tokens": input_tokens, "output_tokens": output_tokens}),
        attr.STEP_ATTEMPTS: json.dumps(
            [
                {
                    "number": 1,
                    "status": "completed",
                    "method": "POST",
                    "path": path,
                    "duration_ms": 12,
                }
            ]
        ),
        attr.STEP_METADATA: json.dumps({"stream_summary": {"part_count": 3}}),
        attr.GEN_AI_PROVIDER_NAME: "openai",
        attr.GEN_AI_REQUEST_MODEL: "gpt-4o",
        attr.GEN_AI_OPERATION_NAME: "chat",
        attr.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        attr.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
    }


def start_run(tracer: Tracer, run_id: uuid.UUID, extra: Mapping[str, Any] | None = None) -> Span:
    return tracer.start_span(attr.RUN_SPAN, attributes=run_attributes(run_id, extra))


def start_step(
    tracer: Tracer,
    run: Span,
    run_id: uuid.UUID,
    number: int,
    extra: Mapping[str, Any] | None = None,
) -> tuple[Span, uuid.UUID]:
    step_id = uuid.uuid4()
    span = tracer.start_span(
        attr.STEP_SPAN,
        context=set_span_in_context(run),
        attributes=step_attributes(run_id, step_id, number, extra),
    )
    return span, step_id


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@contextmanager
def writes_blocked(database_url: str) -> Iterator[None]:
    """Hold the database's write lock from another connection: writers wait (SQLite
    until its busy timeout, then retry; PostgreSQL until the lock is released)."""
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        lite = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        lite.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lite.execute("ROLLBACK")
            lite.close()
    else:
        import psycopg

        with psycopg.connect(database_url) as conn:
            conn.execute("LOCK TABLE chat_debug_runs, chat_debug_steps IN ACCESS EXCLUSIVE MODE")
            yield
            conn.rollback()
