"""Which step a request lands in (automatic steps, SDK retries, explicit steps), when the
transport stays out of the way (suppressed instrumentation), and that a failure inside
chatdebug never breaks the request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from opentelemetry import context as otel_context

import chatdebug
from chatdebug import _safety
from chatdebug import _spans as attr
from chatdebug.instrument.normalize import OpenAIChatCodec
from chatdebug.instrument.normalize.openai_chat import ChatStream
from tests.fakes.server import SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import (
    openai_completion,
    openai_error_reply,
    openai_reply,
    openai_stream_chunks,
)
from tests.instrument.capture.support import (
    CHAT_PATH,
    ONE_FLAVOUR,
    Client,
    Flavour,
    attempts_of,
    body_of,
    drive,
    flavours,
    step_status,
)
from tests.instrument.support import Spans, jattr

CHAT_BODY: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def _retry_headers(count: int) -> dict[str, str]:
    return {"x-stainless-retry-count": str(count)}


def _rate_limited() -> Reply:
    reply = openai_error_reply(429, "Rate limit reached", "rate_limit_exceeded")
    reply.headers = {**reply.headers, "retry-after-ms": "1"}
    return reply


# -- SDK retries become attempts of one step ----------------------------------------------


@flavours
def test_retry_count_header_joins_previous_step(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(_rate_limited(), openai_reply("Hello!"))
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            first = await client.call("POST", url, json=CHAT_BODY, headers=_retry_headers(0))
            assert first.status_code == 429
            assert spans.steps() == []  # waiting for the retry
            second = await client.call("POST", url, json=CHAT_BODY, headers=_retry_headers(1))
            assert second.status_code == 200
            assert len(spans.steps()) == 1

    drive(flavour, scenario)
    step = spans.only_step()
    first, second = attempts_of(step)
    assert (first["number"], second["number"]) == (1, 2)
    assert first["response_status"] == 429 and second["response_status"] == 200
    assert first["retry_classification"] == "rate_limited"
    assert "retry_classification" not in second
    assert "retry_delay_ms" not in first
    assert second["retry_delay_ms"] >= 0
    assert step_status(step) == "completed"
    assert step.attributes[attr.STEP_ERROR] == "null"  # the earlier error is cleared


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_openai_sdk_retries_are_attempts_of_one_step(
    spans: Spans, fake_server: FakeServer, is_async: bool
) -> None:
    fake_server.enqueue(_rate_limited(), openai_reply("Hello!"))
    text = _openai_call(fake_server, is_async, max_retries=2)
    assert text == "Hello!"
    assert [r.headers["x-stainless-retry-count"] for r in fake_server.requests] == ["0", "1"]
    step = spans.only_step()
    first, second = attempts_of(step)
    assert first["status"] == second["status"] == "completed"
    assert first["response_status"] == 429
    assert first["retry_classification"] == "rate_limited"
    assert second["retry_delay_ms"] >= 0
    assert step_status(step) == "completed"
    assert step.attributes[attr.STEP_ERROR] == "null"
    assert step.attributes[attr.STEP_NUMBER] == 1
    assert "Hello!" in step.attributes[attr.STEP_NORMALIZED_RESPONSE]


def _openai_call(fake_server: FakeServer, is_async: bool, **client_options: Any) -> str:
    """One ``chat.completions.create`` through the real SDK inside a run."""
    base_url = fake_server.url + "/v1"
    if is_async:

        async def main() -> str:
            client = openai.AsyncOpenAI(
                api_key="sk-test",
                base_url=base_url,
                http_client=chatdebug.async_httpx2_client(verify=False),
                **client_options,
            )
            try:
                with chatdebug.run("chat-1"):
                    reply = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                return reply.choices[0].message.content or ""
            finally:
                await client.close()

        return asyncio.run(main())
    client = openai.OpenAI(
        api_key="sk-test",
        base_url=base_url,
        http_client=chatdebug.httpx2_client(verify=False),
        **client_options,
    )
    try:
        with chatdebug.run("chat-1"):
            reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        return reply.choices[0].message.content or ""
    finally:
        client.close()


@flavours
def test_new_call_after_pending_failure_starts_new_step(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """The SDK gave up after a retryable failure and the app made a new call: the old
    step ends with its error, the new call is a new step."""
    fake_server.enqueue(openai_error_reply(503, "overloaded", "server_error"), openai_reply())
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call("POST", url, json=CHAT_BODY, headers=_retry_headers(0))
            assert spans.steps() == []
            await client.call("POST", url, json=CHAT_BODY, headers=_retry_headers(0))
            assert len(spans.steps()) == 2

    drive(flavour, scenario)
    failed, succeeded = spans.steps()
    assert failed.attributes[attr.STEP_NUMBER] == 1
    assert step_status(failed) == "error"
    assert [a["response_status"] for a in attempts_of(failed)] == [503]
    assert jattr(failed, attr.STEP_ERROR)["provider_status"] == 503
    assert step_status(succeeded) == "completed"
    assert len(attempts_of(succeeded)) == 1
    assert attr.STEP_ERROR not in succeeded.attributes


def test_pending_retry_step_ends_with_the_run(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(_rate_limited())
    flavour = ONE_FLAVOUR

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call(
                "POST", fake_server.url + CHAT_PATH, json=CHAT_BODY, headers=_retry_headers(0)
            )
            assert spans.steps() == []

    drive(flavour, scenario)
    step = spans.only_step()
    assert step_status(step) == "error"
    assert jattr(step, attr.STEP_ERROR)["provider_status"] == 429


@flavours
def test_should_retry_false_is_respected(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """``x-should-retry: false`` on a normally retryable status: no retry will come, so
    the step ends at once, and a later request with a retry count is a new step."""
    refused = openai_error_reply(503, "overloaded", "server_error")
    refused.headers = {**refused.headers, "x-should-retry": "false"}
    fake_server.enqueue(refused, openai_reply())
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call("POST", url, json=CHAT_BODY, headers=_retry_headers(0))
            assert len(spans.steps()) == 1  # not waiting for a retry
            await client.call("POST", url, json=CHAT_BODY, headers=_retry_headers(1))

    drive(flavour, scenario)
    first, second = spans.steps()
    (attempt,) = attempts_of(first)
    assert "retry_classification" not in attempt
    assert step_status(first) == "error"
    assert step_status(second) == "completed"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_openai_sdk_should_retry_false(
    spans: Spans, fake_server: FakeServer, is_async: bool
) -> None:
    refused = openai_error_reply(500, "do not retry this", "server_error")
    refused.headers = {**refused.headers, "x-should-retry": "false"}
    fake_server.enqueue(refused)
    with pytest.raises(openai.InternalServerError):
        _openai_call(fake_server, is_async, max_retries=3)
    assert len(fake_server.requests) == 1
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["response_status"] == 500
    assert step_status(step) == "error"
    error = jattr(step, attr.STEP_ERROR)
    assert error["provider_status"] == 500
    assert "do not retry this" in json.dumps(error)


# -- explicit steps -------------------------------------------------------------------


@flavours
def test_explicit_step_collects_requests_as_attempts(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(
        openai_error_reply(500, "boom", "server_error"),
        Reply(chunks=openai_stream_chunks(["Hi"]), headers=SSE_HEADERS),
        openai_reply("third"),
    )
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            with chatdebug.step(operation="stream") as step:
                assert step.number == 1
                await client.call("POST", url, json=CHAT_BODY)
                await client.call("POST", url, json={**CHAT_BODY, "stream": True})
                await client.call("POST", url, json=CHAT_BODY)
                assert spans.steps() == []  # open until the block exits

    drive(flavour, scenario)
    step = spans.only_step()
    attempts = attempts_of(step)
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["response_status"] for a in attempts] == [500, 200, 200]
    assert step.attributes[attr.STEP_EXPLICIT] is True
    assert step.attributes[attr.STEP_OPERATION] == "stream"
    assert step_status(step) == "completed"
    assert step.attributes[attr.STEP_ERROR] == "null"
    assert body_of(attempts[1]).startswith(b"data: ")
    assert "third" in step.attributes[attr.STEP_NORMALIZED_RESPONSE]


# -- staying out of the way ---------------------------------------------------------------


@flavours
def test_suppressed_instrumentation_passes_through(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """With OpenTelemetry instrumentation suppressed (as span exporters do around their
    own HTTP calls) nothing is recorded, even inside a run."""
    key = otel_context._SUPPRESS_INSTRUMENTATION_KEY
    fake_server.enqueue(openai_reply("quiet"), openai_reply("recorded"))
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            token = otel_context.attach(otel_context.set_value(key, True))
            try:
                resp = await client.call("POST", url, json=CHAT_BODY)
                assert "quiet" in resp.content.decode()
                assert not type(resp.raw.stream).__module__.startswith("chatdebug")
            finally:
                otel_context.detach(token)
            await client.call("POST", url, json=CHAT_BODY)

    drive(flavour, scenario)
    step = spans.only_step()
    assert "recorded" in step.attributes[attr.STEP_NORMALIZED_RESPONSE]
    assert len(attempts_of(step)) == 1


# -- our failures never break the request ------------------------------------------------


@flavours
def test_internal_failure_never_breaks_the_request(
    flavour: Flavour,
    spans: Spans,
    fake_server: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A normalizer that raises (non-streamed and streamed) loses only what it would
    have produced: the caller gets its response, the error is counted."""
    monkeypatch.delenv("CHATDEBUG_RAISE_INTERNAL_ERRORS", raising=False)

    def broken_response(self: Any, body: Any) -> Any:
        raise RuntimeError("normalizer exploded")

    def broken_feed(self: Any, event: Any) -> bool:
        raise RuntimeError("stream assembler exploded")

    monkeypatch.setattr(OpenAIChatCodec, "normalize_response", broken_response)
    monkeypatch.setattr(ChatStream, "feed", broken_feed)
    before = _safety.internal_error_counts().get("normalize", 0)
    completion = json.dumps(openai_completion("still here")).encode()
    chunks = openai_stream_chunks(["still ", "streaming"])
    fake_server.enqueue(
        Reply(body=completion, headers={"Content-Type": "application/json"}),
        Reply(chunks=chunks, headers=SSE_HEADERS),
    )
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> tuple[bytes, bytes]:
        with chatdebug.run("chat-1"):
            whole = await client.call("POST", url, json=CHAT_BODY)
            streamed = await client.call("POST", url, json={**CHAT_BODY, "stream": True})
            return whole.content, streamed.content

    assert drive(flavour, scenario) == (completion, b"".join(chunks))
    steps = spans.steps()
    assert len(steps) == 2
    for step in steps:
        # Ended with its own response, not left open until the run ends.
        assert step.end_time is not None and step.end_time < spans.runs()[0].end_time
        (attempt,) = attempts_of(step)
        assert attempt["status"] == "completed"
        assert attempt["response_status"] == 200
        assert step_status(step) == "completed"
        assert attr.STEP_NORMALIZED_RESPONSE not in step.attributes
        assert "could not be normalized" in jattr(step, attr.STEP_METADATA)["capture_error"]
    assert body_of(attempts_of(steps[0])[0]) == completion
    assert body_of(attempts_of(steps[1])[0]) == b"".join(chunks)
    # One failure per call (a failing stream assembler is not fed again).
    assert _safety.internal_error_counts().get("normalize", 0) == before + 2
