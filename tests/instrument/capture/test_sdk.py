"""The real ``openai`` and ``anthropic`` SDKs, sync and async, over httpx and httpx2,
through our clients, against a loopback server speaking the providers' wire formats."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

import chatdebug
from chatdebug import _spans as attr
from tests.fakes import wire
from tests.fakes.server import JSON_HEADERS, FakeServer, Reply
from tests.instrument.support import Spans, jattr

MESSAGES = [{"role": "user", "content": "Tell me a joke"}]
FLAVOURS = ["httpx", "httpx2"]


def openai_client(base: str, flavour: str, retries: int = 0) -> openai.OpenAI:
    http = chatdebug.httpx_client() if flavour == "httpx" else chatdebug.httpx2_client()
    return openai.OpenAI(
        base_url=base + "/v1", api_key="sk-test-key", http_client=http, max_retries=retries
    )


def async_openai_client(base: str, flavour: str, retries: int = 0) -> openai.AsyncOpenAI:
    http = chatdebug.async_httpx_client() if flavour == "httpx" else chatdebug.async_httpx2_client()
    return openai.AsyncOpenAI(
        base_url=base + "/v1", api_key="sk-test-key", http_client=http, max_retries=retries
    )


def rate_limited() -> Reply:
    reply = wire.openai_error_reply(429, "Rate limit reached", "rate_limit_error")
    reply.headers = {**reply.headers, "retry-after-ms": "10"}
    return reply


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_openai_sync_generate(spans: Spans, fake_server: FakeServer, flavour: str) -> None:
    fake_server.enqueue(wire.openai_reply("Why did the chicken..."))
    with openai_client(fake_server.url, flavour) as client, chatdebug.run("c") as run:
        out = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert out.choices[0].message.content == "Why did the chicken..."
    step = spans.only_step()
    assert step.attributes[attr.RUN_ID] == str(run.id)
    assert step.attributes[attr.STEP_STATUS] == "completed"
    assert step.attributes[attr.STEP_OPERATION] == "generate"
    assert step.attributes[attr.GEN_AI_PROVIDER_NAME] == "openai"
    assert step.attributes[attr.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert step.attributes[attr.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert step.attributes[attr.GEN_AI_USAGE_INPUT_TOKENS] == 12
    request = jattr(step, attr.STEP_NORMALIZED_REQUEST)
    assert request["messages"][0]["parts"][0]["text"] == "Tell me a joke"
    response = jattr(step, attr.STEP_NORMALIZED_RESPONSE)
    assert response["content"][0]["text"] == "Why did the chicken..."
    assert jattr(step, attr.STEP_USAGE)["total_tokens"] == 17
    (attempt,) = jattr(step, attr.STEP_ATTEMPTS)
    assert attempt["status"] == "completed" and attempt["response_status"] == 200
    assert attempt["request_headers"]["authorization"] == "[REDACTED]"
    assert attempt["path"] == "/v1/chat/completions"
    assert attempt["duration_ms"] >= 0 and attempt["ttfb_ms"] >= 0


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_openai_async_stream(spans: Spans, fake_server: FakeServer, flavour: str) -> None:
    fake_server.enqueue(wire.openai_stream_reply(["Hel", "lo", " there"]))

    async def main() -> str:
        async with async_openai_client(fake_server.url, flavour) as client:
            async with chatdebug.run("c"):
                stream = await client.chat.completions.create(
                    model="gpt-4o",
                    messages=MESSAGES,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text = ""
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        text += chunk.choices[0].delta.content
                return text

    assert asyncio.run(main()) == "Hello there"
    step = spans.only_step()
    assert step.attributes[attr.STEP_OPERATION] == "stream"
    assert step.attributes[attr.STEP_STATUS] == "completed"
    assert step.attributes[attr.STEP_TTFT_MS] >= 0
    assert jattr(step, attr.STEP_NORMALIZED_RESPONSE)["content"] == [
        {"type": "text", "text": "Hello there"}
    ]
    summary = jattr(step, attr.STEP_METADATA)["stream_summary"]
    assert summary["text_delta_count"] == 3 and summary["finish_reason"] == "stop"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_openai_sync_stream_and_async_generate(
    spans: Spans, fake_server: FakeServer, flavour: str
) -> None:
    fake_server.enqueue(wire.openai_stream_reply(["a", "b"]), wire.openai_reply("async ok"))
    with openai_client(fake_server.url, flavour) as client, chatdebug.run("c"):
        chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]

    async def generate() -> str | None:
        async with async_openai_client(fake_server.url, flavour) as client:
            async with chatdebug.run("c"):
                out = await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
                return out.choices[0].message.content

    assert asyncio.run(generate()) == "async ok"
    assert len(chunks) == 5
    statuses = [s.attributes[attr.STEP_STATUS] for s in spans.steps()]
    assert statuses == ["completed", "completed"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_rate_limited_then_ok_is_one_step_with_two_attempts(
    spans: Spans, fake_server: FakeServer, flavour: str
) -> None:
    fake_server.enqueue(rate_limited(), wire.openai_reply("finally"))
    with openai_client(fake_server.url, flavour, retries=2) as client, chatdebug.run("c"):
        out = client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert out.choices[0].message.content == "finally"
    step = spans.only_step()
    assert step.attributes[attr.STEP_STATUS] == "completed"
    assert step.attributes[attr.STEP_ERROR] == "null"  # the 429's error was cleared
    first, second = jattr(step, attr.STEP_ATTEMPTS)
    assert (first["number"], first["response_status"]) == (1, 429)
    assert first["retry_classification"] == "rate_limited"
    assert (second["number"], second["response_status"]) == (2, 200)
    assert second["retry_delay_ms"] >= 0
    assert [r.headers["x-stainless-retry-count"] for r in fake_server.requests] == ["0", "1"]


def test_async_retry_after_server_error(spans: Spans, fake_server: FakeServer) -> None:
    error = wire.openai_error_reply(500, "boom", "server_error")
    error.headers = {**error.headers, "retry-after-ms": "5"}
    fake_server.enqueue(error, wire.openai_reply("recovered"))

    async def main() -> None:
        async with async_openai_client(fake_server.url, "httpx2", retries=1) as client:
            async with chatdebug.run("c"):
                await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]

    asyncio.run(main())
    step = spans.only_step()
    assert [a["response_status"] for a in jattr(step, attr.STEP_ATTEMPTS)] == [500, 200]
    assert step.attributes[attr.STEP_STATUS] == "completed"


def test_rate_limit_exhausted_is_an_error_step(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(rate_limited(), rate_limited())
    with (
        openai_client(fake_server.url, "httpx2", retries=1) as client,
        pytest.raises(openai.RateLimitError),
        chatdebug.run("c"),
    ):
        client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    step = spans.only_step()
    assert step.attributes[attr.STEP_STATUS] == "error"
    error = jattr(step, attr.STEP_ERROR)
    assert error["provider_status"] == 429 and error["is_retryable"] is True
    assert error["message"] == "Rate limit reached"
    assert len(jattr(step, attr.STEP_ATTEMPTS)) == 2
    assert spans.runs()[0].attributes[attr.RUN_STATUS] == "error"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_connection_refused(spans: Spans, flavour: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = openai_client(f"http://127.0.0.1:{port}", flavour, retries=1)
    with client, pytest.raises(openai.APIConnectionError), chatdebug.run("c"):
        client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    step = spans.only_step()
    attempts = jattr(step, attr.STEP_ATTEMPTS)
    assert [a["status"] for a in attempts] == ["failed", "failed"]
    assert "ConnectError" in attempts[0]["error"]
    assert attempts[0]["retry_classification"] == "connection_error"
    assert step.attributes[attr.STEP_STATUS] == "error"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_server_drops_mid_stream(spans: Spans, fake_server: FakeServer, flavour: str) -> None:
    reply = wire.openai_stream_reply(["one", "two", "three", "four"])
    reply.drop_after = 3
    fake_server.enqueue(reply)
    received: list[str] = []
    with (
        openai_client(fake_server.url, flavour) as client,
        pytest.raises((httpx.HTTPError, openai.APIError, Exception)),
        chatdebug.run("c"),
    ):
        for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received == ["one", "two"]
    step = spans.only_step()
    assert step.attributes[attr.STEP_STATUS] == "error"
    (attempt,) = jattr(step, attr.STEP_ATTEMPTS)
    assert attempt["status"] == "failed"
    assert jattr(step, attr.STEP_NORMALIZED_RESPONSE)["content"][0]["text"] == "onetwo"


def test_caller_breaking_out_early_is_interrupted_and_ended_once(
    spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_stream_reply([f"w{i} " for i in range(50)], chunk_delay=0.001))
    with openai_client(fake_server.url, "httpx2") as client, chatdebug.run("c"):
        with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:  # type: ignore[arg-type]
            for index, _ in enumerate(stream):
                if index == 3:
                    break
    gc.collect()
    step = spans.only_step()  # exactly one span for the step: ended once
    assert step.attributes[attr.STEP_STATUS] == "interrupted"
    (attempt,) = jattr(step, attr.STEP_ATTEMPTS)
    assert attempt["status"] == "failed"


def test_stream_never_closed_is_finalized_by_gc(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(wire.openai_stream_reply(["a", "b", "c"], chunk_delay=0.01))
    with openai_client(fake_server.url, "httpx") as client, chatdebug.run("c"):
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        next(iter(stream))
        del stream
        gc.collect()
        steps = spans.steps()  # drained the reaper: finalized before the run ended
        assert len(steps) == 1
    assert steps[0].attributes[attr.STEP_STATUS] == "interrupted"
    # Either our finalizer saw the stream collected, or the SDK's generator closed the
    # response while being collected: both end the step before the run does.
    error = jattr(steps[0], attr.STEP_ATTEMPTS)[0]["error"]
    assert "garbage-collected" in error or "closed before" in error
    assert len(spans.steps()) == 1


def test_gzip_response(spans: Spans, fake_server: FakeServer) -> None:
    reply = wire.openai_reply("compressed hello")
    reply.encoding = "gzip"
    fake_server.enqueue(reply)
    with openai_client(fake_server.url, "httpx2") as client, chatdebug.run("c"):
        out = client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert out.choices[0].message.content == "compressed hello"
    step = spans.only_step()
    assert jattr(step, attr.STEP_NORMALIZED_RESPONSE)["content"][0]["text"] == "compressed hello"
    (attempt,) = jattr(step, attr.STEP_ATTEMPTS)
    import base64

    assert json.loads(base64.b64decode(attempt["response_body"]))["id"] == "chatcmpl-abc123"


def test_large_response_truncated_in_capture_caller_gets_all(
    spans: Spans, fake_server: FakeServer
) -> None:
    big = "x" * 60_000
    fake_server.enqueue(wire.openai_reply(big))
    with openai_client(fake_server.url, "httpx2") as client, chatdebug.run("c"):
        out = client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert out.choices[0].message.content == big
    step = spans.only_step()
    import base64

    (attempt,) = jattr(step, attr.STEP_ATTEMPTS)
    assert base64.b64decode(attempt["response_body"]) == b"[TRUNCATED]"
    part = jattr(step, attr.STEP_NORMALIZED_RESPONSE)["content"][0]
    assert part["text_length"] == 60_000 and part["text"].endswith("…")


def test_anthropic_sync_create_and_stream(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(wire.anthropic_reply("Bonjour"), wire.anthropic_stream_reply(["Sa", "lut"]))
    client = anthropic.Anthropic(
        base_url=fake_server.url,
        api_key="sk-ant-test",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    with client, chatdebug.run("c"):
        message = client.messages.create(model="claude-opus-4-6", max_tokens=64, messages=MESSAGES)  # type: ignore[arg-type]
        with client.messages.stream(
            model="claude-opus-4-6", max_tokens=64, messages=MESSAGES
        ) as stream:  # type: ignore[arg-type]
            text = stream.get_final_text()
    assert message.content[0].text == "Bonjour"  # type: ignore[union-attr]
    assert text == "Salut"
    generate, streamed = spans.steps()
    assert generate.attributes[attr.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert jattr(generate, attr.STEP_USAGE)["cache_read_tokens"] == 3
    assert streamed.attributes[attr.STEP_OPERATION] == "stream"
    assert streamed.attributes[attr.STEP_STATUS] == "completed"
    assert jattr(streamed, attr.STEP_NORMALIZED_RESPONSE)["content"] == [
        {"type": "text", "text": "Salut"}
    ]
    headers = {
        k.lower(): v for k, v in jattr(generate, attr.STEP_ATTEMPTS)[0]["request_headers"].items()
    }
    assert headers["authorization"] == "[REDACTED]"


def test_anthropic_async_overloaded_then_stream(spans: Spans, fake_server: FakeServer) -> None:
    overloaded = wire.anthropic_error_reply(529, "overloaded_error", "Overloaded")
    overloaded.headers = {**overloaded.headers, "retry-after-ms": "5"}
    fake_server.enqueue(overloaded, wire.anthropic_stream_reply(["ok"]))

    async def main() -> str:
        client = anthropic.AsyncAnthropic(
            base_url=fake_server.url,
            api_key="sk-ant-test",
            http_client=chatdebug.async_httpx2_client(),
            max_retries=2,
        )
        async with client, chatdebug.run("c"):
            async with client.messages.stream(
                model="claude-opus-4-6",
                max_tokens=64,
                messages=MESSAGES,  # type: ignore[arg-type]
            ) as stream:
                return await stream.get_final_text()

    assert asyncio.run(main()) == "ok"
    step = spans.only_step()
    assert [a["response_status"] for a in jattr(step, attr.STEP_ATTEMPTS)] == [529, 200]
    assert jattr(step, attr.STEP_ATTEMPTS)[0]["retry_classification"] == "overloaded"
    assert step.attributes[attr.STEP_STATUS] == "completed"


def test_anthropic_overloaded_error_payload(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(wire.anthropic_error_reply(529, "overloaded_error", "Overloaded"))
    client = anthropic.Anthropic(
        base_url=fake_server.url,
        api_key="sk-ant-test",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    with client, pytest.raises(anthropic.APIStatusError), chatdebug.run("c"):
        client.messages.create(model="claude", max_tokens=5, messages=MESSAGES)  # type: ignore[arg-type]
    error = jattr(spans.only_step(), attr.STEP_ERROR)
    assert error["type"] == "overloaded_error"
    assert error["provider_status"] == 529 and error["is_retryable"] is True


def test_concurrent_runs_on_threads_and_tasks_keep_steps_apart(
    spans: Spans, fake_server: FakeServer
) -> None:
    def echo(request: Any) -> Reply:
        body = json.loads(request.body)
        marker = body["messages"][0]["content"]
        return Reply(
            body=json.dumps(wire.openai_completion(f"echo {marker}")).encode(), headers=JSON_HEADERS
        )

    fake_server.handler = echo
    run_ids: dict[str, str] = {}
    lock = threading.Lock()

    def thread_turn(n: int) -> None:
        with openai_client(fake_server.url, "httpx2") as client, chatdebug.run(f"t{n}") as run:
            for k in range(2):
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"t{n}-{k}"}]
                )
        with lock:
            run_ids[f"t{n}"] = str(run.id)

    async def task_turn(client: openai.AsyncOpenAI, n: int) -> None:
        async with chatdebug.run(f"a{n}") as run:
            for k in range(2):
                await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"a{n}-{k}"}]
                )
        run_ids[f"a{n}"] = str(run.id)

    async def tasks() -> None:
        async with async_openai_client(fake_server.url, "httpx2") as client:
            await asyncio.gather(*(task_turn(client, n) for n in range(20)))

    threads = [threading.Thread(target=thread_turn, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    asyncio.run(tasks())
    for t in threads:
        t.join()
    assert len(run_ids) == 40
    for name, run_id in run_ids.items():
        steps = spans.steps(run_id)
        assert [s.attributes[attr.STEP_NUMBER] for s in steps] == [1, 2]
        for k, step in enumerate(steps):
            assert step.attributes[attr.CHAT_ID] == name
            text = jattr(step, attr.STEP_NORMALIZED_REQUEST)["messages"][0]["parts"][0]["text"]
            assert text == f"{name}-{k}"


def test_stream_bytes_identical_with_and_without_transport(fake_server: FakeServer) -> None:
    chunks = wire.openai_stream_chunks([f"tok{i} ✓ " for i in range(40)])
    fake_server.handler = lambda request: Reply(
        chunks=chunks, headers={"Content-Type": "text/event-stream"}
    )

    def read(make: Callable[[], httpx.Client]) -> list[bytes]:
        with (
            make() as client,
            client.stream(
                "POST",
                fake_server.url + "/v1/chat/completions",
                json={"model": "m", "stream": True},
            ) as response,
        ):
            return list(response.iter_raw())

    from chatdebug.instrument import InstrumentSettings, install

    install(InstrumentSettings(force_enabled=True))
    try:
        with chatdebug.run("c"):
            ours = read(lambda: httpx.Client(transport=chatdebug.Transport()))
        plain = read(httpx.Client)
    finally:
        install(InstrumentSettings())
    assert b"".join(ours) == b"".join(plain) == b"".join(chunks)


_GLOBAL_PROVIDER_SCRIPT = """
import json, sys
import anthropic
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import chatdebug
from chatdebug.instrument import InstrumentSettings, install
from tests.fakes import wire
from tests.fakes.server import FakeServer

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
install(InstrumentSettings(force_enabled=True))  # our spans go to the global provider too
server = FakeServer()
server.enqueue(wire.anthropic_reply("one"), wire.anthropic_stream_reply(["t", "wo"]))
client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-x",
                             http_client=chatdebug.httpx2_client(), max_retries=0)
