"""``ResponseBody`` on its own: a stream kept under the cap is parsed when its result is
needed, with the time to first chunk of the chunk that brought the first content; one
that outgrows the cap is parsed as it arrives from then on, and both give the same
result as parsing every chunk at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chatdebug.instrument.capture._response_body import ResponseBody
from chatdebug.instrument.normalize import Codec, detect
from tests.fakes.wire import openai_stream_chunks

SSE = [("content-type", "text/event-stream")]
CODEC = detect("POST", "api.openai.com", "/v1/chat/completions").codec


def _codec() -> tuple[Codec, dict[str, Any] | None]:
    return CODEC, None


def _split(chunks: list[bytes], size: int) -> list[bytes]:
    """The same bytes in pieces of ``size`` (events cut anywhere)."""
    data = b"".join(chunks)
    return [data[i : i + size] for i in range(0, len(data), size)]


def _read(chunks: list[bytes], max_body: int, t0: float) -> ResponseBody:
    body = ResponseBody(SSE, _codec, max_body, t0)
    for chunk in chunks:
        body.feed(chunk)
    body.end()
    return body


def test_a_stream_under_the_cap_is_parsed_when_needed_with_its_arrival_times() -> None:
    chunks = openai_stream_chunks(["Hel", "lo", " there"])
    t0 = time.perf_counter()
    body = ResponseBody(SSE, _codec, 50_000, t0)
    body.feed(chunks[0])  # role only: no content yet
    time.sleep(0.05)
    body.feed(chunks[1])  # the first content
    arrived = (time.perf_counter() - t0) * 1000
    for chunk in chunks[2:]:
        body.feed(chunk)
    body.end()
    assert body.assembler is not None and not body.assembler.terminal  # nothing parsed yet
    time.sleep(0.05)
    # Parsed now, timed by when the chunk arrived, not by when it was parsed.
    assert body.ttft_ms is not None and 50 <= body.ttft_ms <= arrived + 1
    assert body.terminal
    result = body.normalize()
    assert result.response is not None and result.complete
    assert bytes(body.data) == b"".join(chunks)


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
@pytest.mark.parametrize("max_body", [10, 300, 1_000_000])
def test_parsing_later_or_as_it_arrives_gives_the_same_result(size: int, max_body: int) -> None:
    """Under the cap, across it at any point, and over it from the first chunk: the
    assembled response equals the one from the whole stream in one chunk."""
    chunks = openai_stream_chunks([f"part {i} " for i in range(40)])
    t0 = time.perf_counter()
    expected = _read([b"".join(chunks)], 1_000_000, t0).normalize()
    body = _read(_split(chunks, size), max_body, t0)
    result = body.normalize()
    assert result.response == expected.response
    assert result.usage == expected.usage and result.complete
    assert body.over_cap == (sum(map(len, chunks)) > max_body)
    assert len(body.data) == min(sum(map(len, chunks)), max_body + 1)
    assert body.ttft_ms is not None


def test_a_stream_cut_short_is_parsed_up_to_where_it_stopped() -> None:
    chunks = openai_stream_chunks(["Hel", "lo"])
    data = b"".join(chunks)
    cut = data.index(b"lo") + 10  # inside the second content event
    body = ResponseBody(SSE, _codec, 50_000, time.perf_counter())
    body.feed(data[:cut])
    body.close_parser()  # as a caller that stops reading
    assert not body.terminal
    result = body.normalize()
    assert not result.complete and result.response is not None
    assert result.response["content"] == [{"type": "text", "text": "Hel"}]


def test_a_stream_of_many_tiny_chunks_is_parsed_before_its_bookkeeping_grows() -> None:
    chunks = openai_stream_chunks(["a"] * 200)
    data = b"".join(chunks)
    body = ResponseBody(SSE, _codec, 1_000_000, time.perf_counter())
    for i in range(len(data)):
        body.feed(data[i : i + 1])
        assert len(body._unparsed_ends) < 2048
    body.end()
    result = body.normalize()
    assert result.complete and result.response is not None
    assert result.response["content"] == [{"type": "text", "text": "a" * 200}]
