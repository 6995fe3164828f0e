"""Hostile query parameters, ids and cursors get a 400 with a one-line JSON message,
never a stack trace; the security headers are on every API response."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from chatdebug.store import NewRun, Store, StoreUnavailable, open_store
from tests.server._api_support import READ_TOKEN, build_app

AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    try:
        for i in range(5):
            opened.create_run(NewRun(chat_id=f"chat-{i % 2}", user_id="u", model="m"))
        yield opened
    finally:
        opened.close()


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    with TestClient(build_app(store), headers=AUTH, raise_server_exceptions=False) as client:
        yield client


# Parameter ids must be the same in every test process, so the run id in cursors is fixed.
_FIXED_RUN_ID = "6a7a6a61-df48-49a0-9991-76d5a51792cd"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


HOSTILE = [
    "limit=0",
    "limit=-1",
    "limit=101",
    "limit=1e3",
    "limit=%201",
    "limit=99999999999999999999999",
    "limit=",
    "limit=1&limit=2",
    "since=yesterday",
    "since=2025-01-01",  # a date without a time
    "since=2025-01-01T00:00:00",  # no time zone
    "since=99999999w",
    "since=9999999w",  # before year 1
    "until=" + "1" * 5000,
    "since=2025-13-01T00:00:00Z",
    "cursor=",
    "cursor=%00",
    "cursor=not-base64!",
    "cursor=" + _b64("v1|2025-01-01T00:00:00+00:00|not-a-uuid"),
    "cursor=" + _b64("v2|2025-01-01T00:00:00+00:00|" + _FIXED_RUN_ID),
    "cursor=" + _b64("v1|2025-01-01T00:00:00|" + _FIXED_RUN_ID),
    "cursor=" + _b64("v1|2025-01-01T00:00:00+00:00|" + _FIXED_RUN_ID + "|x"),
    "cursor=" + "A" * 5000,
    "cursor=" + _b64("\udcff".encode("utf-8", "surrogatepass").decode("latin-1")),
    "status=broken",
    "status=ERROR",
    "kind=",
    "user_id=" + "u" * 300,
    "model=a%0Ab",
    "unknown=1",
    "statuss=error",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_parameters_are_400(api: TestClient, query: str) -> None:
    response = api.get(f"/api/debug/runs?{query}")
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == ["message"]
    assert "Traceback" not in body["message"] and "\n" not in body["message"]
    assert len(body["message"]) < 200


def test_chat_routes_validate_too(api: TestClient) -> None:
    assert api.get("/api/chats/chat-0/debug/runs?limit=500").status_code == 400
    assert api.get("/api/chats/chat-0/debug/runs?since=1h").status_code == 400  # unknown here
    assert api.get("/api/chats/chat-0/debug/export?x=1").status_code == 400
    long_chat = "c" * 300
    assert api.get(f"/api/chats/{long_chat}/debug/runs").status_code == 400
    run_id = uuid.uuid4()
    assert api.get(f"/api/chats/chat-0/debug/runs/{run_id}?x=1").status_code == 400
    # A UUID in another spelling is not the canonical id.
    assert api.get(f"/api/chats/chat-0/debug/runs/{run_id.hex}").status_code == 400
    assert api.get("/api/chats/chat-0/debug/runs/%00").status_code == 400


def test_valid_edges(api: TestClient) -> None:
    assert len(api.get("/api/debug/runs?limit=1").json()["runs"]) == 1
    assert api.get("/api/debug/runs?limit=100").status_code == 200
    assert api.get("/api/debug/runs?since=2025-01-01T00:00:00Z").status_code == 200
    assert api.get("/api/debug/runs?until=2025-01-01T00:00:00%2B02:00").json()["runs"] == []
    assert len(api.get("/api/chats/chat-0/debug/runs?limit=2").json()) == 2


def test_cursor_round_trip(api: TestClient) -> None:
    first = api.get("/api/debug/runs?limit=2").json()
    assert first["next_cursor"]
    rest = api.get("/api/debug/runs", params={"cursor": first["next_cursor"]}).json()
    assert len(first["runs"]) + len(rest["runs"]) == 5
    assert rest["next_cursor"] is None
    assert not {r["id"] for r in first["runs"]} & {r["id"] for r in rest["runs"]}


def test_security_headers_on_api_responses(api: TestClient) -> None:
    for response in (api.get("/api/debug/runs"), api.get("/api/debug/runs?limit=0")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("failure", "status", "message"),
    [
        (RuntimeError("secret internal detail"), 500, "Internal error fetching debug runs."),
        (StoreUnavailable("db at secret-host down"), 503, "Database unavailable, try again later."),
    ],
)
def test_store_failures_answer_without_details(
    failure: Exception, status: int, message: str
) -> None:
    class Broken:
        def __getattr__(self, name: str) -> object:
            def fail(*args: object, **kwargs: object) -> None:
                raise failure

            return fail

    app = build_app(Broken())  # type: ignore[arg-type]
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
        response = client.get("/api/debug/runs")
    assert response.status_code == status
    assert response.json() == {"message": message}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(
        ["status", "kind", "user_id", "model", "since", "until", "cursor", "limit"]
    ),
    value=st.text(max_size=60),
)
def test_any_parameter_value_is_answered_200_or_400(api: TestClient, name: str, value: str) -> None:
    response = api.get("/api/debug/runs", params={name: value})
    assert response.status_code in (200, 400), (name, value, response.text)
    body = response.json()
    assert ("runs" in body) if response.status_code == 200 else (list(body) == ["message"])
