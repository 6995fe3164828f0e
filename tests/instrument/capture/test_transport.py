"""HTTP capture through ``chatdebug.Transport`` / ``chatdebug.AsyncTransport``.

Ports the reference's ``transport_internal_test.go`` (one test per name, snake_cased)
with real clients against a real loopback server (one flavour for a rule, all four of
httpx/httpx2 × sync/async at a seam: see ``support``), asserting on the attempt records
of the finished step spans. Where a Go test exercises
something that does not exist here, its docstring says so and it tests what we do
instead.

This module covers the request side (request capture, transport errors, pass-through);
the sibling modules cover response bodies
(``test_transport_bodies``), server-sent events (``test_transport_sse``), stream
lifecycle and encodings (``test_transport_streams``) and step grouping
(``test_transport_steps``).
"""

from __future__ import annotations

import json

import pytest

import chatdebug
from chatdebug import _safety
from chatdebug import _spans as attr
from chatdebug.instrument.redact._redactor import REDACTED, Redactor
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import openai_stream_chunks
from tests.instrument.capture.support import (
    CHAT_PATH,
    SECRET_JSON,
    TRUNCATED,
    Client,
    Flavour,
    RaisingTransport,
    SpyTransport,
    all_flavours,
    attempts_of,
    body_of,
    closed_port,
    drive,
    flavours,
    json_body,
    only_attempt,
    step_status,
)
from tests.instrument.support import Spans, jattr

# -- request capture --------------------------------------------------------------------


