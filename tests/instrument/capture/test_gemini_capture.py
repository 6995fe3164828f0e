"""Gemini calls recorded end to end: our httpx and httpx2 clients (and the real
``google-genai`` SDK on them) inside ``chatdebug.run()``, against a loopback server
answering in Gemini's wire format: generateContent, SSE and JSON-array streams, streams
cut short, HTTP and in-stream errors, and the API key kept out of everything recorded."""

from __future__ import annotations

import base64
import json
import random
import string
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types
from opentelemetry.sdk.trace import ReadableSpan

import chatdebug
from chatdebug import _spans as attr
from chatdebug.instrument.normalize import SSEParser
from chatdebug.instrument.normalize.gemini import GeminiCodec
from chatdebug.instrument.redact import DEFAULT_REDACTOR
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.instrument.support import Spans, jattr

FIXTURES = Path(__file__).parents[1] / "normalize" / "fixtures"
MODEL = "gemini-2.0-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
FLAVOURS = ["httpx", "httpx2"]

_rng = random.Random(20250301)
_ALNUM = string.ascii_letters + string.digits
# A real-looking Google key (the value patterns know its AIza prefix) and a key of a
# gateway in front of Gemini, which only the query-parameter and header rules catch.
GOOGLE_KEY = "AIza" + "".join(_rng.choice(_ALNUM + "-_") for _ in range(35))
GATEWAY_KEY = "gw-" + "".join(_rng.choice(_ALNUM) for _ in range(40))


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"gemini_{name}").read_bytes()


def sse_chunks(name: str) -> list[bytes]:
    """The events of a ``.sse`` fixture, one network chunk each."""
    return [e + b"\r\n\r\n" for e in fixture_bytes(f"{name}_stream.sse").split(b"\r\n\r\n") if e]


def json_reply(name: str, status: int = 200) -> Reply:
    return Reply(status=status, body=fixture_bytes(f"{name}.json"), headers=JSON_HEADERS)


def client(flavour: str) -> Any:
    return chatdebug.httpx_client() if flavour == "httpx" else chatdebug.httpx2_client()


def body(text: str = "Say hello in French.") -> dict[str, Any]:
    return {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "generationConfig": {"temperature": 0.7, "maxOutputTokens": 1024},
    }


def post(http: Any, url: str, key: str = GOOGLE_KEY, **params: str) -> Any:
    return http.post(
        url, params={"key": key, **params}, headers={"x-goog-api-key": key}, json=body()
    )


def attrs(step: ReadableSpan) -> Mapping[str, Any]:
    return step.attributes or {}


def step_error(step: ReadableSpan) -> dict[str, Any]:
    value: dict[str, Any] = jattr(step, attr.STEP_ERROR)
    return value


def only_attempt(step: ReadableSpan) -> dict[str, Any]:
    (attempt,) = jattr(step, attr.STEP_ATTEMPTS)
    assert isinstance(attempt, dict)
    return attempt


