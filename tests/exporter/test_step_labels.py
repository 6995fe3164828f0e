"""Steps recorded through the real SDKs carry provider and model columns, and their run
takes the labels of its first step when it ends; SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

import chatdebug
from tests.fakes import wire
from tests.fakes.server import FakeServer

MESSAGES: Any = [{"role": "user", "content": "Hello"}]


def test_sdk_steps_and_runs_are_labelled(
    configured: chatdebug.Configuration, fake_server: FakeServer
) -> None:
    fake_server.enqueue(
        wire.openai_error_reply(400, "bad request", "invalid_request_error"),
        wire.openai_reply("hi", model="gpt-4o-2024-08-06"),
        wire.anthropic_stream_reply(["Sa", "lut"], model="claude-opus-4-6"),
    )
    oai = openai.OpenAI(
        base_url=fake_server.url + "/v1",
        api_key="sk-test",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    claude = anthropic.Anthropic(
        base_url=fake_server.url,
        api_key="sk-ant-test",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    with oai, claude, chatdebug.run("chat-labels") as run:
        with pytest.raises(openai.BadRequestError):
            oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with claude.messages.stream(
            model="claude-opus-4-6", max_tokens=16, messages=MESSAGES
        ) as stream:
            assert stream.get_final_text() == "Salut"
    assert chatdebug.flush()
    assert run.id is not None
    steps = configured.store.list_steps(run.id, payloads=False)
    # The failed call keeps the model it asked for; answered calls the model that answered.
    assert [(s.provider, s.model) for s in steps] == [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-2024-08-06"),
        ("anthropic", "claude-opus-4-6"),
    ]
    stored = configured.store.get_run(run.id)
    assert stored is not None
    assert (stored.provider, stored.model) == ("openai", "gpt-4o")


def test_run_labels_given_by_the_caller_are_kept(
    configured: chatdebug.Configuration, fake_server: FakeServer
) -> None:
    fake_server.enqueue(wire.openai_reply("hi"))
    oai = openai.OpenAI(
        base_url=fake_server.url + "/v1",
        api_key="sk-test",
        http_client=chatdebug.httpx2_client(),
        max_retries=0,
    )
    with oai, chatdebug.run("chat-given", provider="azure", model="deployment-7") as run:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert chatdebug.flush()
    assert run.id is not None
    stored = configured.store.get_run(run.id)
    assert stored is not None
    assert (stored.provider, stored.model) == ("azure", "deployment-7")
