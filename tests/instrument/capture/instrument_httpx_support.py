"""What the ``instrument_httpx()`` tests share: a configured process that records into a
fresh SQLite store with every httpx/httpx2 client instrumented, undone after the test."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.metrics import Metrics
from chatdebug.store import Step
from tests.fakes import wire
from tests.fakes.server import JSON_HEADERS, Reply

MESSAGES: Any = [{"role": "user", "content": "Tell me a joke"}]


class Recorded:
    """The store the instrumented process writes to, read after a flush."""

    def __init__(self, config: chatdebug.Configuration) -> None:
        self.config = config

    def steps(self, run: chatdebug.RunHandle) -> list[Step]:
        assert run.id is not None, "the run did not record"
        assert chatdebug.flush(), "the exporter did not write everything in time"
        return self.config.store.list_steps(run.id)

    def only_step(self, run: chatdebug.RunHandle) -> Step:
        steps = self.steps(run)
        assert len(steps) == 1, [(s.step_number, s.normalized_request) for s in steps]
        return steps[0]

    def run_count(self, chat_id: str) -> int:
        assert chatdebug.flush()
        return len(self.config.store.list_runs(chat_id))


@pytest.fixture
def recorded(sqlite_url: str) -> Iterator[Recorded]:
    """``configure(enabled=True, instrument_httpx=True)``; uninstrumented afterwards so
    that no other test sees patched client classes."""
    config = chatdebug.configure(
        sqlite_url, enabled=True, instrument_httpx=True, metrics=Metrics(CollectorRegistry())
    )
    try:
        yield Recorded(config)
    finally:
        chatdebug.uninstrument_httpx()
        chatdebug.shutdown()


def assert_chat_step(step: Step, *, text: str, operation: str = "generate") -> None:
    """A completed OpenAI-format chat step holding the request and the answer."""
    assert step.status == "completed", step.error
    assert step.operation == operation
    assert step.normalized_request["messages"][0]["parts"][0]["text"] == "Tell me a joke"
    assert step.normalized_response is not None
    assert step.normalized_response["content"] == [{"type": "text", "text": text}]
    assert step.usage is not None and step.usage["input_tokens"] > 0
    (attempt,) = step.attempts
    assert attempt["status"] == "completed" and attempt["response_status"] == 200


def mistral_reply(text: str) -> Reply:
    """A Mistral ``/v1/chat/completions`` answer (the same shape as OpenAI's, without
    OpenAI's extra fields)."""
    body = {
        "id": "cmpl-e5cc70bb28c444948073e77776eb30ef",
        "object": "chat.completion",
        "model": "mistral-small-latest",
        "created": 1_760_000_000,
        "usage": {"prompt_tokens": 16, "completion_tokens": 3, "total_tokens": 19},
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "finish_reason": "stop",
            }
        ],
    }
    return Reply(body=json.dumps(body).encode(), headers=JSON_HEADERS)


def mistral_stream_reply(pieces: list[str]) -> Reply:
    """A streamed Mistral answer: OpenAI-style chunks, usage on the last one, ``[DONE]``."""
    return wire.openai_stream_reply(pieces, model="mistral-small-latest")


def embeddings_reply(model: str) -> Reply:
    """An ``/v1/embeddings`` answer (OpenAI and Mistral share it): no chat codec applies."""
    body = {
        "id": f"emb-{uuid.uuid4().hex[:8]}",
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "embedding": [0.25, -0.5, 0.125], "index": 0}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4},
    }
    return Reply(body=json.dumps(body).encode(), headers=JSON_HEADERS)
