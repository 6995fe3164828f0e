"""Server-sent event responses through our transports: read to EOF (closed or not),
empty, closed early, closed with an error, and read and closed concurrently. Ports the
SSE names of the reference's ``transport_internal_test.go``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

import chatdebug
from chatdebug import _spans as attr
from tests.fakes.server import SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import openai_stream_chunks
from tests.instrument.capture.support import (
    CHAT_PATH,
    Client,
    FailingCloseTransport,
    Flavour,
    Resp,
    all_flavours,
    attempts_of,
    body_of,
    drive,
    flavours,
    only_attempt,
    step_status,
)
from tests.instrument.support import Spans, jattr


@pytest.fixture
def hold() -> Iterator[threading.Event]:
    """An event for :attr:`Reply.hold`, released at the end of the test."""
    event = threading.Event()
    yield event
    event.set()


# -- server-sent events -----------------------------------------------------------------

SSE_PAYLOAD = b'data: {"token":"secret"}\n\ndata: [DONE]\n\n'


@flavours
def test_sse_read_to_eof_marks_completed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    chunks = openai_stream_chunks(["Hel", "lo"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            resp = await client.call("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            return resp.content

    assert drive(flavour, scenario) == b"".join(chunks)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert body_of(attempt) == b"".join(chunks)  # SSE is stored as sent
    assert 0 <= attempt["ttfb_ms"] <= attempt["ttft_ms"] <= attempt["duration_ms"] + 1
    assert step_status(step) == "completed"
    assert step.attributes[attr.STEP_TTFT_MS] == attempt["ttft_ms"]


@flavours
def test_sse_read_to_eof_without_close_still_records(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(chunks=[SSE_PAYLOAD], headers=SSE_HEADERS))

    async def scenario(client: Client) -> Resp:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert await resp.rest(kind="stream") == SSE_PAYLOAD
            # Never closed: the attempt was recorded at EOF.
            assert len(spans.steps()) == 1
            return resp

    resp = drive(flavour, scenario)
    assert not resp.raw.is_closed
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert body_of(attempt) == SSE_PAYLOAD
    assert step_status(step) == "completed"


@flavours
def test_sse_empty_body_records_on_eof(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(chunks=[], headers=SSE_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            body = await resp.rest(kind="stream")
            assert len(spans.steps()) == 1
            await resp.close()
            return body

    assert drive(flavour, scenario) == b""
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert "response_body" not in attempt
    # The HTTP exchange is complete, but the model stream never reached its final event.
    assert step_status(step) == "interrupted"
    assert jattr(step, attr.STEP_ERROR)["type"] == "incomplete_stream"


@flavours
def test_sse_read_to_eof_with_close_error_upgrades(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """Adapted: an automatic step ends at the stream's EOF with the attempt completed
    (the caller has every byte); a close error afterwards reaches the caller unchanged
    but does not rewrite the finished record."""
    close_error = OSError("boom: connection reset")
    fake_server.enqueue(Reply(chunks=[SSE_PAYLOAD], headers=SSE_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert await resp.rest(kind="stream") == SSE_PAYLOAD
            with pytest.raises(OSError) as caught:
                await resp.close()
            assert caught.value is close_error

    drive(
        flavour, scenario, transport=flavour.transport(FailingCloseTransport(flavour, close_error))
    )
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == SSE_PAYLOAD


@all_flavours
def test_sse_concurrent_read_close_no_deadlock(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """One reader (thread or task) is blocked on a stream while another closes it."""
    iterations = 10
    chunks = openai_stream_chunks(["a", "b", "c"])
    holds = [threading.Event() for _ in range(iterations)]
    for event in holds:
        fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=event))
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> None:
        for event in holds:
            with chatdebug.run("chat-1"):
                resp = await client.send("POST", url, json={"stream": True})
                assert await resp.take(1) == chunks[:1]
                if flavour.is_async:
                    reader = asyncio.ensure_future(_read_quietly(resp))
                    await asyncio.sleep(0)
                    await resp.close()
                    event.set()
                    await asyncio.wait_for(reader, 10)
                else:
                    thread = threading.Thread(target=_drain_quietly, args=(resp,))
                    thread.start()
                    await resp.close()
                    event.set()
                    thread.join(10)
                    assert not thread.is_alive(), "reader still blocked: deadlock"

    try:
        drive(flavour, scenario)
    finally:
        for event in holds:
            event.set()
    steps = spans.steps()
    assert len(steps) == iterations
    assert len({s.attributes[attr.STEP_ID] for s in steps}) == iterations
    for step in steps:
        (attempt,) = attempts_of(step)
        assert attempt["status"] == "failed"
        assert step_status(step) in ("interrupted", "error")


async def _read_quietly(resp: Resp) -> None:
    try:
        await resp.rest()
    except Exception:
        pass  # the other side closed the stream under us: any error is fine


def _drain_quietly(resp: Resp) -> None:
    try:
        for _ in resp._it:
            pass
    except Exception:
        pass


@flavours
def test_sse_closed_early_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    chunks = openai_stream_chunks(["a", "b"])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert await resp.take(1) == chunks[:1]
            await resp.close()
            assert len(spans.steps()) == 1  # ended by the close, not by the run

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["error"]
    assert body_of(attempt) == chunks[0]
    assert step_status(step) == "interrupted"
    assert jattr(step, attr.STEP_ERROR)["type"] == "stream_interrupted"
