"""``chatdebug.instrument_httpx()`` with real SDKs that build their own clients: openai
and anthropic (httpx2), groq (legacy httpx) and mistralai (httpx2, Speakeasy-generated),
none of them given an ``http_client`` — each against a loopback server speaking its
wire format, every call a step in the store."""

from __future__ import annotations

import asyncio

import anthropic
import groq
import httpx
import httpx2
import openai
import pytest
from mistralai.client import Mistral

import chatdebug
from tests.fakes import wire
from tests.fakes.server import FakeServer
from tests.instrument.capture.instrument_httpx_support import (
    MESSAGES,
    Recorded,
    assert_chat_step,
    embeddings_reply,
    mistral_reply,
    mistral_stream_reply,
    recorded,
)

__all__ = ["recorded"]  # the fixture, imported for the tests below

KEY = "sk-test-0123456789abcdefghij"


def test_openai_default_client_sync(recorded: Recorded, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        wire.openai_reply("Why did the chicken..."), wire.openai_stream_reply(["Hel", "lo"])
    )
    client = openai.OpenAI(base_url=fake_server.url + "/v1", api_key=KEY, max_retries=0)
    with client, chatdebug.run("c-openai", user_id="u-1") as run:
        out = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert out.choices[0].message.content == "Why did the chicken..."
    assert streamed == "Hello"
    first, second = recorded.steps(run)
    assert_chat_step(first, text="Why did the chicken...")
    assert_chat_step(second, text="Hello", operation="stream")
    assert first.attempts[0]["request_headers"]["authorization"] == "[REDACTED]"
    assert KEY not in repr(first.attempts)


def test_openai_default_client_async_stream_and_retry(
    recorded: Recorded, fake_server: FakeServer
) -> None:
    limited = wire.openai_error_reply(429, "Rate limit reached", "rate_limit_error")
    limited.headers = {**limited.headers, "retry-after-ms": "10"}
    fake_server.enqueue(
        wire.openai_reply("async answer"), limited, wire.openai_stream_reply(["a", "b", "c"])
    )

    async def main() -> tuple[chatdebug.RunHandle, str]:
        client = openai.AsyncOpenAI(base_url=fake_server.url + "/v1", api_key=KEY, max_retries=2)
        async with client, chatdebug.run("c-openai-async") as run:
            answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert answer.choices[0].message.content == "async answer"
            stream = await client.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            text = ""
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
        return run, text

    run, text = asyncio.run(main())
    assert text == "abc"
    generate, step = recorded.steps(run)
    assert_chat_step(generate, text="async answer")
    assert step.operation == "stream" and step.status == "completed"
    # The SDK's retry is a second attempt of the same step, as through our own clients.
    assert [a["response_status"] for a in step.attempts] == [429, 200]
    assert step.normalized_response is not None
    assert step.normalized_response["content"] == [{"type": "text", "text": "abc"}]


def test_anthropic_default_clients(recorded: Recorded, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        wire.anthropic_reply("Hi there"),
        wire.anthropic_stream_reply(["Bon", "jour"]),
        wire.anthropic_stream_reply(["Hel", "lo"]),
    )
    client = anthropic.Anthropic(base_url=fake_server.url, api_key=KEY, max_retries=0)
    with client, chatdebug.run("c-claude") as run:
        out = client.messages.create(model="claude-opus-4-6", max_tokens=64, messages=MESSAGES)
        with client.messages.stream(
            model="claude-opus-4-6", max_tokens=64, messages=MESSAGES
        ) as sync_stream:
            assert "".join(sync_stream.text_stream) == "Bonjour"
    assert out.content[0].type == "text" and out.content[0].text == "Hi there"

    async def streamed() -> tuple[chatdebug.RunHandle, str]:
        aclient = anthropic.AsyncAnthropic(base_url=fake_server.url, api_key=KEY, max_retries=0)
        async with aclient, chatdebug.run("c-claude") as arun:
            async with aclient.messages.stream(
                model="claude-opus-4-6", max_tokens=64, messages=MESSAGES
            ) as stream:
                text = "".join([piece async for piece in stream.text_stream])
        return arun, text

    arun, text = asyncio.run(streamed())
    assert text == "Hello"
    step, sync_streamed = recorded.steps(run)
    assert step.status == "completed" and step.operation == "generate"
    assert step.normalized_response is not None
    assert step.normalized_response["content"][0]["text"] == "Hi there"
    assert sync_streamed.operation == "stream" and sync_streamed.status == "completed"
    assert sync_streamed.normalized_response is not None
    assert sync_streamed.normalized_response["content"] == [{"type": "text", "text": "Bonjour"}]
    assert step.usage is not None and step.usage["cache_read_tokens"] == 3
    headers = {k.lower(): v for k, v in step.attempts[0]["request_headers"].items()}
    assert (headers.get("x-api-key") or headers.get("authorization")) == "[REDACTED]"
    assert KEY not in repr(step.attempts)
    astep = recorded.only_step(arun)
    assert astep.status == "completed" and astep.operation == "stream"
    assert astep.normalized_response is not None
    assert astep.normalized_response["content"] == [{"type": "text", "text": "Hello"}]


