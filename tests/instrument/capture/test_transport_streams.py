"""Response streams through our transports: never altered, decoded for capture, and the
step ended exactly once whichever way the stream ends (EOF, break, close, garbage
collection, end of the run)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
from typing import Any

import openai
import pytest

import chatdebug
from chatdebug import _spans as attr
from chatdebug.instrument.capture import _transport
from chatdebug.instrument.capture._reaper import drain
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import (
    anthropic_stream_chunks,
    openai_completion,
    openai_stream_chunks,
)
from tests.instrument.capture.support import (
    CHAT_PATH,
    Client,
    FailingStreamTransport,
    Flavour,
    Resp,
    all_flavours,
    attempts_of,
    body_of,
    cyclic_collector_off,
    drive,
    flavours,
    note_captures,
    only_attempt,
    step_status,
)
from tests.instrument.support import Spans, jattr


@pytest.fixture
def hold() -> Any:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture(scope="module", autouse=True)
def _fast_gc() -> Any:
    """Full collections here run often; leave the long-lived objects of the process
    (imported SDKs and such) out of them, so each takes microseconds, not 0.2 s."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def _no_double_end(caplog: pytest.LogCaptureFixture) -> None:
    ended_twice = [r for r in caplog.records if "on an ended span" in r.getMessage()]
    assert ended_twice == []


# -- a stream closed at its final event --------------------------------------------------


@flavours
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_sse_closed_after_terminal_event_before_eof_completed(
    flavour: Flavour,
    spans: Spans,
    fake_server: FakeServer,
    hold: threading.Event,
    provider: str,
) -> None:
    """The SDKs close an SSE response as soon as they see the final event, often before
    the body's EOF: that attempt is completed, not a premature close."""
    if provider == "openai":
        chunks, path = openai_stream_chunks(["Hel", "lo"]), CHAT_PATH
    else:
        chunks, path = anthropic_stream_chunks(["Hel", "lo"]), "/v1/messages"
    fake_server.enqueue(
        Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=len(chunks))
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + path, json={"stream": True})
            received = b""
            while len(received) < len(b"".join(chunks)):
                received += b"".join(await resp.take(1))
            assert spans.steps() == []  # the body has not ended
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert step_status(step) == "completed"
    assert attr.STEP_ERROR not in step.attributes
    assert "Hello" in step.attributes[attr.STEP_NORMALIZED_RESPONSE]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_openai_sdk_stream_closed_at_done_is_completed(
    spans: Spans, fake_server: FakeServer, hold: threading.Event, is_async: bool
) -> None:
    """The real SDK stops at ``data: [DONE]`` and closes while the body is still open."""
    chunks = openai_stream_chunks(["Hel", "lo"])
    fake_server.enqueue(
        Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold, hold_after=len(chunks))
    )
    messages: Any = [{"role": "user", "content": "hi"}]

    if is_async:

        async def main() -> str:
            http = chatdebug.async_httpx2_client(verify=False)
            client = openai.AsyncOpenAI(
                api_key="sk-test", base_url=fake_server.url + "/v1", http_client=http
            )
            with chatdebug.run("chat-1"):
                stream = await client.chat.completions.create(
                    model="gpt-4o", messages=messages, stream=True
                )
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )
            await client.close()
            return text

        text = asyncio.run(main())
    else:
        http = chatdebug.httpx2_client(verify=False)
        client = openai.OpenAI(
            api_key="sk-test", base_url=fake_server.url + "/v1", http_client=http
        )
        with chatdebug.run("chat-1"):
            stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.close()

    assert text == "Hello"
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert step_status(step) == "completed"
    assert step.attributes[attr.STEP_OPERATION] == "stream"
    assert "ttft_ms" in attempt


# -- what the caller gets is exactly what it would get without us ------------------------


@all_flavours
@pytest.mark.parametrize("kind", ["raw", "bytes"])
@pytest.mark.parametrize("encoding", [None, "gzip"], ids=["identity", "gzip"])
def test_streamed_response_is_byte_identical(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, kind: str, encoding: str | None
) -> None:
    chunks = openai_stream_chunks([f"piece {i} " for i in range(40)])
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> list[bytes]:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", url, json={"stream": True})
            pieces = await resp.take(1 << 30, kind)
            await resp.close()
        return pieces

    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, encoding=encoding))
    baseline = drive(flavour, scenario, record=False)
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, encoding=encoding))
    ours = drive(flavour, scenario)

    assert b"".join(ours) == b"".join(baseline)
    if kind == "bytes":
        assert b"".join(ours) == b"".join(chunks)
    # The capture saw the decoded text.
    attempt = only_attempt(spans)
    assert body_of(attempt) == b"".join(chunks)


