"""The SSE parser gives the same events however the bytes are split.

Whole LF-terminated chunks take a fast path (decoded once, split as text); anything else
(CR line ends, a line cut across chunks, an overlong line) goes byte by byte. Both must
agree with feeding the stream one byte at a time.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from chatdebug.instrument.normalize._sse import SSEEvent, SSEParser

_LINES = st.sampled_from(
    [
        'data: {"a": 1}',
        "data:x",
        "data",
        "event: ping",
        "event:",
        "id: 7",
        "id: a\0b",
        "retry: 150",
        "retry: x",
        ": comment",
        "data: caf\u00e9 \u2603",
        "",
        "",
    ]
)
_ENDINGS = st.sampled_from(["\n", "\n", "\r\n", "\r"])


@st.composite
def _streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_LINES, _ENDINGS), max_size=30))
    body = "".join(line + end for line, end in lines).encode()
    if draw(st.booleans()):
        body += b"\xff\xfe broken utf-8\n\n"
    return body


def _events(parser: SSEParser, pieces: list[bytes]) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.close())
    return events


@settings(max_examples=300, deadline=None)
@given(_streams(), st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_split_gives_the_events_of_byte_by_byte(body: bytes, cuts: list[int]) -> None:
    reference = _events(SSEParser(), [body[i : i + 1] for i in range(len(body))])
    points = sorted({c for c in cuts if c < len(body)} | {0, len(body)})
    pieces = [body[a:b] for a, b in itertools.pairwise(points)]
    assert _events(SSEParser(), pieces) == reference
    assert _events(SSEParser(), [body]) == reference


def test_whole_events_per_chunk_take_the_fast_path_and_keep_state() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: delta\ndata: one\n") == []
    assert parser.feed(b"data: two\n\n") == [SSEEvent("delta", "one\ntwo")]
    assert parser.feed(b"data: [DONE]\n\n") == [SSEEvent("message", "[DONE]")]
    assert parser.bytes_seen == len(b"event: delta\ndata: one\ndata: two\n\ndata: [DONE]\n\n")


def test_an_overlong_line_is_dropped() -> None:
    parser = SSEParser(max_line_bytes=16)
    events = parser.feed(b"data: " + b"x" * 40 + b"\n\ndata: ok\n\n")
    assert events == [SSEEvent("message", "ok")]
    assert parser.errors == 1
