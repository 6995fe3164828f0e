"""Support for the read API and viewer tests: runs recorded through the real openai SDK
against a loopback provider, and the API mounted on a Starlette app."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

import chatdebug
from chatdebug.metrics import Metrics
from chatdebug.server import ServerState, create_app
from chatdebug.store import Store
from tests.fakes import wire
from tests.fakes.server import JSON_HEADERS, FakeServer, Reply
from tests.support import wait_for

READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-fedcba9876543210"
API_KEY = "sk-proj-apiTESTkey0123456789abcdefghij"
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def build_app(
    store: Store,
    *,
    read_token: str | None = READ_TOKEN,
    admin_token: str | None = ADMIN_TOKEN,
    forced: bool = False,
) -> Starlette:
    """The application ``chatdebug serve`` runs (metrics, health, API, viewer)."""
    state = ServerState(
        store=store,
        metrics=Metrics(CollectorRegistry()),
        api_token=read_token,
        admin_token=admin_token,
        forced_enabled=forced,
    )
    return create_app(state)


def client_for(server: FakeServer, retries: int = 2) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url + "/v1",
        api_key=API_KEY,
        http_client=chatdebug.httpx2_client(),
        max_retries=retries,
    )


def rate_limited() -> Reply:
    reply = wire.openai_error_reply(429, "Rate limit reached", "rate_limit_error")
    reply.headers = {**reply.headers, "retry-after-ms": "5"}
    return reply


@dataclass
class Recorded:
    """Ids of the runs :func:`record_runs` made."""

    chat_id: str
    tool_run: uuid.UUID
    error_run: uuid.UUID
    other_chat_run: uuid.UUID


def record_tool_turn(server: FakeServer, chat_id: str, user_id: str = "u-1") -> uuid.UUID:
    """A chat turn of three steps: a tool call, a rate-limited retry, a stream."""
    call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    server.enqueue(
        wire.openai_reply(tool_calls=[call], prompt_tokens=50, completion_tokens=10),
        rate_limited(),
        wire.openai_reply("Sunny, 18°C", prompt_tokens=70, completion_tokens=6),
        wire.openai_stream_reply(["Wear ", "a jacket"]),
    )
    question = "What's the weather in Paris?"
    messages: Any = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": question},
    ]
    with (
        client_for(server) as client,
        chatdebug.run(
            chat_id, user_id=user_id, first_message=question, trigger_message_id=7
        ) as run,
    ):
        first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
        stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        for _ in stream:
            pass
    assert run.id is not None
    return run.id


def record_error_turn(server: FakeServer, chat_id: str, user_id: str = "u-2") -> uuid.UUID:
    """A chat turn whose only call fails with a 500 (no retries)."""
    server.enqueue(wire.openai_error_reply(500, "The server had an error", "server_error"))
    try:
        with (
            client_for(server, retries=0) as client,
            chatdebug.run(chat_id, user_id=user_id, first_message="break please") as run,
        ):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "break please"}]
            )
    except openai.InternalServerError:
        pass
    assert run.id is not None
    return run.id


THINKING = "The user wants a haiku. Five, seven, five syllables."


def record_anthropic_thinking_turn(server: FakeServer, chat_id: str) -> uuid.UUID:
    """A turn through the anthropic SDK whose reply starts with a thinking block."""
    message = wire.anthropic_message("Autumn moonlight")
    message["content"] = [
        {"type": "thinking", "thinking": THINKING, "signature": "c2lnbmF0dXJl"},
        {"type": "text", "text": "Autumn moonlight"},
    ]
    server.enqueue(Reply(body=json.dumps(message).encode(), headers=JSON_HEADERS))
    claude = anthropic.Anthropic(
        base_url=server.url,
        api_key="sk-ant-apiTESTkey0123456789abcdef",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    with claude, chatdebug.run(chat_id, first_message="A haiku, please") as run:
        claude.messages.create(
            model="claude-opus-4-6",
            max_tokens=64,
            system="You write haiku.",
            messages=[{"role": "user", "content": "A haiku, please"}],
        )
    assert run.id is not None
    return run.id


def record_simple_turn(
    server: FakeServer, chat_id: str, text: str = "Hello!", user_text: str = "hi", **kw: Any
) -> uuid.UUID:
    server.enqueue(wire.openai_reply(text))
    with client_for(server) as client, chatdebug.run(chat_id, first_message=user_text, **kw) as run:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": user_text}]
        )
    assert run.id is not None
    return run.id


def record_stream_without_usage(server: FakeServer, chat_id: str) -> uuid.UUID:
    """A streamed turn as LiteLLM, LangChain and LlamaIndex send it by default: without
    ``stream_options.include_usage``, so the provider reports no usage."""
    server.enqueue(wire.openai_stream_reply(["Hel", "lo"], usage=False))
    with client_for(server) as client, chatdebug.run(chat_id, first_message="hi") as run:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello"
    assert run.id is not None
    return run.id


def record_runs(server: FakeServer) -> Recorded:
    chat_id = f"chat-{uuid.uuid4().hex[:8]}"
    recorded = Recorded(
        chat_id=chat_id,
        tool_run=record_tool_turn(server, chat_id),
        error_run=record_error_turn(server, chat_id),
        other_chat_run=record_simple_turn(server, chat_id + "-other"),
    )
    assert chatdebug.flush()
    return recorded


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServeProcess:
    """A real ``chatdebug serve`` process on a loopback port, reading ``database_url``."""

    def __init__(self, database_url: str, *extra: str) -> None:
        import os
        import subprocess
        import sys

        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "CHATDEBUG_API_TOKEN": READ_TOKEN,
            "CHATDEBUG_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatdebug", "serve", "--database-url", database_url,
             "--listen", f"127.0.0.1:{self.port}", "--no-purge", "--no-finalize", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"chatdebug serve exited: {self.output()}")
            try:
                return httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_for(healthy, 20.0):
            self.close()
            raise AssertionError(f"chatdebug serve did not become healthy: {self.output()}")

    def output(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stdout.read() if self.process.stdout else ""

    def close(self) -> None:
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()
