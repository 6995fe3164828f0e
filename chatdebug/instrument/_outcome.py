"""Exceptions → step/run status and the stored error payload.

Cancellation (``asyncio.CancelledError``, ``KeyboardInterrupt``) and timeouts (builtin
``TimeoutError``, httpx/httpx2 ``TimeoutException``, the SDKs' ``APITimeoutError``) mean
*interrupted*; anything else means *error*. The SDK exception classes are recognised by
name so that this module needs neither SDK.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from .._status import Status
from .normalize import bound_text, is_retryable_status
from .redact import Redactor

__all__ = ["error_payload", "is_cancellation", "is_timeout", "status_for_exception"]

_TIMEOUT_CLASS_NAMES = frozenset({"TimeoutException", "APITimeoutError"})


def is_timeout(exc: BaseException) -> bool:
    """Builtin, httpx/httpx2 and SDK timeouts."""
    if isinstance(exc, TimeoutError):
        return True
    return any(cls.__name__ in _TIMEOUT_CLASS_NAMES for cls in type(exc).__mro__)


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` means the work was stopped rather than failed (incl. timeouts)."""
    return isinstance(exc, asyncio.CancelledError | KeyboardInterrupt) or is_timeout(exc)


def status_for_exception(exc: BaseException) -> Status:
    """``interrupted`` for cancellation and timeouts, ``error`` for everything else."""
    return Status.INTERRUPTED if is_cancellation(exc) else Status.ERROR


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    # Public names read better than private module paths (openai._exceptions → openai).
    top = module.split(".")[0]
    if top in ("builtins", ""):
        return cls.__qualname__
    return f"{top}.{cls.__qualname__}"


def error_payload(exc: BaseException, redactor: Redactor) -> dict[str, Any]:
    """The stored error object for an exception: ``message``, ``type``, and the provider's
    ``provider_title``/``provider_status``/``is_retryable`` where it gave them.

    Provider fields come from SDK status errors (``status_code``, ``body``); every text
    passes through the redactor so that no URL credential or key leaks.
    """
    message = str(exc) or type(exc).__name__
    bounded, _ = bound_text(redactor.sanitize_error_text(message))
    payload: dict[str, Any] = {"message": bounded, "type": _type_name(exc)}
    if is_cancellation(exc):
        payload["context_error"] = (
            "context canceled"
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
            else "context deadline exceeded"
        )
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        payload["provider_status"] = status
        try:
            payload["provider_title"] = HTTPStatus(status).phrase
        except ValueError:
            payload["provider_title"] = "Overloaded" if status == 529 else f"HTTP {status}"
        payload["is_retryable"] = is_retryable_status(status)
        body = getattr(exc, "body", None)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            payload["provider_error_type"] = error["type"]
    return payload
