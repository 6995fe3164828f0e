"""Helpers shared by the OpenAI codec tests: fixtures, SSE feeding, SDK validation."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from chatdebug.instrument.normalize._payloads import NormalizedResponse, StreamAssembler
from chatdebug.instrument.normalize._sse import SSEEvent, SSEParser

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> Any:
    """A JSON fixture by file name."""
    return json.loads((FIXTURES / name).read_text())


def raw(name: str) -> bytes:
    """A fixture's bytes."""
    return (FIXTURES / name).read_bytes()


def dumped(value: Any) -> str:
    """``value`` as JSON text, for "never appears anywhere" checks."""
    return json.dumps(value, ensure_ascii=False, default=repr)


def force(value: Any) -> Any:
    """Walk lazily validated ``Iterable[...]`` fields so every element gets checked."""
    if isinstance(value, Mapping):
        return {k: force(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator) or type(value).__name__ == "ValidatorIterator":
        return [force(v) for v in value]
    return value


def events(data: bytes) -> list[SSEEvent]:
    """Every event of an SSE byte stream."""
    parser = SSEParser()
    out = parser.feed(data)
    out.extend(parser.close())
    return out


def sse(items: Iterable[Any], *, named: bool = False, done: bool = True) -> bytes:
    """An SSE body: dicts become ``data:`` JSON lines (with ``event:`` when ``named``),
    strings are written as given (one event each)."""
    chunks: list[str] = []
    for item in items:
        if isinstance(item, str):
            chunks.append(item + "\n\n")
            continue
        if named:
            chunks.append(f"event: {item.get('type')}\n")
        chunks.append("data: " + json.dumps(item, ensure_ascii=False) + "\n\n")
    if done:
        chunks.append("data: [DONE]\n\n")
    return "".join(chunks).encode()


def run(
    assembler: StreamAssembler, data: bytes, piece: int | None = None
) -> tuple[NormalizedResponse, list[bool]]:
    """Feed ``data`` (in ``piece``-byte slices when given) and finish the stream."""
    parser = SSEParser()
    flags: list[bool] = []
    size = piece or len(data) or 1
    for start in range(0, len(data), size):
        for event in parser.feed(data[start : start + size]):
            flags.append(assembler.feed(event))
    for event in parser.close():
        flags.append(assembler.feed(event))
    return assembler.finish(), flags


def summary(result: NormalizedResponse) -> dict[str, Any]:
    """The ``stream_summary`` of a streamed result."""
    value = result.metadata["stream_summary"]
    assert isinstance(value, dict)
    return value