@flavours
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
@pytest.mark.parametrize("mode", ["whole", "stream"])
def test_compressed_response_decoded_for_capture(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, encoding: str, mode: str
) -> None:
    """The capture decodes the wire bytes; the caller gets what its library gives it
    (httpx2 without a zstd decoder installed hands over the compressed bytes)."""
    if mode == "whole":
        plain = json.dumps(openai_completion("Hello from a compressed body")).encode()
        reply = Reply(body=plain, headers=JSON_HEADERS, encoding=encoding)
        body: dict[str, Any] = {"model": "gpt-4o"}
    else:
        chunks = openai_stream_chunks(["Hello ", "from ", "a compressed stream"])
        plain = b"".join(chunks)
        reply = Reply(chunks=chunks, headers=SSE_HEADERS, encoding=encoding)
        body = {"model": "gpt-4o", "stream": True}
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            return (await client.call("POST", url, json=body)).content

    fake_server.enqueue(reply)
    baseline = drive(flavour, scenario, record=False)
    fake_server.enqueue(reply)
    assert drive(flavour, scenario) == baseline

    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["response_headers"]["content-encoding"] == encoding
    assert "capture_error" not in attempt
    assert body_of(attempt) == plain
    assert step_status(step) == "completed"
    normalized = step.attributes[attr.STEP_NORMALIZED_RESPONSE]
    assert "compressed" in normalized
    assert attr.STEP_USAGE in step.attributes


# -- the step ends exactly once ---------------------------------------------------------

ENDINGS = ["eof", "break_early", "close", "gc", "run_exit"]


@all_flavours
@pytest.mark.parametrize("ending", ENDINGS)
def test_step_ends_exactly_once(
    flavour: Flavour,
    spans: Spans,
    fake_server: FakeServer,
    caplog: pytest.LogCaptureFixture,
    ending: str,
) -> None:
    """Whichever way a stream ends first, every later trigger (close, GC, run exit) is
    a no-op: one step span, ended once."""
    chunks = openai_stream_chunks(["a", "b", "c"])
    hold = threading.Event()
    fake_server.enqueue(
        Reply(
            chunks=chunks,
            headers=SSE_HEADERS,
            hold=None if ending == "eof" else hold,
            hold_after=1,
        )
    )
    url = fake_server.url + CHAT_PATH
    caplog.set_level(logging.WARNING)

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", url, json={"stream": True})
            if ending == "eof":
                await resp.rest()
            else:
                assert await resp.take(1) == chunks[:1]
            if ending == "break_early":
                if flavour.is_async:
                    await resp._it.aclose()
                else:
                    resp._it.close()
            if ending == "gc":
                del resp
                await _collect()
                assert len(spans.steps()) == 1
            elif ending != "run_exit":
                await resp.close()
                assert len(spans.steps()) == 1
            if ending == "run_exit":
                assert spans.steps() == []
        if ending == "run_exit":
            assert len(spans.steps()) == 1
            await resp.close()
            del resp
        await _collect()

    try:
        drive(flavour, scenario)
    finally:
        hold.set()
    steps = spans.steps()
    assert len(steps) == 1
    step = steps[0]
    step_id = step.attributes[attr.STEP_ID]
    assert [s for s in spans.all() if s.attributes.get(attr.STEP_ID) == step_id] == [step]
    (attempt,) = attempts_of(step)
    if ending == "eof":
        assert attempt["status"] == "completed"
        assert step_status(step) == "completed"
    else:
        assert attempt["status"] == "failed"
        assert step_status(step) == "interrupted"
    assert len(spans.runs()) == 1
    _no_double_end(caplog)


async def _collect() -> None:
    """Let asyncio finalize dropped async generators, collect, run GC finalizers."""
    for _ in range(2):
        for _ in range(8):
            await asyncio.sleep(0)
        gc.collect()
    assert drain()


