"""Run and step lifecycle records, handed straight to a recorder.

Spans belong to the application's ``TracerProvider``: its sampler may drop them (then no
span processor ever sees them) and its ``SpanLimits`` may truncate or drop attributes.
Our stored rows must not depend on either, so the instrumentation also publishes each run
and step as a :class:`SpanRecord` (plain Python values, payloads not encoded) to the
:class:`RecordSink` installed in the settings. The exporter implements the sink and
:func:`chatdebug.configure` installs it; this package only defines the protocol and never
imports the exporter.

With a sink installed, spans carry only the small attributes (ids, numbers and the GenAI
semantic-convention keys) for OpenTelemetry backends. Without one, spans carry the JSON
payloads too, for :class:`~chatdebug.exporter.StoreSpanExporter` and friends.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from opentelemetry.trace import Span

from ._attributes import PAYLOAD_KEYS

__all__ = ["RecordSink", "SpanRecord", "dumps", "new_id", "span_attributes", "span_ids"]


@dataclass(slots=True)
class SpanRecord:
    """One run or step as the instrumentation knows it.

    ``attributes`` uses the keys of :mod:`chatdebug.instrument._attributes`; values of
    :data:`~chatdebug.instrument._attributes.PAYLOAD_KEYS` are Python objects (already
    redacted). ``owner`` is the live run or step object: while it is referenced the run or
    step is open and gets heartbeats.
    """

    name: str
    """:data:`~chatdebug.instrument._attributes.RUN_SPAN` or ``STEP_SPAN``."""
    attributes: dict[str, Any]
    trace_id: int
    span_id: int
    start_ns: int
    end_ns: int | None = None
    owner: object = None


class RecordSink(Protocol):
    """Receives run and step records on the thread that starts or ends them.

    Implementations must be quick and must never raise into the caller.
    """

    def record_started(self, record: SpanRecord) -> None:
        """A run or step started (its row can be written ``in_progress``)."""
        ...

    def record_ended(self, record: SpanRecord) -> None:
        """A run or step ended with the final ``record.attributes``."""
        ...


# A generator of our own, seeded from os.urandom: the module-level one is the
# application's, and code that calls ``random.seed(...)`` (test frameworks such as
# Hypothesis do, per example) would otherwise make every run id repeat.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_id() -> uuid.UUID:
    """A random (version 4) UUID for a run or step.

    Drawn from a private PRNG seeded from ``os.urandom`` (and reseeded in forked
    children) rather than ``os.urandom`` per id: a system call per step that also hands
    the GIL to other threads in the middle of the caller's request. Ids must be unique,
    not secret.
    """
    return uuid.UUID(int=_ids.getrandbits(128), version=4)


def dumps(value: Any) -> str:
    """Compact JSON for span attributes; never fails (odd values become strings)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def span_attributes(values: dict[str, Any], *, payloads: bool) -> dict[str, Any]:
    """The attributes to set on a span: payloads JSON-encoded, or left out entirely."""
    if payloads:
        return {
            key: dumps(value) if key in PAYLOAD_KEYS and not isinstance(value, str) else value
            for key, value in values.items()
        }
    return {key: value for key, value in values.items() if key not in PAYLOAD_KEYS}


def span_ids(span: Span) -> tuple[int, int]:
    """Trace and span id of ``span`` (valid also for a span the sampler dropped)."""
    context = span.get_span_context()
    return context.trace_id, context.span_id
