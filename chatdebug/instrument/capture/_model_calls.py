"""Which requests are model API calls: under process-wide instrumentation only they
become steps.

``instrument_httpx()`` (and the other process-wide patches) put our capture into every
client of the process, so a run would otherwise also record a tool fetching a web page,
an SDK posting its own telemetry, or a health check, each as a failed "model" step. A
request made through a patched client is recorded only when one of these holds:

1. its route is a wire format we normalize (OpenAI Chat Completions and Responses,
   Anthropic Messages, Gemini's ``:generateContent`` and friends) or an OpenAI-compatible
   model route on any host (``/completions``, ``/embeddings``, images, audio,
   moderations, rerank), Ollama's native ``/api/chat``, ``/api/generate`` and
   ``/api/embed``, or Bedrock's ``/model/{id}/invoke`` and ``/converse``;
2. its JSON body looks like a model call: an object with a string ``model`` and one of
   ``messages``, ``prompt``, ``input`` or ``contents``;
3. its URL matches one of the user's ``configure(model_urls=[...])`` patterns.

Everything else passes through untouched and is counted in
``chatdebug_requests_not_recorded_total{reason="not_a_model_call"}``. A client the user
built with chatdebug's own transport or clients records every request: they chose it
for their model calls.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Final

import orjson

from ..normalize import detect

__all__ = ["compile_model_urls", "is_model_call"]

# Routes of model APIs that have no codec of their own (recorded with generic payloads).
_MODEL_ROUTE_SUFFIXES: Final = (
    "/completions",
    "/embeddings",
    "/images/generations",
    "/images/edits",
    "/images/variations",
    "/audio/transcriptions",
    "/audio/translations",
    "/audio/speech",
    "/moderations",
    "/rerank",
    "/api/chat",
    "/api/generate",
    "/api/embed",
    "/api/embeddings",
    "/converse",
    "/converse-stream",
    "/invoke",
    "/invoke-with-response-stream",
)
_MODEL_BODY_KEYS: Final = ("messages", "prompt", "input", "contents")
# A body sniff is for JSON requests of ordinary size; a large upload is not parsed.
_MAX_SNIFF_BYTES: Final = 1 << 20


def compile_model_urls(patterns: Iterable[str | re.Pattern[str]]) -> tuple[re.Pattern[str], ...]:
    """``configure(model_urls=…)`` as compiled patterns: a string is a shell-style glob
    (``https://llm.internal/*``, ``*/v1/generate``) matched against the whole URL without
    its query; a compiled pattern is searched in it. ``ValueError`` for anything else."""
    if isinstance(patterns, str | re.Pattern):
        patterns = (patterns,)
    compiled: list[re.Pattern[str]] = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            compiled.append(pattern)
        elif isinstance(pattern, str) and pattern:
            compiled.append(re.compile(fnmatch.translate(pattern), re.IGNORECASE))
        else:
            raise ValueError(
                f"model_urls entries must be non-empty glob strings or compiled patterns, "
                f"got {pattern!r}"
            )
    return tuple(compiled)


def _is_model_route(method: str, host: str, path: str, port: int | None) -> bool:
    codec = detect(method, host, path, port=port).codec
    if codec.name != "generic" or codec.operation_name != "other":
        return True
    route = path.split("?", 1)[0].rstrip("/").lower()
    return route.endswith(_MODEL_ROUTE_SUFFIXES)


def _looks_like_model_body(content: bytes | None) -> bool:
    if not content or len(content) > _MAX_SNIFF_BYTES or content.lstrip()[:1] != b"{":
        return False
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(body, dict)
        and isinstance(body.get("model"), str)
        and any(key in body for key in _MODEL_BODY_KEYS)
    )


def is_model_call(
    method: str,
    url: str,
    host: str,
    path: str,
    port: int | None,
    content: Callable[[], bytes | None],
    model_urls: tuple[re.Pattern[str], ...],
) -> bool:
    """Whether a request is a model API call (see the module docstring). ``url`` is the
    full URL; ``content`` returns the request body when it can be read without consuming
    it (called only when the route does not decide)."""
    if _is_model_route(method, host, path, port):
        return True
    if model_urls:
        bare = url.split("?", 1)[0].split("#", 1)[0]
        if any(
            pattern.match(bare) if _is_glob(pattern) else pattern.search(bare)
            for pattern in model_urls
        ):
            return True
    return method.upper() == "POST" and _looks_like_model_body(content())


def _is_glob(pattern: re.Pattern[str]) -> bool:
    # fnmatch.translate anchors its result at the end with \Z; a user's own pattern is
    # searched anywhere instead.
    return pattern.pattern.endswith(r"\Z")
