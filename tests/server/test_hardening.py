"""What every response of ``chatdebug serve`` carries, from any route or none: the
security headers (on 200s, the API's errors, the framework's own 404/405, a trailing
slash that is never redirected, and uvicorn's own 400 for malformed HTTP); the Host
check of token-less mode on every route; ``/readyz`` on a missing or old schema; and
the rules ``serve`` applies to its tokens."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from starlette.routing import Route
from starlette.testclient import TestClient

from chatdebug.cli import main
from chatdebug.metrics import Metrics
from chatdebug.server import ServerState, create_app
from chatdebug.server.auth import host_is_loopback
from chatdebug.store import Store, open_store
from tests.ops.serve_process import ServeProcess, run_serve
from tests.server._api_support import ADMIN_TOKEN, READ_TOKEN, build_app

REQUIRED = {
    "content-security-policy": None,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
SAMPLE_RUN = "0b0c0d0e-0000-4000-8000-000000000001"


def assert_secured(headers: object, what: str) -> None:
    for name, value in REQUIRED.items():
        got = headers.get(name)  # type: ignore[attr-defined]
        assert got is not None, f"{what}: no {name}"
        if value is not None:
            assert got == value, f"{what}: {name}={got!r}"
    assert "frame-ancestors 'none'" in headers["content-security-policy"], what  # type: ignore[index]


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url)
    try:
        yield opened
    finally:
        opened.close()


def _concrete(path: str) -> str:
    return (
        path.replace("{chat_id:path}", "c%2F1")
        .replace("{run_id}", SAMPLE_RUN)
        .replace("{user_id}", "u-1")
        .replace("{name}", "app.js")
    )


@pytest.mark.parametrize("tokens", ["with tokens", "without tokens"])
def test_every_route_and_status_carries_the_security_headers(store: Store, tokens: str) -> None:
    kwargs = {} if tokens == "with tokens" else {"read_token": None, "admin_token": None}
    app = build_app(store, **kwargs)  # type: ignore[arg-type]
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert len(routes) >= 15
    seen: set[int] = set()
    with TestClient(app, base_url="http://127.0.0.1:9464") as client:
        for route in routes:
            path = _concrete(route.path)
            for method in sorted(route.methods or ()):
                for auth in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
                    response = client.request(method, path, headers=auth)
                    seen.add(response.status_code)
                    assert_secured(response.headers, f"{method} {path} -> {response.status_code}")
                    assert "location" not in response.headers
            wrong = "PATCH"
            response = client.request(wrong, path)
            assert response.status_code == 405
            assert_secured(response.headers, f"{wrong} {path}")
            seen.add(405)
            if path == "/":
                continue
            trailing = client.get(path + "/", follow_redirects=False)
            assert trailing.status_code in (401, 404), path  # never a redirect
            assert "location" not in trailing.headers
            assert_secured(trailing.headers, f"GET {path}/")
        for path in ("/nowhere", "/static/../app.py", "/api/debug/runs?status=nope"):
            response = client.get(path)
            seen.add(response.status_code)
            assert_secured(response.headers, path)
        retention = "/api/chats/config/debug-retention-days"
        for token in (ADMIN_TOKEN, READ_TOKEN):
            response = client.put(
                retention,
                json={"debug_retention_days": 30},
                headers={"Authorization": f"Bearer {token}"},
            )
            seen.add(response.status_code)
            assert_secured(response.headers, f"PUT {retention} -> {response.status_code}")
    expected = {200, 204, 400, 404, 405} | ({401, 403} if tokens == "with tokens" else set())
    assert expected <= seen, seen


def test_no_redirect_is_built_from_the_host_header(store: Store) -> None:
    with TestClient(build_app(store, read_token=None, admin_token=None)) as client:
        response = client.get(
            "/api/debug/runs/", headers={"Host": "evil.example"}, follow_redirects=False
        )
        assert response.status_code == 403
        assert "location" not in response.headers
        response = client.get(
            "/api/debug/runs/", headers={"Host": "127.0.0.1:9464"}, follow_redirects=False
        )
        assert response.status_code == 404 and "location" not in response.headers
        assert_secured(response.headers, "trailing slash")


@pytest.mark.parametrize(
    "path", ["/", "/static/app.js", "/metrics", "/healthz", "/readyz", "/api/debug/runs", "/x"]
)
@pytest.mark.parametrize(
    "host", ["evil.example", "[::1]evil.example", "127.0.0.1.evil.example", "localhost@evil", ""]
)
def test_the_host_check_of_tokenless_mode_covers_every_route(
    store: Store, path: str, host: str
) -> None:
    with TestClient(build_app(store, read_token=None, admin_token=None)) as client:
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 403, (path, host)
        assert_secured(response.headers, f"{path} under Host {host!r}")
        for good in ("localhost", "127.0.0.1:9464", "[::1]:9464", "LOCALHOST:1"):
            assert client.get(path, headers={"Host": good}).status_code != 403, (path, good)


def test_host_parsing() -> None:
    assert host_is_loopback("[::1]") and host_is_loopback("[::1]:80")
    assert host_is_loopback("localhost:9464") and host_is_loopback("127.0.0.1")
    for bad in ("[::1]evil.example", "[::1]:80evil", "[::2]", "::1:80x", "localhost:", "a b"):
        assert not host_is_loopback(bad), bad


def test_readyz_is_503_when_the_schema_is_missing_or_behind(sqlite_url: str) -> None:
    empty = open_store(sqlite_url, migrate=False)
    try:
        state = ServerState(store=empty, metrics=Metrics(CollectorRegistry()))
        with TestClient(create_app(state), base_url="http://127.0.0.1:9464") as client:
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.text.startswith("schema missing")
            empty.migrate()
            assert client.get("/readyz").status_code == 200
            # One version removed from the record: the database is behind this chatdebug.
            import sqlite3

            path = sqlite_url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as raw:
                last = raw.execute("SELECT max(version) FROM chat_debug_schema_migrations")
                version = last.fetchone()[0]
                raw.execute(
                    "DELETE FROM chat_debug_schema_migrations WHERE version = ?", (version,)
                )
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.text.startswith(f"schema behind: migrations {version} not applied")
            assert_secured(response.headers, "/readyz 503")
    finally:
        empty.close()


@pytest.mark.slow
def test_malformed_http_gets_a_400_with_the_headers(sqlite_url: str) -> None:
    with ServeProcess(sqlite_url, "--no-purge", "--no-finalize") as serve:
        with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header Line\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
    head = reply.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 400")
    pairs = [line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line]
    headers = {name.lower(): value for name, value in pairs}
    assert_secured(headers, "uvicorn's own 400")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--token", "short-token"], "is 11 characters long: use at least 16"),
        (["--token", "   "], "the token from --token is empty"),
        (["--token", ""], "the token from --token is empty"),
        (["--token", "a" * 20, "--admin-token", "a" * 20], "the read token equals the admin token"),
        (["--token", "a" * 10 + " " + "b" * 10], "contains whitespace"),
        (["--token", "a" * 20, "--token-file", "x"], "give --token or --token-file, not both"),
        (["--admin-token-file", "/nonexistent/file"], "cannot read --admin-token-file"),
    ],
)
def test_serve_token_rules(
    sqlite_url: str,
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHATDEBUG_API_TOKEN", raising=False)
    monkeypatch.delenv("CHATDEBUG_ADMIN_TOKEN", raising=False)
    assert main(["--database-url", sqlite_url, "serve", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_serve_token_from_the_environment_is_checked(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATDEBUG_API_TOKEN", "tiny")
    monkeypatch.delenv("CHATDEBUG_ADMIN_TOKEN", raising=False)
    assert main(["--database-url", sqlite_url, "serve"]) == 2
    assert "$CHATDEBUG_API_TOKEN is 4 characters long" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_reads_token_files_and_logs_public_mode_plainly(
    sqlite_url: str, tmp_path: Path
) -> None:
    read_file, admin_file = tmp_path / "read", tmp_path / "admin"
    read_file.write_text(READ_TOKEN + "\n")
    admin_file.write_text(f"  {ADMIN_TOKEN}  \nignored second line\n")
    args = ("--token-file", str(read_file), "--admin-token-file", str(admin_file))
    with ServeProcess(sqlite_url, *args, "--no-purge", "--no-finalize") as serve:
        import httpx

        url = serve.base + "/api/debug/runs"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {READ_TOKEN}"}).status_code == 200
        settings = serve.base + "/api/chats/config/debug-retention-days"
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert (
            httpx.put(settings, json={"debug_retention_days": 5}, headers=admin).status_code == 204
        )
    help_text = run_serve("--help").stdout
    assert "visible to anyone who can list processes" in help_text
    assert "--token-file" in help_text and "--admin-token-file" in help_text
    public = run_serve("--database-url", sqlite_url, "--listen", "0.0.0.0:0", "--token", READ_TOKEN)
    assert public.returncode == 2
