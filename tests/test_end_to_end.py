"""End to end: the real openai SDK → chatdebug transport → spans → exporter → store, on
SQLite and PostgreSQL, including crashes, outages, overflow and fork."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.metrics import Metrics
from chatdebug.store import PostgresStore, Run, Store, open_store
from tests.fakes import wire
from tests.fakes.server import JSON_HEADERS, FakeServer, Reply
from tests.fakes.tcp_proxy import TCPProxy
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[1]
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


def client_for(server: FakeServer, retries: int = 2) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url + "/v1",
        api_key="sk-proj-e2eTESTkey0123456789abcdefghij",
        http_client=chatdebug.httpx2_client(),
        max_retries=retries,
    )


def rate_limited() -> Reply:
    reply = wire.openai_error_reply(429, "Rate limit reached", "rate_limit_error")
    reply.headers = {**reply.headers, "retry-after-ms": "5"}
    return reply


def test_chat_turn_lands_with_summary(
    configured: chatdebug.Configuration, fake_server: FakeServer
) -> None:
    tool_call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    fake_server.enqueue(
        wire.openai_reply(tool_calls=[tool_call], prompt_tokens=50, completion_tokens=10),
        rate_limited(),
        wire.openai_reply("Sunny, 18°C", prompt_tokens=70, completion_tokens=6),
        wire.openai_stream_reply(["Wear ", "a jacket"]),
    )
    question = "What's   the\nweather in Paris?"
    messages: Any = [{"role": "user", "content": question}]
    with (
        client_for(fake_server) as client,
        chatdebug.run("chat-e2e", user_id="u-1", first_message=question) as run,
    ):
        first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
        stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
            "Wear a jacket"
        )
    assert chatdebug.flush()
    store = configured.store
    assert run.id is not None
    stored = store.get_run(run.id)
    assert stored is not None
    assert (stored.status, stored.chat_id, stored.user_id) == ("completed", "chat-e2e", "u-1")
    assert stored.finished_at is not None and stored.trace_id
    summary = stored.summary
    assert summary["first_message"] == "What's the weather in Paris?"
    assert summary["step_count"] == 3
    assert summary["total_input_tokens"] == 50 + 70 + 9
    assert summary["total_output_tokens"] == 10 + 6 + 2
    assert summary["endpoint_label"] == "POST /v1/chat/completions"
    assert "has_error" not in summary
    assert summary["duration_ms"] >= 0
    steps = store.list_steps(run.id)
    assert [s.step_number for s in steps] == [1, 2, 3]
    assert [s.operation for s in steps] == ["generate", "generate", "stream"]
    assert all(s.status == "completed" for s in steps)
    assert steps[0].normalized_response is not None
    assert steps[0].normalized_response["content"][0]["tool_name"] == "get_weather"
    assert [a["response_status"] for a in steps[1].attempts] == [429, 200]
    assert steps[1].error is None
    assert steps[2].metadata["stream_summary"]["text_delta_count"] == 2
    assert steps[2].usage is not None and steps[2].usage["output_tokens"] == 2
    assert all(s.trace_id == stored.trace_id for s in steps)


def test_streams_closed_by_the_caller_are_judged_by_what_arrived(
    configured: chatdebug.Configuration, fake_server: FakeServer
) -> None:
    # The SDK closes a stream once it has the final event; a caller may also stop early.
    # Either way the outcome is worked out off the caller's thread, from what arrived.
    fake_server.enqueue(
        wire.openai_stream_reply(["all ", "of ", "it"]),
        wire.openai_stream_reply(["only ", "the ", "start"], chunk_delay=0.3),
    )
    messages: Any = [{"role": "user", "content": "go"}]
    with client_for(fake_server, retries=0) as client, chatdebug.run("chat-close") as run:
        whole = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        with whole:
            text = "".join(c.choices[0].delta.content or "" for c in whole if c.choices)
        assert text == "all of it"
        cut = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        with cut:
            first = next(iter(cut))
        assert first.choices  # the caller stops after the first event
    assert chatdebug.flush()
    assert run.id is not None
    complete, stopped = configured.store.list_steps(run.id)
    assert (complete.status, [a["status"] for a in complete.attempts]) == (
        "completed",
        ["completed"],
    )
    assert complete.normalized_response is not None and complete.error is None
    assert (stopped.status, [a["status"] for a in stopped.attempts]) == (
        "interrupted",
        ["failed"],
    )
    assert stopped.error is not None and stopped.error["type"] == "stream_interrupted"
    stored = configured.store.get_run(run.id)
    assert stored is not None and stored.summary["step_count"] == 2
    assert "has_error" not in stored.summary  # the caller stopped it: not a failure


@pytest.mark.slow
def test_run_is_readable_in_progress_while_open(
    configured: chatdebug.Configuration, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_reply("one"))
    store = configured.store
    with client_for(fake_server) as client, chatdebug.run("chat-live") as run:
        assert run.id is not None
        run_id = run.id
        live = wait_for(lambda: store.get_run(run_id), timeout=2.0)
        assert live is not None and live.status == "in_progress" and live.finished_at is None
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        step = wait_for(
            lambda: [s for s in store.list_steps(run_id) if s.status == "completed"], 2.0
        )
        assert step, "the finished step did not become visible while the run was open"
        assert store.get_run(run_id).status == "in_progress"  # type: ignore[union-attr]
    assert chatdebug.flush()
    assert store.get_run(run_id).status == "completed"  # type: ignore[union-attr]


def test_error_run_and_has_error(
    configured: chatdebug.Configuration, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_error_reply(400, "bad request: sk-proj-" + "A" * 30, "x"))
    with (
        client_for(fake_server, retries=0) as client,
        pytest.raises(openai.BadRequestError),
        chatdebug.run("chat-err") as run,
    ):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert chatdebug.flush()
    assert run.id is not None
    stored = configured.store.get_run(run.id)
    assert stored is not None and stored.status == "error"
    assert stored.summary["has_error"] is True
    (step,) = configured.store.list_steps(run.id)
    assert step.error is not None and step.error["provider_status"] == 400
    assert "AAAAAAAAAAAA" not in json.dumps(step.error)


@pytest.mark.slow
def test_fifty_concurrent_runs_on_threads_and_tasks(
    configured: chatdebug.Configuration, fake_server: FakeServer
) -> None:
    def echo(request: Any) -> Reply:
        text = json.loads(request.body)["messages"][0]["content"]
        body = wire.openai_completion(f"re {text}", prompt_tokens=3, completion_tokens=2)
        return Reply(body=json.dumps(body).encode(), headers=JSON_HEADERS)

    fake_server.handler = echo
    run_ids: list[uuid.UUID] = []
    lock = threading.Lock()

    def thread_run(n: int) -> None:
        with (
            client_for(fake_server) as client,
            chatdebug.run(f"t-{n}", first_message=f"t{n}") as run,
        ):
            for k in range(5):
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"t{n}-{k}"}]
                )
        with lock:
            assert run.id is not None
            run_ids.append(run.id)

    async def task_run(client: openai.AsyncOpenAI, n: int) -> None:
        async with chatdebug.run(f"a-{n}", first_message=f"a{n}") as run:
            for k in range(5):
                await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"a{n}-{k}"}]
                )
        assert run.id is not None
        run_ids.append(run.id)

    async def tasks() -> None:
        async with openai.AsyncOpenAI(
            base_url=fake_server.url + "/v1",
            api_key="sk-x",
            http_client=chatdebug.async_httpx2_client(),
            max_retries=0,
        ) as client:
            await asyncio.gather(*(task_run(client, n) for n in range(25)))

    threads = [threading.Thread(target=thread_run, args=(n,)) for n in range(25)]
    for t in threads:
        t.start()
    asyncio.run(tasks())
    for t in threads:
        t.join()
    assert chatdebug.flush(30)
    assert len(run_ids) == 50
    store = configured.store
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run is not None and run.status == "completed"
        assert run.summary["step_count"] == 5
        assert run.summary["total_input_tokens"] == 15
        assert run.summary["total_output_tokens"] == 10
        steps = store.list_steps(run_id)
        assert [s.step_number for s in steps] == [1, 2, 3, 4, 5]
        prefix = run.chat_id.replace("-", "")
        assert all(
            s.normalized_request["messages"][0]["parts"][0]["text"].startswith(prefix)
            for s in steps
        )


_CHILD = """
import sys, time
import openai, chatdebug
chatdebug.configure(sys.argv[1], enabled=True)
client = openai.OpenAI(base_url=sys.argv[2] + "/v1", api_key="sk-x",
                       http_client=chatdebug.httpx2_client(), max_retries=0)
