"""Incremental Server-Sent Events parser (pure, no I/O).

Bytes are fed as they arrive, split anywhere (even inside a UTF-8 sequence or a CRLF);
complete events come out. Follows the WHATWG event-stream rules: lines end with CR, LF
or CRLF; ``event``, ``data``, ``id`` and ``retry`` fields; comment lines start with
``:``; a blank line dispatches; several ``data`` lines join with ``\\n``. Invalid UTF-8
is replaced, never raised. A line longer than ``max_line_bytes`` is dropped and counted
in :attr:`SSEParser.errors` so a broken stream cannot grow memory without bound.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser"]

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event. ``event`` is ``"message"`` when the stream named none."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed bytes with :meth:`feed`; call :meth:`close` at end of stream."""

    __slots__ = (
        "_buffer",
        "_data",
        "_discarding",
        "_event",
        "_id",
        "_retry",
        "_skip_lf",
        "bytes_seen",
        "errors",
        "max_line_bytes",
    )

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._skip_lf = False
        self._discarding = False
        self.max_line_bytes = max_line_bytes
        self.errors = 0
        self.bytes_seen = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk``; return the events it completed (possibly none)."""
        if (
            chunk[-1:] == b"\n"
            and not self._buffer
            and not self._skip_lf
            and not self._discarding
            and len(chunk) <= self.max_line_bytes
            and b"\r" not in chunk
        ):
            # The common case (providers send whole LF-terminated events): decode once
            # and split lines as text. A LF never sits inside a UTF-8 sequence, so this
            # decodes exactly as line by line would.
            self.bytes_seen += len(chunk)
            events: list[SSEEvent] = []
            lines = chunk.decode("utf-8", errors="replace").split("\n")
            lines.pop()  # the empty piece after the final LF
            for line in lines:
                event = self._line(line)
                if event is not None:
                    events.append(event)
            return events
        return self._feed_bytes(chunk)

    def _feed_bytes(self, chunk: bytes) -> list[SSEEvent]:
        self.bytes_seen += len(chunk)
        events: list[SSEEvent] = []
        start = 0
        n = len(chunk)
        if self._skip_lf and n:
            if chunk[0:1] == b"\n":
                start = 1
            self._skip_lf = False
        while start < n:
            cr = chunk.find(b"\r", start)
            lf = chunk.find(b"\n", start)
            if cr == -1 and lf == -1:
                self._append(chunk[start:])
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, nxt = lf, lf + 1
            else:
                end, nxt = cr, cr + 1
                if nxt < n:
                    if chunk[nxt : nxt + 1] == b"\n":
                        nxt += 1
                else:
                    self._skip_lf = True
            self._append(chunk[start:end])
            event = self._line_done()
            if event is not None:
                events.append(event)
            start = nxt
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: a trailing line without terminator is processed; an event that
        was never terminated by a blank line is discarded, as the standard requires."""
        events: list[SSEEvent] = []
        if self._buffer or self._discarding:
            self._line_done()
        self._data.clear()
        self._event = ""
        return events

    def _append(self, piece: bytes) -> None:
        if self._discarding:
            return
        if len(self._buffer) + len(piece) > self.max_line_bytes:
            self._buffer.clear()
            self._discarding = True
            self.errors += 1
            return
        self._buffer += piece

    def _line_done(self) -> SSEEvent | None:
        if self._discarding:
            self._discarding = False
            self._buffer.clear()
            return None
        line = self._buffer.decode("utf-8", errors="replace")
        self._buffer.clear()
        return self._line(line)

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data and not self._event:
            return None
        event = SSEEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._id,
            retry=self._retry,
        )
        self._data.clear()
        self._event = ""
        self._retry = None
        return event
