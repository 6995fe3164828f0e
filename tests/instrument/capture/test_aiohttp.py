"""``chatdebug.instrument_aiohttp()``: every ``aiohttp.ClientSession`` request inside a
run recorded like an httpx one — the body teed through every way of reading it, the
attempt ended exactly once however the response ends, failures and retries, redaction,
aiohttp's own machinery (trace configs, redirects, ``raise_for_status``, decompression)
untouched, and nothing recorded or changed outside a run."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import chatdebug
from chatdebug import _spans as attr
from chatdebug.instrument import InstrumentSettings, install
from chatdebug.instrument.capture import (
    _aiohttp,
    drain,
    is_aiohttp_instrumented,
    is_httpx_instrumented,
)
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import openai_completion, openai_stream_chunks
from tests.instrument.capture.support import (
    CHAT_PATH,
    attempts_of,
    body_of,
    closed_port,
    cyclic_collector_off,
    json_body,
    note_captures,
    only_attempt,
    step_status,
)
from tests.instrument.support import Spans, jattr

aiohttp = pytest.importorskip("aiohttp")

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]
# Taken at collection time, before any test instruments anything.
ORIGINAL_REQUEST = aiohttp.ClientSession.__dict__["_request"]
REQUEST: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Tell me a joke"}],
}
STREAM_REQUEST: dict[str, Any] = {**REQUEST, "stream": True}


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    chatdebug.instrument_aiohttp()
    try:
        yield
    finally:
        chatdebug.uninstrument_aiohttp()
    assert aiohttp.ClientSession.__dict__["_request"] is ORIGINAL_REQUEST


@pytest.fixture
def hold() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def drive(scenario: Callable[[Any], Awaitable[T]], **session_options: Any) -> T:
    """Run ``scenario`` with a fresh ``aiohttp.ClientSession`` (closed afterwards)."""

    async def main() -> T:
        async with aiohttp.ClientSession(**session_options) as session:
            return await scenario(session)

    return asyncio.run(main())


def chat_reply(text: str = "Hello!") -> tuple[Reply, bytes]:
    body = json.dumps(openai_completion(text)).encode()
    return Reply(body=body, headers=JSON_HEADERS), body


def _no_double_end(caplog: pytest.LogCaptureFixture) -> None:
    ended_twice = [r for r in caplog.records if "on an ended span" in r.getMessage()]
    assert ended_twice == []


async def _collect() -> None:
    """Let asyncio drop what it holds, collect, run the finalizers' jobs."""
    for _ in range(2):
        for _ in range(8):
            await asyncio.sleep(0)
        gc.collect()
    assert drain()


# -- non-streamed -----------------------------------------------------------------------


