"""``chatdebug.instrument_httpx()`` / ``uninstrument_httpx()`` with plain httpx and httpx2
clients of both kinds (default, custom transport, mounts): recorded inside a run, a
pass-through outside, never twice, undone cleanly, independent of import order."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest

import chatdebug
from chatdebug.instrument.capture._patch import is_httpx_instrumented
from tests.fakes import wire
from tests.fakes.server import FakeServer
from tests.instrument.capture.instrument_httpx_support import (
    MESSAGES,
    Recorded,
    assert_chat_step,
    recorded,
)

__all__ = ["recorded"]  # the fixture, imported for the tests below

ROOT = Path(__file__).resolve().parents[3]
LIBS: dict[str, Any] = {"httpx": httpx, "httpx2": httpx2}
BODY = {"model": "gpt-4o", "messages": MESSAGES}
CLIENT_CLASSES: tuple[Any, ...] = (
    httpx.Client,
    httpx.AsyncClient,
    httpx2.Client,
    httpx2.AsyncClient,
)
# Taken at collection time, before any test instruments anything.
ORIGINAL_INITS = {cls: cls.__dict__["__init__"] for cls in CLIENT_CLASSES}


def _header_adding(lib: Any, is_async: bool) -> Any:
    """A custom transport of the application's own: adds a header, then sends."""
    base = lib.AsyncHTTPTransport if is_async else lib.HTTPTransport

    class Tagging(base):  # type: ignore[misc, valid-type]
        def handle_request(self, request: Any) -> Any:
            request.headers["x-app-tag"] = "custom"
            return super().handle_request(request)

        async def handle_async_request(self, request: Any) -> Any:
            request.headers["x-app-tag"] = "custom"
            return await super().handle_async_request(request)

    return Tagging()


def _client_options(lib: Any, how: str, url: str, is_async: bool) -> dict[str, Any]:
    if how == "default":
        return {}
    if how == "transport":
        return {"transport": _header_adding(lib, is_async)}
    # A mount for the server's origin; the default transport would also work, so the
    # header proves the mounted one was used.
    return {"mounts": {url: _header_adding(lib, is_async)}}


def _post(lib_name: str, how: str, is_async: bool, url: str) -> dict[str, Any]:
    lib = LIBS[lib_name]
    options = _client_options(lib, how, url, is_async)
    if not is_async:
        with lib.Client(**options) as client:
            return dict(client.post(url + "/v1/chat/completions", json=BODY).json())

    async def main() -> dict[str, Any]:
        async with lib.AsyncClient(**options) as client:
            response = await client.post(url + "/v1/chat/completions", json=BODY)
            return dict(response.json())

    return asyncio.run(main())


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("how", ["default", "transport", "mounts"])
@pytest.mark.parametrize("lib_name", ["httpx", "httpx2"])
def test_plain_clients_record_inside_a_run(
    recorded: Recorded, fake_server: FakeServer, lib_name: str, how: str, is_async: bool
) -> None:
    fake_server.enqueue(wire.openai_reply("plain"), wire.openai_reply("outside"))
    with chatdebug.run("c-plain") as run:
        answer = _post(lib_name, how, is_async, fake_server.url)
    assert answer["choices"][0]["message"]["content"] == "plain"
    # Outside a run the same kind of client is a plain pass-through.
    outside = _post(lib_name, how, is_async, fake_server.url)
    assert outside["choices"][0]["message"]["content"] == "outside"
    step = recorded.only_step(run)
    assert_chat_step(step, text="plain")
    assert step.attempts[0]["path"] == "/v1/chat/completions"
    tagged = [r.headers.get("x-app-tag") for r in fake_server.requests]
    assert tagged == ([None, None] if how == "default" else ["custom", "custom"])
    assert recorded.run_count("c-plain") == 1


@pytest.mark.parametrize("lib_name", ["httpx", "httpx2"])
def test_a_client_with_our_transport_records_each_attempt_once(
    recorded: Recorded, fake_server: FakeServer, lib_name: str
) -> None:
    lib = LIBS[lib_name]
    chatdebug.instrument_httpx()  # a second call changes nothing
    fake_server.enqueue(*(wire.openai_reply(f"r{i}") for i in range(4)))
    ours = chatdebug.httpx_client() if lib_name == "httpx" else chatdebug.httpx2_client()
    wrapped = lib.Client(transport=chatdebug.Transport(lib.HTTPTransport()))
    mounted = lib.Client(mounts={fake_server.url: chatdebug.Transport(lib.HTTPTransport())})
    plain = lib.Client()
    with ours, wrapped, mounted, plain, chatdebug.run("c-once") as run:
        for client in (ours, wrapped, mounted, plain):
            client.post(fake_server.url + "/v1/chat/completions", json=BODY).raise_for_status()
    steps = recorded.steps(run)
    assert [len(s.attempts) for s in steps] == [1, 1, 1, 1]
    assert [
        s.normalized_response["content"][0]["text"] for s in steps if s.normalized_response
    ] == [
        "r0",
        "r1",
        "r2",
        "r3",
    ]
    assert len(fake_server.requests) == 4


