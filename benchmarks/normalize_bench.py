"""Cost of normalizing one LLM call, per wire format, streamed and not.

For each format (OpenAI Chat Completions, OpenAI Responses, Anthropic Messages) and
answer size (1 KB, 16 KB, 128 KB of text) this builds a realistic response: a JSON body
for the non-streamed case (already parsed, as the transport hands it to the codec) and
the SSE bytes of the same answer, cut into 16-character deltas and read in 4 KB network
chunks, for the streamed case (real :class:`SSEParser` + the codec's assembler). It also
times ``normalize_request`` on a conversation with that much text in its history.

Reports the median over several rounds, per call and per KB of answer text, and the
best round. ``stream`` is parser plus codec; ``kept`` is the same stream as the capture
handles it (one chunk per event kept as it arrives, then parsed and assembled when the
result is needed: chunk by chunk until the first content event, then in one pass);
``(sse only)`` is the parser alone, for reference. Streams keep at most 50,000 bytes of
text, so the largest size also shows the cost of the capped path.

    .venv/bin/python benchmarks/normalize_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from chatdebug.instrument.capture._response_body import ResponseBody
from chatdebug.instrument.normalize import (
    AnthropicMessagesCodec,
    Codec,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
)
from chatdebug.instrument.normalize._sse import SSEParser

SIZES_KB = (1, 16, 128)
DELTA_CHARS = 16
READ_BYTES = 4096
SSE_HEADERS = [("content-type", "text/event-stream")]
MAX_BODY_BYTES = 50_000  # the default stored-body cap
MIN_ROUND_NS = 2_000_000  # repeat fast operations so a round lasts at least 2 ms

WORDS = "the quick brown fox jumps over a lazy dog while models stream tokens to users".split()


def answer_text(kb: int) -> str:
    """Roughly ``kb`` KB of prose with some non-ASCII characters."""
    words: list[str] = []
    size = 0
    i = 0
    while size < kb * 1024:
        word = WORDS[i % len(WORDS)] + ("é" if i % 17 == 0 else "")
        words.append(word)
        size += len(word) + 1
        i += 1
    return " ".join(words)


def deltas(text: str) -> Iterator[str]:
    for i in range(0, len(text), DELTA_CHARS):
        yield text[i : i + DELTA_CHARS]


def sse(events: list[tuple[str | None, str]]) -> bytes:
    out = []
    for name, data in events:
        out.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return "".join(out).encode()


def j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- OpenAI Chat Completions -----------------------------------------------------------
def chat_body(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": len(text) // 4, "total_tokens": 0},
    }


def chat_stream(text: str) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-2024-08-06"}  # fmt: skip
    first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    events: list[tuple[str | None, str]] = [(None, j(base | {"choices": [first]}))]
    for piece in deltas(text):
        choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
        events.append((None, j(base | {"choices": [choice]})))
    events.append(
        (None, j(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    )
    usage = {"prompt_tokens": 50, "completion_tokens": len(text) // 4, "total_tokens": 0}
    events.append((None, j(base | {"choices": [], "usage": usage})))
    events.append((None, "[DONE]"))
    return sse(events)


def chat_request(text: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Tell me a story."},
            {"role": "assistant", "content": text},
            {"role": "user", "content": "Another one."},
        ],
        "temperature": 0.7,
        "stream": True,
    }


# -- OpenAI Responses --------------------------------------------------------------------
def responses_body(text: str) -> dict[str, Any]:
    message = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "model": "gpt-4o-2024-08-06",
        "output": [message],
        "usage": {
            "input_tokens": 50,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": len(text) // 4,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 50 + len(text) // 4,
        },
    }


def responses_stream(text: str) -> bytes:
    final = responses_body(text)
    pending = final | {"status": "in_progress", "output": [], "usage": None}
    item = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant",
            "content": []}  # fmt: skip
    part = {"type": "output_text", "text": "", "annotations": []}
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    seq = iter(range(1_000_000))
    raw: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **ids, "part": part},
    ]
    raw += [{"type": "response.output_text.delta", **ids, "delta": p, "logprobs": []}
            for p in deltas(text)]  # fmt: skip
    raw += [
        {"type": "response.output_text.done", **ids, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": part | {"text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": final["output"][0]},
        {"type": "response.completed", "response": final},
    ]
    return sse([(e["type"], j(e | {"sequence_number": next(seq)})) for e in raw])


def responses_request(text: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "instructions": "You are helpful.",
        "input": [
            {"role": "user", "content": "Tell me a story."},
            {"role": "assistant", "content": [{"type": "output_text", "text": text}]},
            {"role": "user", "content": "Another one."},
        ],
        "stream": True,
    }


# -- Anthropic Messages ------------------------------------------------------------------
ANTHROPIC_USAGE = {"input_tokens": 50, "output_tokens": 1, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 0}  # fmt: skip


def anthropic_body(text: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE | {"output_tokens": len(text) // 4},
    }


def anthropic_stream(text: str) -> bytes:
    start = anthropic_body("") | {"content": [], "stop_reason": None, "usage": ANTHROPIC_USAGE}
    raw: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    raw += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in deltas(text)]  # fmt: skip
    raw += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": len(text) // 4}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return sse([(e["type"], j(e)) for e in raw])


def anthropic_request(text: str) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are helpful.",
        "messages": [
            {"role": "user", "content": "Tell me a story."},
            {"role": "assistant", "content": [{"type": "text", "text": text}]},
            {"role": "user", "content": "Another one."},
        ],
        "stream": True,
    }


Builder = Callable[[str], Any]
FORMATS: list[tuple[str, Codec, Builder, Callable[[str], bytes], Builder]] = [
    ("openai.chat", OpenAIChatCodec(), chat_body, chat_stream, chat_request),
    ("openai.responses", OpenAIResponsesCodec(), responses_body, responses_stream,
     responses_request),
    ("anthropic", AnthropicMessagesCodec(), anthropic_body, anthropic_stream, anthropic_request),
]  # fmt: skip


def parse_only(raw: bytes) -> None:
    """The SSE parser alone: the share of a stream's cost that is not the codec's."""
    parser = SSEParser()
    for i in range(0, len(raw), READ_BYTES):
        parser.feed(raw[i : i + READ_BYTES])
    parser.close()


def run_stream(codec: Codec, raw: bytes) -> None:
    parser = SSEParser()
    assembler = codec.new_stream()
    for i in range(0, len(raw), READ_BYTES):
        for event in parser.feed(raw[i : i + READ_BYTES]):
            assembler.feed(event)
    parser.close()
    result = assembler.finish()
    assert result.complete, "benchmark stream did not reach its terminal event"


def run_kept(codec: Codec, chunks: list[bytes]) -> None:
    """What the capture does with a stream: each event kept as it arrives (one network
    chunk per event, as providers write them), parsed and assembled when the result is
    needed (the stored-body cap decides how much is kept before it parses as it goes)."""
    body = ResponseBody(SSE_HEADERS, lambda: (codec, None), MAX_BODY_BYTES, time.perf_counter())
    for chunk in chunks:
        body.feed(chunk)
    body.end()
    assert body.normalize().complete, "benchmark stream did not reach its terminal event"


def time_ns(op: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median and best time of one ``op()`` call over ``rounds`` rounds (each repeats
    ``op``); the best shows the noise floor on a busy machine."""
    start = time.perf_counter_ns()
    op()
    repeat = max(1, MIN_ROUND_NS // max(time.perf_counter_ns() - start, 1))
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(repeat):
            op()
        samples.append((time.perf_counter_ns() - start) / repeat)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    header = (
        f"{'format':<17} {'what':<10} {'size':>6} {'events':>7} "
        f"{'µs/call':>10} {'µs/KB':>8} {'best µs':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, codec, body_of, stream_of, request_of in FORMATS:
        for kb in SIZES_KB:
            text = answer_text(kb)
            body = body_of(text)
            raw = stream_of(text)
            request = request_of(text)
            events = raw.count(b"\n\n")
            per_event = [event + b"\n\n" for event in raw.split(b"\n\n") if event]
            cases: list[tuple[str, int, Callable[[], object]]] = [
                ("request", 0, partial(codec.normalize_request, request)),
                ("response", 0, partial(codec.normalize_response, body)),
                ("stream", events, partial(run_stream, codec, raw)),
                ("kept", events, partial(run_kept, codec, per_event)),
                ("(sse only)", events, partial(parse_only, raw)),
            ]
            for what, count, op in cases:
                ns, best = time_ns(op, args.rounds)
                print(
                    f"{name:<17} {what:<10} {kb:>4}KB {count or '':>7} "
                    f"{ns / 1000:>10.1f} {ns / 1000 / kb:>8.2f} {best / 1000:>10.1f}"
                )
        print()


if __name__ == "__main__":
    main()