@pytest.mark.parametrize("reader", ["read", "json", "text"])
def test_chat_completion_recorded_and_caller_bytes_unchanged(
    spans: Spans, fake_server: FakeServer, reader: str
) -> None:
    reply, body = chat_reply("Why did the chicken cross the road?")
    fake_server.enqueue(reply)

    async def scenario(session: Any) -> Any:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
                if reader == "read":
                    return await resp.read()
                if reader == "json":
                    return await resp.json()
                return await resp.text()

    got = drive(scenario)
    assert got == {"read": body, "json": json.loads(body), "text": body.decode()}[reader]
    step = spans.only_step()
    a = step.attributes or {}
    assert a[attr.STEP_STATUS] == "completed"
    assert a[attr.STEP_OPERATION] == "generate"
    assert a[attr.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert a[attr.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert a[attr.GEN_AI_USAGE_INPUT_TOKENS] == 12
    assert a[attr.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert a[attr.STEP_API_FORMAT] == "openai.chat_completions"
    request = jattr(step, attr.STEP_NORMALIZED_REQUEST)
    assert request["messages"][0]["parts"][0]["text"] == "Tell me a joke"
    response = jattr(step, attr.STEP_NORMALIZED_RESPONSE)
    assert response["content"] == [{"type": "text", "text": "Why did the chicken cross the road?"}]
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed" and attempt["response_status"] == 200
    assert attempt["method"] == "POST" and attempt["path"] == CHAT_PATH
    assert attempt["url"] == fake_server.url + CHAT_PATH
    assert body_of(attempt) == body
    assert json_body(attempt, "request_body") == REQUEST
    assert json.loads(fake_server.requests[0].body) == REQUEST  # sent as the caller made it
    # The headers aiohttp really sent, its own included.
    headers = {k.lower(): v for k, v in attempt["request_headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("Python/")
    assert "ttfb_ms" in attempt


@pytest.mark.parametrize("form", ["bytes", "str"])
def test_bytes_and_str_bodies_are_captured(
    spans: Spans, fake_server: FakeServer, form: str
) -> None:
    reply, _ = chat_reply()
    fake_server.enqueue(reply)
    raw = json.dumps(REQUEST)
    data: Any = raw.encode() if form == "bytes" else raw

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            async with session.post(
                fake_server.url + CHAT_PATH, data=data, headers={"Content-Type": "application/json"}
            ) as resp:
                await resp.read()

    drive(scenario)
    assert json_body(only_attempt(spans), "request_body") == REQUEST
    assert fake_server.requests[0].body == raw.encode()


def test_streaming_request_body_is_sent_untouched_and_not_captured(
    spans: Spans, fake_server: FakeServer
) -> None:
    reply, _ = chat_reply()
    fake_server.enqueue(reply)
    raw = json.dumps(REQUEST).encode()

    async def upload() -> Any:
        yield raw[:10]
        yield raw[10:]

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, data=upload()) as resp:
                await resp.read()

    drive(scenario)
    assert fake_server.requests[0].body == raw
    attempt = only_attempt(spans)
    assert "request_body" not in attempt
    assert attempt["status"] == "completed"


# -- streamed ---------------------------------------------------------------------------


async def _read_all(resp: Any, how: str) -> bytes:
    content = resp.content
    if how == "read":
        return bytes(await resp.read())
    if how == "iter_any":
        return b"".join([chunk async for chunk in content.iter_any()])
    if how == "lines":
        return b"".join([line async for line in content])
    if how == "iter_chunked":
        pieces = [chunk async for chunk in content.iter_chunked(7)]
        assert all(len(p) <= 7 for p in pieces)
        return b"".join(pieces)
    if how == "iter_chunks":
        return b"".join([data async for data, _ in content.iter_chunks()])
    if how == "read_n":
        out = b""
        while piece := await content.read(5):
            out += piece
        return out
    if how == "readline":
        out = b""
        while line := await content.readline():
            out += line
        return out
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["read", "iter_any", "lines", "iter_chunked", "iter_chunks", "read_n", "readline"]
)
def test_sse_stream_teed_however_it_is_read(
    spans: Spans, fake_server: FakeServer, how: str
) -> None:
    chunks = openai_stream_chunks(["Why ", "did ", "the ", "chicken"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))

    async def scenario(session: Any) -> bytes:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST) as resp:
                return await _read_all(resp, how)

    assert drive(scenario) == b"".join(chunks)
    step = spans.only_step()
    a = step.attributes or {}
    assert a[attr.STEP_STATUS] == "completed"
    assert a[attr.STEP_OPERATION] == "stream"
    assert a[attr.GEN_AI_USAGE_INPUT_TOKENS] == 9
    response = jattr(step, attr.STEP_NORMALIZED_RESPONSE)
    assert response["content"] == [{"type": "text", "text": "Why did the chicken"}]
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == b"".join(chunks)
    assert "ttft_ms" in attempt


def test_readexactly_past_the_end_is_eof(spans: Spans, fake_server: FakeServer) -> None:
    chunks = openai_stream_chunks(["a"])
    whole = b"".join(chunks)
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))

    async def scenario(session: Any) -> bytes:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST) as resp:
                with pytest.raises(asyncio.IncompleteReadError) as short:
                    await resp.content.readexactly(len(whole) + 10)
                return short.value.partial

    assert drive(scenario) == whole
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed" and body_of(attempt) == whole


