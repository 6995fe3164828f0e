"""The Google Gemini codec: ``generateContent`` and ``streamGenerateContent``.

Google AI (``/v1beta/models/{model}:generateContent``) and Vertex AI
(``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent``)
speak the same format, and so do the gateways that relay it. The model and whether the
answer is streamed are in the URL, not in the body, so a codec is made per request
from its route (:func:`gemini_route`). A stream comes as SSE (``?alt=sse``, one
``GenerateContentResponse`` per event) or, by default, as one JSON array of them; both
are assembled alike. Gemini streams have no terminal event: a stream's content is final,
and the stream complete, once every candidate seen carries a ``finishReason`` (or the
prompt was blocked, or an error came); that chunk also carries the final
``usageMetadata``.
``countTokens``, ``embedContent`` and ``batchEmbedContents`` get generic payloads that
know their model and count their inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._anthropic_parts import compact_json
from ._gemini_parts import (
    error_payload,
    field,
    finish_reason,
    grounding_sources,
    inband_error,
    normalize_generate_request,
    safety_ratings,
    static_parts,
    text_of,
    tool_call_part,
    usage_from,
)
from ._openai_common import as_dict, as_list, as_str
from ._payloads import (
    ELLIPSIS,
    MAX_STREAM_TEXT_BYTES,
    USAGE_CLOSED_EARLY,
    USAGE_NOT_SENT,
    NormalizedResponse,
    TextBudget,
    bound_text,
    loads_json,
    note_missing_usage,
    text_part,
)
from ._sse import SSEEvent
from .generic import GenericCodec

__all__ = [
    "GeminiAuxCodec",
    "GeminiCodec",
    "GeminiRoute",
    "GeminiStreamAssembler",
    "gemini_codec",
    "gemini_route",
]

GENERATE: Final = "generateContent"
STREAM: Final = "streamGenerateContent"
COUNT_TOKENS: Final = "countTokens"
EMBED: Final = "embedContent"
BATCH_EMBED: Final = "batchEmbedContents"
_METHODS: Final = {m.lower(): m for m in (GENERATE, STREAM, COUNT_TOKENS, EMBED, BATCH_EMBED)}
# The collection a model resource sits in, and the prefix kept in the model name.
_MODEL_PARENTS: Final = {"models": "", "tunedmodels": "tunedModels/", "endpoints": "endpoints/"}

MAX_PARTS: Final = 1_000
"""Content parts (and sources) kept per response; more are counted as dropped."""

_COUNTERS: Final = ("event", "malformed_event", "text_delta", "reasoning_delta", "error",
                    "dropped_part")  # fmt: skip


@dataclass(frozen=True, slots=True)
class GeminiRoute:
    """What a Gemini URL path says: the model, the method and whether it is Vertex AI's
    resource layout (``projects/…/locations/…`` or ``publishers/…``)."""

    model: str
    method: str
    vertex: bool


def gemini_route(route: str) -> GeminiRoute | None:
    """The :class:`GeminiRoute` of a URL path (no query), None when it is not one.

    The model is the resource's last segment (``gemini-2.5-flash``), with its
    collection kept for tuned models and Vertex endpoints (``tunedModels/x``,
    ``endpoints/123``); it keeps the case it was sent in.
    """
    head, sep, verb = route.rpartition(":")
    method = _METHODS.get(verb.lower()) if sep else None
    if method is None:
        return None
    parent, slash, name = head.rpartition("/")
    prefix = _MODEL_PARENTS.get(parent.rpartition("/")[2].lower()) if slash and name else None
    if prefix is None:
        return None
    lower = head.lower()
    vertex = "/publishers/" in lower or ("/projects/" in lower and "/locations/" in lower)
    return GeminiRoute(model=prefix + name, method=method, vertex=vertex)


# -- responses and streams ---------------------------------------------------------------


class _Run:
    """Consecutive text (or reasoning) of the answer: one part, however many chunks."""

    __slots__ = ("chunks", "cut", "kind", "seen", "signed")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.chunks: list[str] = []
        self.seen = 0  # characters received, kept or not
        self.cut = False  # the stream budget dropped some of them
        self.signed = False

    def render(self) -> dict[str, Any] | None:
        if not self.seen:
            return None
        joined = "".join(self.chunks)
        part = text_part(self.kind, joined, has_signature=True if self.signed else None)
        if self.cut:
            if "text_length" not in part:
                part["text"] = joined + ELLIPSIS
            part["text_length"] = self.seen
        return part


class GeminiStreamAssembler:
    """Builds the normalized response from ``GenerateContentResponse`` chunks.

    SSE events go through :meth:`feed`; the elements of a JSON-array stream and a
    non-streamed body through :meth:`absorb`. Candidate 0 is assembled: text and
    reasoning parts form runs (a new part whenever the kind changes) and other parts are
    appended whole, so a streamed answer equals the same answer non-streamed. ``limit``
    caps the text and tool input kept (None: no cap, for non-streamed bodies).
    """

    def __init__(self, limit: int | None = MAX_STREAM_TEXT_BYTES, *, streamed: bool = True) -> None:
        self._budget = TextBudget(sys.maxsize if limit is None else limit)
        self._streamed = streamed
        self._entries: list[_Run | dict[str, Any]] = []
        self._run: _Run | None = None
        self._sources: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._meta: dict[str, Any] = {}
        self._usage: object = None
        self._raw: dict[int, str] = {}
        self._seen: set[int] = set()
        self._ratings: list[dict[str, Any]] = []
        self._feedback: dict[str, Any] = {}
        self._error: dict[str, Any] | None = None
        self._terminal = False
        self._counts = dict.fromkeys(_COUNTERS, 0)

    @property
    def content_final(self) -> bool:
        """True once every candidate seen carries a ``finishReason``, the prompt was
        blocked, or an error came."""
        return self._terminal

    @property
    def terminal(self) -> bool:
        """The same as :attr:`content_final`: Gemini sends nothing after that chunk."""
        return self._terminal

    def feed(self, event: SSEEvent) -> bool:
        """Consume one SSE event; True when it carried text, reasoning, a tool call or
        media."""
        data = event.data.strip()
        if not data:
            return False
        try:
            chunk = loads_json(data)
        except (ValueError, RecursionError):
            chunk = None
        if not isinstance(chunk, dict):
            self._counts["event"] += 1
            self._counts["malformed_event"] += 1
            return False
        return self.absorb(chunk)

    def absorb(self, chunk: object) -> bool:
        """Consume one parsed ``GenerateContentResponse`` (or ``{"error": …}``)."""
        counts = self._counts
        counts["event"] += 1
        if not isinstance(chunk, dict):
            counts["malformed_event"] += 1
            return False
        if chunk.get("error") is not None:
            self._error = inband_error(chunk["error"])
            counts["error"] += 1
            self._terminal = True
            return False
        for key, name in (("modelVersion", "model"), ("responseId", "id")):
            value = as_str(field(chunk, key))
            if value is not None:
                self._meta[name] = value
        usage = field(chunk, "usageMetadata")
        if isinstance(usage, dict):
            self._usage = usage  # each chunk reports the call so far: the last one wins
        feedback = as_dict(field(chunk, "promptFeedback"))
        if feedback:
            self._on_feedback(feedback)
        output = False
        for candidate in as_list(chunk.get("candidates")):
            if isinstance(candidate, dict):
                output = self._on_candidate(candidate) or output
        if self._raw and self._seen <= self._raw.keys():
            self._terminal = True
        return output

    def _on_feedback(self, feedback: dict[str, Any]) -> None:
        reason = as_str(field(feedback, "blockReason"))
        if reason is not None:
            self._feedback["block_reason"] = reason
            self._terminal = True  # a blocked prompt gets no candidates at all
        message = as_str(field(feedback, "blockReasonMessage"))
        if message is not None:
            self._feedback["block_reason_message"] = bound_text(message, 1_000)[0]
        ratings = safety_ratings(field(feedback, "safetyRatings"))
        if ratings:
            self._feedback["safety_ratings"] = ratings

    def _on_candidate(self, candidate: dict[str, Any]) -> bool:
        index = candidate.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool):
            index = 0
        self._seen.add(index)
        raw = as_str(field(candidate, "finishReason"))
        if raw is not None:
            self._raw[index] = raw
        if index != 0:
            return False
        message = as_str(field(candidate, "finishMessage"))
        if message is not None:
            self._meta["finish_message"] = bound_text(message, 1_000)[0]
        ratings = safety_ratings(field(candidate, "safetyRatings"))
        if ratings:
            self._ratings = ratings
        for source in grounding_sources(candidate):
            key = (source["source_type"], source.get("url", ""), source.get("title", ""))
            if key not in self._sources and self._room():
                self._sources[key] = source
        output = False
        for part in as_list(as_dict(candidate.get("content")).get("parts")):
            if isinstance(part, dict):
                output = self._on_part(part) or output
        return output

    def _room(self) -> bool:
        if len(self._entries) + len(self._sources) < MAX_PARTS:
            return True
        self._counts["dropped_part"] += 1
        return False

    def _on_part(self, part: dict[str, Any]) -> bool:
        text = text_of(part)
        if text is None:
            self._run = None
            if not self._room():
                return False
            for item in static_parts(part):
                self._entries.append(self._bounded(item, part))
            return True
        kind, value = text
        run = self._run
        if run is None or run.kind != kind:
            if not self._room():
                return False
            run = self._run = _Run(kind)
            self._entries.append(run)
        run.signed = run.signed or bool(field(part, "thoughtSignature"))
        if not value:
            return False
        self._counts["text_delta" if kind == "text" else "reasoning_delta"] += 1
        run.seen += len(value)
        kept = self._budget.take(value)
        if kept:
            run.chunks.append(kept)
        if len(kept) < len(value):
            run.cut = True
        return True

    def _bounded(self, item: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
        """A tool call's arguments go through the stream budget as text does."""
        if item["type"] != "tool-call" or item.get("provider_executed"):
            return item
        call = as_dict(field(part, "functionCall"))
        arguments = compact_json(call.get("args", {}))
        kept = self._budget.take(arguments)
        if len(kept) == len(arguments):
            return item
        extra = {k: v for k, v in item.items() if k == "has_signature"}
        return tool_call_part(
            call.get("id"), call.get("name"), kept, received=len(arguments), **extra
        )

    def finish(self) -> NormalizedResponse:
        """The normalized response so far; for a stream, ``complete`` is False unless
        :attr:`terminal`."""
        content = [
            part
            for entry in self._entries
            if (part := entry.render() if isinstance(entry, _Run) else dict(entry)) is not None
        ]
        content.extend(dict(source) for source in self._sources.values())
        raw = self._raw.get(0)
        calls = any(p["type"] == "tool-call" and not p.get("provider_executed") for p in content)
        block = self._feedback.get("block_reason")
        if self._error is not None:
            reason = "error"
        elif raw is None and block is not None:
            reason = finish_reason(block)
        else:
            reason = finish_reason(raw, calls)
        usage = usage_from(self._usage)
        warnings: list[dict[str, Any]] = []
        if self._budget.exhausted:
            message = f"stream text and tool input capped at {MAX_STREAM_TEXT_BYTES} bytes"
            warnings.append({"type": "other", "message": message})
        response: dict[str, Any] = {
            "content": content,
            "finish_reason": reason,
            "usage": usage,
            "warnings": warnings,
        }
        if raw is not None or block is not None:
            response["provider_finish_reason"] = raw if raw is not None else block
        if self._ratings:
            response["safety_ratings"] = self._ratings
        if self._feedback:
            response["prompt_feedback"] = self._feedback
        response.update(self._meta)
        reasons = [self._raw[i] for i in sorted(self._raw)]
        metadata: dict[str, Any] = {}
        if self._streamed:
            metadata["stream_summary"] = self._summary(reason, content, len(warnings))
        final = self._terminal or not self._streamed
        result = NormalizedResponse(
            response=response,
            usage=usage,
            response_model=as_str(self._meta.get("model")),
            finish_reasons=reasons or ([block] if block is not None else []),
            error=self._error,
            metadata=metadata,
            complete=final,
        )
        return note_missing_usage(result, USAGE_NOT_SENT if final else USAGE_CLOSED_EARLY)

    def _summary(self, reason: str, content: list[dict[str, Any]], warnings: int) -> dict[str, Any]:
        counts = self._counts
        summary: dict[str, Any] = {
            "finish_reason": reason,
            "text_delta_count": counts["text_delta"],
            "reasoning_delta_count": counts["reasoning_delta"],
            "tool_call_count": sum(p["type"] == "tool-call" for p in content),
            "source_count": sum(p["type"] == "source" for p in content),
            "warning_count": warnings,
            "error_count": counts["error"],
            "part_count": len(content),
            "event_count": counts["event"],
            "malformed_event_count": counts["malformed_event"],
            "extra_candidate_count": len(self._seen - {0}),
        }
        if self._error is not None:
            summary["last_error"] = self._error["message"]
        if counts["dropped_part"]:
            summary["dropped_part_count"] = counts["dropped_part"]
        return summary


