"""Only model calls become steps under process-wide instrumentation; a client built with
chatdebug's own transport records everything; ``stream_usage`` asks Chat Completions
streams for usage."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import openai
import pytest
from prometheus_client import CollectorRegistry, generate_latest

import chatdebug
from chatdebug._not_recorded import NOT_A_MODEL_CALL, not_recorded_counts
from chatdebug.instrument.capture import compile_model_urls, is_model_call
from chatdebug.metrics import Metrics
from chatdebug.store import Step
from tests.fakes import wire
from tests.fakes.server import JSON_HEADERS, FakeServer, Reply

MESSAGES: Any = [{"role": "user", "content": "Tell me a joke"}]


def _ok() -> Reply:
    return Reply(200, JSON_HEADERS, b'{"ok":true}')


class Setup:
    def __init__(self, config: chatdebug.Configuration, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics

    def steps(self, run: chatdebug.RunHandle) -> list[Step]:
        assert run.id is not None
        assert chatdebug.flush()
        return self.config.store.list_steps(run.id)


def _configure(sqlite_url: str, **options: Any) -> Iterator[Setup]:
    metrics = Metrics(CollectorRegistry())
    config = chatdebug.configure(
        sqlite_url, enabled=True, instrument_httpx=True, metrics=metrics, **options
    )
    try:
        yield Setup(config, metrics)
    finally:
        chatdebug.uninstrument_httpx()
        chatdebug.shutdown()


@pytest.fixture
def patched(sqlite_url: str) -> Iterator[Setup]:
    yield from _configure(sqlite_url, model_urls=["*/internal/generate", re.compile(r"/llm/")])


@pytest.fixture
def usage_asked(sqlite_url: str) -> Iterator[Setup]:
    yield from _configure(sqlite_url, stream_usage=True)


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_only_model_calls_become_steps_through_a_patched_client(
    patched: Setup, fake_server: FakeServer, lib: Any
) -> None:
    base = fake_server.url
    fake_server.enqueue(
        _ok(),  # a tool fetching a page
        _ok(),  # an SDK's trace exporter
        wire.openai_reply("Hello!"),  # a chat completion
        _ok(),  # an unknown route whose body is a model call
        _ok(),  # a URL the user declared
        _ok(),  # a URL matching the user's compiled pattern
    )
    before = not_recorded_counts()[NOT_A_MODEL_CALL]
    with chatdebug.run(chat_id="c-filter") as run, lib.Client() as client:
        assert client.get(f"{base}/weather?city=Oslo").json() == {"ok": True}
        client.post(f"{base}/v1/traces/ingest", json={"spans": [1, 2]})
        client.post(f"{base}/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
        client.post(f"{base}/gateway/run", json={"model": "m", "input": "hi"})
        client.post(f"{base}/internal/generate", content=b"free text")
        client.post(f"{base}/llm/answer", content=b"free text")
    steps = patched.steps(run)
    paths = [s.attempts[0]["path"] for s in steps]
    assert paths == ["/v1/chat/completions", "/gateway/run", "/internal/generate", "/llm/answer"]
    assert not_recorded_counts()[NOT_A_MODEL_CALL] - before == 2
    assert len(fake_server.requests) == 6  # every request still went out
    exposed = generate_latest(patched.metrics.registry).decode()
    assert 'chatdebug_requests_not_recorded_total{reason="not_a_model_call"}' in exposed


def test_chatdebug_own_client_records_every_request(
    patched: Setup, fake_server: FakeServer
) -> None:
    fake_server.enqueue(_ok())
    with chatdebug.run(chat_id="c-own") as run, chatdebug.httpx_client() as client:
        client.get(f"{fake_server.url}/weather")
    (step,) = patched.steps(run)
    assert step.attempts[0]["path"] == "/weather"


def test_requests_outside_a_run_are_not_counted(patched: Setup, fake_server: FakeServer) -> None:
    fake_server.enqueue(_ok())
    before = not_recorded_counts()[NOT_A_MODEL_CALL]
    with httpx.Client() as client:
        client.get(f"{fake_server.url}/weather")
    assert not_recorded_counts()[NOT_A_MODEL_CALL] == before


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("POST", "/v1/chat/completions", None, True),
        ("POST", "/openai/deployments/d/chat/completions", None, True),
        ("POST", "/v1/responses", None, True),
        ("POST", "/v1/messages", None, True),
        ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", None, True),
        ("POST", "/v1/embeddings", None, True),
        ("POST", "/v1/completions", None, True),
        ("POST", "/v1/audio/transcriptions", None, True),
        ("POST", "/api/chat", None, True),
        ("POST", "/model/anthropic.claude-v2/invoke", None, True),
        ("GET", "/weather", None, False),
        ("POST", "/v1/traces/ingest", b'{"spans":[]}', False),
        ("POST", "/search", b'{"query":"model messages"}', False),
        ("POST", "/search", b'{"model":"m","messages":[]}', True),
        ("POST", "/search", b'{"model":"m","contents":[]}', True),
        ("POST", "/search", b'{"model":7,"messages":[]}', False),
        ("POST", "/search", b"not json", False),
        ("GET", "/search", b'{"model":"m","messages":[]}', False),
    ],
)
def test_model_call_rule(method: str, path: str, body: bytes | None, expected: bool) -> None:
    url = f"http://example.test{path}"
    assert is_model_call(method, url, "example.test", path, None, lambda: body, ()) is expected


def test_model_urls_globs_match_the_whole_url_and_patterns_anywhere() -> None:
    patterns = compile_model_urls(["https://llm.internal/*", re.compile(r"/generate$")])

    def check(url: str) -> bool:
        path = httpx.URL(url).path
        return is_model_call("POST", url, "h", path, None, lambda: None, patterns)

    assert check("https://llm.internal/v9/anything?x=1")
    assert check("https://other.test/api/generate")
    assert not check("https://evil.test/https://llm.internal/x")
    assert not check("https://other.test/generate/more")
    with pytest.raises(ValueError, match="model_urls"):
        compile_model_urls([""])
    with pytest.raises(ValueError, match="model_urls"):
        chatdebug.configure("sqlite:///:memory:", model_urls=[42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="model_urls"):
        chatdebug.configure("sqlite:///:memory:", model_urls=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stream_usage"):
        chatdebug.configure("sqlite:///:memory:", stream_usage="yes")  # type: ignore[arg-type]


def test_stream_usage_asks_a_chat_stream_for_usage_and_says_so(
    usage_asked: Setup, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_stream_reply(["Hel", "lo"]))
    with chatdebug.run(chat_id="c-usage") as run:
        client = openai.OpenAI(api_key="sk-test", base_url=f"{fake_server.url}/v1", max_retries=0)
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello"
    sent = json.loads(fake_server.requests[0].body)
    assert sent["stream_options"] == {"include_usage": True}
    assert fake_server.requests[0].headers["content-length"] == str(
        len(fake_server.requests[0].body)
    )
    (step,) = usage_asked.steps(run)
    assert step.normalized_request["added_by_chatdebug"] == ["stream_options.include_usage"]
    recorded_body = json.loads(base64.b64decode(step.attempts[0]["request_body"]))
    assert recorded_body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": MESSAGES},  # not a stream
        {
            "model": "m",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": False},
        },  # the caller decided
    ],
    ids=["not-a-stream", "caller-decided"],
)
def test_stream_usage_leaves_other_requests_as_sent(
    usage_asked: Setup, fake_server: FakeServer, body: dict[str, Any]
) -> None:
    fake_server.enqueue(wire.openai_reply("Hi"))
    raw = json.dumps(body).encode()
    with chatdebug.run(chat_id="c-as-sent") as run, httpx2.Client() as client:
        client.post(
            f"{fake_server.url}/v1/chat/completions",
            content=raw,
            headers={"content-type": "application/json"},
        )
    assert fake_server.requests[0].body == raw
    (step,) = usage_asked.steps(run)
    assert "added_by_chatdebug" not in step.normalized_request


def test_without_stream_usage_a_stream_is_sent_as_made(
    patched: Setup, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_stream_reply(["Hi"]))
    client = openai.OpenAI(api_key="sk-test", base_url=f"{fake_server.url}/v1", max_retries=0)
    with chatdebug.run(chat_id="c-plain-stream"):
        for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            pass
    assert "stream_options" not in json.loads(fake_server.requests[0].body)


# -- stream_usage with the client libraries that do not ask for usage themselves ---------

pytestmark_libraries = pytest.mark.slow  # importing LangChain or LiteLLM takes seconds


def _usage_when_asked(request: Any) -> Reply:
    """A Chat Completions stream that reports usage only when asked to, as OpenAI's does."""
    options = json.loads(request.body).get("stream_options") or {}
    return wire.openai_stream_reply(["Hel", "lo"], usage=options.get("include_usage") is True)