# -- non-streamed ------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_generate_content(spans: Spans, fake_server: FakeServer, flavour: str) -> None:
    fake_server.enqueue(json_reply("text_response"))
    with client(flavour) as http, chatdebug.run("c-1"):
        resp = post(http, fake_server.url + GENERATE)
    assert resp.status_code == 200
    step = spans.only_step()
    a = attrs(step)
    assert a[attr.STEP_STATUS] == "completed"
    assert a[attr.STEP_OPERATION] == "generate"
    assert a[attr.STEP_API_FORMAT] == "gemini.generate_content"
    assert a[attr.GEN_AI_OPERATION_NAME] == "generate_content"
    assert a[attr.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
    assert a[attr.GEN_AI_REQUEST_MODEL] == MODEL
    assert a[attr.GEN_AI_REQUEST_STREAM] is False
    assert a[attr.GEN_AI_RESPONSE_MODEL] == MODEL
    assert tuple(a[attr.GEN_AI_RESPONSE_FINISH_REASONS]) == ("STOP",)
    assert a[attr.GEN_AI_USAGE_INPUT_TOKENS] == 6
    assert a[attr.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    assert jattr(step, attr.STEP_USAGE)["total_tokens"] == 18
    request = jattr(step, attr.STEP_NORMALIZED_REQUEST)
    assert request["messages"] == [
        {"role": "user", "parts": [{"type": "text", "text": "Say hello in French."}]}
    ]
    assert request["model"] == MODEL and request["options"]["max_output_tokens"] == 1024
    response = jattr(step, attr.STEP_NORMALIZED_RESPONSE)
    assert response["content"] == [
        {"type": "text", "text": "Bonjour ! Comment puis-je vous aider aujourd'hui ?"}
    ]
    assert response["finish_reason"] == "stop"
    attempt = only_attempt(step)
    assert attempt["status"] == "completed" and attempt["response_status"] == 200
    assert attempt["path"] == GENERATE
    assert attempt["request_headers"]["x-goog-api-key"] == "[REDACTED]"


def test_vertex_route_on_a_gateway(spans: Spans, fake_server: FakeServer) -> None:
    path = (
        "/v1/projects/my-proj/locations/us-central1/publishers/google/models/"
        "gemini-2.5-pro:generateContent"
    )
    fake_server.enqueue(json_reply("thinking_response"))
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        http.post(fake_server.url + path, json=body())
    step = spans.only_step()
    assert attrs(step)[attr.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert attrs(step)[attr.GEN_AI_REQUEST_MODEL] == "gemini-2.5-pro"
    assert attrs(step)[attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 412
    assert attrs(step)[attr.GEN_AI_USAGE_OUTPUT_TOKENS] == 17 + 412
    kinds = [p["type"] for p in jattr(step, attr.STEP_NORMALIZED_RESPONSE)["content"]]
    assert kinds == ["reasoning", "text"]


def test_tool_calls_and_function_responses(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(json_reply("tools_response"))
    request = json.loads(fixture_bytes("tools_request.json"))
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        http.post(fake_server.url + GENERATE, json=request)
    step = spans.only_step()
    normalized = jattr(step, attr.STEP_NORMALIZED_REQUEST)
    assert [m["role"] for m in normalized["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "user",
    ]
    assert normalized["tool_choice"] == "any"
    response = jattr(step, attr.STEP_NORMALIZED_RESPONSE)
    assert response["finish_reason"] == "tool-calls"
    assert [p["type"] for p in response["content"]] == ["text", "tool-call", "tool-call"]


# -- streams -----------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_sse_stream_read_to_the_end_is_completed(
    spans: Spans, fake_server: FakeServer, flavour: str
) -> None:
    chunks = sse_chunks("text")
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    with client(flavour) as http, chatdebug.run("c-1"):
        with http.stream(
            "POST", fake_server.url + STREAM, params={"alt": "sse", "key": GOOGLE_KEY}, json=body()
        ) as resp:
            received = b"".join(resp.iter_bytes())
    assert received == b"".join(chunks)
    step = spans.only_step()
    a = attrs(step)
    assert a[attr.STEP_STATUS] == "completed"
    assert a[attr.STEP_OPERATION] == "stream"
    assert a[attr.GEN_AI_REQUEST_STREAM] is True
    assert a[attr.GEN_AI_REQUEST_MODEL] == MODEL
    assert a[attr.GEN_AI_RESPONSE_MODEL] == MODEL
    assert tuple(a[attr.GEN_AI_RESPONSE_FINISH_REASONS]) == ("STOP",)
    assert a[attr.GEN_AI_USAGE_INPUT_TOKENS] == 6 and a[attr.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    assert a[attr.STEP_TTFT_MS] >= 0
    response = jattr(step, attr.STEP_NORMALIZED_RESPONSE)
    assert response["content"] == [
        {"type": "text", "text": "Bonjour ! Comment puis-je vous aider aujourd'hui ?"}
    ]
    summary = jattr(step, attr.STEP_METADATA)["stream_summary"]
    assert summary["text_delta_count"] == 4 and summary["finish_reason"] == "stop"
    assert attr.STEP_ERROR not in a or jattr(step, attr.STEP_ERROR) is None


def _read_events_then_close(url: str, events: int, release: threading.Event) -> None:
    """Read ``events`` SSE events, then close the response while the body is unfinished
    (as an SDK does once it has what it wants)."""
    try:
        with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
            with http.stream("POST", url, params={"alt": "sse"}, json=body()) as resp:
                seen = 0
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        seen += 1
                        if seen == events:
                            break
    finally:
        release.set()


def test_sse_stream_closed_after_the_finish_reason_is_completed(
    spans: Spans, fake_server: FakeServer
) -> None:
    chunks = sse_chunks("text")
    release = threading.Event()
    # Every event is sent, then the body stays open until the caller has closed it.
    fake_server.enqueue(
        Reply(chunks=chunks, headers=SSE_HEADERS, hold=release, hold_after=len(chunks))
    )
    _read_events_then_close(fake_server.url + STREAM, len(chunks), release)
    step = spans.only_step()
    assert attrs(step)[attr.STEP_STATUS] == "completed"
    assert only_attempt(step)["status"] == "completed"


def test_sse_stream_closed_before_any_finish_reason_is_interrupted(
    spans: Spans, fake_server: FakeServer
) -> None:
    chunks = sse_chunks("text")
    release = threading.Event()
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=release, hold_after=2))
    _read_events_then_close(fake_server.url + STREAM, 2, release)
    step = spans.only_step()
    assert attrs(step)[attr.STEP_STATUS] == "interrupted"
    assert only_attempt(step)["status"] == "failed"
    response = jattr(step, attr.STEP_NORMALIZED_RESPONSE)
    assert response["content"] == [{"type": "text", "text": "Bonjour ! Comment puis-je"}]
    assert response["finish_reason"] == "unknown"


def test_sse_stream_ending_without_a_finish_reason_is_interrupted(
    spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(chunks=sse_chunks("truncated"), headers=SSE_HEADERS))
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        with http.stream("POST", fake_server.url + STREAM, params={"alt": "sse"}, json=body()) as r:
            r.read()
    step = spans.only_step()
    assert attrs(step)[attr.STEP_STATUS] == "interrupted"
    assert step_error(step)["type"] == "incomplete_stream"


def test_json_array_stream(spans: Spans, fake_server: FakeServer) -> None:
    """Without ``alt=sse`` the stream is one JSON array, sent as it is generated."""
    text = fixture_bytes("array_stream.json")
    pieces = [text[i : i + 200] for i in range(0, len(text), 200)]
    fake_server.enqueue(Reply(chunks=pieces, headers=JSON_HEADERS))
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        with http.stream("POST", fake_server.url + STREAM, json=body()) as resp:
            assert len(json.loads(resp.read())) == 4
    step = spans.only_step()
    a = attrs(step)
    assert a[attr.STEP_STATUS] == "completed"
    assert a[attr.STEP_OPERATION] == "stream"
    assert a[attr.GEN_AI_RESPONSE_MODEL] == MODEL
    assert a[attr.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    response = jattr(step, attr.STEP_NORMALIZED_RESPONSE)
    assert response["content"][0]["text"] == "Bonjour ! Comment puis-je vous aider aujourd'hui ?"
    assert jattr(step, attr.STEP_METADATA)["stream_summary"]["event_count"] == 4


def test_json_array_stream_without_a_finish_reason_is_interrupted(
    spans: Spans, fake_server: FakeServer
) -> None:
    chunks = json.loads(fixture_bytes("array_stream.json"))[:2]
    fake_server.enqueue(Reply(chunks=[json.dumps(chunks).encode()], headers=JSON_HEADERS))
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        http.post(fake_server.url + STREAM, json=body())
    step = spans.only_step()
    assert attrs(step)[attr.STEP_STATUS] == "interrupted"
    assert step_error(step)["type"] == "incomplete_stream"


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [(400, "INVALID_ARGUMENT", False), (429, "RESOURCE_EXHAUSTED", True),
     (503, "UNAVAILABLE", True)],
)  # fmt: skip
def test_http_errors(
    spans: Spans, fake_server: FakeServer, status: int, kind: str, retryable: bool
) -> None:
    fake_server.enqueue(json_reply(f"error_{status}", status))
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        assert post(http, fake_server.url + GENERATE).status_code == status
    step = spans.only_step()
    assert attrs(step)[attr.STEP_STATUS] == "error"
    assert attrs(step)[attr.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
    error = step_error(step)
    assert error["type"] == kind
    assert error["provider_status"] == status
    assert error["is_retryable"] is retryable


def test_error_inside_a_200_stream(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(Reply(chunks=sse_chunks("error"), headers=SSE_HEADERS))
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        with http.stream("POST", fake_server.url + STREAM, params={"alt": "sse"}, json=body()) as r:
            r.read()
    step = spans.only_step()
    assert attrs(step)[attr.STEP_STATUS] == "error"
    error = step_error(step)
    assert error["type"] == "INTERNAL" and error["provider_status"] == 500
    assert jattr(step, attr.STEP_NORMALIZED_RESPONSE)["finish_reason"] == "error"


# -- the API key is never recorded -------------------------------------------------------


def _haystack(spans: list[ReadableSpan]) -> str:
    """Every attribute, status text and event of ``spans``, base64 bodies decoded."""
    parts: list[str] = []
    for span in spans:
        parts.append(span.status.description or "")
        for event in span.events:
            parts.append(event.name + json.dumps(dict(event.attributes or {}), default=str))
        for key, value in (span.attributes or {}).items():
            parts.append(value if isinstance(value, str) else json.dumps(value, default=str))
            if key == attr.STEP_ATTEMPTS:
                for attempt in json.loads(str(value)):
                    for body_key in ("request_body", "response_body"):
                        if body_key in attempt:
                            raw = base64.b64decode(attempt[body_key])
                            parts.append(raw.decode("utf-8", "replace"))
    text = "\n".join(parts)
    return text + "\n" + text.replace("\\/", "/").replace('\\"', '"')


def assert_keys_not_recorded(spans: Spans, *keys: str) -> None:
    finished = spans.all()
    assert any(s.name == attr.STEP_SPAN for s in finished)
    haystack = _haystack(finished)
    for key in keys:
        windows = {key[i : i + 12] for i in range(len(key) - 11)}
        assert not [w for w in windows if w in haystack], key


@pytest.mark.parametrize("key", [GOOGLE_KEY, GATEWAY_KEY], ids=["google", "gateway"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "sse"])
def test_api_key_in_query_and_header_is_never_recorded(
    spans: Spans, fake_server: FakeServer, key: str, stream: bool
) -> None:
    if stream:
        fake_server.enqueue(Reply(chunks=sse_chunks("text"), headers=SSE_HEADERS))
    else:
        fake_server.enqueue(json_reply("error_400", 400))
    path = STREAM if stream else GENERATE
    params = {"alt": "sse"} if stream else {}
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        post(http, fake_server.url + path, key=key, **params)
    received = fake_server.requests[-1]
    assert key in received.path and received.headers["x-goog-api-key"] == key
    step = spans.only_step()
    attempt = only_attempt(step)
    assert "key=%5BREDACTED%5D" in attempt["url"] or "key=[REDACTED]" in attempt["url"]
    assert attempt["request_headers"]["x-goog-api-key"] == "[REDACTED]"
    assert_keys_not_recorded(spans, key)


# -- the google-genai SDK ----------------------------------------------------------------


def sdk(base_url: str, http: Any = None) -> genai.Client:
    options = types.HttpOptions(base_url=base_url, httpx_client=http)
    return genai.Client(api_key=GOOGLE_KEY, http_options=options)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_google_genai_sdk(spans: Spans, fake_server: FakeServer, flavour: str) -> None:
    fake_server.enqueue(
        json_reply("text_response"), Reply(chunks=sse_chunks("thinking"), headers=SSE_HEADERS)
    )
    http = client(flavour)
    with http, chatdebug.run("c-1") as run:
        gemini = sdk(fake_server.url, http)
        reply = gemini.models.generate_content(model=MODEL, contents="Say hello in French.")
        streamed = "".join(
            c.text or ""
            for c in gemini.models.generate_content_stream(
                model="gemini-2.5-pro",
                contents="What is the sum of the first 10 primes?",
                config=types.GenerateContentConfig(
                    thinking_config=types.ThinkingConfig(include_thoughts=True)
                ),
            )
        )
    assert reply.text == "Bonjour ! Comment puis-je vous aider aujourd'hui ?"
    assert "129" in streamed
    first, second = spans.steps(run.id)
    for step in (first, second):
        assert attrs(step)[attr.STEP_STATUS] == "completed"
        assert attrs(step)[attr.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
    assert attrs(first)[attr.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs(first)[attr.GEN_AI_USAGE_INPUT_TOKENS] == 6
    assert attrs(second)[attr.STEP_OPERATION] == "stream"
    assert attrs(second)[attr.GEN_AI_REQUEST_MODEL] == "gemini-2.5-pro"
    assert attrs(second)[attr.GEN_AI_RESPONSE_MODEL] == "gemini-2.5-pro"
    assert attrs(second)[attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 412
    request = jattr(second, attr.STEP_NORMALIZED_REQUEST)
    assert request["options"]["thinking"] == {"include_thoughts": True}
    assert request["messages"][0]["parts"][0]["text"].startswith("What is the sum")
    assert_keys_not_recorded(spans, GOOGLE_KEY)


def test_google_genai_sdk_default_client_with_instrument_httpx(
    spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(json_reply("tools_response"))
    chatdebug.instrument_httpx()
    try:
        gemini = sdk(fake_server.url)
        with chatdebug.run("c-1"):
            reply = gemini.models.generate_content(model=MODEL, contents="Weather in Paris?")
    finally:
        chatdebug.uninstrument_httpx()
    assert reply.function_calls and reply.function_calls[0].name == "get_weather"
    step = spans.only_step()
    assert attrs(step)[attr.STEP_STATUS] == "completed"
    assert attrs(step)[attr.GEN_AI_REQUEST_MODEL] == MODEL
    assert jattr(step, attr.STEP_NORMALIZED_RESPONSE)["finish_reason"] == "tool-calls"
    assert_keys_not_recorded(spans, GOOGLE_KEY)


def test_google_genai_sdk_http_error(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(json_reply("error_429", 429))
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        with pytest.raises(genai.errors.ClientError) as raised:
            sdk(fake_server.url, http).models.generate_content(model=MODEL, contents="hi")
    assert raised.value.code == 429
    step = spans.only_step()
    assert attrs(step)[attr.STEP_STATUS] == "error"
    assert step_error(step)["retry_delay"] == "21s"
    assert_keys_not_recorded(spans, GOOGLE_KEY)


def _direct(name: str, stream: bool) -> dict[str, Any]:
    """What the codec makes of a fixture's bytes without any transport in between."""
    codec = GeminiCodec(MODEL, stream=stream)
    if stream:
        assembler = codec.new_stream()
        parser = SSEParser()
        for event in parser.feed(fixture_bytes(f"{name}_stream.sse")) + parser.close():
            assembler.feed(event)
        result = assembler.finish()
    else:
        result = codec.normalize_response(json.loads(fixture_bytes(f"{name}_response.json")))
    return {"response": DEFAULT_REDACTOR.redact_payload(result.response), "usage": result.usage}


@pytest.mark.parametrize(
    ("name", "stream"),
    [
        *[(n, False) for n in ("text", "tools", "thinking", "images", "grounding", "safety")],
        *[(n, True) for n in ("text", "tools", "thinking", "blocked")],
    ],
)
def test_sdk_round_trip_records_what_the_codec_makes_of_the_bytes(
    spans: Spans, fake_server: FakeServer, name: str, stream: bool
) -> None:
    if stream:
        fake_server.enqueue(Reply(chunks=sse_chunks(name), headers=SSE_HEADERS))
    else:
        fake_server.enqueue(json_reply(f"{name}_response"))
    with chatdebug.httpx2_client() as http, chatdebug.run("c-1"):
        models = sdk(fake_server.url, http).models
        if stream:
            list(models.generate_content_stream(model=MODEL, contents="hi"))
        else:
            models.generate_content(model=MODEL, contents="hi")
    step = spans.only_step()
    assert attrs(step)[attr.STEP_STATUS] == "completed"
    recorded = {
        "response": jattr(step, attr.STEP_NORMALIZED_RESPONSE),
        "usage": jattr(step, attr.STEP_USAGE),
    }
    assert recorded == _direct(name, stream)