def test_groq_builds_legacy_httpx_clients(recorded: Recorded, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        wire.openai_reply("Fast answer", model="llama-3.3-70b-versatile"),
        wire.openai_stream_reply(["str", "eam"], model="llama-3.3-70b-versatile"),
    )
    client = groq.Groq(base_url=fake_server.url, api_key="gsk_" + "x" * 40, max_retries=0)
    assert isinstance(client._client, httpx.Client)  # the legacy library, not httpx2
    with client, chatdebug.run("c-groq") as run:
        out = client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)

    async def streamed() -> tuple[chatdebug.RunHandle, str]:
        aclient = groq.AsyncGroq(base_url=fake_server.url, api_key="gsk_x", max_retries=0)
        async with aclient, chatdebug.run("c-groq") as arun:
            stream = await aclient.chat.completions.create(
                model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return arun, text

    arun, text = asyncio.run(streamed())
    assert out.choices[0].message.content == "Fast answer" and text == "stream"
    step = recorded.only_step(run)
    assert_chat_step(step, text="Fast answer")
    assert step.attempts[0]["path"] == "/openai/v1/chat/completions"
    assert_chat_step(recorded.only_step(arun), text="stream", operation="stream")
    assert fake_server.requests[0].headers["authorization"].startswith("Bearer gsk_")


def test_mistral_builds_httpx2_clients(recorded: Recorded, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        mistral_reply("Bonjour"),
        mistral_stream_reply(["Sa", "lut"]),
        embeddings_reply("mistral-embed"),
    )
    with (
        Mistral(api_key="mistral-" + "k" * 24, server_url=fake_server.url) as client,
        chatdebug.run("c-mistral") as run,
    ):
        assert isinstance(client.sdk_configuration.client, httpx2.Client)
        out = client.chat.complete(model="mistral-small-latest", messages=MESSAGES)
        events = client.chat.stream(model="mistral-small-latest", messages=MESSAGES)
        streamed = "".join(
            str(e.data.choices[0].delta.content or "") for e in events if e.data.choices
        )
        vectors = client.embeddings.create(model="mistral-embed", inputs=["hello"])
    assert out.choices[0].message.content == "Bonjour" and streamed == "Salut"
    assert vectors.data[0].embedding == [0.25, -0.5, 0.125]
    chat, stream, embed = recorded.steps(run)
    assert_chat_step(chat, text="Bonjour")
    assert_chat_step(stream, text="Salut", operation="stream")
    # No codec for embeddings: the generic payload, still a full attempt with usage.
    assert embed.status == "completed"
    assert embed.normalized_request["path"] == "/v1/embeddings"
    assert embed.normalized_request["model"] == "mistral-embed"
    assert embed.usage is not None and embed.usage["input_tokens"] == 4
    assert embed.attempts[0]["path"] == "/v1/embeddings"
    assert embed.attempts[0]["request_headers"]["authorization"] == "[REDACTED]"


def test_mistral_async(recorded: Recorded, fake_server: FakeServer) -> None:
    fake_server.enqueue(mistral_reply("Async bonjour"))

    async def main() -> chatdebug.RunHandle:
        async with (
            Mistral(api_key="mistral-key", server_url=fake_server.url) as client,
            chatdebug.run("c-mistral-async") as run,
        ):
            out = await client.chat.complete_async(model="mistral-small-latest", messages=MESSAGES)
            assert out.choices[0].message.content == "Async bonjour"
        return run

    assert_chat_step(recorded.only_step(asyncio.run(main())), text="Async bonjour")


@pytest.mark.parametrize("factory", ["openai", "anthropic"])
def test_sdk_given_our_client_records_once(
    recorded: Recorded, fake_server: FakeServer, factory: str
) -> None:
    if factory == "openai":
        fake_server.enqueue(wire.openai_reply("once"))
        client = openai.OpenAI(
            base_url=fake_server.url + "/v1",
            api_key=KEY,
            http_client=chatdebug.httpx2_client(),
            max_retries=0,
        )
        with client, chatdebug.run("c-once") as run:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    else:
        fake_server.enqueue(wire.anthropic_reply("once"))
        aclient = anthropic.Anthropic(
            base_url=fake_server.url,
            api_key=KEY,
            http_client=chatdebug.httpx2_client(),
            max_retries=0,
        )
        with aclient, chatdebug.run("c-once") as run:
            aclient.messages.create(model="claude-opus-4-6", max_tokens=8, messages=MESSAGES)
    step = recorded.only_step(run)
    assert len(step.attempts) == 1 and len(fake_server.requests) == 1