@all_flavours
@pytest.mark.parametrize("kind", ["raw", "stream"])
def test_unclosed_response_finalized_by_gc_as_interrupted(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event, kind: str
) -> None:
    """A streamed response dropped without being closed ends its step, interrupted, when
    it is garbage-collected. (httpx2's ``iter_raw`` closes the response itself when its
    iterator is dropped; reading ``response.stream`` leaves it all to our finalizer.)"""
    chunks = openai_stream_chunks(["a", "b"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert await resp.take(1, kind) == chunks[:1]
            await _collect()
            assert spans.steps() == []  # still referenced: still open
            del resp
            await _collect()
            # Ended by the collector, inside the run.
            assert len(spans.steps()) == 1

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert body_of(attempt) == chunks[0]
    assert step_status(step) == "interrupted"
    if kind == "stream" or flavour.lib_name == "httpx":
        assert "garbage-collected" in attempt["error"]
        assert "garbage-collected" in jattr(step, attr.STEP_ERROR)["message"]


@flavours
def test_read_error_after_terminal_event_is_completed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """The connection breaks after the provider's final event: the caller sees the read
    error, but the model call itself was complete, so the attempt is completed."""
    chunks = openai_stream_chunks(["Hel", "lo"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, drop_after=len(chunks)))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            with pytest.raises(flavour.lib.TransportError):
                await resp.rest()
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == b"".join(chunks)
    assert step_status(step) == "completed"
    assert "Hello" in step.attributes[attr.STEP_NORMALIZED_RESPONSE]


@all_flavours
def test_cancelled_read_interrupts_the_step(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """Cancellation raised by the inner stream mid-body (``asyncio.CancelledError`` in an
    async client, ``KeyboardInterrupt`` in a sync one) reaches the caller unchanged and
    ends the step at once, interrupted rather than in error, with what had arrived."""
    cancel: BaseException = asyncio.CancelledError() if flavour.is_async else KeyboardInterrupt()
    chunks = openai_stream_chunks(["a", "b"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold))
    transport = flavour.transport(FailingStreamTransport(flavour, read_error=cancel, after=1))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert await resp.take(1) == chunks[:1]
            with pytest.raises(type(cancel)) as caught:
                await resp.take(1)
            assert caught.value is cancel
            assert len(spans.steps()) == 1  # ended by the cancellation, not by the run
            await resp.close()

    drive(flavour, scenario, transport=transport)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["error"].startswith(type(cancel).__name__)
    assert body_of(attempt) == chunks[0]
    assert step_status(step) == "interrupted"
    assert jattr(step, attr.STEP_ERROR)["context_error"] == "context canceled"


@all_flavours
def test_stream_block_left_early_interrupts_the_step(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """Leaving a ``client.stream(...)`` block after the first chunk closes the response:
    the step ends with the block, interrupted, with what was read."""
    chunks = openai_stream_chunks(["a", "b"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold))
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            if flavour.is_async:
                async with client.raw.stream("POST", url, json={"stream": True}) as raw:
                    resp = Resp(flavour, raw)
                    assert await resp.take(1) == chunks[:1]
                    assert spans.steps() == []
            else:
                with client.raw.stream("POST", url, json={"stream": True}) as raw:
                    resp = Resp(flavour, raw)
                    assert await resp.take(1) == chunks[:1]
                    assert spans.steps() == []
            assert raw.is_closed
            assert len(spans.steps()) == 1  # ended by the block's exit, not by the run

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["error"]
    assert body_of(attempt) == chunks[0]
    assert step_status(step) == "interrupted"
    assert jattr(step, attr.STEP_ERROR)["type"] == "stream_interrupted"


# -- nothing left for the cyclic garbage collector ---------------------------------------


@all_flavours
@pytest.mark.parametrize("kind", ["whole", "stream"])
def test_a_finished_attempt_is_freed_without_the_cyclic_collector(
    flavour: Flavour,
    spans: Spans,
    fake_server: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """Once its step has ended, an attempt's capture (and the response body, request
    and records it holds) goes as soon as nothing refers to it. A reference cycle
    among them would leave all of it to the cyclic collector, whose collections then
    run far more often and each cost the application's thread its pause."""
    if kind == "stream":
        fake_server.enqueue(Reply(chunks=openai_stream_chunks(["a", "b"]), headers=SSE_HEADERS))
    else:
        body = json.dumps(openai_completion("hi")).encode()
        fake_server.enqueue(Reply(body=body, headers=JSON_HEADERS))
    captures = note_captures(monkeypatch, _transport)
    with cyclic_collector_off():

        async def scenario(client: Client) -> None:
            with chatdebug.run("chat-1"):
                resp = await client.send(
                    "POST", fake_server.url + CHAT_PATH, json={"stream": kind == "stream"}
                )
                await resp.rest()
                await resp.close()
            assert drain()

        drive(flavour, scenario)
        assert len(captures) == 1
        assert step_status(spans.only_step()) == "completed"
        assert captures[0]() is None, [type(r).__name__ for r in gc.get_referrers(captures[0]())]