# -- codecs ------------------------------------------------------------------------------


class GeminiCodec:
    """Codec for ``generateContent`` / ``streamGenerateContent`` of one request: the
    model and the streaming come from its URL."""

    name: str = "gemini.generate_content"
    operation_name: str = "generate_content"

    def __init__(self, model: str | None = None, stream: bool = False) -> None:
        self.model = model
        self.stream = stream

    def __repr__(self) -> str:
        return f"GeminiCodec({self.model!r}, stream={self.stream!r})"

    def is_stream_request(self, body: Any) -> bool:
        """Whether the URL asked for ``streamGenerateContent`` (the body cannot say)."""
        return self.stream

    def request_model(self, body: Any) -> str | None:
        """The model of the URL path."""
        return self.model

    def normalize_request(self, body: Any) -> dict[str, Any]:
        """``normalized_request`` of a ``GenerateContentRequest`` body."""
        return normalize_generate_request(body, self.model, self.stream)

    def normalize_response(self, body: Any) -> NormalizedResponse:
        """From a ``GenerateContentResponse``, or from a JSON array of them (a stream
        asked without ``alt=sse``), which is assembled as a stream: ``complete`` is then
        False when no chunk carried a ``finishReason``."""
        if isinstance(body, list):
            assembler = GeminiStreamAssembler()
            for chunk in body:
                assembler.absorb(chunk)
            return assembler.finish()
        assembler = GeminiStreamAssembler(None, streamed=False)
        if isinstance(body, dict):
            assembler.absorb(body)
        return assembler.finish()

    def new_stream(self, request: Mapping[str, Any] | None = None) -> GeminiStreamAssembler:
        """A fresh assembler for one ``?alt=sse`` stream (usage comes with every
        chunk, whatever the request)."""
        return GeminiStreamAssembler()

    def error_payload(self, status: int, body: Any) -> dict[str, Any]:
        """From ``{"error": {"code", "message", "status", "details"}}``."""
        return error_payload(status, body)


