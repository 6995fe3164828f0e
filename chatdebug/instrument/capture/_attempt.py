"""One HTTP attempt: what was sent, what came back, and when it is done.

The transport creates an :class:`AttemptCapture` per round trip and reports events to it
(response headers, each raw chunk, end of body, close, errors). The capture decodes and
tees the body (bounded), feeds streams to the codec's assembler, and applies these
completion rules:

* SSE bodies are done at EOF or at close. The step is completed once the provider's
  content was final (the assembler's ``content_final``: a Chat Completions
  ``finish_reason``, Anthropic's ``message_delta`` with a ``stop_reason``, a final
  Responses event, a Gemini ``finishReason``; the table is in
  :mod:`chatdebug.instrument.normalize`), even if the caller closes before the last
  event; at EOF before that the attempt is completed but the step *interrupted*
  (``incomplete_stream``), at close before it the attempt fails and the step is
  *interrupted*;
* other bodies at EOF or close: fully read → completed (unknown-length JSON must parse as
  exactly one document); HEAD, 1xx, 204, 304 → completed unread; otherwise failed with
  ``unexpected EOF``;
* a read or transport error → failed at once, unless a stream's content was already
  final.

When done it reports an :class:`~chatdebug.instrument._state.AttemptOutcome` to its step
exactly once, carrying the attempt's record: the JSON object stored in a step's
``attempts`` (timestamps, request and response, timings), with the response body as stored
(redacted, or withheld when a secret split across stream events would survive in it), and
the retry classification of an attempt worth retrying.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ... import _spans as attr
from ..._pacing import pause_point
from ..._safety import suppress_internal_errors
from ..._spans import PROGRESS_TEXT_CHARS
from ..._status import Operation, Status
from .._outcome import error_payload, is_cancellation, is_timeout
from .._state import AttemptOutcome, StepState
from ..normalize import Codec, NormalizedResponse, is_retryable_status
from ..redact import Redactor
from ._reaper import defer
from ._request_view import TRUNCATED, RequestView, b64, bare_request_view, read_request
from ._response_body import ResponseBody
from ._stream_usage import ADDED_KEY, INCLUDE_USAGE

__all__ = ["SPLIT_SECRET_DIAGNOSTIC", "AttemptCapture", "retry_classification", "rfc3339"]


SPLIT_SECRET_DIAGNOSTIC = (
    b'{"error":"chatdebug: a secret was split across stream events, raw body withheld"}'
)


_last_second: list[tuple[int, str]] = [(-1, "")]


def rfc3339(ns: int) -> str:
    """UTC timestamp with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    cached = _last_second[0]  # most attempts start and end within the same second
    if cached[0] == seconds:
        base = cached[1]
    else:
        base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _last_second[0] = (seconds, base)
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def retry_classification(status: int | None, exc: BaseException | None) -> str:
    if exc is not None:
        return "timeout" if is_cancellation(exc) else "connection_error"
    return {408: "request_timeout", 409: "conflict", 429: "rate_limited", 529: "overloaded"}.get(
        status or 0, "overloaded" if status == 503 else "server_error"
    )


def _weak_codec_source(capture: AttemptCapture) -> Callable[[], tuple[Codec, dict[str, Any]]]:
    """What the capture's body asks for its codec and request, without a reference back
    to the capture: the two would form a cycle that only the cyclic garbage collector
    frees, and everything the capture holds (its step, the span, the records) would wait
    for it instead of going when the attempt is done."""
    ref = weakref.ref(capture)

    def codec_and_request() -> tuple[Codec, dict[str, Any]]:
        live = ref()
        if live is None:
            raise ReferenceError("the attempt is gone")
        return live.codec_and_request()

    return codec_and_request