@pytest.mark.parametrize("auto_decompress", [True, False])
def test_compressed_stream_decoded_for_capture(
    spans: Spans, fake_server: FakeServer, auto_decompress: bool
) -> None:
    """aiohttp decodes the body itself (the capture is told so) or hands over the gzip
    bytes (the capture decodes them): either way the caller gets what aiohttp gives it
    and the capture the text."""
    chunks = openai_stream_chunks(["a", "b"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, encoding="gzip"))

    async def scenario(session: Any) -> bytes:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST) as resp:
                return bytes(await resp.read())

    got = drive(scenario, auto_decompress=auto_decompress)
    if auto_decompress:
        assert got == b"".join(chunks)
    else:
        assert gzip.decompress(got) == b"".join(chunks)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "capture_error" not in attempt
    assert body_of(attempt) == b"".join(chunks)
    headers = {k.lower(): v for k, v in attempt["response_headers"].items()}
    assert headers["content-encoding"] == "gzip"
    assert step_status(spans.only_step()) == "completed"


def test_compressed_json_decoded_for_capture(spans: Spans, fake_server: FakeServer) -> None:
    body = json.dumps(openai_completion("zipped")).encode()
    fake_server.enqueue(Reply(body=body, headers=JSON_HEADERS, encoding="gzip"))

    async def scenario(session: Any) -> Any:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
                return await resp.json()

    assert drive(scenario)["choices"][0]["message"]["content"] == "zipped"
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed" and body_of(attempt) == body


# -- how a stream ends -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["release", "close", "context_exit"])
def test_released_before_the_end_is_interrupted(
    spans: Spans,
    fake_server: FakeServer,
    hold: threading.Event,
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chunks = openai_stream_chunks(["a", "b", "c"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=2))

    async def scenario(session: Any) -> bytes:
        with chatdebug.run("c-1"):
            if how == "context_exit":
                async with session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST) as resp:
                    first = await resp.content.readline()
                return first
            resp = await session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST)
            first = await resp.content.readline()
            if how == "release":
                resp.release()
            else:
                resp.close()
            return bytes(first)

    first = drive(scenario)
    assert first == chunks[0].split(b"\n")[0] + b"\n"
    step = spans.only_step()
    assert len([s for s in spans.steps()]) == 1
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert step_status(step) == "interrupted"
    assert body_of(attempt) == first
    _no_double_end(caplog)


def test_released_after_the_final_content_is_completed(
    spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """Read up to the chunk with ``finish_reason`` (the SDKs stop there), then released
    before the usage chunk, ``[DONE]`` and EOF: the model call is complete."""
    chunks = openai_stream_chunks(["a"], usage=False)
    final = len(chunks) - 1  # the [DONE] chunk is held back
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=final))

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            resp = await session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST)
            got = b""
            while got != b"".join(chunks[:final]):
                got += await resp.content.readany()
            resp.release()

    drive(scenario)
    assert step_status(spans.only_step()) == "completed"


def test_cancelled_mid_stream_is_interrupted_and_propagates(
    spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    chunks = openai_stream_chunks(["a", "b"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=1))
    first_read = asyncio.Event

    async def scenario(session: Any) -> None:
        got_first = first_read()

        async def reader() -> None:
            with chatdebug.run("c-1"):
                async with session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST) as resp:
                    async for _ in resp.content.iter_any():
                        got_first.set()

        task = asyncio.create_task(reader())
        await got_first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    drive(scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "CancelledError" in attempt["error"]
    assert step_status(step) == "interrupted"
    (run,) = spans.runs()
    assert run.attributes and run.attributes[attr.RUN_STATUS] == "interrupted"


def test_connection_dropped_mid_stream_fails_and_propagates(
    spans: Spans, fake_server: FakeServer
) -> None:
    chunks = openai_stream_chunks(["a", "b", "c"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, drop_after=2))
    raised: list[BaseException] = []

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST) as resp:
                try:
                    async for _ in resp.content:
                        pass
                except aiohttp.ClientPayloadError as exc:
                    raised.append(exc)

    drive(scenario)
    assert len(raised) == 1
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "ClientPayloadError" in attempt["error"]
    assert step_status(step) == "error"
    assert body_of(attempt) == b"".join(chunks[:2])