with chatdebug.run("chat-crash") as run:
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "go"}],
                                            stream=True)
    next(iter(stream))
    chatdebug.flush()
    print(run.id, flush=True)
    time.sleep(300)
"""


@pytest.mark.slow
def test_killed_process_leaves_in_progress_until_finalize_stale(
    database_url: str, fake_server: FakeServer
) -> None:
    fake_server.enqueue(
        wire.openai_reply("first"),
        wire.openai_stream_reply(["never", "ending"], chunk_delay=0.01),
    )
    fake_server.replies[-1].hang_after_chunks = 30
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, database_url, fake_server.url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        run_id = uuid.UUID(child.stdout.readline().strip())
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        if child.stdout is not None:
            child.stdout.close()
    store = open_store(database_url)
    try:
        run = store.get_run(run_id)
        assert run is not None and run.status == "in_progress"
        steps = store.list_steps(run_id)
        assert [(s.step_number, s.status) for s in steps] == [(1, "completed"), (2, "in_progress")]
        time.sleep(1.2)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "chatdebug",
                "--database-url",
                database_url,
                "finalize-stale",
                "--threshold",
                "1s",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "finalized 1 run(s) and 1 step(s)" in result.stdout
        run = store.get_run(run_id)
        assert run is not None and run.status == "interrupted" and run.finished_at is not None
        steps = store.list_steps(run_id)
        assert [s.status for s in steps] == ["completed", "interrupted"]
    finally:
        store.close()


@pytest.mark.slow
def test_postgres_going_away_mid_run_loses_nothing(pg_url: str, fake_server: FakeServer) -> None:
    fake_server.handler = lambda request: wire.openai_reply("ok")
    open_store(pg_url).close()  # schema in place before the proxy goes down
    with TCPProxy("127.0.0.1", 5432) as proxy:
        store = PostgresStore(proxy.rewrite_url(pg_url), timeout=1.0)
        chatdebug.configure(pg_url, enabled=True, store=store, metrics=Metrics(CollectorRegistry()))
        try:
            run_ids = []
            with client_for(fake_server) as client:
                for n in range(3):
                    if n == 1:
                        proxy.stop()  # the database goes away mid-conversation
                    with chatdebug.run(f"chat-outage-{n}") as run:
                        started = time.monotonic()
                        reply = client.chat.completions.create(
                            model="m", messages=[{"role": "user", "content": "x"}]
                        )
                        assert reply.choices[0].message.content == "ok"
                        assert time.monotonic() - started < 5  # never blocked on the database
                    run_ids.append(run.id)
            assert not chatdebug.flush(1.0)  # cannot be written while it is down
            proxy.start()
            assert chatdebug.flush(30.0)
        finally:
            chatdebug.shutdown()
    reader = open_store(pg_url)
    try:
        for run_id in run_ids:
            stored: Run | None = reader.get_run(run_id)
            assert stored is not None and stored.status == "completed"
            assert stored.summary["step_count"] == 1
    finally:
        reader.close()


def test_queue_overflow_is_counted_never_raised(sqlite_url: str, fake_server: FakeServer) -> None:
    import sqlite3

    fake_server.handler = lambda request: wire.openai_reply("ok")
    metrics = Metrics(CollectorRegistry())
    config = chatdebug.configure(sqlite_url, enabled=True, queue_size=4, metrics=metrics)
    blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # the store cannot write for now
        with client_for(fake_server) as client:
            for n in range(10):
                with chatdebug.run(f"chat-{n}"):
                    client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "x"}]
                    )
        dropped = metrics.registry.get_sample_value(
            "chatdebug_exporter_events_dropped_total", {"reason": "queue_full"}
        )
        assert dropped is not None and dropped > 0
        blocker.rollback()
        assert chatdebug.flush(30)
        stored = config.store.list_runs("chat-0")
        assert stored and stored[0].status == "completed"  # the first run got through
    finally:
        blocker.close()
        chatdebug.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_records_its_own_runs(sqlite_url: str, fake_server: FakeServer) -> None:
    fake_server.handler = lambda request: wire.openai_reply("ok")
    chatdebug.configure(sqlite_url, enabled=True, metrics=Metrics(CollectorRegistry()))
    try:
        with client_for(fake_server) as client, chatdebug.run("parent"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "p"}])
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                with client_for(fake_server) as child_client, chatdebug.run("child"):
                    child_client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "c"}]
                    )
                code = 0 if chatdebug.flush(20) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert chatdebug.flush(10)
    finally:
        chatdebug.shutdown()
    store: Store = open_store(sqlite_url)
    try:
        parent_runs = store.list_runs("parent")
        child_runs = store.list_runs("child")
        assert len(parent_runs) == 1 and parent_runs[0].status == "completed"
        assert len(child_runs) == 1 and child_runs[0].status == "completed"
        assert child_runs[0].summary["step_count"] == 1
    finally:
        store.close()


def test_configured_redaction_rules_apply_before_storage(
    sqlite_url: str, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_reply("noted"))
    chatdebug.configure(
        sqlite_url,
        enabled=True,
        metrics=Metrics(CollectorRegistry()),
        redact_keys=["customer_ssn"],
        redact_headers=["x-tenant-key"],
        redact_patterns=[r"acct-\d{8}"],
    )
    try:
        with client_for(fake_server) as client, chatdebug.run("chat-redact") as run:
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "my account is acct-12345678"}],
                extra_headers={"X-Tenant-Key": "tenant-secret-value"},
                extra_body={"customer_ssn": "123-45-6789"},
            )
        assert chatdebug.flush()
        store = open_store(sqlite_url)
        try:
            assert run.id is not None
            (step,) = store.list_steps(run.id)
        finally:
            store.close()
    finally:
        chatdebug.shutdown()
    import base64

    stored = json.dumps(step.normalized_request) + json.dumps(step.attempts)
    stored += base64.b64decode(step.attempts[0]["request_body"]).decode()
    for secret in ("acct-12345678", "tenant-secret-value", "123-45-6789"):
        assert secret not in stored
    assert "[REDACTED]" in stored


def test_message_ids_set_after_the_step_ended_are_stored(
    configured: chatdebug.Configuration, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_reply("persisted answer"))
    with client_for(fake_server) as client, chatdebug.run("chat-ids", trigger_message_id=7) as run:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        step = run.last_step
        assert step is not None
        step.set_assistant_message_id(8)  # after the answer was saved as message 8
        step.set_history_tip_message_id(7)
    assert chatdebug.flush()
    assert run.id is not None
    (stored,) = configured.store.list_steps(run.id)
    assert (stored.assistant_message_id, stored.history_tip_message_id) == (8, 7)
    assert configured.store.get_run(run.id).trigger_message_id == 7  # type: ignore[union-attr]


def test_an_agent_run_is_found_by_every_word_its_history_held(
    configured: chatdebug.Configuration, fake_server: FakeServer, database_url: str
) -> None:
    # Each call sends the whole history; each step's request is indexed from the first
    # message the previous step had not sent, and the run is still found by all of it.
    from chatdebug.store import RunFilter
    from tests.store.support import is_sqlite, raw

    messages: Any = [{"role": "user", "content": "where is parcel 4411"}]
    with client_for(fake_server) as client, chatdebug.run("chat-agent") as run:
        for turn in range(3):
            fake_server.enqueue(wire.openai_reply(f"checking depot{turn}"))
            reply = client.chat.completions.create(model="gpt-4o", messages=messages)
            messages.append({"role": "assistant", "content": reply.choices[0].message.content})
            messages.append({"role": "user", "content": f"and warehouse{turn}"})
    assert chatdebug.flush()
    store = configured.store
    found = store.list_recent_runs(RunFilter(text="parcel 4411 warehouse1 depot2"))
    assert [r.id for r in found] == [run.id]
    requests = [f"{step.id}:request" for step in store.list_steps(run.id)]
    if is_sqlite(database_url):
        query = "SELECT body FROM chat_debug_search WHERE doc = %s"
    else:
        query = (
            "SELECT array_to_string(tsvector_to_array(document), ' ') "
            "FROM chat_debug_search WHERE doc = %s"
        )
    bodies = [" ".join(row[0] for row in raw(database_url, query, [doc])) for doc in requests]
    assert "parcel" in bodies[0]
    assert "parcel" not in bodies[1] and "warehouse0" in bodies[1]
    assert "warehouse0" not in bodies[2] and "warehouse1" in bodies[2]