class _Forwarding(httpx.BaseTransport, httpx2.BaseTransport):
    """An application's wrapping transport (retries, caching…) around another one."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def handle_request(self, request: Any) -> Any:
        return self._transport.handle_request(request)

    def close(self) -> None:
        self._transport.close()


@pytest.mark.parametrize("lib_name", ["httpx", "httpx2"])
def test_a_transport_wrapping_ours_is_not_wrapped_again(
    recorded: Recorded, fake_server: FakeServer, lib_name: str
) -> None:
    lib = LIBS[lib_name]
    fake_server.enqueue(wire.openai_reply("inner"))
    nested = _Forwarding(_Forwarding(chatdebug.Transport(lib.HTTPTransport())))
    with lib.Client(transport=nested) as client, chatdebug.run("c-nested") as run:
        assert client._transport is nested
        client.post(fake_server.url + "/v1/chat/completions", json=BODY).raise_for_status()
    assert len(recorded.only_step(run).attempts) == 1


def test_clients_created_before_instrumenting_record_from_their_next_request(
    request: pytest.FixtureRequest, fake_server: FakeServer
) -> None:
    import openai

    fake_server.enqueue(wire.openai_reply("early sync"), wire.openai_reply("early async"))
    early = openai.OpenAI(base_url=fake_server.url + "/v1", api_key="sk-x", max_retries=0)
    early_async = httpx.AsyncClient()
    assert type(early._client._transport) is httpx2.HTTPTransport
    recorded: Recorded = request.getfixturevalue("recorded")  # instruments now

    async def post() -> None:
        async with early_async:
            response = await early_async.post(fake_server.url + "/v1/chat/completions", json=BODY)
            response.raise_for_status()

    with early, chatdebug.run("c-early") as run:
        out = early.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        asyncio.run(post())
    assert out.choices[0].message.content == "early sync"
    sync_step, async_step = recorded.steps(run)
    assert_chat_step(sync_step, text="early sync")
    assert_chat_step(async_step, text="early async")


def test_uninstrument_restores_the_libraries_and_silences_old_clients(
    recorded: Recorded, fake_server: FakeServer
) -> None:
    fake_server.enqueue(*(wire.openai_reply("x") for _ in range(4)))
    made_while_on = httpx2.Client()
    async_made_while_on = httpx.AsyncClient()
    assert "chatdebug" in type(made_while_on._transport).__module__
    assert all(cls.__dict__["__init__"] is not ORIGINAL_INITS[cls] for cls in CLIENT_CLASSES)
    chatdebug.uninstrument_httpx()
    chatdebug.uninstrument_httpx()  # idempotent
    assert not is_httpx_instrumented()
    for cls in CLIENT_CLASSES:
        assert cls.__dict__["__init__"] is ORIGINAL_INITS[cls], cls
    made_after = httpx2.Client()
    assert type(made_after._transport) is httpx2.HTTPTransport

    async def async_post() -> None:
        async with async_made_while_on:
            response = await async_made_while_on.post(
                fake_server.url + "/v1/chat/completions", json=BODY
            )
            response.raise_for_status()

    with made_while_on, made_after, chatdebug.run("c-off") as run:
        for client in (made_while_on, made_after):
            client.post(fake_server.url + "/v1/chat/completions", json=BODY).raise_for_status()
        asyncio.run(async_post())
    assert recorded.steps(run) == []
    assert len(fake_server.requests) == 3

    # Instrumenting again records through new clients once more.
    chatdebug.instrument_httpx()
    with httpx2.Client() as again, chatdebug.run("c-again") as run_again:
        again.post(fake_server.url + "/v1/chat/completions", json=BODY).raise_for_status()
    assert len(recorded.only_step(run_again).attempts) == 1


def test_patched_transport_keeps_the_inner_transports_attributes(recorded: Recorded) -> None:
    with httpx.Client() as client:
        assert "chatdebug" in type(client._transport).__module__
        assert client._transport._pool is not None  # type: ignore[attr-defined]
    with httpx2.Client() as client2:
        assert "chatdebug" in type(client2._transport).__module__
        assert client2._transport._pool is not None  # type: ignore[attr-defined]


def test_configure_option_instruments(sqlite_url: str) -> None:
    try:
        chatdebug.configure(sqlite_url, instrument_httpx=True)
        assert is_httpx_instrumented()
    finally:
        chatdebug.uninstrument_httpx()
        chatdebug.shutdown()
    assert not is_httpx_instrumented()


_IMPORT_ORDER_SCRIPT = """
import json, os, sys
import chatdebug
if sys.argv[1] == "instrument-first":
    chatdebug.instrument_httpx()
import anthropic, openai
if sys.argv[1] == "import-first":
    chatdebug.instrument_httpx()
from chatdebug.store import open_store
config = chatdebug.configure(os.environ["DB_URL"], enabled=True)
url = os.environ["SERVER_URL"]
client = openai.OpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0)
claude = anthropic.Anthropic(base_url=url, api_key="sk-ant-x", max_retries=0)
with chatdebug.run("c-order") as run:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    claude.messages.create(
        model="claude-opus-4-6", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
assert chatdebug.flush()
steps = config.store.list_steps(run.id)
print(json.dumps([[s.status, s.attempts[0]["path"]] for s in steps]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("order", ["instrument-first", "import-first"])
def test_import_order_does_not_matter(fake_server: FakeServer, tmp_path: Path, order: str) -> None:
    fake_server.enqueue(wire.openai_reply("one"), wire.anthropic_reply("two"))
    env = {
        **os.environ,
        "DB_URL": f"sqlite:///{tmp_path / 'order.db'}",
        "SERVER_URL": fake_server.url,
        "PYTHONPATH": str(ROOT),
    }
    script = textwrap.dedent(_IMPORT_ORDER_SCRIPT)
    done = subprocess.run(
        [sys.executable, "-c", script, order],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [
        ["completed", "/v1/chat/completions"],
        ["completed", "/v1/messages"],
    ]