def test_run_exit_ends_an_open_stream_once(
    spans: Spans, fake_server: FakeServer, hold: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    chunks = openai_stream_chunks(["a", "b"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=1))

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            resp = await session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST)
            await resp.content.readline()
        assert len(spans.steps()) == 1  # ended with the run
        resp.release()  # later: nothing more to record

    drive(scenario)
    step = spans.only_step()
    assert step_status(step) == "interrupted"
    assert len(attempts_of(step)) == 1
    _no_double_end(caplog)


@pytest.fixture
def _fast_gc() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("_fast_gc")
def test_unreleased_response_collected_ends_the_step_once(
    spans: Spans, fake_server: FakeServer, hold: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    chunks = openai_stream_chunks(["a", "b"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=1))

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            resp = await session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST)
            assert await resp.content.readany() == chunks[0]
            del resp
            await _collect()
            # aiohttp itself keeps an unreleased response alive while its connection is
            # open (the connection's reader calls back into it at EOF).
            assert spans.steps() == []
            await session.close()
            await _collect()
            assert len(spans.steps()) == 1  # ended by the collector, inside the run

    drive(scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "garbage-collected" in attempt["error"]
    assert step_status(step) == "interrupted"
    assert body_of(attempt) == chunks[0]
    _no_double_end(caplog)


# -- failures and retries ---------------------------------------------------------------


def test_connection_refused_fails_the_attempt_and_propagates_unchanged(spans: Spans) -> None:
    url = f"http://127.0.0.1:{closed_port()}{CHAT_PATH}"
    raised: list[BaseException] = []

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            try:
                await session.post(url, json=REQUEST)
            except aiohttp.ClientConnectorError as exc:
                raised.append(exc)
                raise

    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        drive(scenario)
    assert caught.value is raised[0]
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "ClientConnectorError" in attempt["error"]
    assert "response_status" not in attempt
    assert step_status(step) == "error"


def test_sdk_retry_is_a_second_attempt_of_the_same_step(
    spans: Spans, fake_server: FakeServer
) -> None:
    """An SDK retrying through aiohttp sends the retry count header: the 429 and the
    200 after it are two attempts of one step."""
    error = {"error": {"message": "slow down", "type": "rate_limit", "param": None}}
    fake_server.enqueue(
        Reply(status=429, body=json.dumps(error).encode(), headers=JSON_HEADERS),
        chat_reply("after retry")[0],
    )

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            for retry in range(2):
                headers = {"x-stainless-retry-count": str(retry)}
                async with session.post(
                    fake_server.url + CHAT_PATH, json=REQUEST, headers=headers
                ) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return

    drive(scenario)
    step = spans.only_step()
    first, second = attempts_of(step)
    assert first["response_status"] == 429 and first["status"] == "completed"
    assert first["retry_classification"] == "rate_limited"
    assert second["response_status"] == 200 and second["number"] == 2
    assert step_status(step) == "completed"


def test_raise_for_status_still_raises_and_fails_the_attempt(
    spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(status=503, body=b'{"error": "down"}', headers=JSON_HEADERS))

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            await session.post(fake_server.url + CHAT_PATH, json=REQUEST)

    with pytest.raises(aiohttp.ClientResponseError) as caught:
        drive(scenario, raise_for_status=True)
    assert caught.value.status == 503
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed" and "503" in attempt["error"]
    assert step_status(step) == "error"


def test_body_read_by_a_raise_for_status_callback_is_captured(
    spans: Spans, fake_server: FakeServer
) -> None:
    reply, body = chat_reply("checked")
    fake_server.enqueue(reply)

    async def check(resp: Any) -> None:
        assert (await resp.json())["object"] == "chat.completion"

    async def scenario(session: Any) -> bytes:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
                return bytes(await resp.read())

    assert drive(scenario, raise_for_status=check) == body
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed" and body_of(attempt) == body
    assert step_status(spans.only_step()) == "completed"


def test_concurrent_calls_in_one_run_are_separate_steps(
    spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(*[chat_reply(f"answer {i}")[0] for i in range(3)])

    async def call(session: Any) -> bytes:
        async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
            return bytes(await resp.read())

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            await asyncio.gather(*[call(session) for _ in range(3)])

    drive(scenario)
    steps = spans.steps()
    assert sorted(s.attributes[attr.STEP_NUMBER] for s in steps if s.attributes) == [1, 2, 3]
    assert {step_status(s) for s in steps} == {"completed"}


def test_redirect_followed_as_one_attempt(spans: Spans, fake_server: FakeServer) -> None:
    reply, body = chat_reply("moved")
    fake_server.enqueue(Reply(status=307, headers={"Location": "/v2/chat/completions"}), reply)

    async def scenario(session: Any) -> bytes:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
                assert len(resp.history) == 1
                return bytes(await resp.read())

    assert drive(scenario) == body
    assert [r.path for r in fake_server.requests] == [CHAT_PATH, "/v2/chat/completions"]
    attempt = only_attempt(spans)
    assert attempt["response_status"] == 200 and body_of(attempt) == body


# -- aiohttp's own machinery --------------------------------------------------------------


def test_trace_configs_still_fire(spans: Spans, fake_server: FakeServer) -> None:
    events: list[str] = []
    trace = aiohttp.TraceConfig()

    async def on_start(session: Any, ctx: Any, params: Any) -> None:
        events.append("start")

    async def on_end(session: Any, ctx: Any, params: Any) -> None:
        events.append("end")

    async def on_chunk(session: Any, ctx: Any, params: Any) -> None:
        events.append("chunk")

    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    trace.on_response_chunk_received.append(on_chunk)
    fake_server.enqueue(chat_reply()[0])

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
                await resp.read()

    drive(scenario, trace_configs=[trace])
    assert events == ["start", "end", "chunk"]
    assert only_attempt(spans)["status"] == "completed"


def test_outside_a_run_nothing_is_recorded_or_wrapped(
    spans: Spans, fake_server: FakeServer
) -> None:
    reply, body = chat_reply()
    fake_server.enqueue(reply)

    async def scenario(session: Any) -> bytes:
        async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
            assert isinstance(resp.content, aiohttp.StreamReader)
            return bytes(await resp.read())

    assert drive(scenario) == body
    assert spans.all() == []


def test_module_level_aiohttp_request_is_covered(spans: Spans, fake_server: FakeServer) -> None:
    reply, body = chat_reply()
    fake_server.enqueue(reply)

    async def main() -> bytes:
        with chatdebug.run("c-1"):
            async with aiohttp.request("POST", fake_server.url + CHAT_PATH, json=REQUEST) as resp:
                return bytes(await resp.read())

    assert asyncio.run(main()) == body
    assert only_attempt(spans)["status"] == "completed"


def test_session_created_before_instrumenting_is_covered(
    spans: Spans, fake_server: FakeServer
) -> None:
    chatdebug.uninstrument_aiohttp()
    reply, _ = chat_reply()
    fake_server.enqueue(reply)

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            chatdebug.instrument_aiohttp()
            with chatdebug.run("c-1"):
                async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
                    await resp.read()

    asyncio.run(main())
    assert only_attempt(spans)["status"] == "completed"


def test_uninstrument_restores_request_and_stops_recording(
    spans: Spans, fake_server: FakeServer
) -> None:
    assert aiohttp.ClientSession.__dict__["_request"] is not ORIGINAL_REQUEST
    assert is_aiohttp_instrumented()
    chatdebug.instrument_aiohttp()  # again: nothing more
    chatdebug.uninstrument_aiohttp()
    assert aiohttp.ClientSession.__dict__["_request"] is ORIGINAL_REQUEST
    assert not is_aiohttp_instrumented()
    chatdebug.uninstrument_aiohttp()  # idempotent
    fake_server.enqueue(chat_reply()[0])

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
                await resp.read()

    drive(scenario)
    assert spans.steps() == []


def test_patched_request_keeps_aiohttps_signature() -> None:
    """google-genai filters its request options by ``inspect.signature`` of it."""
    import inspect

    patched = aiohttp.ClientSession._request
    assert patched is not ORIGINAL_REQUEST
    assert inspect.signature(patched) == inspect.signature(ORIGINAL_REQUEST)


def test_request_that_is_not_a_model_call_passes_through(
    spans: Spans, fake_server: FakeServer
) -> None:
    """Process-wide instrumentation records model calls only (a tool fetching a page is
    not one)."""
    fake_server.enqueue(Reply(body=b"<html>hi</html>", headers={"Content-Type": "text/html"}))

    async def scenario(session: Any) -> bytes:
        with chatdebug.run("c-1"):
            async with session.get(fake_server.url + "/docs/page.html") as resp:
                return bytes(await resp.read())

    assert drive(scenario) == b"<html>hi</html>"
    assert spans.steps() == []


# -- redaction and request options --------------------------------------------------------


def test_secrets_in_headers_query_and_body_are_redacted(
    spans: Spans, fake_server: FakeServer
) -> None:
    key = "sk-proj-" + "A1b2C3d4" * 6
    fake_server.enqueue(chat_reply()[0])
    body = {**REQUEST, "api_key": "body-secret-value", "user": f"token {key}"}

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            async with session.post(
                fake_server.url + CHAT_PATH,
                json=body,
                params={"api_key": "query-secret-value"},
                headers={"Authorization": f"Bearer {key}"},
            ) as resp:
                await resp.read()

    drive(scenario)
    assert fake_server.requests[0].path == CHAT_PATH + "?api_key=query-secret-value"
    recorded = json.dumps([dict(s.attributes or {}) for s in spans.all()])
    for secret in (key, "body-secret-value", "query-secret-value"):
        assert secret not in recorded
    attempt = only_attempt(spans)
    assert attempt["request_headers"]["Authorization"] == "[REDACTED]"
    assert "api_key=%5BREDACTED%5D" in attempt["url"]
    assert json_body(attempt, "request_body")["api_key"] == "[REDACTED]"


def test_session_base_url_and_default_headers(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(chat_reply()[0])

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            async with session.post(CHAT_PATH, json=REQUEST) as resp:
                await resp.read()

    drive(scenario, base_url=fake_server.url, headers={"x-app": "demo"})
    attempt = only_attempt(spans)
    assert attempt["url"] == fake_server.url + CHAT_PATH
    assert attempt["request_headers"]["x-app"] == "demo"


def test_stream_usage_rewrites_the_request_sent(spans: Spans, fake_server: FakeServer) -> None:
    """``configure(stream_usage=True)`` works through aiohttp too: what is sent is what
    is recorded."""
    current = chatdebug.instrument.settings()
    install(
        InstrumentSettings(
            tracer_provider=current.tracer_provider, force_enabled=True, stream_usage=True
        )
    )
    fake_server.enqueue(Reply(chunks=openai_stream_chunks(["a"]), headers=SSE_HEADERS))

    async def scenario(session: Any) -> None:
        with chatdebug.run("c-1"):
            async with session.post(fake_server.url + CHAT_PATH, json=STREAM_REQUEST) as resp:
                await resp.read()

    drive(scenario)
    sent = json.loads(fake_server.requests[0].body)
    assert sent["stream_options"] == {"include_usage": True}
    assert fake_server.requests[0].headers["content-type"] == "application/json"
    attempt = only_attempt(spans)
    assert json_body(attempt, "request_body") == sent


# -- instrument_http(), configure(), optional import ----------------------------------------


def test_instrument_http_covers_httpx_and_aiohttp() -> None:
    chatdebug.uninstrument_aiohttp()
    was_httpx = is_httpx_instrumented()
    try:
        chatdebug.instrument_http()
        assert is_aiohttp_instrumented() and is_httpx_instrumented()
        chatdebug.uninstrument_http()
        assert not is_aiohttp_instrumented() and not is_httpx_instrumented()
        assert aiohttp.ClientSession.__dict__["_request"] is ORIGINAL_REQUEST
    finally:
        if was_httpx:
            chatdebug.instrument_httpx()


def test_configure_instrument_http(sqlite_url: str, fake_server: FakeServer) -> None:
    from prometheus_client import CollectorRegistry

    from chatdebug.metrics import Metrics

    chatdebug.uninstrument_aiohttp()
    with pytest.raises(TypeError, match="instrument_http"):
        chatdebug.configure(sqlite_url, instrument_http="yes")  # type: ignore[arg-type]
    assert not is_aiohttp_instrumented()
    config = chatdebug.configure(
        sqlite_url, enabled=True, instrument_http=True, metrics=Metrics(CollectorRegistry())
    )
    try:
        assert is_aiohttp_instrumented() and is_httpx_instrumented()
        fake_server.enqueue(chat_reply("configured")[0])

        async def scenario(session: Any) -> chatdebug.RunHandle:
            with chatdebug.run("chat-aio") as run:
                async with session.post(fake_server.url + CHAT_PATH, json=REQUEST) as resp:
                    await resp.read()
            return run

        run = drive(scenario)
        assert chatdebug.flush()
        assert run.id is not None
        (step,) = config.store.list_steps(run.id)
        assert step.status == "completed"
    finally:
        chatdebug.shutdown()
        chatdebug.uninstrument_http()


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_importing_chatdebug_does_not_import_aiohttp() -> None:
    done = _python(
        """
        import sys
        import chatdebug
        chatdebug.uninstrument_aiohttp()
        assert "aiohttp" not in sys.modules, "aiohttp imported"
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_without_aiohttp_instrument_aiohttp_names_the_extra() -> None:
    done = _python(
        """
        import sys
        sys.modules["aiohttp"] = None  # as if not installed
        import chatdebug
        try:
            chatdebug.instrument_aiohttp()
        except ImportError as exc:
            print(exc)
        chatdebug.instrument_http()  # httpx and httpx2 only
        from chatdebug.instrument.capture import is_aiohttp_instrumented, is_httpx_instrumented
        assert is_httpx_instrumented() and not is_aiohttp_instrumented()
        chatdebug.uninstrument_http()
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'chatdebug[aiohttp]'" in done.stdout


@pytest.mark.parametrize("kind", ["whole", "stream"])
def test_a_finished_attempt_is_freed_without_the_cyclic_collector(
    spans: Spans, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """As through httpx: once its step has ended, an attempt's capture (and everything
    it holds) goes by reference counting, not at the cyclic collector's next run."""
    if kind == "stream":
        fake_server.enqueue(Reply(chunks=openai_stream_chunks(["a", "b"]), headers=SSE_HEADERS))
    else:
        fake_server.enqueue(chat_reply("hi")[0])
    captures = note_captures(monkeypatch, _aiohttp)
    with cyclic_collector_off():

        async def scenario(session: Any) -> None:
            body = STREAM_REQUEST if kind == "stream" else REQUEST
            with chatdebug.run("c-1"):
                async with session.post(fake_server.url + CHAT_PATH, json=body) as resp:
                    await resp.read()
            assert drain()

        drive(scenario)
        assert len(captures) == 1
        assert step_status(spans.only_step()) == "completed"
        assert captures[0]() is None, [type(r).__name__ for r in gc.get_referrers(captures[0]())]
