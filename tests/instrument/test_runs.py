"""``chatdebug.run`` / ``chatdebug.step`` / ``chatdebug.traced_run``: spans, status
rules, exceptions passing through unchanged, enablement."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from opentelemetry.trace import StatusCode

import chatdebug
from chatdebug import _spans as attr
from chatdebug.instrument import InstrumentSettings, install, settings
from chatdebug.instrument.capture import drain
from tests.fakes import wire
from tests.fakes.server import JSON_HEADERS, FakeServer, Reply
from tests.instrument.support import Spans, jattr


class Boom(Exception):
    pass


def test_with_block_records_run_span(spans: Spans) -> None:
    with chatdebug.run("chat-1", user_id="u-1", kind="title_generation", first_message="Hi") as run:
        assert run.recording and run.id is not None
    (span,) = spans.runs()
    assert span.attributes[attr.RUN_ID] == str(run.id)
    assert span.attributes[attr.CHAT_ID] == "chat-1"
    assert span.attributes[attr.USER_ID] == "u-1"
    assert span.attributes[attr.RUN_KIND] == "title_generation"
    assert span.attributes[attr.RUN_FIRST_MESSAGE] == "Hi"
    assert span.attributes[attr.RUN_STATUS] == "completed"
    assert span.attributes[attr.GEN_AI_CONVERSATION_ID] == "chat-1"


def test_exception_propagates_unchanged_and_marks_error(spans: Spans) -> None:
    error = Boom("provider key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234 leaked")
    with pytest.raises(Boom) as caught, chatdebug.run("chat-1"):
        raise error
    assert caught.value is error
    (span,) = spans.runs()
    assert span.attributes[attr.RUN_STATUS] == "error"
    payload = jattr(span, attr.RUN_ERROR)
    assert payload["type"].endswith("Boom")
    assert "sk-proj-ABCDEFGH" not in payload["message"]
    assert span.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), TimeoutError("slow"), asyncio.CancelledError()], ids=repr
)
def test_cancellation_and_timeouts_are_interrupted(spans: Spans, exc: BaseException) -> None:
    with pytest.raises(type(exc)), chatdebug.run("chat-1"):
        raise exc
    (span,) = spans.runs()
    assert span.attributes[attr.RUN_STATUS] == "interrupted"
    assert "context_error" in jattr(span, attr.RUN_ERROR)


def test_async_with_and_task_cancellation(spans: Spans) -> None:
    async def turn() -> None:
        async with chatdebug.run("chat-a"):
            await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(turn())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (span,) = spans.runs()
    assert span.attributes[attr.RUN_STATUS] == "interrupted"


def test_decorator_sync_and_async_make_one_run_per_call(spans: Spans) -> None:
    @chatdebug.run("chat-d")
    def sync_turn(x: int) -> int:
        return x * 2

    @chatdebug.run("chat-d")
    async def async_turn(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    assert sync_turn(2) == 4
    assert sync_turn(3) == 6
    assert asyncio.run(async_turn(1)) == 2
    runs = spans.runs()
    assert len(runs) == 3
    assert len({s.attributes[attr.RUN_ID] for s in runs}) == 3


def test_async_decorator_span_covers_awaited_body(spans: Spans) -> None:
    seen: list[object] = []

    @chatdebug.run("chat-d")
    async def turn() -> None:
        await asyncio.sleep(0.01)
        seen.append(len(spans.runs()))

    asyncio.run(turn())
    assert seen == [0]  # the run was still open while the body ran
    assert len(spans.runs()) == 1


def test_traced_run_takes_ids_from_arguments(spans: Spans) -> None:
    @chatdebug.traced_run(kind="title_generation", first_message_arg="text")
    async def make_title(chat_id: str, text: str, user_id: str | None = None) -> str:
        return text.upper()

    assert asyncio.run(make_title("c-9", "hello", user_id="u-3")) == "HELLO"
    (span,) = spans.runs()
    assert span.attributes[attr.CHAT_ID] == "c-9"
    assert span.attributes[attr.USER_ID] == "u-3"
    assert span.attributes[attr.RUN_KIND] == "title_generation"
    assert span.attributes[attr.RUN_FIRST_MESSAGE] == "hello"


def test_traced_run_rejects_function_without_chat_id() -> None:
    with pytest.raises(TypeError, match="chat_id"):

        @chatdebug.traced_run()
        def nothing(text: str) -> None: ...


def test_explicit_step_without_http_completes(spans: Spans) -> None:
    with chatdebug.run("c") as run, chatdebug.step(operation="stream") as step:
        assert step.number == 1
        step.set_assistant_message_id(41)
    (step_span,) = spans.steps(run.id)
    assert step_span.attributes[attr.STEP_STATUS] == "completed"
    assert step_span.attributes[attr.STEP_OPERATION] == "stream"
    assert step_span.attributes[attr.STEP_ASSISTANT_MESSAGE_ID] == 41
    assert step_span.parent is not None
    assert step_span.parent.span_id == spans.runs()[0].context.span_id


def test_exception_in_step_marks_step_and_run(spans: Spans) -> None:
    with pytest.raises(Boom), chatdebug.run("c"), chatdebug.step():
        raise Boom("bad")
    step_span = spans.only_step()
    assert step_span.attributes[attr.STEP_STATUS] == "error"
    assert jattr(step_span, attr.STEP_ERROR)["message"] == "bad"
    assert spans.runs()[0].attributes[attr.RUN_STATUS] == "error"


def test_step_outside_run_does_nothing(spans: Spans) -> None:
    with chatdebug.step() as step:
        assert not step.recording
    assert spans.all() == []


def test_set_status_model_and_summary(spans: Spans) -> None:
    with chatdebug.run("c") as run:
        run.set_status("error")
        run.set_model("gpt-4o", provider="openai")
        run.add_summary(mcp_connect=[{"server": "x", "ok": True}])
    (span,) = spans.runs()
    assert span.attributes[attr.RUN_STATUS] == "error"
    assert span.attributes[attr.RUN_MODEL] == "gpt-4o"
    assert span.attributes[attr.RUN_PROVIDER] == "openai"
    assert jattr(span, attr.RUN_SUMMARY_SEED) == {"mcp_connect": [{"server": "x", "ok": True}]}


def test_completed_is_not_downgraded_by_set_status(spans: Spans) -> None:
    with chatdebug.run("c") as run:
        run.set_status("completed")
        run.set_status("interrupted")
    assert spans.runs()[0].attributes[attr.RUN_STATUS] == "completed"


class _Source:
    def __init__(self, allow: bool, users: dict[str, bool]) -> None:
        self.allow = allow
        self.users = users
        self.reads = 0

    def get_allow_users(self) -> bool:
        self.reads += 1
        return self.allow

    def get_user_enabled(self, user_id: str) -> bool:
        self.reads += 1
        return self.users.get(user_id, False)


@pytest.fixture
def source_settings(spans: Spans) -> _Source:
    source = _Source(allow=True, users={"on": True, "off": False})
    install(
        InstrumentSettings(
            tracer_provider=spans.provider, force_enabled=False, enablement_source=source
        )
    )
    return source


def test_enablement_needs_admin_allow_and_user_opt_in(
    spans: Spans, source_settings: _Source
) -> None:
    with chatdebug.run("c", user_id="on") as on:
        pass
    with chatdebug.run("c", user_id="off") as off:
        pass
    with chatdebug.run("c") as anonymous:
        pass
    assert on.recording and not off.recording and not anonymous.recording
    assert [s.attributes[attr.USER_ID] for s in spans.runs()] == ["on"]
    source_settings.allow = False
    settings().enablement_cache_seconds = 0
    with chatdebug.run("c", user_id="on") as blocked:
        pass
    assert not blocked.recording


def test_enablement_is_cached(spans: Spans, source_settings: _Source) -> None:
    for _ in range(50):
        with chatdebug.run("c", user_id="on"):
            pass
    assert source_settings.reads == 2  # allow_users once, the user once
    assert len(spans.runs()) == 50


def test_enablement_source_failure_means_disabled(
    spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def get_allow_users(self) -> bool:
            raise OSError("database is down")

        def get_user_enabled(self, user_id: str) -> bool:
            raise OSError("database is down")

    monkeypatch.delenv("CHATDEBUG_RAISE_INTERNAL_ERRORS")
    install(InstrumentSettings(tracer_provider=spans.provider, enablement_source=Broken()))
    with chatdebug.run("c", user_id="u") as run:
        pass
    assert not run.recording
    assert spans.all() == []


def test_disabled_run_is_a_pass_through(fake_server: FakeServer) -> None:
    install(InstrumentSettings(force_enabled=False))
    fake_server.enqueue(wire.openai_reply("x"))
    with chatdebug.run("c") as run, httpx.Client(transport=chatdebug.Transport()) as client:
        response = client.post(fake_server.url + "/v1/chat/completions", json={"model": "m"})
    assert response.json()["choices"][0]["message"]["content"] == "x"
    assert run.id is None and not run.recording


def test_step_numbers_unique_across_threads_in_one_run(
    spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.handler = lambda request: wire.openai_reply("ok")
    client = httpx.Client(transport=chatdebug.Transport())

    def call(_: int) -> int:
        return client.post(
            fake_server.url + "/v1/chat/completions", json={"model": "m"}
        ).status_code

    with client, chatdebug.run("c") as run, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(chatdebug.bind_context(call), range(40)))
    assert codes == [200] * 40
    numbers = [s.attributes[attr.STEP_NUMBER] for s in spans.steps(run.id)]
    assert numbers == list(range(1, 41))


def test_thread_without_context_is_not_recorded(spans: Spans, fake_server: FakeServer) -> None:
    fake_server.enqueue(wire.openai_reply("x"))
    client = httpx.Client(transport=chatdebug.Transport())
    with client, chatdebug.run("c"):
        worker = threading.Thread(
            target=lambda: client.post(fake_server.url + "/v1/chat/completions", json={})
        )
        worker.start()
        worker.join()
    assert spans.steps() == []


def test_message_ids_set_after_a_step_ended_travel_on_the_run(
    spans: Spans, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_reply("answer"))
    with httpx.Client(transport=chatdebug.Transport()) as client, chatdebug.run("c") as run:
        client.post(fake_server.url + "/v1/chat/completions", json={"model": "m"})
        last = run.last_step
        assert last is not None and last.number == 1
        last.set_assistant_message_id(99)  # the step already ended with its response
    step = spans.only_step()
    assert attr.STEP_ASSISTANT_MESSAGE_ID not in step.attributes
    updates = jattr(spans.runs()[0], attr.RUN_STEP_UPDATES)
    assert updates == [{"step_id": str(last.id), "assistant_message_id": 99}]


def test_a_finished_run_and_its_steps_are_freed_without_the_cyclic_collector(
    spans: Spans, fake_server: FakeServer
) -> None:
    """A step refers to its run; once the run has ended, its handle (not the run) keeps
    the last step, so the run, its steps and their spans go when the handle does rather
    than at the cyclic collector's next run. The handle still gives the last step."""
    fake_server.enqueue(wire.openai_reply("answer"))
    gc.collect()
    gc.disable()
    try:
        with httpx.Client(transport=chatdebug.Transport()) as client:
            with chatdebug.run("c") as run:
                client.post(fake_server.url + "/v1/chat/completions", json={"model": "m"})
            assert drain()
            state = weakref.ref(run._state)  # type: ignore[arg-type]
            last = run.last_step
            number = last.number if last is not None else None
            assert number == 1
            # Plain values only in this test's assertions: pytest keeps what an
            # assertion evaluates alive in the frame.
            alive_with_the_handle = state() is not None
            del run, last
            freed_with_it = state() is None
            assert alive_with_the_handle
            assert freed_with_it, [type(r).__name__ for r in gc.get_referrers(state())]
    finally:
        gc.enable()
    assert spans.only_step().attributes[attr.STEP_STATUS] == "completed"


def test_the_service_tier_that_served_a_call_is_on_its_step_span(
    spans: Spans, fake_server: FakeServer
) -> None:
    body = wire.openai_completion("Hi")
    body["service_tier"] = "flex"
    fake_server.enqueue(Reply(body=json.dumps(body).encode(), headers=JSON_HEADERS))
    with chatdebug.run(chat_id="c-tier"), chatdebug.httpx2_client() as client:
        client.post(
            f"{fake_server.url}/v1/chat/completions",
            json={"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]},
        )
    step = spans.only_step()
    assert step.attributes[attr.OPENAI_RESPONSE_SERVICE_TIER] == "flex"
    assert jattr(step, attr.STEP_METADATA)["service_tier"] == "flex"
