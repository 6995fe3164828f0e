"""Pieces both OpenAI wire formats share (Chat Completions and Responses).

Everything here tolerates any JSON value: a field of the wrong type is treated as absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._payloads import bound_text, http_error_payload, make_usage

__all__ = [
    "NEUTRAL_FINISH",
    "SERVICE_TIER_KEY",
    "as_dict",
    "as_int",
    "as_list",
    "as_str",
    "choice_string",
    "copy_options",
    "count_other_keys",
    "error_info",
    "finish_request",
    "function_tool",
    "neutral_finish",
    "openai_error_payload",
    "response_format",
    "service_tier",
    "usage_from",
]

SERVICE_TIER_KEY: Final = "service_tier"
"""Step metadata key of the service tier OpenAI says served the call (``default``,
``flex``, ``priority`` …), which the exporter prices the step at."""

_MAX_TIER_LENGTH: Final = 64

NEUTRAL_FINISH: Final[Mapping[str, str]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "content_filter": "content-filter",
    # OpenRouter reports a generation that died upstream this way.
    "error": "error",
}


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty dict."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """``value`` when it is a string, else None."""
    return value if isinstance(value, str) else None


def as_int(value: Any) -> int:
    """A token count: ints (not bools) and integral floats; anything else is 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def neutral_finish(raw: str | None) -> str:
    """The provider-neutral finish reason of a Chat Completions ``finish_reason``."""
    return NEUTRAL_FINISH.get(raw, "other") if raw else "other"


def usage_from(
    usage: Any,
    input_key: str,
    output_key: str,
    input_details_key: str,
    output_details_key: str,
) -> dict[str, int] | None:
    """The usage object from an OpenAI usage block, None when there is none.

    ``input_tokens`` is reported as the provider counts it, i.e. including cached tokens.
    """
    if not isinstance(usage, dict):
        return None
    inputs = as_dict(usage.get(input_details_key))
    outputs = as_dict(usage.get(output_details_key))
    total = usage.get("total_tokens")
    return make_usage(
        input_tokens=as_int(usage.get(input_key)),
        output_tokens=as_int(usage.get(output_key)),
        total_tokens=as_int(total) if isinstance(total, int | float) else None,
        reasoning_tokens=as_int(outputs.get("reasoning_tokens")),
        cache_read_tokens=as_int(inputs.get("cached_tokens")),
        cache_creation_tokens=as_int(inputs.get("cache_write_tokens")),
    )


def service_tier(body: Mapping[str, Any], into: dict[str, Any]) -> None:
    """Copy the response's ``service_tier`` (the tier that served the call) into the
    step metadata ``into``; a missing or non-string tier leaves it unset."""
    tier = body.get("service_tier")
    if isinstance(tier, str) and 0 < len(tier) <= _MAX_TIER_LENGTH:
        into[SERVICE_TIER_KEY] = tier


def function_tool(name: Any, description: Any, parameters: Any, kind: str) -> dict[str, Any]:
    """A tool definition; the input schema object is kept as is."""
    tool: dict[str, Any] = {"type": kind}
    if isinstance(name, str):
        tool["name"] = name
    if isinstance(description, str):
        tool["description"] = bound_text(description)[0]
    tool["has_input_schema"] = isinstance(parameters, dict)
    if isinstance(parameters, dict):
        tool["input_schema"] = parameters
    return tool


def choice_string(choice: Any) -> str | None:
    """The string form of an OpenAI ``tool_choice`` (either API) or ``function_call``."""
    if isinstance(choice, str):
        return choice
    choice = as_dict(choice)
    kind = as_str(choice.get("type"))
    if kind == "allowed_tools":
        return as_str(choice.get("mode")) or as_str(
            as_dict(choice.get("allowed_tools")).get("mode")
        )
    nested = as_dict(choice.get(kind)) if kind in ("function", "custom") else {}
    name = (
        as_str(nested.get("name"))
        or as_str(choice.get("name"))
        or as_str(choice.get("server_label"))
        or kind
    )
    return f"tool:{name}" if name else None


def response_format(fmt: Any) -> dict[str, Any] | None:
    """``{"type", "name"?}`` of a response format; the schema body is not stored."""
    fmt = as_dict(fmt)
    kind = as_str(fmt.get("type"))
    if kind is None:
        return None
    out: dict[str, Any] = {"type": kind}
    name = as_str(fmt.get("name")) or as_str(as_dict(fmt.get("json_schema")).get("name"))
    if name:
        out["name"] = name
    return out


def copy_options(body: Mapping[str, Any], names: Mapping[str, str], into: dict[str, Any]) -> None:
    """Copy the set (non-null, scalar or list) request parameters ``names`` maps."""
    for wire, neutral in names.items():
        value = body.get(wire)
        if value is None or isinstance(value, dict) or neutral in into:
            continue
        into[neutral] = value


def count_other_keys(body: Mapping[str, Any], handled: Iterable[str]) -> int:
    """Number of set top-level request keys the normalizer does not read."""
    known = set(handled)
    return sum(1 for key, value in body.items() if key not in known and value is not None)


def error_info(error: Any) -> dict[str, Any]:
    """The ``{"message", "type", "code"?, "param"?}`` payload of an in-band error object."""
    err = as_dict(error)
    if isinstance(error, str):
        err = {"message": error}
    message = as_str(err.get("message")) or "unknown error"
    code = err.get("code")
    payload: dict[str, Any] = {
        "message": bound_text(message)[0],
        "type": as_str(err.get("type")) or as_str(code) or "error",
    }
    if isinstance(code, str | int) and not isinstance(code, bool):
        payload["code"] = code
    if isinstance(err.get("param"), str):
        payload["param"] = err["param"]
    return payload


def openai_error_payload(status: int, body: Any) -> dict[str, Any]:
    """The step ``error`` of an HTTP error from OpenAI or an OpenAI-compatible server.

    Understands ``{"error": {...}}`` (OpenAI, Azure, OpenRouter, Groq),
    ``{"error": "text"}`` (Ollama), top-level ``{"message", "type"}`` (vLLM) and
    ``{"detail": "text"}`` (FastAPI-based servers).
    """
    body = as_dict(body)
    err = body.get("error")
    if isinstance(err, dict):
        source = err
    elif isinstance(err, str):
        source = {"message": err}
    elif isinstance(body.get("message"), str):
        source = body
    elif isinstance(body.get("detail"), str):
        source = {"message": body["detail"]}
    else:
        source = {}
    info = error_info(source) if source else {}
    payload = http_error_payload(
        status,
        info.get("message"),
        info.get("type") if info.get("type") != "error" else None,
    )
    for key in ("code", "param"):
        if key in info:
            payload[key] = info[key]
    return payload


def finish_request(
    out: dict[str, Any],
    body: dict[str, Any],
    *,
    tool_choice: str | None,
    response_format: dict[str, Any] | None,
    handled: Iterable[str],
) -> dict[str, Any]:
    """Add the fields both OpenAI request formats share to ``out`` and return it:
    ``tool_choice``, ``model``, ``stream``, ``response_format`` (when set) and
    ``provider_option_count`` (top-level keys not in ``handled``)."""
    if tool_choice:
        out["tool_choice"] = tool_choice
    if isinstance(body.get("model"), str):
        out["model"] = body["model"]
    if isinstance(body.get("stream"), bool):
        out["stream"] = body["stream"]
    if response_format:
        out["response_format"] = response_format
    others = count_other_keys(body, handled)
    if others:
        out["provider_option_count"] = others
    return out