@flavours
def test_no_sink(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    """Outside a run the transport is a pure pass-through: no span, and the very same
    response (status, headers, bytes, the inner transport's own byte stream)."""
    chunks = openai_stream_chunks(["a", "b"])
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> tuple[int, dict[str, str], bytes, str]:
        resp = await client.send("POST", url, json={"model": "m", "stream": True})
        stream_module = type(resp.raw.stream).__module__
        body = await resp.read()
        await resp.close()
        headers = {k: v for k, v in resp.raw.headers.items() if k != "date"}
        return resp.status_code, headers, body, stream_module

    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    baseline = drive(flavour, scenario, record=False)
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    ours = drive(flavour, scenario)

    assert ours == baseline
    assert not ours[3].startswith("chatdebug")
    assert ours[2] == b"".join(chunks)
    assert spans.all() == []


@flavours
def test_no_sink_disabled_run(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    """A run that does not record (not enabled for its user) passes requests through."""
    chatdebug.instrument.install(
        chatdebug.instrument.InstrumentSettings(tracer_provider=spans.provider, force_enabled=False)
    )
    fake_server.enqueue(Reply(body=SECRET_JSON, headers=JSON_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-off", user_id="u-1") as run:
            assert not run.recording
            resp = await client.call("GET", fake_server.url + "/x")
            assert not type(resp.raw.stream).__module__.startswith("chatdebug")
            return resp.content

    assert drive(flavour, scenario) == SECRET_JSON
    assert spans.all() == []


@flavours
def test_capture_request(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    request_body = b'{"message":"hello","api_key":"super-secret"}'
    fake_server.enqueue(Reply(body=b'{"ok":true}', headers=JSON_HEADERS))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            resp = await client.call(
                "POST",
                fake_server.url + "/capture",
                content=request_body,
                headers={"Authorization": "Bearer top-secret", "Content-Type": "application/json"},
            )
            assert resp.content == b'{"ok":true}'

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert attempt["number"] == 1
    assert attempt["method"] == "POST"
    assert attempt["path"] == "/capture"
    assert attempt["request_headers"]["authorization"] == REDACTED
    assert attempt["request_headers"]["content-type"] == "application/json"
    assert json_body(attempt, "request_body") == {"message": "hello", "api_key": REDACTED}
    # Capturing did not consume the body: the server got all of it, credentials included.
    received = fake_server.requests[-1]
    assert received.body == request_body
    assert received.headers["authorization"] == "Bearer top-secret"


@flavours
def test_capture_request_restores_shared_get_body(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """The same request object sent twice: capture never consumes its body."""
    request_body = b'{"message":"hello","api_key":"super-secret"}'
    fake_server.enqueue(
        Reply(body=b'{"ok":1}', headers=JSON_HEADERS), Reply(body=b'{"ok":2}', headers=JSON_HEADERS)
    )

    async def scenario(client: Client) -> None:
        request = client.raw.build_request("POST", fake_server.url + "/x", content=request_body)
        with chatdebug.run("chat-1"):
            for expected in (b'{"ok":1}', b'{"ok":2}'):
                resp = await client.send_request(request, stream=False)
                assert resp.content == expected
        assert request.content == request_body

    drive(flavour, scenario)
    assert [r.body for r in fake_server.requests] == [request_body, request_body]
    steps = spans.steps()
    assert len(steps) == 2
    for step in steps:
        (attempt,) = attempts_of(step)
        assert attempt["status"] == "completed"
        assert json_body(attempt, "request_body") == {"message": "hello", "api_key": REDACTED}


@flavours
def test_capture_request_reset_failure_fails_request(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not applicable: we never fail a request (httpx keeps a replayable body in memory,
    so there is nothing to reset). What we do instead: when reading the request fails
    inside chatdebug, the request is sent untouched, the failure is counted, and the
    attempt is still recorded (without the body it could not read)."""
    monkeypatch.delenv("CHATDEBUG_RAISE_INTERNAL_ERRORS", raising=False)
    request_body = b'{"message":"hello"}'
    redact_json = Redactor.redact_json

    def broken(self: Redactor, body: bytes, *, values: bool = True) -> bytes:
        if body == request_body:
            raise RuntimeError("redaction exploded")
        return redact_json(self, body, values=values)

    monkeypatch.setattr(Redactor, "redact_json", broken)
    before = _safety.internal_error_counts().get("transport", 0)
    fake_server.enqueue(Reply(body=b'{"ok":true}', headers=JSON_HEADERS))

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            return (await client.call("POST", fake_server.url + "/x", content=request_body)).content

    assert drive(flavour, scenario) == b'{"ok":true}'
    assert fake_server.requests[-1].body == request_body
    assert _safety.internal_error_counts().get("transport", 0) == before + 1
    (step,) = spans.steps()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "completed"
    assert attempt["method"] == "POST"
    assert "request_body" not in attempt
    assert json_body(attempt, "response_body") == {"ok": True}
    assert len(spans.runs()) == 1


@all_flavours
def test_capture_request_body_close_failure_fails_request(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """Not applicable: we never read or close a streaming request body, so nothing of
    ours can fail on it. When the caller's own body source fails mid-upload, that very
    exception reaches the caller and the attempt is recorded as failed."""
    failure = ValueError("upload source failed")

    def explode() -> None:
        raise failure

    async def scenario(client: Client) -> BaseException:
        with chatdebug.run("chat-1"):
            body = flavour.body([b'{"message":', b'"hello"'], after=explode)
            with pytest.raises(ValueError) as caught:
                await client.call("POST", fake_server.url + "/x", content=body)
            return caught.value

    assert drive(flavour, scenario) is failure
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "upload source failed" in attempt["error"]
    assert "request_body" not in attempt
    assert "response_status" not in attempt
    assert step_status(step) == "error"


@flavours
def test_redacts_sensitive_query_parameters(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    query = (
        "api_key=secret-1&safe=ok&key=AIzaSyA-0123456789abcdefghijklmnopqrstu"
        "&token=secret-2&access_token=secret-3&client_secret=secret-4"
    )
    fake_server.enqueue(Reply(body=b"ok", headers={"Content-Type": "text/plain"}))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call("GET", f"{fake_server.url}/q?{query}")

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    url = attempt["url"]
    for name in ("api_key", "key", "token", "access_token", "client_secret"):
        assert f"{name}=%5BREDACTED%5D" in url
    assert "safe=ok" in url
    assert "secret-" not in url and "AIza" not in url
    assert attempt["path"] == "/q"
    # The server still got the real query.
    assert fake_server.requests[-1].path == f"/q?{query}"


@flavours
def test_truncates_large_request_bodies(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    large = json.dumps({"messages": [{"role": "user", "content": "x" * 60_000}]}).encode()
    fake_server.enqueue(Reply(body=b"ok", headers={"Content-Type": "text/plain"}))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call("POST", fake_server.url + "/x", content=large)

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert body_of(attempt, "request_body") == TRUNCATED
    assert fake_server.requests[-1].body == large


@flavours
def test_strips_url_userinfo(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(Reply(body=b"ok", headers={"Content-Type": "text/plain"}))
    url = fake_server.url.replace("http://", "http://user:hunter2pass@") + "/x?api_key=secret"

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            await client.call("GET", url)

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "user:" not in attempt["url"] and "hunter2pass" not in attempt["url"]
    assert "api_key=%5BREDACTED%5D" in attempt["url"]
    # httpx turns URL credentials into a Basic Authorization header: redacted too.
    assert attempt["request_headers"].get("authorization", REDACTED) == REDACTED
    assert "hunter2pass" not in json.dumps(attempt)


@all_flavours
def test_skips_non_replayable_request_body_capture(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(Reply(body=b"ok", headers={"Content-Type": "text/plain"}))

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            body = flavour.body([b'{"message":', b'"hello"}'])
            await client.call("POST", fake_server.url + "/x", content=body)

    drive(flavour, scenario)
    attempt = only_attempt(spans)
    assert attempt["status"] == "completed"
    assert "request_body" not in attempt
    assert fake_server.requests[-1].body == b'{"message":"hello"}'


# -- transport errors -------------------------------------------------------------------


@all_flavours
def test_transport_error(flavour: Flavour, spans: Spans) -> None:
    """Connection refused: the attempt fails, and the caller gets the inner transport's
    own exception object, unchanged."""
    spy = SpyTransport(flavour.http_transport())
    url = f"http://127.0.0.1:{closed_port()}/v1/chat/completions"

    async def scenario(client: Client) -> BaseException:
        with chatdebug.run("chat-1"):
            with pytest.raises(flavour.lib.ConnectError) as caught:
                await client.call(
                    "POST",
                    url,
                    content=b'{"password":"secret","safe":"ok"}',
                    headers={"Authorization": "Bearer top-secret"},
                )
            return caught.value

    caught = drive(flavour, scenario, transport=flavour.transport(spy))
    assert caught is spy.raised
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert attempt["number"] == 1
    assert attempt["request_headers"]["authorization"] == REDACTED
    assert json_body(attempt, "request_body") == {"password": REDACTED, "safe": "ok"}
    assert "response_status" not in attempt and "response_body" not in attempt
    assert attempt["error"].startswith("ConnectError: ")
    assert attempt["duration_ms"] >= 0
    assert step_status(step) == "error"
    error = jattr(step, attr.STEP_ERROR)
    assert error["type"] == f"{flavour.lib_name}.ConnectError"


@flavours
def test_transport_error_sanitizes_url_credentials(flavour: Flavour, spans: Spans) -> None:
    message = "connection to http://admin:s3cret@api.example.com/v1?api_key=sk-1234 refused"
    failure = flavour.lib.ConnectError(message)

    async def scenario(client: Client) -> BaseException:
        with chatdebug.run("chat-1"):
            with pytest.raises(flavour.lib.ConnectError) as caught:
                await client.call("GET", "http://example.invalid/")
            return caught.value

    caught = drive(flavour, scenario, transport=flavour.transport(RaisingTransport(failure)))
    assert caught is failure and str(caught) == message  # the caller's error is untouched
    step = spans.only_step()
    (attempt,) = attempts_of(step)
    assert attempt["status"] == "failed"
    assert "s3cret" not in attempt["error"] and "sk-1234" not in attempt["error"]
    assert "api_key=%5BREDACTED%5D" in attempt["error"]
    assert "s3cret" not in step.attributes[attr.STEP_ERROR]
    assert "sk-1234" not in step.attributes[attr.STEP_ERROR]


@all_flavours
def test_nil_base(flavour: Flavour, spans: Spans, fake_server: FakeServer) -> None:
    """``Transport()`` without an inner transport builds the default transport of the
    library of the client it serves (httpx or httpx2), outside and inside a run."""
    transport = (chatdebug.AsyncTransport if flavour.is_async else chatdebug.Transport)()
    fake_server.enqueue(
        Reply(body=b"ok", headers={"Content-Type": "text/plain"}),
        Reply(body=b"ok again", headers={"Content-Type": "text/plain"}),
    )

    async def scenario(client: Client) -> list[bytes]:
        outside = (await client.call("GET", fake_server.url + "/x")).content
        with chatdebug.run("chat-1"):
            inside = (await client.call("GET", fake_server.url + "/y")).content
        return [outside, inside]

    assert drive(flavour, scenario, transport=transport) == [b"ok", b"ok again"]
    expected = flavour.lib.AsyncHTTPTransport if flavour.is_async else flavour.lib.HTTPTransport
    assert type(transport._holder.current) is expected
    attempt = only_attempt(spans)
    assert attempt["path"] == "/y"
    assert body_of(attempt) == b"ok again"
