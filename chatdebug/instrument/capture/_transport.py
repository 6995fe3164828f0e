"""``Transport`` / ``AsyncTransport``: httpx and httpx2 transports that record attempts.

They wrap any inner transport of either library. Outside a recording run (or with OTel
instrumentation suppressed) they are a plain pass-through. Inside one, each request
becomes an attempt of the current step — the explicit ``chatdebug.step()`` if one is
open, else a new automatic step, or the previous automatic step again when an SDK
retries (``x-stainless-retry-count`` > 0). Request bodies are read without being
consumed; responses are returned at once with a teeing byte stream.
"""

from __future__ import annotations

import re
import threading
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx
import httpx2
from opentelemetry import context as otel_context

from ..._not_recorded import NOT_A_MODEL_CALL, count_not_recorded
from ..._safety import suppress_internal_errors
from .._context import current_run, current_step, retry_candidate, set_retry_candidate
from .._settings import settings
from .._state import RunState, StepState
from ._attempt import AttemptCapture
from ._model_calls import is_model_call
from ._reaper import defer_urgent, ensure_started
from ._request_view import RETRY_COUNT_HEADER, request_content, retry_count
from ._stream_usage import add_stream_usage
from ._streams import wrap_response_stream

__all__ = ["AsyncTransport", "Transport", "attempt_failed", "begin_attempt"]

# The key OTel's span processors set around export() and that users set to silence
# instrumentation; honouring it keeps an exporter that talks HTTP from recording itself.
_SUPPRESS_KEY: str | None = getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None)


def _suppressed() -> bool:
    return _SUPPRESS_KEY is not None and bool(otel_context.get_value(_SUPPRESS_KEY))


def _choose_step(run: RunState, request: Any) -> StepState | None:
    explicit = current_step()
    if explicit is not None and explicit.run is run and not explicit.ended:
        return explicit
    candidate = retry_candidate()
    if candidate is not None and candidate.run is run and not candidate.ended:
        # Only a step whose request carried the SDK's retry count waits for a retry, so
        # the header is read only then.
        if candidate.pending_retry:
            if retry_count(request.headers.get(RETRY_COUNT_HEADER)):
                return candidate
            # A new call instead of a retry: the SDK gave up on the previous one.
            candidate.end()
    # Reserved only: the step opens once its first attempt has read the request.
    step = run.reserve_step(explicit=False, parent=otel_context.get_current())
    if step is not None:
        set_retry_candidate(step)
    return step


def begin_attempt(request: Any, *, model_calls_only: bool = False) -> AttemptCapture | None:
    """The capture for this request, or None to pass it through untouched.

    Only bookkeeping happens here, on the caller's thread before the request leaves:
    choosing (or reserving) the step and noting the time. Reading, redacting and
    normalizing the request and opening the step are the capture's
    :meth:`~AttemptCapture.prepare`, handed to the reaper thread to run while the
    request is on the network.

    ``model_calls_only``: the transport was put into the client by a process-wide patch,
    so only model API calls are recorded (:mod:`._model_calls`)."""
    run = current_run()
    if run is None or run.ended or _suppressed():
        return None
    config = settings()
    if model_calls_only and not _is_model_request(request, config.model_urls):
        count_not_recorded(NOT_A_MODEL_CALL)
        return None
    added_usage = config.stream_usage and add_stream_usage(request)
    step = _choose_step(run, request)
    if step is None:
        return None
    number, previous_finished = step.reserve_attempt()
    capture = AttemptCapture(
        step,
        number,
        previous_finished,
        request,
        config.redactor,
        config.max_body_bytes,
        added_usage=added_usage,
    )
    if not step.attempt_started(capture):
        return None
    ensure_started()
    defer_urgent(capture.prepare)
    return capture


def _is_model_request(request: Any, model_urls: tuple[re.Pattern[str], ...]) -> bool:
    url = request.url
    return is_model_call(
        str(request.method),
        str(url),
        str(url.host),
        str(url.path),
        url.port,
        lambda: request_content(request),
        model_urls,
    )


