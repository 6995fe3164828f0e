"""google-genai's async client, which sends through aiohttp whenever aiohttp is installed:
with ``chatdebug.instrument_http()`` its calls inside a run are steps, against a
loopback server answering in Gemini's wire format (whole, streamed, an HTTP error), and
its API key is kept out of everything recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chatdebug
from chatdebug import _spans as attr
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.instrument.capture.support import attempts_of
from tests.instrument.support import Spans, jattr

pytest.importorskip("aiohttp")
genai = pytest.importorskip("google.genai")
types = pytest.importorskip("google.genai.types")

# google-genai subclasses aiohttp.ClientSession, which aiohttp discourages with a warning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

FIXTURES = Path(__file__).parents[1] / "normalize" / "fixtures"
MODEL = "gemini-2.0-flash"
KEY = "AIzaSyD3m0-l00pb4ck-t3st-k3y-0123456789"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"gemini_{name}").read_bytes()


def sse_chunks(name: str) -> list[bytes]:
    """The events of a ``.sse`` fixture, one network chunk each."""
    return [e + b"\r\n\r\n" for e in fixture_bytes(f"{name}_stream.sse").split(b"\r\n\r\n") if e]


def json_reply(name: str, status: int = 200) -> Reply:
    return Reply(status=status, body=fixture_bytes(f"{name}.json"), headers=JSON_HEADERS)


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    chatdebug.instrument_http()
    try:
        yield
    finally:
        chatdebug.uninstrument_http()


def client(base_url: str) -> Any:
    # No retries: the error test expects one request.
    options = types.HttpOptions(base_url=base_url, retry_options=types.HttpRetryOptions(attempts=1))
    gemini = genai.Client(api_key=KEY, http_options=options)
    assert gemini._api_client._use_aiohttp(), "the async client should send through aiohttp"
    return gemini


def assert_key_not_recorded(spans: Spans) -> None:
    recorded = json.dumps([dict(s.attributes or {}) for s in spans.all()])
    assert KEY not in recorded and KEY[:12] not in recorded


def test_generate_content_and_stream(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        json_reply("text_response"),
        Reply(chunks=sse_chunks("thinking"), headers=SSE_HEADERS),
    )

    async def main() -> tuple[Any, str, chatdebug.RunHandle]:
        gemini = client(fake_server.url)
        try:
            with chatdebug.run("c-1") as run:
                reply = await gemini.aio.models.generate_content(
                    model=MODEL, contents="Say hello in French."
                )
                stream = await gemini.aio.models.generate_content_stream(
                    model="gemini-2.5-pro",
                    contents="What is the sum of the first 10 primes?",
                    config=types.GenerateContentConfig(
                        thinking_config=types.ThinkingConfig(include_thoughts=True)
                    ),
                )
                streamed = "".join([c.text or "" async for c in stream])
        finally:
            await gemini.aio.aclose()
        return reply, streamed, run

    reply, streamed, run = asyncio.run(main())
    assert reply.text == "Bonjour ! Comment puis-je vous aider aujourd'hui ?"
    assert "129" in streamed
    first, second = spans.steps(run.id)
    for step in (first, second):
        a = step.attributes or {}
        assert a[attr.STEP_STATUS] == "completed"
        assert a[attr.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
        (attempt,) = attempts_of(step)
        assert attempt["status"] == "completed" and attempt["response_status"] == 200
    a1, a2 = first.attributes or {}, second.attributes or {}
    assert a1[attr.STEP_OPERATION] == "generate"
    assert a1[attr.GEN_AI_REQUEST_MODEL] == MODEL
    assert a1[attr.GEN_AI_USAGE_INPUT_TOKENS] == 6
    assert a1[attr.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    assert a2[attr.STEP_OPERATION] == "stream"
    assert a2[attr.GEN_AI_REQUEST_MODEL] == "gemini-2.5-pro"
    assert a2[attr.GEN_AI_RESPONSE_MODEL] == "gemini-2.5-pro"
    assert a2[attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 412
    request = jattr(second, attr.STEP_NORMALIZED_REQUEST)
    assert request["options"]["thinking"] == {"include_thoughts": True}
    assert_key_not_recorded(spans)


def test_three_async_calls_are_three_steps(spans: Spans, fake_server: FakeServer) -> None:
    """The report that started this: three async calls in a run used to end it
    ``completed`` with no step at all."""
    fake_server.enqueue(*[json_reply("text_response") for _ in range(3)])

    async def main() -> chatdebug.RunHandle:
        gemini = client(fake_server.url)
        try:
            with chatdebug.run("c-1") as run:
                for _ in range(3):
                    await gemini.aio.models.generate_content(model=MODEL, contents="hi")
        finally:
            await gemini.aio.aclose()
        return run

    run = asyncio.run(main())
    steps = spans.steps(run.id)
    assert [s.attributes[attr.STEP_NUMBER] for s in steps if s.attributes] == [1, 2, 3]
    assert all(s.attributes and s.attributes[attr.STEP_STATUS] == "completed" for s in steps)


def test_http_error(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(json_reply("error_429", 429))

    async def main() -> None:
        gemini = client(fake_server.url)
        try:
            with chatdebug.run("c-1"):
                await gemini.aio.models.generate_content(model=MODEL, contents="hi")
        finally:
            await gemini.aio.aclose()

    with pytest.raises(genai.errors.ClientError) as raised:
        asyncio.run(main())
    assert raised.value.code == 429
    step = spans.only_step()
    assert (step.attributes or {})[attr.STEP_STATUS] == "error"
    assert jattr(step, attr.STEP_ERROR)["retry_delay"] == "21s"
    (attempt,) = attempts_of(step)
    assert attempt["response_status"] == 429
    assert_key_not_recorded(spans)
