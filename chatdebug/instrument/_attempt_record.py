"""The record of one HTTP attempt, for :class:`~._capture.AttemptCapture`: the JSON
object stored in a step's ``attempts`` (timestamps, request and response, timings), with
the response body as stored (redacted, or withheld when a secret split across stream
events would survive in it), and the retry classification of an attempt worth retrying.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ._errors import is_cancellation
from ._redact import Redactor
from ._request_view import TRUNCATED, RequestView, b64
from ._response_body import ResponseBody

__all__ = ["SPLIT_SECRET_DIAGNOSTIC", "AttemptRecord", "retry_classification", "rfc3339"]


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


class AttemptRecord:
    """Building the attempt's record from the state of the capture (lock held)."""

    number: int
    view: RequestView
    _redactor: Redactor
    _started_ns: int
    _t0: float
    _retry_delay_ms: int | None
    _status: int | None
    _headers: dict[str, str]
    _body: ResponseBody | None
    _stream_secrets: list[str]
    _ttfb_ms: float | None
    _end_perf: float | None

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
            record["response_headers"] = self._headers
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