def attempt_failed(capture: AttemptCapture, exc: BaseException) -> None:
    """The inner transport raised: record the failed attempt (the caller re-raises)."""
    with suppress_internal_errors("transport"):
        capture.transport_error(exc)


def _attach(capture: AttemptCapture, response: Any, *, is_async: bool) -> Any:
    """Note the response headers and tee its body into the capture; never fails."""
    with suppress_internal_errors("transport"):
        capture.response_started(response.status_code, list(response.headers.multi_items()))
        wrap_response_stream(response, capture, is_async=is_async)
    return response


class _InnerHolder:
    """Builds the default inner transport lazily, of the library the client uses."""

    def __init__(self, inner: Any, is_async: bool) -> None:
        self._inner = inner
        self._is_async = is_async
        self._lock = threading.Lock()

    def get(self, request: Any) -> Any:
        if self._inner is None:
            with self._lock:
                if self._inner is None:
                    lib: Any = httpx2 if isinstance(request, httpx2.Request) else httpx
                    self._inner = (
                        lib.AsyncHTTPTransport() if self._is_async else lib.HTTPTransport()
                    )
        return self._inner

    @property
    def current(self) -> Any:
        return self._inner


class Transport(httpx.BaseTransport, httpx2.BaseTransport):
    """A sync transport for ``httpx.Client`` or ``httpx2.Client`` that records each
    request made inside a ``chatdebug.run()``.

    **Parameters:**

    * **inner** - the transport that really sends requests (``httpx.HTTPTransport``,
      ``httpx2.HTTPTransport`` or any custom one). Default: an ``HTTPTransport`` of the
      library of the client it is used with.

    Example::

        client = httpx2.Client(transport=chatdebug.Transport())
        anthropic.Anthropic(http_client=client)
    """

    _model_calls_only: ClassVar[bool] = False
    """True for the transports a process-wide patch puts into clients."""

    def __init__(self, inner: Any = None) -> None:
        self._holder = _InnerHolder(inner, is_async=False)

    def handle_request(self, request: Any) -> Any:
        inner = self._holder.get(request)
        capture = None
        with suppress_internal_errors("transport"):
            capture = begin_attempt(request, model_calls_only=self._model_calls_only)
        if capture is None:
            return inner.handle_request(request)
        try:
            response = inner.handle_request(request)
        except BaseException as exc:
            attempt_failed(capture, exc)
            raise
        return _attach(capture, response, is_async=False)

    def close(self) -> None:
        inner = self._holder.current
        if inner is not None:
            inner.close()

    def __enter__(self) -> Self:
        inner = self._holder.current
        if inner is not None:
            inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        inner = self._holder.current
        if inner is not None:
            inner.__exit__(exc_type, exc_value, traceback)


class AsyncTransport(httpx.AsyncBaseTransport, httpx2.AsyncBaseTransport):
    """The async twin of :class:`Transport`, for ``httpx.AsyncClient`` /
    ``httpx2.AsyncClient`` (``AsyncOpenAI``, ``AsyncAnthropic``)."""

    _model_calls_only: ClassVar[bool] = False
    """True for the transports a process-wide patch puts into clients."""

    def __init__(self, inner: Any = None) -> None:
        self._holder = _InnerHolder(inner, is_async=True)

    async def handle_async_request(self, request: Any) -> Any:
        inner = self._holder.get(request)
        capture = None
        with suppress_internal_errors("transport"):
            capture = begin_attempt(request, model_calls_only=self._model_calls_only)
        if capture is None:
            return await inner.handle_async_request(request)
        try:
            response = await inner.handle_async_request(request)
        except BaseException as exc:
            attempt_failed(capture, exc)
            raise
        return _attach(capture, response, is_async=True)

    async def aclose(self) -> None:
        inner = self._holder.current
        if inner is not None:
            await inner.aclose()

    async def __aenter__(self) -> Self:
        inner = self._holder.current
        if inner is not None:
            await inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        inner = self._holder.current
        if inner is not None:
            await inner.__aexit__(exc_type, exc_value, traceback)
