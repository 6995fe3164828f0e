"""Response bodies through our transports: what is captured, and when an attempt is
done — read to EOF, closed early or late, HEAD / 204 / 304, cut off by the network — and
how the stored body depends on its content type. Ports the matching names of the
reference's ``transport_internal_test.go``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

import chatdebug
from chatdebug import _spans as attr
from chatdebug.instrument.redact._redactor import (
    EXTRA_VALUES_DIAGNOSTIC,
    NOT_JSON_DIAGNOSTIC,
    REDACTED,
)
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import openai_stream_chunks
from tests.instrument.capture.support import (
    CHAT_PATH,
    SECRET_JSON,
    TRUNCATED,
    Client,
    FailingCloseTransport,
    Flavour,
    all_flavours,
    attempts_of,
    body_of,
    drive,
    flavours,
    json_body,
    only_attempt,
    step_status,
)
from tests.instrument.support import Spans, jattr

REDACTED_JSON = {"token": REDACTED, "safe": "ok"}


@pytest.fixture
def hold() -> Iterator[threading.Event]:
    """An event for :attr:`Reply.hold`, released at the end of the test."""
    event = threading.Event()
    yield event
    event.set()


# -- response capture -------------------------------------------------------------------


@flavours
def test_capture_response(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        Reply(
            status=201,
            body=SECRET_JSON,
            headers={
                "Content-Type": "application/json",
                "X-API-Key": "response-secret",
                "X-Trace-ID": "trace-123",
            },
        )
    )

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            return (await client.call("GET", fake_server.url + "/x")).content

    assert drive(flavour, scenario) == SECRET_JSON
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 201
    assert attempt["response_headers"]["content-type"] == "application/json"
    assert attempt["response_headers"]["x-api-key"] == REDACTED
    assert attempt["response_headers"]["x-trace-id"] == "trace-123"
    assert json_body(attempt) == REDACTED_JSON
    assert "error" not in attempt
    assert isinstance(attempt["duration_ms"], int) and attempt["duration_ms"] >= 0
    assert 0 <= attempt["ttfb_ms"] <= attempt["duration_ms"] + 1
    assert attempt["started_at"].endswith("Z") and attempt["finished_at"].endswith("Z")
    assert attempt["started_at"] <= attempt["finished_at"]
    assert step_status(step) == "completed"
    assert step.attributes[attr.STEP_TTFB_MS] == attempt["ttfb_ms"]


@flavours
def test_capture_response_records_on_close(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """Adapted: the reference defers recording to Close. We apply the same completion
    rules (JSON integrity, Content-Length) at EOF already, so the record is complete
    whether or not the caller closes, and a close afterwards changes nothing."""
    fake_server.enqueue(
        Reply(
            status=202,
            body=SECRET_JSON,
            headers={"Content-Type": "application/json", "X-API-Key": "response-secret"},
        )
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert spans.steps() == []
            assert await resp.rest(kind="stream") == SECRET_JSON
            assert len(spans.steps()) == 1  # finished at EOF, before any close
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 202
    assert attempt["response_headers"]["x-api-key"] == REDACTED
    assert json_body(attempt) == REDACTED_JSON


@flavours
def test_streaming_body(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    fake_server.enqueue(
        Reply(
            chunks=[b'{"safe":"stream",', b'"token":"chunk-secret"}'],
            headers=JSON_HEADERS,
            hold=hold,
        )
    )

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            first = await resp.take(1)
            # The first chunk reached the caller while the body was still unfinished.
            assert first == [b'{"safe":"stream",']
            assert spans.steps() == []
            hold.set()
            rest = await resp.rest()
            await resp.close()
            return first[0] + rest

    assert drive(flavour, scenario) == b'{"safe":"stream","token":"chunk-secret"}'
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert json_body(attempt) == {"safe": "stream", "token": REDACTED}


@flavours
def test_close_after_decoder_consumes_content_length_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """The caller stops once it has Content-Length bytes, without reading to EOF."""
    pieces = [b'{"token":"response-secret",', b'"safe":"ok"}']
    fake_server.enqueue(Reply(chunks=pieces, chunked=False, headers=JSON_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            length = int(resp.raw.headers["content-length"])
            data = b""
            while len(data) < length:
                data += b"".join(await resp.take(1))
            assert json.loads(data)["safe"] == "ok"
            assert spans.steps() == []  # EOF not seen yet: the close decides
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert json_body(attempt) == REDACTED_JSON


@flavours
def test_close_after_decoder_consumes_unknown_length_json_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """Chunked JSON: the caller reads one complete document and closes before EOF."""
    fake_server.enqueue(Reply(chunks=[SECRET_JSON], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert json.loads(b"".join(await resp.take(1)))["safe"] == "ok"
            assert spans.steps() == []  # EOF not seen yet: the close decides
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert json_body(attempt) == REDACTED_JSON


@flavours
def test_close_after_decoder_consumes_unknown_length_json_with_no_sensitive_keys_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    body = b'{"safe": "ok",\n  "count": 1}'
    fake_server.enqueue(Reply(chunks=[body], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert json.loads(b"".join(await resp.take(1)))["count"] == 1
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == body  # formatting preserved: byte-identical


@flavours
def test_close_after_decoder_consumes_unknown_length_json_with_trailing_document_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    body = SECRET_JSON + b'{"token":"second"}'
    fake_server.enqueue(Reply(chunks=[body], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [body]
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"
    assert body_of(attempt) == EXTRA_VALUES_DIAGNOSTIC


@flavours
def test_close_after_decoder_consumes_unknown_length_ndjson_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    body = SECRET_JSON + b'\n{"token":"second"}\n'
    fake_server.enqueue(
        Reply(chunks=[body], headers={"Content-Type": "application/x-ndjson"}, hold=hold)
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [body]
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"


@flavours
def test_close_after_decoder_drains_unknown_length_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(chunks=[SECRET_JSON, b"\n"], headers=JSON_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert json.loads(b"".join(await resp.take(1)))["safe"] == "ok"
            assert await resp.rest() == b"\n"
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "error" not in attempt


@flavours
def test_close_without_reading_head_response_succeeds(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(body=b'{"ignored":true}', headers=JSON_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("HEAD", fake_server.url + "/x")
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["method"] == "HEAD"
    assert "error" not in attempt
    assert step_status(step) == "completed"


@flavours
def test_close_without_reading_unknown_length_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    fake_server.enqueue(Reply(chunks=[SECRET_JSON], headers=JSON_HEADERS, hold=hold, hold_after=0))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"
    assert step_status(step) == "interrupted"


@flavours
def test_premature_close_unknown_length_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    fake_server.enqueue(
        Reply(chunks=[b'{"token":"resp', b'onse-secret"}'], headers=JSON_HEADERS, hold=hold)
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [b'{"token":"resp']
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"


@all_flavours
def test_premature_close_marks_failed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    fake_server.enqueue(
        Reply(chunks=[b'{"token":"resp', b'onse-secret"}'], chunked=False, hold=hold)
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [b'{"token":"resp']
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["error"] == "unexpected EOF"
    assert step_status(step) == "interrupted"
    error = jattr(step, attr.STEP_ERROR)
    assert error["type"] == "incomplete_response"


@flavours
@pytest.mark.parametrize("kind", ["json", "sse"])
def test_truncates_large_responses(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, kind: str
) -> None:
    if kind == "json":
        payload = json.dumps({"text": "x" * 60_000}).encode()
        fake_server.enqueue(Reply(body=payload, headers=JSON_HEADERS))
    else:
        chunks = openai_stream_chunks(["y" * 1000] * 60)
        payload = b"".join(chunks)
        fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            return (await client.call("POST", fake_server.url + CHAT_PATH, json={})).content

    assert drive(flavour, scenario) == payload  # every byte for the caller
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == TRUNCATED
    assert step_status(step) == "completed"


# -- what is stored, by content type ----------------------------------------------------


def _read_one(flavour: Flavour, fake_server: FakeServer, reply: Reply, path: str = "/x") -> bytes:
    fake_server.enqueue(reply)

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            return (await client.call("GET", fake_server.url + path)).content

    return drive(flavour, scenario)


@flavours
def test_text_plain_preserved_not_redacted(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    text = b'This is plain text, not JSON. {"password": "hunter2"}'
    assert _read_one(flavour, fake_server, Reply(body=text, headers={"Content-Type": "text/plain"}))
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == text


@flavours
def test_ndjson_redacted(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    payload = b'{"api_key":"sk-123","safe":"ok"}\n{"token":"tok-456","data":"value"}\n'
    reply = Reply(body=payload, headers={"Content-Type": "application/x-ndjson"})
    assert _read_one(flavour, fake_server, reply) == payload  # the caller sees it all
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    lines = body_of(attempt).split(b"\n")
    assert json.loads(lines[0]) == {"api_key": REDACTED, "safe": "ok"}
    assert json.loads(lines[1]) == {"token": REDACTED, "data": "value"}


@flavours
def test_plus_json_suffix_redacted(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    payload = b'{"token":"secret","safe":"ok"}'
    reply = Reply(body=payload, headers={"Content-Type": "application/vnd.api+json"})
    assert _read_one(flavour, fake_server, reply) == payload
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert json_body(attempt) == {"token": REDACTED, "safe": "ok"}


@flavours
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"content-type": "application/json"}, id="lowercase_header"),
        pytest.param({}, id="missing_content_type"),
    ],
)
def test_unrecognized_content_type_defaults_to_json_redaction(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, headers: dict[str, str]
) -> None:
    payload = b'{"token":"secret","safe":"ok"}'
    assert _read_one(flavour, fake_server, Reply(body=payload, headers=headers)) == payload
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert json_body(attempt) == {"token": REDACTED, "safe": "ok"}


@flavours
def test_non_json_body_fail_closed_redaction(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    html = b"<html><body>502 Bad Gateway</body></html>"
    assert _read_one(flavour, fake_server, Reply(status=502, body=html)) == html
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 502
    assert body_of(attempt) == NOT_JSON_DIAGNOSTIC
    assert step_status(step) == "error"


@flavours
@pytest.mark.parametrize("ending", ["eof", "close_before_eof"])
def test_truncated_unknown_length_marks_completed(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event, ending: str
) -> None:
    if ending == "eof":
        payload = b"x" * 51_024
        pieces = [payload[:20_000], payload[20_000:]]
        content_type = "application/octet-stream"
    else:
        payload = json.dumps({"text": "x" * 51_024}).encode()
        pieces = [payload[:20_000], payload[20_000:]]
        content_type = "application/json"
    fake_server.enqueue(
        Reply(chunks=pieces, headers={"Content-Type": content_type}, hold=hold, hold_after=2)
    )

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            data = b"".join(await resp.take(2))
            while len(data) < len(payload):
                data += b"".join(await resp.take(1))
            if ending == "eof":
                hold.set()
                data += await resp.rest()
            await resp.close()
            return data

    assert drive(flavour, scenario) == payload
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "error" not in attempt
    assert body_of(attempt) == TRUNCATED


@all_flavours
@pytest.mark.parametrize("kind", ["json", "sse"])
def test_mid_stream_read_error(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, kind: str
) -> None:
    if kind == "json":
        reply = Reply(chunks=[b'{"key":', b'"value"}'], headers=JSON_HEADERS, drop_after=1)
    else:
        reply = Reply(chunks=openai_stream_chunks(["a", "b"]), headers=SSE_HEADERS, drop_after=2)
    fake_server.enqueue(reply)

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            with pytest.raises(flavour.lib.TransportError):
                await client.call("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            assert len(spans.steps()) == 1  # recorded at once

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "Error" in attempt["error"]
    assert attempt["response_status"] == 200
    assert step_status(step) == "error"
    assert jattr(step, attr.STEP_ERROR)["type"].startswith(flavour.lib_name + ".")


@flavours
def test_max_drain_bytes_respected(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """Adapted: we never read from a body after the caller closed it (no drain at all),
    however much is still pending; the record holds exactly what the caller read."""
    doc = b'{"safe":"ok"}'
    fake_server.enqueue(Reply(chunks=[doc, b" " * (128 * 1024)], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [doc]
            await resp.close()
            assert resp.raw.num_bytes_downloaded == len(doc)

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt) == doc


@all_flavours
def test_inner_close_error(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, hold: threading.Event
) -> None:
    """An error closing the inner body reaches the caller and fails the attempt. (A body
    already read to EOF is complete before any close: see the SSE variant above.)"""
    close_error = OSError("connection reset by peer")
    fake_server.enqueue(Reply(chunks=[b'{"ok":', b"true}"], headers=JSON_HEADERS, hold=hold))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/x")
            assert await resp.take(1) == [b'{"ok":']
            with pytest.raises(OSError) as caught:
                await resp.close()
            assert caught.value is close_error

    transport = flavour.transport(FailingCloseTransport(flavour, close_error))
    drive(flavour, scenario, transport=transport)
    attempt = only_attempt(spans)
    assert attempt["status"] == "failed"
    assert "connection reset by peer" in attempt["error"]


@flavours
def test_204_no_content_succeeds(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(Reply(status=204))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("DELETE", fake_server.url + "/resource")
            await resp.close()

    drive(flavour, scenario)
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 204
    assert "error" not in attempt
    assert step_status(step) == "completed"


@flavours
def test_304_not_modified_succeeds(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        Reply(status=304, headers={"Content-Type": "application/json", "Content-Length": "42"})
    )

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.send("GET", fake_server.url + "/resource")
            await resp.close()

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert attempt["response_status"] == 304
    assert "error" not in attempt