with chatdebug.run("c"):
    client.messages.create(model="claude-opus-4-6", max_tokens=5,
                           messages=[{"role": "user", "content": "x"}])
    with client.messages.stream(model="claude-opus-4-6", max_tokens=5,
                                messages=[{"role": "user", "content": "x"}]) as stream:
        stream.get_final_text()
print(json.dumps([[s.name, s.instrumentation_scope.name, dict(s.attributes)]
                  for s in exporter.get_finished_spans()]))
"""


@pytest.mark.slow
def test_anthropic_sdk_spans_never_count_as_steps() -> None:
    """With a global TracerProvider the anthropic SDK emits its own call spans; ours
    coexist with them and only our ``chat_debug.step`` spans are steps."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", _GLOBAL_PROVIDER_SCRIPT],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    spans = json.loads(result.stdout.strip().splitlines()[-1])
    ours = [s for s in spans if s[1] == "chatdebug"]
    theirs = [s for s in spans if s[1] != "chatdebug"]
    assert theirs, "the anthropic SDK emitted no span of its own"
    steps = [s for s in ours if s[0] == attr.STEP_SPAN]
    assert [s[2][attr.STEP_NUMBER] for s in steps] == [1, 2]
    assert [s[2][attr.STEP_STATUS] for s in steps] == ["completed", "completed"]
