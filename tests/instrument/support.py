"""Reading what the instrumentation recorded: finished spans and their attributes."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chatdebug import _spans as attr
from chatdebug.instrument.capture import drain


class Spans:
    """Finished spans, with helpers to read our attributes."""

    def __init__(self, exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
        self.exporter = exporter
        self.provider = provider

    def all(self) -> list[ReadableSpan]:
        drain()
        return list(self.exporter.get_finished_spans())

    def runs(self) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == attr.RUN_SPAN]

    def steps(self, run_id: object | None = None) -> list[ReadableSpan]:
        steps = [s for s in self.all() if s.name == attr.STEP_SPAN]
        if run_id is not None:
            steps = [s for s in steps if s.attributes[attr.RUN_ID] == str(run_id)]
        return sorted(steps, key=lambda s: s.attributes[attr.STEP_NUMBER])

    def only_step(self) -> ReadableSpan:
        steps = self.steps()
        assert len(steps) == 1, [s.attributes for s in steps]
        return steps[0]


def jattr(span: ReadableSpan, key: str) -> Any:
    """A JSON attribute, decoded."""
    value = span.attributes.get(key)
    assert isinstance(value, str), f"{key} missing on {span.name}: {dict(span.attributes)}"
    return json.loads(value)