class AttemptCapture:
    """Thread-safe: a body may be read on one thread and closed on another."""

    def __init__(
        self,
        step: StepState,
        number: int,
        previous_finished_ns: int | None,
        request: Any,
        redactor: Redactor,
        max_body_bytes: int,
        *,
        added_usage: bool = False,
    ) -> None:
        self.step = step
        self.number = number
        self._request: Any = request
        self._added_usage = added_usage
        self._view: RequestView | None = None
        self._prepared = False
        self._sent_headers: list[tuple[str, str]] | None = None
        self._prepare_lock = threading.Lock()
        self._redactor = redactor
        self._max_body = max_body_bytes
        self._lock = threading.Lock()
        self._started_ns = time.time_ns()
        self._t0 = time.perf_counter()
        self._retry_delay_ms = (
            max(0, (self._started_ns - previous_finished_ns) // 1_000_000)
            if previous_finished_ns is not None
            else None
        )
        self.done = False
        self._status: int | None = None
        self._header_pairs: list[tuple[str, str]] = []
        self._body: ResponseBody | None = None
        self._stream_secrets: list[str] = []
        self._ttfb_ms: float | None = None
        # A body read to its end (or a stream closed) whose outcome is worked out on the
        # reaper thread (see eof, closed); ``settle`` runs that work once, on whichever
        # thread gets there first.
        self._pending: Callable[[], AttemptOutcome] | None = None
        self._settle_lock = threading.Lock()
        self._end_ns: int | None = None
        self._end_perf: float | None = None

    # -- the request ----------------------------------------------------------------------
    def prepare(self) -> None:
        """Read, redact and normalize the request, then open the step if this is its
        first attempt (idempotent; whichever thread comes first: the reaper while the
        request is on the network, or the caller's when the response is back sooner).
        No caller returns from it before both are done."""
        if self._prepared:
            return
        with self._prepare_lock:
            if self._prepared:
                return
            view: RequestView | None = None
            with suppress_internal_errors("transport"):
                view = read_request(self._request, self._redactor, self._max_body)
            if view is None:
                # A request we cannot read is still an attempt: recorded without its body.
                view = bare_request_view(self._request, self._redactor)
            if self._added_usage:
                view.normalized_request[ADDED_KEY] = [INCLUDE_USAGE]
            if self._sent_headers is not None:
                view.headers = self._redactor.redact_headers(self._sent_headers)
            self._request = None  # the caller's object is not kept alive by us
            self._view = view
            pause_point()
            operation = Operation.STREAM if view.is_stream else Operation.GENERATE
            attributes = view.span_attributes()
            attributes[attr.STEP_NORMALIZED_REQUEST] = view.normalized_request
            self.step.open(operation.value, attributes)
            self._prepared = True

    @property
    def view(self) -> RequestView:
        """What the request was (read on first use if :meth:`prepare` has not run)."""
        if not self._prepared:
            self.prepare()
        view = self._view
        assert view is not None
        return view

    def headers_sent(self, pairs: list[tuple[str, str]]) -> None:
        """The headers the client really sent, when they differ from the request's (a
        client that adds its own on the way out, as aiohttp does)."""
        with self._prepare_lock:
            self._sent_headers = pairs
            if self._view is not None:
                self._view.headers = self._redactor.redact_headers(pairs)

    # -- events from the transport ---------------------------------------------------------
    def response_started(
        self,
        status: int,
        header_pairs: list[tuple[str, str]],
        *,
        body_headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """The status line and headers arrived. ``body_headers``: the headers that describe
        the bytes that will be fed, when they differ from the response's (a client that
        decodes the body itself, as aiohttp does, passes them without ``Content-Encoding``
        and ``Content-Length``); default ``header_pairs``."""
        with self._lock:
            self._ttfb_ms = round((time.perf_counter() - self._t0) * 1000, 3)
            self._status = status
            # Redacted when the record is built, off the caller's thread.
            self._header_pairs = header_pairs
            self._body = ResponseBody(
                header_pairs if body_headers is None else body_headers,
                _weak_codec_source(self),
                self._max_body,
                self._t0,
            )

    def progress(self) -> dict[str, Any] | None:
        """How far the streamed response has come (see
        :class:`~chatdebug._spans.StreamProgressSource`); None for other bodies, once
        the attempt is done, or when nothing new arrived."""
        with self._lock:
            body = self._body
            if self.done or body is None:
                return None
            found = body.progress(PROGRESS_TEXT_CHARS)
            ttft_ms = body.ttft_ms
        if found is None:
            return None
        events, text, text_chars = found
        return {
            "chunks": events,
            "text_chars": text_chars,
            "time_to_first_chunk_ms": ttft_ms,
            "text": self._redactor.redact_text(text)[:PROGRESS_TEXT_CHARS],
        }

    def codec_and_request(self) -> tuple[Codec, dict[str, Any]]:
        """The codec of the response and the normalized request."""
        view = self.view
        return view.detection.codec, view.normalized_request

    def feed(self, raw: bytes) -> None:
        """A raw chunk the caller is about to receive."""
        with self._lock:
            if not self.done and self._body is not None:
                self._body.feed(raw)

    def eof(self) -> None:
        """The body was read to its end.

        When the run's records go to a sink and the response is not an HTTP error, the
        rest (normalizing, redacting the normalized payloads, building the attempt,
        ending the step) runs on the reaper thread rather than the caller's: such an
        attempt never asks for a retry, so nothing the caller does next depends on it.
        Whatever ends the step or the run first settles it (:meth:`settle`), so no end
        is ever written without it.
        """
        with self._lock:
            if self.done or self._body is None:
                return
            body = self._body
            body.end()
            if self._defer(lambda: self._eof_outcome(body)):
                return
            outcome = self._eof_outcome(body)
        self._report(outcome)

    def _defer(self, finish: Callable[[], AttemptOutcome]) -> bool:
        """Leave ``finish`` to the reaper thread when nothing waits on its outcome: a
        response that is not an HTTP error, of a run whose records go to a sink."""
        # lock held
        status = self._status
        if self.step.run.sink is None or status is None or status >= 400:
            return False
        self.done = True
        self._pending = finish
        self._end_ns = time.time_ns()
        self._end_perf = time.perf_counter()
        defer(self.settle)
        return True

    def settle(self) -> None:
        """Work out and report the outcome left to the reaper (idempotent).

        A second caller waits until the first has reported, so a step that ends right
        after always has the attempt's outcome."""
        with self._settle_lock:
            with self._lock:
                finish = self._pending
                if finish is None:
                    return
                self._pending = None
                outcome = finish()
            self._report(outcome)

    def _eof_outcome(self, body: ResponseBody) -> AttemptOutcome:
        # lock held
        if body.is_sse:
            return self._finish("completed", None)
        problem = self._unknown_length_problem(body)
        return self._finish("failed" if problem else "completed", problem)

    def closed(self, close_error: BaseException | None = None) -> None:
        """The caller closed the body (possibly before reading it all)."""
        with self._lock:
            if self.done:
                return
            if close_error is not None:
                outcome = self._finish("failed", self._error_text(close_error))
            else:
                # Clients close a stream once its content is final, often before its
                # last event or its end: parsing what is kept to tell that close from an
                # early one (see _finish_early) is left to the reaper, as at EOF.
                body = self._body
                if body is not None and body.is_sse and self._defer(self._closed_early):
                    return
                outcome = self._closed_early()
        self._report(outcome)

    def _closed_early(self) -> AttemptOutcome:
        # lock held
        return self._finish_early("the response body was closed before it was read")

    def read_error(self, exc: BaseException) -> None:
        """Reading the body failed (server dropped the connection, timeout, cancel)."""
        self.prepare()
        with self._lock:
            if self.done:
                return
            if self._body is not None and self._body.content_final:
                # The provider's content was final: the model call is complete, whatever
                # happens to the rest of the body (the async SDKs drain it under a short
                # deadline and cancel that read).
                outcome = self._finish("completed", None)
            else:
                outcome = self._finish("failed", self._error_text(exc), exc=exc, during_body=True)
        self._report(outcome)

    def transport_error(self, exc: BaseException) -> None:
        """The round trip failed before a response arrived."""
        self.prepare()
        with self._lock:
            if self.done:
                return
            outcome = self._finish("failed", self._error_text(exc), exc=exc)
        self._report(outcome)

    def abandon(self, reason: str) -> None:
        """Finish now: the step ended or the body was garbage-collected unclosed."""
        self.prepare()
        self.settle()  # a body read to its end is complete, not abandoned
        with self._lock:
            if self.done:
                return
            outcome = self._finish_early(reason)
        self._report(outcome)

    # -- completion rules (lock held) --------------------------------------------------------
    @staticmethod
    def _unknown_length_problem(body: ResponseBody) -> str | None:
        """At EOF: an unknown-length JSON body must be exactly one complete document."""
        if body.content_length is not None or body.too_large or not body.is_json_type():
            return None
        if not body.data:
            return None
        return None if body.json_complete() else "unexpected EOF"

    def _finish_early(self, reason: str) -> AttemptOutcome:
        """Completion rules when the body ends other than by EOF."""
        body = self._body
        if body is None:
            return self._finish("failed", reason, caller_stopped=True)
        body.close_parser()
        status = self._status or 0
        if body.is_sse:
            if body.content_final:
                return self._finish("completed", None)
            return self._finish("failed", reason, caller_stopped=True)
        if self.view.method.upper() == "HEAD" or status < 200 or status in (204, 304):
            return self._finish("completed", None)
        if body.content_length is not None and body.raw_bytes >= body.content_length:
            return self._finish("completed", None)
        if body.content_length is None and (body.too_large or body.over_cap):
            return self._finish("completed", None)
        if body.content_length is None and body.data and body.json_complete():
            return self._finish("completed", None)
        return self._finish("failed", "unexpected EOF", caller_stopped=True)

    def _error_text(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        return self._redactor.sanitize_error_text(f"{type(exc).__name__}: {text}")

    # -- building the outcome (lock held) ---------------------------------------------------
    def _finish(
        self,
        attempt_status: str,
        error_text: str | None,
        *,
        exc: BaseException | None = None,
        caller_stopped: bool = False,
        during_body: bool = False,
    ) -> AttemptOutcome:
        self.done = True
        finished_ns = self._end_ns if self._end_ns is not None else time.time_ns()
        status = self._status
        # Normalize before building the record: a secret found in the assembled stream
        # decides how the raw body may be stored.
        normalized = self._normalized() if status is not None and status < 400 else None
        pause_point()
        record = self._record(attempt_status, error_text, finished_ns)
        outcome = AttemptOutcome(
            record=record,
            ok=False,
            step_status=Status.ERROR,
            normalized_request=self.view.normalized_request,
            request_attributes=self.view.span_attributes(),
            ttfb_ms=self._ttfb_ms,
            ttft_ms=self._body.ttft_ms if self._body is not None else None,
        )
        if exc is not None:
            outcome.step_status = Status.INTERRUPTED if is_cancellation(exc) else Status.ERROR
            outcome.error = error_payload(exc, self._redactor)
            user_cancel = is_cancellation(exc) and not is_timeout(exc)
            outcome.may_retry = (
                not during_body and self.view.retry_count is not None and not user_cancel
            )
            if during_body:
                # Keep what arrived before the failure: lose nothing.
                outcome.response = normalized
        elif status is not None and status >= 400:
            outcome.error = self._redactor.redact_payload(
                self.view.detection.codec.error_payload(status, self._parsed_body())
            )
            outcome.may_retry = self.view.retry_count is not None and self._retryable(status)
        else:
            response = normalized
            outcome.response = response
            if response is not None and response.error is not None:
                outcome.error = response.error
            elif attempt_status == "failed":
                outcome.step_status = Status.INTERRUPTED if caller_stopped else Status.ERROR
                outcome.error = {
                    "message": error_text or "the response was not finished",
                    "type": "stream_interrupted"
                    if self._body is not None and self._body.is_sse
                    else "incomplete_response",
                }
            elif response is not None and not response.complete:
                outcome.step_status = Status.INTERRUPTED
                outcome.error = {
                    "message": "the stream ended before the provider's content was final",
                    "type": "incomplete_stream",
                }
            else:
                outcome.ok = True
                outcome.step_status = Status.COMPLETED
        if outcome.may_retry:
            record["retry_classification"] = retry_classification(status, exc)
        return outcome

    def _retryable(self, status: int) -> bool:
        should_retry = None
        for name, value in self._header_pairs:
            if name.lower() == "x-should-retry":
                should_retry = value.strip().lower()
        if should_retry == "true":
            return True
        if should_retry == "false":
            return False
        return is_retryable_status(status)

    def _parsed_body(self) -> Any:
        return self._body.parsed() if self._body is not None else None

    def _normalized(self) -> NormalizedResponse | None:
        if self._body is None:
            return None
        result = self._body.normalize()
        if result.response is not None:
            redacted = self._redactor.redact_payload(result.response)
            if redacted is not result.response and self._body.is_sse:
                self._stream_secrets = self._secrets_in(result.response)
            result.response = redacted
        if result.error is not None:
            result.error = self._redactor.redact_payload(result.error)
        return result

    def _report(self, outcome: AttemptOutcome | None) -> None:
        if outcome is not None:
            self.step.attempt_finished(self.number, outcome)

    # -- the attempt's record (lock held) --------------------------------------------------
    def _secrets_in(self, value: Any) -> list[str]:
        """Secret values the redactor's patterns find in an (unredacted) payload."""
        found: list[str] = []
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                for pattern in self._redactor.patterns:
                    found.extend(m.group(0) for m in pattern.finditer(item))
            elif isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return found

    def _leaks_split_secret(self, body: bytes) -> bool:
        """Whether a secret of the assembled stream survives, split, in the raw body.

        A key cut across two stream events matches no pattern in either event, so the
        raw body is checked for any 8-character piece of the secrets the assembled text
        revealed; if one is there the raw body is withheld (fail closed).
        """
        text = body.decode("utf-8", errors="replace")
        for secret in self._stream_secrets:
            for start in range(max(1, len(secret) - 7)):
                if secret[start : start + 8] in text:
                    return True
        return False

    def _record(
        self, attempt_status: str, error_text: str | None, finished_ns: int
    ) -> dict[str, Any]:
        view = self.view
        record: dict[str, Any] = {
            "number": self.number,
            "status": attempt_status,
            "method": view.method,
            "url": view.url,
            "path": view.path,
            "started_at": rfc3339(self._started_ns),
            "finished_at": rfc3339(finished_ns),
            "request_headers": view.headers,
        }
        if view.body_record is not None:
            record["request_body"] = view.body_record
        if self._status is not None:
            record["response_status"] = self._status
            record["response_headers"] = self._redactor.redact_headers(self._header_pairs)
            stored = self._response_body_record()
            if stored is not None:
                record["response_body"] = stored
        if error_text:
            record["error"] = error_text
        end_perf = self._end_perf if self._end_perf is not None else time.perf_counter()
        record["duration_ms"] = int((end_perf - self._t0) * 1000)
        if self._ttfb_ms is not None:
            record["ttfb_ms"] = self._ttfb_ms
        body = self._body
        if body is not None and body.ttft_ms is not None:
            record["ttft_ms"] = body.ttft_ms
        if self._retry_delay_ms is not None:
            record["retry_delay_ms"] = self._retry_delay_ms
        if body is not None and body.decode_error is not None:
            record["capture_error"] = body.decode_error
        return record

    def _response_body_record(self) -> str | None:
        body = self._body
        if body is None:
            return None
        if body.truncated():
            return b64(TRUNCATED)
        if not body.data:
            return None
        stored = body.redacted(self._redactor)
        if self._stream_secrets and self._leaks_split_secret(stored):
            return b64(SPLIT_SECRET_DIAGNOSTIC)
        return b64(stored)
