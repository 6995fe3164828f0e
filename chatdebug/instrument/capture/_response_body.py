"""What the caller reads of one response, decoded and kept within bounds.

The capture owns one :class:`ResponseBody` per attempt and guards it with its lock. A
streamed (SSE) body keeps its first ``max_body`` bytes for the stored attempt and feeds
its events to the codec's assembler: from the kept bytes when the result is needed
while the stream is under that cap, as they arrive once it outgrows it. Any other body
is kept whole up to :data:`MAX_NORMALIZE_BYTES` so it can be normalized once complete.
"""

from __future__ import annotations

import json
import time
from array import array
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from ..._pacing import pause_point
from ..._safety import suppress_internal_errors
from ..normalize import Codec, NormalizedResponse, SSEEvent, SSEParser, StreamAssembler
from ..redact import Redactor
from ._decode import DecodeError, Decoder, make_decoder

__all__ = ["MAX_NORMALIZE_BYTES", "ResponseBody"]

_INVALID = object()

MAX_NORMALIZE_BYTES = 8 * 1024 * 1024
"""Non-streamed bodies up to this size are kept (decoded) for normalization."""

_PROGRESS_MARGIN: Final = 256
"""Characters past the cut of a stream's progress text that are redacted with it."""

_MAX_UNPARSED: Final = 2048
"""Chunks a stream may keep unparsed (16 bytes of bookkeeping each); a stream of more,
smaller chunks is parsed whenever that many wait."""