@pytestmark_libraries
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_stream_usage_with_a_langchain_stream(usage_asked: Setup, fake_server: FakeServer) -> None:
    from langchain_openai import ChatOpenAI

    fake_server.handler = _usage_when_asked
    model = ChatOpenAI(
        model="gpt-4o", api_key="sk-test", base_url=f"{fake_server.url}/v1", max_retries=0
    )
    with chatdebug.run(chat_id="c-langchain") as run:
        text = "".join(str(chunk.content) for chunk in model.stream("Tell me a joke"))
    assert text == "Hello"
    assert json.loads(fake_server.requests[0].body)["stream_options"] == {"include_usage": True}
    (step,) = usage_asked.steps(run)
    assert step.status == "completed", step.error
    assert step.usage is not None and step.usage["output_tokens"] > 0
    assert "usage_unavailable" not in (step.metadata or {})


@pytestmark_libraries
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_stream_usage_with_a_litellm_stream(
    usage_asked: Setup, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    import litellm

    fake_server.handler = _usage_when_asked
    with chatdebug.run(chat_id="c-litellm-usage") as run:
        response = litellm.completion(
            model="openai/gpt-4o",
            messages=MESSAGES,
            stream=True,
            api_base=f"{fake_server.url}/v1",
            api_key="sk-test",
        )
        text = "".join(c.choices[0].delta.content or "" for c in response if c.choices)
    assert text == "Hello"
    assert json.loads(fake_server.requests[0].body)["stream_options"] == {"include_usage": True}
    (step,) = usage_asked.steps(run)
    assert step.status == "completed", step.error
    assert step.usage is not None and step.usage["output_tokens"] > 0
