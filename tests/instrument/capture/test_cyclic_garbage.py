"""A recorded call leaves nothing for the cyclic garbage collector.

Everything a run, a step and an attempt hold (spans, requests, response bodies, records)
goes by reference counting as soon as nothing refers to it. A reference cycle anywhere
among them leaves all of it to the cyclic collector instead: its collections then run
far more often, and each one is a pause of the application's thread, the full ones long
in a process with many objects. Checked through the real SDKs on every way a call ends
(answer, stream, explicit step, retry, error, stream closed early, async), with the
store recording as in production.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import openai
import pytest
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.instrument.capture import drain
from chatdebug.metrics import Metrics
from tests.fakes import wire
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply

MESSAGES = [{"role": "user", "content": "hi"}]
OURS = ("chatdebug", "opentelemetry")


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[chatdebug.Configuration]:
    config = chatdebug.configure(
        f"sqlite:///{tmp_path / 'garbage.db'}",
        enabled=True,
        metrics=Metrics(CollectorRegistry()),
    )
    try:
        yield config
    finally:
        chatdebug.shutdown()


@dataclass
class Clients:
    """Made before the measured call: a client and its connection pool are cycles of
    their own, made once per application, not once per call."""

    server: FakeServer
    openai: openai.OpenAI
    retrying: openai.OpenAI
    anthropic: anthropic.Anthropic
    async_openai: openai.AsyncOpenAI


def _clients(server: FakeServer) -> Clients:
    def sdk(retries: int) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=server.url + "/v1",
            api_key="sk-test",
            max_retries=retries,
            http_client=chatdebug.httpx2_client(),
        )

    return Clients(
        server,
        sdk(0),
        sdk(1),
        anthropic.Anthropic(
            base_url=server.url,
            api_key="sk-test",
            max_retries=0,
            http_client=chatdebug.httpx2_client(),
        ),
        openai.AsyncOpenAI(
            base_url=server.url + "/v1",
            api_key="sk-test",
            max_retries=0,
            http_client=chatdebug.async_httpx2_client(),
        ),
    )


def _answer(clients: Clients) -> None:
    clients.server.enqueue(wire.openai_reply("x"))
    with chatdebug.run("c"):
        clients.openai.chat.completions.create(model="m", messages=MESSAGES)


def _stream_in_explicit_step(clients: Clients) -> None:
    clients.server.enqueue(Reply(chunks=wire.openai_stream_chunks(["a", "b"]), headers=SSE_HEADERS))
    with chatdebug.run("c"), chatdebug.step():
        for _ in clients.openai.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            pass


def _anthropic_stream(clients: Clients) -> None:
    clients.server.enqueue(wire.anthropic_stream_reply(["a", "b"]))
    with (
        chatdebug.run("c"),
        clients.anthropic.messages.stream(
            model="claude", max_tokens=10, messages=MESSAGES
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass


def _retried(clients: Clients) -> None:
    clients.server.enqueue(
        Reply(
            status=429,
            body=b'{"error":{"message":"slow down"}}',
            headers={**JSON_HEADERS, "retry-after-ms": "1"},
        ),
        wire.openai_reply("x"),
    )
    with chatdebug.run("c"):
        clients.retrying.chat.completions.create(model="m", messages=MESSAGES)


def _failed(clients: Clients) -> None:
    clients.server.enqueue(
        Reply(status=500, body=b'{"error":{"message":"boom"}}', headers=JSON_HEADERS)
    )
    with pytest.raises(openai.InternalServerError), chatdebug.run("c"):
        clients.openai.chat.completions.create(model="m", messages=MESSAGES)


def _stream_closed_early(clients: Clients) -> None:
    clients.server.enqueue(
        Reply(chunks=wire.openai_stream_chunks(["a", "b", "c"]), headers=SSE_HEADERS)
    )
    with chatdebug.run("c"):
        stream = clients.openai.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        next(iter(stream))
        stream.close()


def _async_stream(clients: Clients) -> None:
    clients.server.enqueue(Reply(chunks=wire.openai_stream_chunks(["a", "b"]), headers=SSE_HEADERS))

    async def main() -> None:
        async with chatdebug.run("c"):
            stream = await clients.async_openai.chat.completions.create(
                model="m", messages=MESSAGES, stream=True
            )
            async for _ in stream:
                pass
        await clients.async_openai.close()  # in its loop; the object outlives the check

    asyncio.run(main())


@pytest.mark.parametrize(
    "call",
    [
        _answer,
        _stream_in_explicit_step,
        _anthropic_stream,
        _retried,
        _failed,
        _stream_closed_early,
        _async_stream,
    ],
    ids=lambda call: call.__name__.strip("_"),
)
def test_a_recorded_call_leaves_no_cyclic_garbage(
    recording: chatdebug.Configuration,
    fake_server: FakeServer,
    call: Callable[[Clients], None],
) -> None:
    clients = _clients(fake_server)
    gc.collect()
    gc.disable()
    try:
        call(clients)
        assert chatdebug.flush()
        assert drain()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        ours = sorted(
            {type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith(OURS)}
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        for client in (clients.openai, clients.retrying, clients.anthropic):
            client.close()
    store = recording.store
    assert store is not None
    (run,) = store.list_runs("c")
    assert store.list_steps(run.id) != []  # recorded, not passed through
    assert ours == []
