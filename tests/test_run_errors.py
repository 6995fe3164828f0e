"""Why a run failed: ``summary.error`` for a run that failed outside a model call (the
exception that left the run, redacted and bounded) and for one that failed in a step
(that step's error), through the real openai SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.metrics import Metrics
from chatdebug.store import Run, open_store
from tests.fakes import wire
from tests.fakes.server import FakeServer


@pytest.fixture
def configured(database_url: str) -> Iterator[str]:
    chatdebug.configure(database_url, enabled=True, metrics=Metrics(CollectorRegistry()))
    try:
        yield database_url
    finally:
        chatdebug.shutdown()


def _stored(url: str, run_id: object) -> Run:
    assert chatdebug.flush(10)
    store = open_store(url)
    try:
        run = store.get_run(run_id)  # type: ignore[arg-type]
    finally:
        store.close()
    assert run is not None
    return run


def test_exception_outside_a_model_call_is_the_run_error(configured: str) -> None:
    secret = "sk-proj-" + "A" * 40
    with pytest.raises(KeyError):
        with chatdebug.run("c-1", user_id="u-9") as run:
            raise KeyError(f"no tool named {secret} " + "x" * 5000)
    stored = _stored(configured, run.id)
    assert stored.status == "error"
    error = stored.summary["error"]
    assert error["type"] == "KeyError"
    assert secret not in error["message"]
    assert error["message"].startswith("'no tool named [REDACTED] xxx")
    assert len(error["message"]) == 1000 and error["message"].endswith("…")
    assert "step_number" not in error
    assert stored.user_id == "u-9"


def test_cancelled_run_records_why(configured: str) -> None:
    handle: list[object] = []

    async def outer() -> None:
        try:
            async with chatdebug.run("c-2") as run:
                handle.append(run.id)
                raise TimeoutError("upstream took too long")
        except TimeoutError:
            pass

    asyncio.run(outer())
    stored = _stored(configured, handle[0])
    assert stored.status == "interrupted"
    assert stored.summary["error"] == {"type": "TimeoutError", "message": "upstream took too long"}


def test_a_failing_step_is_the_run_error(configured: str, fake_server: FakeServer) -> None:
    fake_server.enqueue(
        wire.openai_error_reply(400, "Invalid 'messages': empty", "invalid_request_error")
    )
    client = openai.OpenAI(
        base_url=fake_server.url + "/v1",
        api_key="sk-test",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    with client, pytest.raises(openai.BadRequestError):
        with chatdebug.run("c-3") as run:
            client.chat.completions.create(model="gpt-4o", messages=[])
    stored = _stored(configured, run.id)
    assert stored.status == "error"
    error = stored.summary["error"]
    assert error["step_number"] == 1
    assert "Invalid 'messages': empty" in error["message"]
    assert error["type"]