class GeminiAuxCodec(GenericCodec):
    """``countTokens``, ``embedContent`` and ``batchEmbedContents``: generic payloads
    that know the model of the URL, count their inputs and read Google's errors.
    Neither reports usage: counting tokens costs none (no usage to speak of), while an
    embedding's usage is unavailable."""

    def __init__(self, method: str, path: str, route: GeminiRoute) -> None:
        embeds = route.method in (EMBED, BATCH_EMBED)
        super().__init__(method, path, "embeddings" if embeds else "other")
        self.route = route
        self.name: str = "gemini.embed_content" if embeds else "gemini.count_tokens"

    def __repr__(self) -> str:
        return f"GeminiAuxCodec({self.method!r}, {self.path!r}, {self.route.method!r})"

    def is_stream_request(self, body: Any) -> bool:
        """Never streamed."""
        return False

    def request_model(self, body: Any) -> str | None:
        """The model of the URL path."""
        return self.route.model

    def normalize_request(self, body: Any) -> dict[str, Any]:
        """The generic request payload with ``input_count``: contents to count or
        embed."""
        out = super().normalize_request(body)
        body = as_dict(body)
        if self.route.method == BATCH_EMBED:
            count = len(as_list(body.get("requests")))
        elif self.route.method == EMBED:
            count = 1 if isinstance(body.get("content"), dict) else 0
        else:
            inner = as_dict(field(body, "generateContentRequest"))
            count = len(as_list(body.get("contents") or inner.get("contents")))
        if body:
            out["input_count"] = count
        return out

    def normalize_response(self, body: Any) -> NormalizedResponse:
        """``{"content": [], "finish_reason": "other"}`` with the token count of
        ``countTokens`` or the number of embeddings (never their values)."""
        body = as_dict(body)
        response: dict[str, Any] = {"content": [], "finish_reason": "other"}
        if self.route.method == COUNT_TOKENS:
            total = field(body, "totalTokens")
            if isinstance(total, int) and not isinstance(total, bool):
                response["token_count"] = total
        elif isinstance(body.get("embedding"), dict):
            response["embedding_count"] = 1
        elif isinstance(body.get("embeddings"), list):
            response["embedding_count"] = len(body["embeddings"])
        result = NormalizedResponse(response=response)
        if self.costs_tokens:
            note_missing_usage(result, USAGE_NOT_SENT)
        return result

    def error_payload(self, status: int, body: Any) -> dict[str, Any]:
        """From ``{"error": {"code", "message", "status", "details"}}``."""
        return error_payload(status, body)


def gemini_codec(method: str, path: str, route: GeminiRoute) -> GeminiCodec | GeminiAuxCodec:
    """The codec for one request to a Gemini route."""
    if route.method in (GENERATE, STREAM):
        return GeminiCodec(route.model, stream=route.method == STREAM)
    return GeminiAuxCodec(method, path, route)
