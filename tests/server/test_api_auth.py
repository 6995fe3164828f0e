"""Access control: read and admin tokens, 401 without a hint, 403 for a read token on an
admin route, constant-time comparison, and the no-token loopback mode."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from chatdebug.server import auth
from chatdebug.store import Store, open_store
from tests.server._api_support import ADMIN_TOKEN, READ_TOKEN, build_app

READ_ROUTES = [
    ("GET", "/api/debug/runs"),
    ("GET", "/api/chats/c/debug/runs"),
    ("GET", "/api/chats/c/debug/runs/00000000-0000-0000-0000-000000000000"),
    ("GET", "/api/chats/c/debug/export"),
    ("GET", "/api/chats/config/debug-logging"),
    ("GET", "/api/chats/config/user-debug-logging/u-1"),
    ("GET", "/api/chats/config/debug-retention-days"),
]
ADMIN_ROUTES: list[tuple[str, str, Any]] = [
    ("PUT", "/api/chats/config/debug-logging", {"allow_users": True}),
    ("PUT", "/api/chats/config/user-debug-logging/u-1", {"debug_logging_enabled": True}),
    ("PUT", "/api/chats/config/debug-retention-days", {"debug_retention_days": 7}),
    ("DELETE", "/api/chats/c/debug/runs", None),
    ("DELETE", "/api/chats/c/debug/runs?after_message_id=3", None),
]
WRONG = [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Basic {READ_TOKEN}"},
    {"Authorization": f"Bearer {READ_TOKEN}x"},
    {"Authorization": f"Bearer {READ_TOKEN[:-1]}"},
    {"Authorization": "Bearer " + "x" * 10_000},
    {"Authorization": f"bearer{READ_TOKEN}"},
]


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url)
    try:
        yield opened
    finally:
        opened.close()


def _call(client: TestClient, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    return client.request(method, path, json=body, **kw)


def test_wrong_or_missing_token_is_401_with_one_message(store: Store) -> None:
    with TestClient(build_app(store)) as client:
        bodies = set()
        for headers in WRONG:
            for method, path in READ_ROUTES:
                response = _call(client, method, path, headers=headers)
                assert response.status_code == 401, (headers, path)
                assert response.headers["www-authenticate"] == "Bearer"
                bodies.add(response.text)
            for method, path, body in ADMIN_ROUTES:
                response = _call(client, method, path, body, headers=headers)
                assert response.status_code == 401
                bodies.add(response.text)
        assert len(bodies) == 1  # nothing tells which part was wrong


def test_read_token_reads_but_may_not_change(store: Store) -> None:
    with TestClient(build_app(store)) as client:
        read = {"Authorization": f"Bearer {READ_TOKEN}"}
        for method, path in READ_ROUTES:
            assert _call(client, method, path, headers=read).status_code in (200, 404)
        for method, path, body in ADMIN_ROUTES:
            response = _call(client, method, path, body, headers=read)
            assert response.status_code == 403
            assert response.json() == {"message": "Forbidden: this route needs the admin token."}
    assert store.get_retention_days() == 30 and not store.get_allow_users()


def test_admin_token_opens_everything(store: Store) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with TestClient(build_app(store)) as client:
        for method, path in READ_ROUTES:
            assert _call(client, method, path, headers=admin).status_code in (200, 404)
        for method, path, body in ADMIN_ROUTES:
            assert _call(client, method, path, body, headers=admin).status_code in (200, 204)
    assert store.get_retention_days() == 7 and store.get_allow_users()


def test_read_token_without_admin_token_closes_admin_routes(store: Store) -> None:
    with TestClient(build_app(store, admin_token=None)) as client:
        read = {"Authorization": f"Bearer {READ_TOKEN}"}
        assert client.get("/api/debug/runs", headers=read).status_code == 200
        response = _call(client, *ADMIN_ROUTES[0], headers=read)
        assert response.status_code == 403
        assert "no admin token" in response.json()["message"]
        # With no admin token configured, no token can pass for it.
        assert (
            client.get("/api/debug/runs", headers={"Authorization": "Bearer "}).status_code == 401
        )


def test_admin_token_only_guards_reads_too(store: Store) -> None:
    with TestClient(build_app(store, read_token=None)) as client:
        assert client.get("/api/debug/runs").status_code == 401
        ok = client.get("/api/debug/runs", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert ok.status_code == 200


def test_no_tokens_serves_loopback_host_names_only(store: Store) -> None:
    app = build_app(store, read_token=None, admin_token=None)
    for host in ("127.0.0.1:8000", "localhost", "localhost:9", "[::1]:8000", "LOCALHOST:1"):
        with TestClient(app, base_url=f"http://{host}") as client:
            assert client.get("/api/debug/runs").status_code == 200, host
            assert _call(client, *ADMIN_ROUTES[2]).status_code == 204
    for host in ("evil.example:8000", "127.0.0.1.evil.example", "10.0.0.1:8000"):
        with TestClient(app, base_url=f"http://{host}") as client:
            response = client.get("/api/debug/runs")
            assert response.status_code == 403, host
            assert _call(client, *ADMIN_ROUTES[3]).status_code == 403


def test_tokens_are_compared_in_constant_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request compares the presented token's digest with both configured digests
    through hmac.compare_digest, on equal lengths, whichever matches (no early exit)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    tokens = auth.Tokens.of(READ_TOKEN, ADMIN_TOKEN)
    with TestClient(build_app(store)) as client:
        for token in (READ_TOKEN, ADMIN_TOKEN, "wrong", "", "x" * 5000):
            calls.clear()
            client.get("/api/debug/runs", headers={"Authorization": f"Bearer {token}"})
            assert len(calls) == 2, token
            assert {b for _, b in calls} == {tokens.read, tokens.admin}
            assert all(isinstance(a, bytes) and len(a) == len(b) == 32 for a, b in calls)
    # No plain == on secrets in the module.
    source = Path(auth.__file__).read_text(encoding="utf-8")
    assert "token ==" not in source and "== token" not in source
