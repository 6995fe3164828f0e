"""Settings routes with their semantics and status codes, and the deletion hooks as API
calls and as public Python functions (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

import chatdebug
from chatdebug.metrics import Metrics
from chatdebug.store import NewRun, NewStep, Store, open_store
from tests.fakes.server import FakeServer
from tests.server._api_support import ADMIN_TOKEN, READ_TOKEN, build_app, record_simple_turn

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
USER = "/api/chats/config/user-debug-logging/u-1"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    try:
        yield opened
    finally:
        opened.close()


def _client(store: Store, forced: bool = False) -> TestClient:
    return TestClient(build_app(store, forced=forced), headers=ADMIN)


def test_admin_switch(store: Store) -> None:
    with _client(store) as api:
        path = "/api/chats/config/debug-logging"
        assert api.get(path).json() == {"allow_users": False, "forced_by_deployment": False}
        response = api.put(path, json={"allow_users": True})
        assert (response.status_code, response.content) == (204, b"")
        assert api.get(path, headers=READ).json() == {
            "allow_users": True,
            "forced_by_deployment": False,
        }
        for bad in (
            {"allow_users": 1},
            {"allow_users": "true"},
            {},
            [],
            {"allow_users": True, "x": 1},
        ):
            assert api.put(path, json=bad).status_code == 400, bad
        assert api.put(path, content=b"{not json").status_code == 400
        assert api.put(path, content=b" " * 10_000).status_code == 400
    assert store.get_allow_users() is True
    with _client(store, forced=True) as api:
        assert api.get(path).json()["forced_by_deployment"] is True


def test_user_opt_in_needs_the_admin_switch(store: Store) -> None:
    with _client(store) as api:
        assert api.get(USER).json() == {
            "debug_logging_enabled": False,
            "user_toggle_allowed": False,
            "forced_by_deployment": False,
        }
        denied = api.put(USER, json={"debug_logging_enabled": True})
        assert denied.status_code == 403
        assert "not allowed" in denied.json()["message"]
        assert store.get_user_enabled("u-1") is False
        store.set_allow_users(True)
        assert api.get(USER).json()["user_toggle_allowed"] is True
        assert api.put(USER, json={"debug_logging_enabled": True}).status_code == 204
        assert api.get(USER).json()["debug_logging_enabled"] is True
        assert api.put(USER, json={"debug_logging_enabled": 1}).status_code == 400
    assert store.get_user_enabled("u-1") is True and store.get_user_enabled("u-2") is False


def test_user_opt_in_conflicts_when_forced_by_deployment(store: Store) -> None:
    store.set_allow_users(True)
    with _client(store, forced=True) as api:
        response = api.put(USER, json={"debug_logging_enabled": False})
        assert response.status_code == 409
        assert api.get(USER).json() == {
            "debug_logging_enabled": False,
            "user_toggle_allowed": False,
            "forced_by_deployment": True,
        }


RETENTION_CASES = [(0, 204), (1, 204), (3650, 204), (-1, 400), (3651, 400), (True, 400),
                   (7.0, 400), ("7", 400)]  # fmt: skip


@pytest.mark.parametrize(("days", "status"), RETENTION_CASES)
def test_retention_days(store: Store, days: Any, status: int) -> None:
    path = "/api/chats/config/debug-retention-days"
    with _client(store) as api:
        assert api.get(path).json() == {"debug_retention_days": 30}
        response = api.put(path, json={"debug_retention_days": days})
        assert response.status_code == status, response.text
        expected = days if status == 204 else 30
        assert api.get(path).json() == {"debug_retention_days": expected}


def test_delete_routes(store: Store) -> None:
    def add(chat: str, **fields: Any) -> Any:
        return store.create_run(NewRun(chat_id=chat, **fields))

    keep = add("chat-1", trigger_message_id=3)
    after = add("chat-1", trigger_message_id=9)
    stepped = add("chat-1", trigger_message_id=2)
    store.create_step(
        NewStep(run_id=stepped.id, chat_id="chat-1", operation="generate", assistant_message_id=12)
    )
    other = add("chat-2")
    with _client(store) as api:
        response = api.delete("/api/chats/chat-1/debug/runs?after_message_id=5")
        assert response.json() == {"deleted_runs": 2}
        assert store.get_run(after.id) is None and store.get_run(stepped.id) is None
        assert store.get_run(keep.id) is not None
        # started_before bounds what goes: a run started later stays.
        before = (keep.started_at - timedelta(seconds=1)).isoformat()
        bounded = api.delete("/api/chats/chat-1/debug/runs", params={"started_before": before})
        assert bounded.json() == {"deleted_runs": 0}
        assert api.delete("/api/chats/chat-1/debug/runs").json() == {"deleted_runs": 1}
        assert api.delete("/api/chats/chat-1/debug/runs?after_message_id=-1").status_code == 400
        assert api.delete("/api/chats/chat-1/debug/runs?after_message_id=x").status_code == 400
    assert store.get_run(keep.id) is None
    assert store.get_run(other.id) is not None


def test_python_deletion_hooks(database_url: str, fake_server: FakeServer) -> None:
    assert chatdebug.delete_chat("anything") is None  # not configured: nothing, no raise
    config = chatdebug.configure(database_url, enabled=True, metrics=Metrics(CollectorRegistry()))
    try:
        first = record_simple_turn(fake_server, "hook-chat", trigger_message_id=1)
        later = record_simple_turn(fake_server, "hook-chat", trigger_message_id=10)
        other = record_simple_turn(fake_server, "hook-other")
        # No flush: the hook flushes what is still queued before deleting.
        assert chatdebug.delete_after_message("hook-chat", 5) == 1
        assert config.store.get_run(later) is None
        assert config.store.get_run(first) is not None
        assert chatdebug.delete_chat("hook-chat") == 1
        assert config.store.list_runs("hook-chat") == []
        assert config.store.get_run(other) is not None
    finally:
        chatdebug.shutdown()
