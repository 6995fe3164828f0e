"""The normalizers behind the real SDKs: each provider fixture is served by a loopback
server, consumed with the SDK (including its streaming helpers ``responses.stream`` and
``messages.stream``), and the step recorded by the transport must equal what the codec
makes of the same bytes directly — nothing lost or changed on the way."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import chatdebug
from chatdebug import _spans as attr
from chatdebug.instrument.normalize import (
    AnthropicMessagesCodec,
    Codec,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
)
from chatdebug.instrument.normalize._sse import SSEParser
from chatdebug.instrument.redact._redactor import DEFAULT_REDACTOR
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.instrument.support import Spans, jattr

FIXTURES = Path(__file__).parent / "fixtures"
USER: Any = [{"role": "user", "content": "hi"}]


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sse_reply(name: str) -> Reply:
    raw = fixture_bytes(name)
    # One chunk per event, as providers flush them; the tail keeps any odd ending.
    pieces = [p + b"\n\n" for p in raw.split(b"\n\n") if p.strip()]
    return Reply(chunks=pieces, headers=SSE_HEADERS)


def json_reply(name: str, status: int = 200) -> Reply:
    return Reply(status=status, body=fixture_bytes(name), headers=JSON_HEADERS)


def expected_stream(
    codec: Codec, name: str, request: dict[str, Any] | None = None
) -> dict[str, Any]:
    assembler = codec.new_stream(request)
    parser = SSEParser()
    for event in parser.feed(fixture_bytes(name)) + parser.close():
        assembler.feed(event)
    result = assembler.finish()
    return {
        "response": DEFAULT_REDACTOR.redact_payload(result.response),
        "usage": result.usage,
        "metadata": result.metadata,
    }


def expected_json(codec: Codec, name: str) -> dict[str, Any]:
    result = codec.normalize_response(json.loads(fixture_bytes(name)))
    return {"response": DEFAULT_REDACTOR.redact_payload(result.response), "usage": result.usage}


def recorded(spans: Spans) -> dict[str, Any]:
    step = spans.only_step()
    out = {
        "response": json.loads(step.attributes.get(attr.STEP_NORMALIZED_RESPONSE, "null")),  # type: ignore[arg-type]
        "usage": json.loads(step.attributes.get(attr.STEP_USAGE, "null")),  # type: ignore[arg-type]
        "status": step.attributes[attr.STEP_STATUS],
    }
    if attr.STEP_METADATA in step.attributes:
        out["metadata"] = jattr(step, attr.STEP_METADATA)
    if attr.STEP_ERROR in step.attributes:
        out["error"] = jattr(step, attr.STEP_ERROR)
    return out


def oai(server: FakeServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url + "/v1",
        api_key="sk-x",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )


def claude(server: FakeServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.url,
        api_key="sk-ant-x",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )


@pytest.mark.parametrize("name", ["text", "tools", "reasoning"])
def test_openai_chat_generate(spans: Spans, fake_server: FakeServer, name: str) -> None:
    fixture = f"openai_chat_{name}_response.json"
    fake_server.enqueue(json_reply(fixture))
    with oai(fake_server) as client, chatdebug.run("c"):
        client.chat.completions.create(model="gpt-4o", messages=USER)
    got = recorded(spans)
    assert got["status"] == "completed"
    want = expected_json(OpenAIChatCodec(), fixture)
    assert (got["response"], got["usage"]) == (want["response"], want["usage"])


@pytest.mark.parametrize("name", ["text", "tools", "interleaved", "reasoning"])
def test_openai_chat_stream(spans: Spans, fake_server: FakeServer, name: str) -> None:
    fixture = f"openai_chat_{name}_stream.sse"
    fake_server.enqueue(sse_reply(fixture))
    with oai(fake_server) as client, chatdebug.run("c"):
        for _ in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            pass
    got = recorded(spans)
    assert got["status"] == "completed"
    # The SDK call did not set stream_options.include_usage: what explains a missing usage.
    want = expected_stream(OpenAIChatCodec(), fixture, {"stream": True, "options": {}})
    assert got["response"] == want["response"]
    assert got["metadata"] == want["metadata"]


def test_openai_chat_truncated_stream_is_interrupted(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(sse_reply("openai_chat_truncated_stream.sse"))
    with oai(fake_server) as client, chatdebug.run("c"):
        list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    got = recorded(spans)
    assert got["status"] == "interrupted"
    assert got["error"]["type"] == "incomplete_stream"
    assert (
        got["response"]
        == expected_stream(OpenAIChatCodec(), "openai_chat_truncated_stream.sse")["response"]
    )


def test_openai_chat_malformed_stream_never_breaks_recording(
    spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(sse_reply("openai_chat_malformed_stream.sse"))
    # The SDK itself raises on the event that is not JSON.
    with oai(fake_server) as client, chatdebug.run("c"), pytest.raises(ValueError):
        list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    got = recorded(spans)  # the SDK failed on the bad event; the step still ended, once
    # The SDK closed the response right after the bad event: what arrived before is kept,
    # the bad event is counted, and the step is interrupted, not lost.
    assert got["status"] == "interrupted"
    assert got["response"]["content"] == [{"type": "text", "text": "Hi"}]
    assert got["metadata"]["stream_summary"]["malformed_event_count"] == 1
    assert len(spans.steps()) == 1


@pytest.mark.parametrize("name", ["text", "tools", "refusal", "incomplete"])
def test_openai_responses_stream_helper(spans: Spans, fake_server: FakeServer, name: str) -> None:
    fixture = f"openai_responses_{name}_stream.sse"
    fake_server.enqueue(sse_reply(fixture))
    with oai(fake_server) as client, chatdebug.run("c"):
        with client.responses.stream(model="gpt-4.1", input="hi") as stream:
            if name == "incomplete":
                # The helper insists on response.completed; the provider ended the
                # response properly (max_output_tokens), so the step is still complete.
                with pytest.raises(RuntimeError, match=r"response\.completed"):
                    stream.get_final_response()
            else:
                assert stream.get_final_response().id
    got = recorded(spans)
    want = expected_stream(OpenAIResponsesCodec(), fixture)
    assert got["response"] == want["response"]
    assert got["usage"] == want["usage"]
    assert got["status"] == "completed"


@pytest.mark.parametrize("name", ["text", "tools", "refusal", "incomplete"])
def test_openai_responses_create(spans: Spans, fake_server: FakeServer, name: str) -> None:
    fixture = f"openai_responses_{name}_response.json"
    fake_server.enqueue(json_reply(fixture))

    async def main() -> None:
        async with (
            openai.AsyncOpenAI(
                base_url=fake_server.url + "/v1",
                api_key="sk-x",
                http_client=chatdebug.async_httpx2_client(),
                max_retries=0,
            ) as client,
            chatdebug.run("c"),
        ):
            await client.responses.create(model="gpt-4.1", input="hi")

    asyncio.run(main())
    got = recorded(spans)
    want = expected_json(OpenAIResponsesCodec(), fixture)
    assert (got["response"], got["usage"]) == (want["response"], want["usage"])


def test_openai_responses_failed_stream_is_an_error(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(sse_reply("openai_responses_failed_stream.sse"))
    with oai(fake_server) as client, chatdebug.run("c"):
        for _ in client.responses.create(model="gpt-4.1", input="hi", stream=True):
            pass
    got = recorded(spans)
    assert got["status"] == "error"
    assert got["error"]["message"]


@pytest.mark.parametrize("name", ["text", "tools", "thinking", "parallel", "cache", "web_search"])
def test_anthropic_messages_stream_helper(spans: Spans, fake_server: FakeServer, name: str) -> None:
    fixture = f"anthropic_{name}_stream.sse"
    fake_server.enqueue(sse_reply(fixture))
    with claude(fake_server) as client, chatdebug.run("c"):
        with client.messages.stream(model="claude-opus-4-6", max_tokens=64, messages=USER) as s:
            s.get_final_message()
    got = recorded(spans)
    want = expected_stream(AnthropicMessagesCodec(), fixture)
    assert got["status"] == "completed"
    assert got["response"] == want["response"]
    assert got["usage"] == want["usage"]
    assert got["metadata"] == want["metadata"]


@pytest.mark.parametrize("name", ["text", "tools", "thinking", "parallel", "cache", "web_search"])
def test_anthropic_messages_create(spans: Spans, fake_server: FakeServer, name: str) -> None:
    fixture = f"anthropic_{name}_response.json"
    fake_server.enqueue(json_reply(fixture))

    async def main() -> None:
        async with (
            anthropic.AsyncAnthropic(
                base_url=fake_server.url,
                api_key="sk-ant-x",
                http_client=chatdebug.async_httpx2_client(),
                max_retries=0,
            ) as client,
            chatdebug.run("c"),
        ):
            await client.messages.create(model="claude-opus-4-6", max_tokens=64, messages=USER)

    asyncio.run(main())
    got = recorded(spans)
    want = expected_json(AnthropicMessagesCodec(), fixture)
    assert (got["response"], got["usage"]) == (want["response"], want["usage"])


def test_anthropic_overloaded_mid_stream(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(sse_reply("anthropic_overloaded_stream.sse"))
    with claude(fake_server) as client, chatdebug.run("c"), pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(model="claude-opus-4-6", max_tokens=64, messages=USER) as s:
            s.get_final_message()
    got = recorded(spans)
    assert got["status"] == "error"
    assert got["error"]["type"] == "overloaded_error"
    assert got["response"]["content"][0]["text"].endswith("ong answer")


@pytest.mark.parametrize(
    ("fixture", "status", "sdk", "error_type"),
    [
        ("openai_error_400.json", 400, "openai", openai.BadRequestError),
        ("openai_error_429.json", 429, "openai", openai.RateLimitError),
        ("openai_error_500.json", 500, "openai", openai.InternalServerError),
        ("anthropic_error_400.json", 400, "anthropic", anthropic.BadRequestError),
        ("anthropic_error_429.json", 429, "anthropic", anthropic.RateLimitError),
        ("anthropic_error_529.json", 529, "anthropic", anthropic.APIStatusError),
    ],
)
def test_provider_error_bodies(
    spans: Spans,
    fake_server: FakeServer,
    fixture: str,
    status: int,
    sdk: str,
    error_type: type[Exception],
) -> None:
    fake_server.enqueue(json_reply(fixture, status))
    body = json.loads(fixture_bytes(fixture))
    with chatdebug.run("c"), pytest.raises(error_type):
        if sdk == "openai":
            with oai(fake_server) as client:
                client.chat.completions.create(model="gpt-4o", messages=USER)
        else:
            with claude(fake_server) as other:
                other.messages.create(model="claude-opus-4-6", max_tokens=5, messages=USER)
    error = recorded(spans)["error"]
    assert error["provider_status"] == status
    assert error["message"] == body["error"]["message"]
    assert error["is_retryable"] is (status != 400)
    assert spans.only_step().attributes[attr.STEP_STATUS] == "error"
