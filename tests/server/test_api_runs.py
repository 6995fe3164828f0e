"""The read API on both backends against runs recorded through the real openai SDK: the
JSON documents field by field, the chat routes, the export, tolerant decoding."""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

import chatdebug
from chatdebug.metrics import Metrics
from chatdebug.store import Run, Step, Store
from tests.fakes.server import FakeServer
from tests.server._api_support import (
    READ_TOKEN,
    THINKING,
    Recorded,
    build_app,
    record_anthropic_thinking_turn,
    record_runs,
    record_simple_turn,
    record_stream_without_usage,
)
from tests.store.support import raw

# The documents' fields, in the order they are served; "?" fields are omitted when null.
SUMMARY_FIELDS = [
    "id", "chat_id", "user_id?", "kind", "status", "provider?", "model?", "summary",
    "started_at", "updated_at", "finished_at?", "trace_id?",
]  # fmt: skip
RUN_FIELDS = [
    "id", "chat_id", "user_id?", "root_chat_id?", "parent_chat_id?", "model_config_id?",
    "trigger_message_id?", "history_tip_message_id?", "kind", "status", "provider?",
    "model?", "summary", "started_at", "updated_at", "finished_at?", "trace_id?", "steps",
]  # fmt: skip
STEP_FIELDS = [
    "id", "run_id", "chat_id", "step_number", "operation", "status",
    "history_tip_message_id?", "assistant_message_id?", "normalized_request",
    "normalized_response?", "usage?", "attempts", "error?", "metadata",
    "started_at", "updated_at", "finished_at?",
]  # fmt: skip
EXPORT_FIELDS = [
    "version", "scope", "exported_at", "chat_id", "run_count", "limited_to_most_recent", "runs",
]  # fmt: skip
AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}


def assert_shape(document: dict[str, Any], fields: list[str], row: Any) -> None:
    """Keys in the documented order, required ones present, optional ones present exactly
    when the row's value is not null, and each value equal to the stored one."""
    expected = []
    for spec in fields:
        name = spec.rstrip("?")
        value = getattr(row, name, None) if name != "steps" else []
        if spec.endswith("?") and value is None:
            continue
        expected.append(name)
    assert list(document) == expected
    for name in expected:
        if name == "steps":
            continue
        value = getattr(row, name)
        if isinstance(value, datetime):
            assert datetime.fromisoformat(document[name]) == value
            assert document[name].endswith("Z")
        elif isinstance(value, uuid.UUID):
            assert document[name] == str(value)
        else:
            assert document[name] == value, name


@pytest.fixture
def recorded(database_url: str, fake_server: FakeServer) -> Iterator[tuple[Store, Recorded]]:
    config = chatdebug.configure(database_url, enabled=True, metrics=Metrics(CollectorRegistry()))
    try:
        yield config.store, record_runs(fake_server)
    finally:
        chatdebug.shutdown()


@pytest.fixture
def api(recorded: tuple[Store, Recorded]) -> Iterator[TestClient]:
    store, _ = recorded
    with TestClient(build_app(store), headers=AUTH) as client:
        yield client


def _stored(store: Store, run_id: uuid.UUID) -> tuple[Run, list[Step]]:
    run = store.get_run(run_id)
    assert run is not None
    return run, store.list_steps(run_id)


