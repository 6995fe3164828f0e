"""``chatdebug.run()`` and ``chatdebug.traced_run()``: what users wrap around a chat turn."""

from __future__ import annotations

import functools
import inspect
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace

from .. import _spans as attr
from .._ids import id_problem
from .._safety import log_internal_error, suppress_internal_errors
from .._spans import INSTRUMENTATION_NAME, SpanRecord, new_id, span_ids
from .._status import Status
from ._context import retry_var, run_var, step_var
from ._notice import warn_not_recorded
from ._scope import ScopeFactory
from ._settings import is_enabled, settings, tracer
from ._state import RunState, StepState
from ._step import StepHandle
from .normalize import bound_text

__all__ = ["InvalidChatId", "RunHandle", "run", "traced_run"]

F = TypeVar("F", bound=Callable[..., Any])


class InvalidChatId(ValueError):
    """A run was not recorded: its chat id cannot be stored (see :mod:`chatdebug._ids`)."""


@dataclass(frozen=True, slots=True)
class _RunParams:
    chat_id: str
    kind: str
    user_id: str | None
    provider: str | None
    model: str | None
    first_message: str | None
    trigger_message_id: int | None
    history_tip_message_id: int | None
    root_chat_id: str | None
    parent_chat_id: str | None
    model_config_id: str | None


class RunHandle:
    """What ``with chatdebug.run(...) as run`` gives you.

    ``id`` is the run's UUID (None when this run does not record: debug logging is not
    enabled for its user). Setters are harmless no-ops on a run that does not record.
    """

    __slots__ = ("_ended_last_step", "_state", "chat_id")

    def __init__(self, chat_id: str, state: RunState | None) -> None:
        self.chat_id = chat_id
        self._state = state
        # Once the run has ended its last step is kept here rather than by the run (see
        # RunState.release_last_step).
        self._ended_last_step: StepState | None = None

    @property
    def id(self) -> uuid.UUID | None:
        return self._state.id if self._state is not None else None

    @property
    def recording(self) -> bool:
        """Whether this run records anything."""
        return self._state is not None

    @property
    def last_step(self) -> StepHandle | None:
        """The step most recently started in this run (e.g. to set its assistant
        message id after persisting the answer)."""
        step = self._ended_last_step
        if step is None and self._state is not None:
            step = self._state.last_step
        return StepHandle(step) if step is not None else None

    def set_status(self, status: Status | str) -> None:
        """Choose the run's final status without raising (a later exception may still
        override it if it has a higher priority)."""
        if self._state is not None:
            self._state.set_status(Status(status))

    def set_model(self, model: str, provider: str | None = None) -> None:
        if self._state is not None:
            values: dict[str, Any] = {attr.RUN_MODEL: model}
            if provider:
                values[attr.RUN_PROVIDER] = provider
            self._state.set_attributes(values)

    def set_history_tip_message_id(self, message_id: int) -> None:
        if self._state is not None:
            self._state.set_attributes({attr.RUN_HISTORY_TIP_MESSAGE_ID: message_id})

    def add_summary(self, **values: Any) -> None:
        """Extra keys stored in the run's summary (JSON-serialisable values)."""
        if self._state is not None:
            self._state.add_summary(values)


def _start(params: _RunParams) -> tuple[RunHandle, Any]:
    handle = RunHandle(params.chat_id, None)
    with suppress_internal_errors("run"):
        problem = id_problem(params.chat_id)
        if problem is not None:
            # Refused, never raised: logged (at most once a minute) and counted in
            # chatdebug_internal_errors_total{component="run"}.
            shown = params.chat_id[:40] + ("…" if len(params.chat_id) > 40 else "")
            refusal = InvalidChatId(f"run not recorded: chat id {shown!r} {problem}")
            log_internal_error("run", refusal)
            return handle, None
        if not is_enabled(params.user_id):
            warn_not_recorded(params.chat_id, params.user_id)
            return handle, None
        run_id = new_id()
        values: dict[str, Any] = {
            attr.RUN_ID: str(run_id),
            attr.CHAT_ID: params.chat_id,
            attr.RUN_KIND: params.kind,
            attr.GEN_AI_CONVERSATION_ID: params.chat_id,
        }
        optional: dict[str, Any] = {
            attr.USER_ID: params.user_id,
            attr.RUN_PROVIDER: params.provider,
            attr.RUN_MODEL: params.model,
            attr.RUN_TRIGGER_MESSAGE_ID: params.trigger_message_id,
            attr.RUN_HISTORY_TIP_MESSAGE_ID: params.history_tip_message_id,
            attr.RUN_ROOT_CHAT_ID: params.root_chat_id,
            attr.RUN_PARENT_CHAT_ID: params.parent_chat_id,
            attr.RUN_MODEL_CONFIG_ID: params.model_config_id,
        }
        if params.first_message:
            text = settings().redactor.redact_text(params.first_message)
            optional[attr.RUN_FIRST_MESSAGE] = bound_text(text)[0]
        values.update({k: v for k, v in optional.items() if v is not None})
        config = settings()
        sink = config.sink
        run_tracer = tracer()
        start_ns = time.time_ns()
        span = run_tracer.start_span(attr.RUN_SPAN, attributes=values, start_time=start_ns)
        fallback = config.fallback_provider
        if sink is None and not span.is_recording() and fallback is not None:
            # The application's sampler dropped our run and our rows come from the
            # spans: record it through our own provider rather than lose it. (With a
            # record sink the rows do not depend on the spans at all.)
            run_tracer = fallback.get_tracer(INSTRUMENTATION_NAME)
            span = run_tracer.start_span(attr.RUN_SPAN, attributes=values, start_time=start_ns)
        state = RunState(
            run_id=run_id,
            chat_id=params.chat_id,
            user_id=params.user_id,
            span=span,
            tracer=run_tracer,
            sink=sink,
            values=values,
            start_ns=start_ns,
        )
        if sink is not None:
            trace_id, span_id = span_ids(span)
            sink.record_started(
                SpanRecord(attr.RUN_SPAN, dict(values), trace_id, span_id, start_ns, owner=state)
            )
        tokens = (
            run_var.set(state),
            step_var.set(None),
            # Reset at the end too, so the context does not keep the run's last step
            # (and with it the run) alive after the run.
            retry_var.set(None),
            otel_context.attach(trace.set_span_in_context(span)),
        )
        handle = RunHandle(params.chat_id, state)
        return handle, (state, handle, tokens)
    return handle, None


