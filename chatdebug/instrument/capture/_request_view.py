"""What the transport learns from a request before sending it (computed once)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import orjson

from ... import _spans as attr
from ..normalize import Detection, detect
from ..redact import Redactor

__all__ = [
    "RETRY_COUNT_HEADER",
    "RequestView",
    "b64",
    "bare_request_view",
    "read_request",
    "request_content",
    "retry_count",
]

RETRY_COUNT_HEADER = "x-stainless-retry-count"
TRUNCATED = b"[TRUNCATED]"


def b64(data: bytes) -> str:
    """Bodies are stored as base64 text: the attempt format keeps bytes, not text."""
    return base64.b64encode(data).decode("ascii")


@dataclass(slots=True)
class RequestView:
    method: str
    url: str
    """Redacted URL."""
    path: str
    host: str
    headers: dict[str, str]
    """Redacted headers."""
    body_record: str | None
    """Base64 of the redacted (or ``[TRUNCATED]``) body; None when not replayable."""
    detection: Detection
    normalized_request: dict[str, Any]
    is_stream: bool
    request_model: str | None
    retry_count: int | None
    """``x-stainless-retry-count`` (None when absent: the client does not retry)."""

    def span_attributes(self) -> dict[str, Any]:
        """GenAI request attributes for the step span."""
        values: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: self.detection.codec.operation_name,
            attr.GEN_AI_PROVIDER_NAME: self.detection.provider,
            attr.GEN_AI_REQUEST_STREAM: self.is_stream,
            attr.STEP_API_FORMAT: self.detection.codec.name,
        }
        if self.request_model:
            values[attr.GEN_AI_REQUEST_MODEL] = self.request_model
        return values


def retry_count(value: str | None) -> int | None:
    """The SDK's retry count from its header's value (None: absent; garbage counts as 0)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return 0


def request_content(request: Any) -> bytes | None:
    """The body of an httpx/httpx2 request when it can be read without consuming it."""
    # httpx keeps the body of requests built from json=/content= in ``_content``; a
    # streaming upload raises RequestNotRead and is not read (it cannot be replayed).
    try:
        content = request.content
    except Exception:
        return None
    return content if isinstance(content, bytes) else None


def read_request(request: Any, redactor: Redactor, max_body_bytes: int) -> RequestView:
    """Build the :class:`RequestView` of an httpx/httpx2 request without consuming it."""
    url = request.url
    method = str(request.method)
    path = str(url.path)
    host = str(url.host)
    pairs = list(request.headers.multi_items())
    retries: int | None = None
    for name, value in pairs:
        if name.lower() == RETRY_COUNT_HEADER:
            retries = retry_count(value)
    content = request_content(request)
    body_record: str | None = None
    parsed: Any = None
    if content is not None:
        if len(content) > max_body_bytes:
            body_record = b64(TRUNCATED)
        elif content:
            body_record = b64(redactor.redact_json(content))
        if content:
            try:
                parsed = orjson.loads(content)
            except orjson.JSONDecodeError:
                try:  # what orjson refuses (NaN, huge integers) the json module may take
                    parsed = json.loads(content)
                except (ValueError, RecursionError):
                    parsed = None
    detection = detect(method, host, path, port=url.port)
    codec = detection.codec
    normalized = redactor.redact_payload(codec.normalize_request(parsed))
    return RequestView(
        method=method,
        url=redactor.redact_url(str(url)),
        # The route decides the format above; what is stored gets the value patterns, as
        # the URL does (a key or an account id in a path segment is still a secret).
        path=redactor.redact_text(path),
        host=host,
        headers=redactor.redact_headers(pairs),
        body_record=body_record,
        detection=detection,
        normalized_request=normalized,
        is_stream=codec.is_stream_request(parsed),
        request_model=codec.request_model(parsed),
        retry_count=retries,
    )


def bare_request_view(request: Any, redactor: Redactor) -> RequestView:
    """What is known of a request whose body or headers could not be read: its method and
    redacted URL, in the generic format."""
    try:
        method, url = str(request.method), str(request.url)
    except Exception:
        method, url = "", ""
    detection = detect(method, "", "")
    return RequestView(
        method=method,
        url=redactor.redact_url(url) if url else "",
        path="",
        host="",
        headers={},
        body_record=None,
        detection=detection,
        normalized_request={},
        is_stream=False,
        request_model=None,
        retry_count=None,
    )
