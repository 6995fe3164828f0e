"""Provider wire formats for the loopback server: OpenAI Chat Completions and Anthropic
Messages responses, whole and streamed, as the public API documentation describes them."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, Reply, sse


def openai_completion(
    text: str = "Hello!",
    *,
    model: str = "gpt-4o-2024-08-06",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 12,
    completion_tokens: int = 5,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
            for call in tool_calls
        ]
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def openai_reply(text: str = "Hello!", **kwargs: Any) -> Reply:
    return Reply(body=json.dumps(openai_completion(text, **kwargs)).encode(), headers=JSON_HEADERS)


def openai_stream_chunks(
    pieces: list[str], *, model: str = "gpt-4o-2024-08-06", usage: bool = True, done: bool = True
) -> list[bytes]:
    base = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": model}
    events = [
        json.dumps(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
        )
    ]
    for piece in pieces:
        events.append(
            json.dumps(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
            )
        )
    events.append(
        json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    )
    if usage:
        events.append(
            json.dumps(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 9,
                        "completion_tokens": len(pieces),
                        "total_tokens": 9 + len(pieces),
                    },
                }
            )
        )
    chunks = sse(*[(None, e) for e in events])
    if done:
        chunks.append(b"data: [DONE]\n\n")
    return chunks


def openai_stream_reply(pieces: list[str], *, chunk_delay: float = 0.0, **kwargs: Any) -> Reply:
    return Reply(
        chunks=openai_stream_chunks(pieces, **kwargs), headers=SSE_HEADERS, chunk_delay=chunk_delay
    )


def openai_error_reply(status: int, message: str, error_type: str) -> Reply:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return Reply(status=status, body=json.dumps(body).encode(), headers=JSON_HEADERS)


def anthropic_message(text: str = "Hi there", *, model: str = "claude-opus-4-6") -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 3,
        },
    }


def anthropic_reply(text: str = "Hi there", **kwargs: Any) -> Reply:
    return Reply(body=json.dumps(anthropic_message(text, **kwargs)).encode(), headers=JSON_HEADERS)


def anthropic_stream_chunks(
    pieces: list[str], *, model: str = "claude-opus-4-6", stop: bool = True
) -> list[bytes]:
    events: list[tuple[str | None, str]] = [
        (
            "message_start",
            json.dumps(
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_02",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 11, "output_tokens": 1},
                    },
                }
            ),
        ),
        (
            "content_block_start",
            json.dumps(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            ),
        ),
        ("ping", json.dumps({"type": "ping"})),
    ]
    for piece in pieces:
        events.append(
            (
                "content_block_delta",
                json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    }
                ),
            )
        )
    events.append(("content_block_stop", json.dumps({"type": "content_block_stop", "index": 0})))
    events.append(
        (
            "message_delta",
            json.dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(pieces)},
                }
            ),
        )
    )
    if stop:
        events.append(("message_stop", json.dumps({"type": "message_stop"})))
    return sse(*events)


def anthropic_stream_reply(pieces: list[str], **kwargs: Any) -> Reply:
    return Reply(chunks=anthropic_stream_chunks(pieces, **kwargs), headers=SSE_HEADERS)


def anthropic_error_reply(status: int, error_type: str, message: str) -> Reply:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return Reply(status=status, body=json.dumps(body).encode(), headers=JSON_HEADERS)
