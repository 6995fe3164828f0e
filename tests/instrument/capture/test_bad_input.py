"""Bad input from the wire — invalid UTF-8, broken SSE, huge bodies — is recorded as what
it is, never a crash, and the caller always gets every byte unchanged."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

import chatdebug
from chatdebug import _spans as attr
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.instrument.support import Spans, jattr

URL_PATH = "/v1/chat/completions"


def post(server: FakeServer, *, stream: bool = False) -> bytes:
    with httpx.Client(transport=chatdebug.Transport()) as client, chatdebug.run("c"):
        response = client.post(server.url + URL_PATH, json={"model": "m", "stream": stream})
        return response.content


def test_invalid_utf8_json_body(spans: Spans, fake_server: FakeServer) -> None:
    body = b'{"id": "x", "choices": [{"message": {"content": "caf\xe9 \xff"}}]}'
    fake_server.enqueue(Reply(body=body, headers=JSON_HEADERS))
    assert post(fake_server) == body
    step = spans.only_step()
    (attempt,) = jattr(step, attr.STEP_ATTEMPTS)
    assert attempt["status"] == "completed"
    stored = base64.b64decode(attempt["response_body"])
    assert b"not valid JSON" in stored  # fail closed: not stored raw
    assert step.attributes[attr.STEP_STATUS] == "completed"


def test_invalid_utf8_and_garbage_in_sse(spans: Spans, fake_server: FakeServer) -> None:
    chunks = [
        b'data: {"choices":[{"index":0,"delta":{"content":"ok \xff\xfe"}}]}\n\n',
        b"this is not an sse line\n",
        b"data: {broken json\n\n",
        b":comment\r\n\r\n",
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\r\n\r\n',
        b"data: [DONE]\n\n",
    ]
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    assert post(fake_server, stream=True) == b"".join(chunks)
    step = spans.only_step()
    response = jattr(step, attr.STEP_NORMALIZED_RESPONSE)
    assert response["content"][0]["text"] == "ok \ufffd\ufffd"
    summary = jattr(step, attr.STEP_METADATA)["stream_summary"]
    assert summary["malformed_event_count"] == 1
    assert step.attributes[attr.STEP_STATUS] == "completed"


@pytest.mark.parametrize("split", [1, 3, 7])
def test_sse_split_at_any_byte(spans: Spans, fake_server: FakeServer, split: int) -> None:
    text = "naïve ✓ 😀 done"
    raw = (
        "data: "
        + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}, ensure_ascii=False)
        + "\r\n\r\ndata: [DONE]\r\n\r\n"
    ).encode()
    chunks = [raw[i : i + split] for i in range(0, len(raw), split)]
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    assert post(fake_server, stream=True) == raw
    response = jattr(spans.only_step(), attr.STEP_NORMALIZED_RESPONSE)
    assert response["content"] == [{"type": "text", "text": text}]


def test_huge_json_body_is_passed_through_and_bounded(
    spans: Spans, fake_server: FakeServer
) -> None:
    text = "y" * (9 * 1024 * 1024)
    body = json.dumps(
        {
            "id": "big",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()
    fake_server.enqueue(Reply(body=body, headers=JSON_HEADERS))
    assert post(fake_server) == body
    step = spans.only_step()
    (attempt,) = jattr(step, attr.STEP_ATTEMPTS)
    assert base64.b64decode(attempt["response_body"]) == b"[TRUNCATED]"
    metadata = jattr(step, attr.STEP_METADATA)
    assert metadata["response_too_large_to_normalize"] == len(body)
    assert len(step.attributes[attr.STEP_ATTEMPTS]) < 10_000  # nothing huge on the span


def test_large_stream_text_is_capped(spans: Spans, fake_server: FakeServer) -> None:
    piece = "z" * 1000
    chunks = [
        (
            "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}) + "\n\n"
        ).encode()
        for _ in range(200)
    ] + [b"data: [DONE]\n\n"]
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    assert post(fake_server, stream=True) == b"".join(chunks)
    response = jattr(spans.only_step(), attr.STEP_NORMALIZED_RESPONSE)
    stored_text = "".join(p.get("text", "") for p in response["content"])
    assert 9_000 < len(stored_text) <= 50_001  # bounded, never the whole 200,000