class ResponseBody:
    """Decodes, keeps and parses the body bytes the caller receives. Not thread-safe."""

    def __init__(
        self,
        header_pairs: list[tuple[str, str]],
        codec: Callable[[], tuple[Codec, Mapping[str, Any] | None]],
        max_body: int,
        t0: float,
    ) -> None:
        """``codec`` gives the response's codec and the normalized request (what the
        request asked for explains what a stream lacks, its usage); it is called when
        the body is first parsed, not before, so it may do the work of reading the
        request then."""
        self._codec_source = codec
        self._codec_value: Codec | None = None
        self._max_body = max_body
        self._t0 = t0
        self.content_type = ""
        self.content_length: int | None = None
        encoding = None
        for name, value in header_pairs:
            lower = name.lower()
            if lower == "content-type":
                self.content_type = value
            elif lower == "content-length":
                try:
                    self.content_length = int(value)
                except ValueError:
                    self.content_length = None
            elif lower == "content-encoding":
                encoding = value
        self.decode_error: str | None = None
        self._decoder: Decoder | None = None
        try:
            self._decoder = make_decoder(encoding)
        except DecodeError as exc:
            self.decode_error = str(exc)
        # Most provider streams are not compressed: skip the decoder call per chunk.
        self._identity = encoding is None and self.decode_error is None
        self.is_sse = self.media_type == "text/event-stream"
        self._parser = SSEParser() if self.is_sse else None
        self._assembler: StreamAssembler | None = None
        self._assembler_failed = False
        self._events = 0
        self._events_reported = 0
        self.raw_bytes = 0
        self.decoded_bytes = 0
        self.data = bytearray()
        self.over_cap = False
        self.too_large = False
        self._ttft_ms: float | None = None
        # Chunks kept but not parsed yet: where each ends in ``data``, when it arrived.
        self._unparsed_ends = array("q")
        self._unparsed_times = array("d")
        self._parsed_to = 0

    def _ensure_codec(self) -> Codec:
        codec = self._codec_value
        if codec is None:
            codec, request = self._codec_source()
            self._codec_value = codec
            if self.is_sse:
                self._assembler = codec.new_stream(request)
        return codec

    @property
    def assembler(self) -> StreamAssembler | None:
        """The codec's stream assembler of an SSE body (None for other bodies)."""
        if self.is_sse and self._codec_value is None:
            self._ensure_codec()
        return self._assembler

    @property
    def media_type(self) -> str:
        return self.content_type.split(";")[0].strip().lower()

    @property
    def content_final(self) -> bool:
        """The provider's content is final (see :attr:`StreamAssembler.content_final`):
        a stream closed or failing from here on is still complete."""
        self._catch_up()
        return self.assembler is not None and self.assembler.content_final

    @property
    def terminal(self) -> bool:
        """The provider's last stream event was seen."""
        self._catch_up()
        return self.assembler is not None and self.assembler.terminal

    @property
    def ttft_ms(self) -> float | None:
        """Milliseconds from the request to the arrival of the chunk that completed the
        first content event of a stream (None before one, or for other bodies)."""
        self._catch_up()
        return self._ttft_ms

    # -- bytes in ----------------------------------------------------------------------
    def feed(self, raw: bytes) -> None:
        """A raw chunk, as it came off the wire."""
        self.raw_bytes += len(raw)
        data = raw if self._identity else self._decode(raw)
        if data:
            self._take(data)

    def end(self) -> None:
        """End of the body: flush the decoder (the SSE parser is closed when the result
        is needed, see :meth:`close_parser`)."""
        tail = self._flush_decoder()
        if tail:
            self._take(tail)

    def close_parser(self) -> None:
        """Parse what is kept and dispatch what the SSE parser still holds (idempotent)."""
        if self._parser is not None:
            self._catch_up()
            for event in self._parser.close():
                self._feed_event(event)

    def _decode(self, raw: bytes) -> bytes:
        if self.decode_error is not None or self._decoder is None:
            return b"" if self.decode_error else raw
        try:
            return self._decoder.decode(raw)
        except DecodeError as exc:
            self.decode_error = str(exc)
            return b""

    def _flush_decoder(self) -> bytes:
        if self._decoder is None or self.decode_error is not None:
            return b""
        try:
            return self._decoder.flush()
        except DecodeError as exc:
            self.decode_error = str(exc)
            return b""

    def _take(self, data: bytes) -> None:
        self.decoded_bytes += len(data)
        if self._parser is not None:
            if not self.over_cap:
                room = self._max_body + 1 - len(self.data)
                if len(data) < room:
                    # Still all kept: parse later, from the kept bytes.
                    self.data += data
                    self._unparsed_ends.append(len(self.data))
                    self._unparsed_times.append(time.perf_counter())
                    if len(self._unparsed_ends) >= _MAX_UNPARSED:
                        self._catch_up()
                    return
                # This chunk outgrows the cap: parse what waits, then go on as it comes.
                self._catch_up()
                self.data += data[:room]
                self.over_cap = True
                self.data = bytearray(self.data)  # drop the growth slack: held to the end
            self._parse(data, time.perf_counter())
            return
        if self.too_large:
            return
        if len(self.data) + len(data) > MAX_NORMALIZE_BYTES:
            self.too_large = True
            self.data.clear()
            return
        self.data += data

    def _parse(self, data: bytes, arrived: float) -> None:
        assert self._parser is not None
        for event in self._parser.feed(data):
            if self._feed_event(event) and self._ttft_ms is None:
                self._ttft_ms = round((arrived - self._t0) * 1000, 3)
            pause_point()

    def _catch_up(self) -> None:
        """Parse the kept chunks that wait: each with its own arrival time until the
        first content event is placed, then the rest in one pass."""
        ends = self._unparsed_ends
        if not ends:
            return
        start = self._parsed_to
        for end, arrived in zip(ends, self._unparsed_times, strict=True):
            if self._ttft_ms is not None:
                break
            self._parse(bytes(self.data[start:end]), arrived)
            start = end
        if start < ends[-1]:
            self._parse(bytes(self.data[start : ends[-1]]), self._unparsed_times[-1])
            start = ends[-1]
        self._parsed_to = start
        self._unparsed_ends = array("q")
        self._unparsed_times = array("d")

    def progress(self, max_chars: int) -> tuple[int, str, int] | None:
        """Stream events so far, the first ``max_chars`` (plus a margin, for redaction
        to see a secret cut there whole) characters of the text so far, and its full
        length; None for a body that is not a stream or when no event arrived since
        the last call."""
        if not self.is_sse:
            return None
        self._catch_up()
        if self._events == self._events_reported:
            return None
        self._events_reported = self._events
        text = ""
        assembler = self.assembler
        if assembler is not None and not self._assembler_failed:
            with suppress_internal_errors("normalize"):
                # finish() builds the result so far without consuming anything.
                response = assembler.finish().response or {}
                parts = response.get("content")
                if isinstance(parts, list):
                    text = "".join(
                        str(part.get("text") or "")
                        for part in parts
                        if isinstance(part, dict) and part.get("type") == "text"
                    )
        return self._events, text[: max_chars + _PROGRESS_MARGIN], len(text)

    def _feed_event(self, event: SSEEvent) -> bool:
        """Feed the codec's assembler; one that fails is counted and then left alone
        (the attempt is still recorded, without a normalized response)."""
        self._events += 1
        if self.assembler is None or self._assembler_failed:
            return False
        try:
            return self.assembler.feed(event)
        except Exception as exc:
            self._assembler_failed = True
            with suppress_internal_errors("normalize"):  # counted, or raised in tests
                raise exc
            return False

    # -- reading it back ---------------------------------------------------------------
    def is_json_type(self) -> bool:
        media = self.media_type
        return media in ("", "application/json") or media.endswith("+json")

    def json_complete(self) -> bool:
        """Whether the kept bytes are exactly one JSON document."""
        return self._loads() is not _INVALID

    def parsed(self) -> Any:
        """The kept non-streamed body as JSON, or None."""
        if self.is_sse or self.too_large or not self.data:
            return None
        value = self._loads()
        return None if value is _INVALID else value

    def _loads(self) -> Any:
        data = bytes(self.data)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # NaN, huge integers, deep nesting: as the json module decides
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            return _INVALID

    def normalize(self) -> NormalizedResponse:
        """The codec's view of the body; a failing codec loses only this, never the
        attempt."""
        result = None
        self.close_parser()
        if not self._assembler_failed:
            with suppress_internal_errors("normalize"):
                if self.assembler is not None:
                    result = self.assembler.finish()
                else:
                    result = self._ensure_codec().normalize_response(self.parsed())
        if result is None:
            result = NormalizedResponse(
                metadata={"capture_error": "the response could not be normalized"}
            )
        if self.too_large:
            result.metadata["response_too_large_to_normalize"] = self.decoded_bytes
        if self.decode_error is not None:
            result.metadata["capture_error"] = self.decode_error
        return result

    def truncated(self) -> bool:
        """Over the stored-body cap (it is stored as ``[TRUNCATED]``)."""
        return self.over_cap or self.too_large or self.decoded_bytes > self._max_body

    def redacted(self, redactor: Redactor) -> bytes:
        """The kept bytes as they may be stored (by content type, fail closed)."""
        return redactor.redact_body(bytes(self.data), self.content_type or None)