def test_chat_runs_are_summaries_newest_first(
    api: TestClient, recorded: tuple[Store, Recorded]
) -> None:
    store, ids = recorded
    response = api.get(f"/api/chats/{ids.chat_id}/debug/runs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert [item["id"] for item in body] == [str(ids.error_run), str(ids.tool_run)]
    for item in body:
        assert_shape(item, SUMMARY_FIELDS, store.get_run(uuid.UUID(item["id"])))
    assert body[1]["summary"]["step_count"] == 3
    assert body[0]["status"] == "error" and body[1]["status"] == "completed"
    limited = api.get(f"/api/chats/{ids.chat_id}/debug/runs", params={"limit": "1"}).json()
    assert [item["id"] for item in limited] == [str(ids.error_run)]
    assert api.get("/api/chats/no-such-chat/debug/runs").json() == []


def test_run_with_steps_field_by_field(api: TestClient, recorded: tuple[Store, Recorded]) -> None:
    store, ids = recorded
    response = api.get(f"/api/chats/{ids.chat_id}/debug/runs/{ids.tool_run}")
    assert response.status_code == 200
    document = response.json()
    run, steps = _stored(store, ids.tool_run)
    assert_shape(document, RUN_FIELDS, run)
    assert document["trigger_message_id"] == 7
    assert [s["step_number"] for s in document["steps"]] == [1, 2, 3]
    for item, step in zip(document["steps"], steps, strict=True):
        assert_shape(item, STEP_FIELDS, step)
    first, retried, streamed = document["steps"]
    # The request and the tool call as the transcript shows them.
    roles = [m["role"] for m in first["normalized_request"]["messages"]]
    assert roles == ["system", "user"]
    tool_call = first["normalized_response"]["content"][0]
    assert (tool_call["type"], tool_call["tool_name"]) == ("tool-call", "get_weather")
    assert json.loads(tool_call["arguments"]) == {"city": "Paris"}
    # Attempts keep their bodies base64 and the retry visible; the key is redacted.
    assert [a["response_status"] for a in retried["attempts"]] == [429, 200]
    request_body = base64.b64decode(retried["attempts"][1]["request_body"])
    assert json.loads(request_body)["messages"][-1]["role"] == "tool"
    assert "apiTESTkey" not in json.dumps(document)
    assert streamed["operation"] == "stream" and streamed["usage"]["output_tokens"] == 2


def test_error_run_carries_the_step_error(
    api: TestClient, recorded: tuple[Store, Recorded]
) -> None:
    store, ids = recorded
    document = api.get(f"/api/chats/{ids.chat_id}/debug/runs/{ids.error_run}").json()
    run, steps = _stored(store, ids.error_run)
    assert_shape(document, RUN_FIELDS, run)
    (step,) = document["steps"]
    assert_shape(step, STEP_FIELDS, steps[0])
    assert step["status"] == "error"
    assert (step["error"]["provider_status"], step["error"]["message"]) == (
        500,
        "The server had an error",
    )
    assert step["attempts"][0]["response_status"] == 500


def test_run_lookup_status_codes(api: TestClient, recorded: tuple[Store, Recorded]) -> None:
    _, ids = recorded
    base = f"/api/chats/{ids.chat_id}/debug/runs"
    bad = api.get(f"{base}/not-a-uuid")
    assert (bad.status_code, bad.json()) == (400, {"message": "Invalid debug run ID."})
    assert api.get(f"{base}/{uuid.uuid4()}").status_code == 404
    # A run of another chat is not found through this chat.
    other = api.get(f"{base}/{ids.other_chat_run}")
    assert (other.status_code, other.json()) == (404, {"message": "Debug run not found."})
    own = api.get(f"/api/chats/{ids.chat_id}-other/debug/runs/{ids.other_chat_run}")
    assert own.status_code == 200


def test_export_document(api: TestClient, recorded: tuple[Store, Recorded]) -> None:
    store, ids = recorded
    response = api.get(f"/api/chats/{ids.chat_id}/debug/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    document = response.json()
    assert list(document) == EXPORT_FIELDS
    assert (document["version"], document["scope"], document["chat_id"]) == (
        1,
        "chat",
        ids.chat_id,
    )
    assert (document["run_count"], document["limited_to_most_recent"]) == (2, 100)
    assert document["exported_at"].endswith("Z")
    assert [r["id"] for r in document["runs"]] == [str(ids.error_run), str(ids.tool_run)]
    for item in document["runs"]:
        run, steps = _stored(store, uuid.UUID(item["id"]))
        assert_shape(item, RUN_FIELDS, run)
        assert len(item["steps"]) == len(steps)
    empty = api.get("/api/chats/nobody/debug/export").json()
    assert (empty["run_count"], empty["runs"]) == (0, [])


def test_malformed_stored_json_is_decoded_tolerantly(
    database_url: str, recorded: tuple[Store, Recorded], api: TestClient
) -> None:
    store, ids = recorded
    _, steps = _stored(store, ids.tool_run)
    if database_url.startswith("sqlite"):
        # SQLite keeps JSON as text: write broken payloads the way a bad writer could.
        raw(
            database_url,
            "UPDATE chat_debug_steps SET metadata = %s, attempts = %s, usage = %s WHERE id = %s",
            ("{not json", "[1, 2", "null", steps[0].id),
        )
        raw(database_url, "UPDATE chat_debug_steps SET metadata = %s WHERE id = %s",
            ("null", steps[1].id))  # fmt: skip
    else:
        # JSONB only holds valid JSON: the tolerant cases are null and a wrong type.
        raw(
            database_url,
            "UPDATE chat_debug_steps SET metadata = '[1]', attempts = '{\"a\": 1}', "
            "usage = 'null' WHERE id = %s",
            (steps[0].id,),
        )
        raw(database_url, "UPDATE chat_debug_steps SET metadata = 'null' WHERE id = %s",
            (steps[1].id,))  # fmt: skip
    document = api.get(f"/api/chats/{ids.chat_id}/debug/runs/{ids.tool_run}").json()
    first, second = document["steps"][0], document["steps"][1]
    assert first["metadata"]["error"] == "malformed debug payload"
    assert set(first["metadata"]) == {"error", "parse_error", "raw"}
    assert len(first["attempts"]) == 1
    assert first["attempts"][0]["error"] == "malformed attempts payload"
    assert "usage" not in first  # JSON null in a nullable column: omitted
    assert second["metadata"] == {}  # JSON null in a non-null column: {}


def test_chat_ids_with_slashes_and_markup_are_addressable(
    api: TestClient, recorded: tuple[Store, Recorded], fake_server: FakeServer
) -> None:
    del recorded  # configured and recording
    chat = "team/a b/<i>x</i>?#"
    run_id = record_simple_turn(fake_server, chat)
    assert chatdebug.flush()
    quoted = urllib.parse.quote(chat, safe="")
    listed = api.get(f"/api/chats/{quoted}/debug/runs").json()
    assert [r["id"] for r in listed] == [str(run_id)] and listed[0]["chat_id"] == chat
    one = api.get(f"/api/chats/{quoted}/debug/runs/{run_id}")
    assert one.status_code == 200 and one.json()["chat_id"] == chat
    assert api.get(f"/api/chats/{quoted}/debug/export").json()["run_count"] == 1


def test_anthropic_run_with_reasoning(
    api: TestClient, recorded: tuple[Store, Recorded], fake_server: FakeServer
) -> None:
    store, ids = recorded
    run_id = record_anthropic_thinking_turn(fake_server, ids.chat_id)
    assert chatdebug.flush()
    document = api.get(f"/api/chats/{ids.chat_id}/debug/runs/{run_id}").json()
    run, steps = _stored(store, run_id)
    assert_shape(document, RUN_FIELDS, run)
    (step,) = document["steps"]
    assert_shape(step, STEP_FIELDS, steps[0])
    assert [m["role"] for m in step["normalized_request"]["messages"]] == ["system", "user"]
    content = step["normalized_response"]["content"]
    assert [(c["type"], c["text"]) for c in content] == [
        ("reasoning", THINKING),
        ("text", "Autumn moonlight"),
    ]
    assert (document["provider"], document["model"]) == ("anthropic", "claude-opus-4-6")
    assert "apiTESTkey" not in json.dumps(document)


def test_usage_not_reported_is_absent_with_its_reason(
    api: TestClient, recorded: tuple[Store, Recorded], fake_server: FakeServer
) -> None:
    """Usage the provider did not send is unknown: no ``usage`` (never zeros), the
    reason in the step's metadata, the step counted in the run summary."""
    store, ids = recorded
    run_id = record_stream_without_usage(fake_server, ids.chat_id)
    assert chatdebug.flush()
    document = api.get(f"/api/chats/{ids.chat_id}/debug/runs/{run_id}").json()
    run, steps = _stored(store, run_id)
    assert_shape(document, RUN_FIELDS, run)
    (step,) = document["steps"]
    assert_shape(step, STEP_FIELDS, steps[0])
    assert step["status"] == "completed"
    assert "usage" not in step and step["normalized_response"]["usage"] is None
    assert step["metadata"]["usage_unavailable"] == "stream without include_usage"
    assert step["normalized_request"]["stream"] is True
    assert document["summary"]["steps_without_usage"] == 1
    assert document["summary"]["total_input_tokens"] == 0  # the sum of what was reported
    listed = api.get(f"/api/chats/{ids.chat_id}/debug/runs").json()
    (entry,) = [r for r in listed if r["id"] == str(run_id)]
    assert entry["summary"]["steps_without_usage"] == 1
    others = [r for r in listed if r["id"] != str(run_id)]
    assert all("steps_without_usage" not in r["summary"] for r in others)