def _end(token: Any, exc: BaseException | None) -> None:
    if token is None:
        return
    state, handle, (run_token, step_token, retry_token, otel_token) = token
    with suppress_internal_errors("run"):
        try:
            otel_context.detach(otel_token)
            retry_var.reset(retry_token)
            step_var.reset(step_token)
            run_var.reset(run_token)
        except ValueError:
            # Exited in another context than it was entered (e.g. a generator resumed
            # elsewhere): nothing to restore there.
            pass
        state.end(exc)
        handle._ended_last_step = state.release_last_step()


class _Run(ScopeFactory[RunHandle]):
    def __init__(self, params: _RunParams) -> None:
        super().__init__()
        self._params = params

    def _open(self) -> tuple[RunHandle, Any]:
        return _start(self._params)

    def _close(self, token: Any, exc: BaseException | None) -> None:
        _end(token, exc)


def run(
    chat_id: str,
    *,
    kind: str = "chat_turn",
    user_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    first_message: str | None = None,
    trigger_message_id: int | None = None,
    history_tip_message_id: int | None = None,
    root_chat_id: str | None = None,
    parent_chat_id: str | None = None,
    model_config_id: str | None = None,
) -> _Run:
    """Record one logical LLM-using operation of a chat (a chat turn, a title…).

    Use as ``with``/``async with`` (gives a :class:`RunHandle`) or as a decorator of a
    sync or async function (one run per call). Every model call made inside through a
    chatdebug transport becomes a step. The run ends ``completed``, or ``error`` /
    ``interrupted`` when an exception (cancellation and timeouts: ``interrupted``)
    leaves the block — the exception itself always propagates unchanged.

    Example::

        with chatdebug.run(chat_id="c-42", user_id="u-7", first_message=text) as run:
            reply = client.chat.completions.create(model="gpt-4o", messages=msgs)
    """
    return _Run(
        _RunParams(
            chat_id=str(chat_id),
            kind=str(kind),
            user_id=str(user_id) if user_id is not None else None,
            provider=provider,
            model=model,
            first_message=first_message,
            trigger_message_id=trigger_message_id,
            history_tip_message_id=history_tip_message_id,
            root_chat_id=root_chat_id,
            parent_chat_id=parent_chat_id,
            model_config_id=model_config_id,
        )
    )


def traced_run(
    *,
    kind: str = "chat_turn",
    chat_id_arg: str = "chat_id",
    user_id_arg: str | None = "user_id",
    first_message_arg: str | None = None,
    **run_options: Any,
) -> Callable[[F], F]:
    """Decorator: open a run around each call of a sync or async function, taking the
    chat id (and, when the function has them, the user id and first message) from its
    arguments.

    Example::

        @chatdebug.traced_run(kind="title_generation", first_message_arg="text")
        async def make_title(chat_id: str, text: str) -> str: ...
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        if chat_id_arg not in signature.parameters:
            raise TypeError(f"{func.__qualname__} has no parameter named {chat_id_arg!r}")

        def scope_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Run | None:
            try:
                bound = signature.bind_partial(*args, **kwargs)
                bound.apply_defaults()
                values = bound.arguments
                options = dict(run_options)
                if user_id_arg and values.get(user_id_arg) is not None:
                    options.setdefault("user_id", values[user_id_arg])
                if first_message_arg and isinstance(values.get(first_message_arg), str):
                    options.setdefault("first_message", values[first_message_arg])
                return run(str(values[chat_id_arg]), kind=kind, **options)
            except Exception as exc:
                log_internal_error("traced_run", exc)
                return None

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = scope_for(args, kwargs)
                if scope is None:
                    return await func(*args, **kwargs)
                async with scope:
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = scope_for(args, kwargs)
            if scope is None:
                return func(*args, **kwargs)
            with scope:
                return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
