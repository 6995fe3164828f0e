"""Finding a conversation through the read API: the chat filter, text search, the model
filter on requested and answering models, a chat's totals, one run by id, and the odd
chat ids the recorder accepts (both backends, runs recorded through the real openai
SDK)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

import chatdebug
from chatdebug._ids import MAX_ID_LENGTH
from chatdebug._safety import internal_error_counts
from chatdebug.store import Store
from tests.fakes.server import FakeServer
from tests.server._api_support import (
    READ_TOKEN,
    build_app,
    record_error_turn,
    record_simple_turn,
    record_tool_turn,
)

AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}
ODD_CHAT_IDS = [
    "tab\there",
    "nb\u00a0space",
    "family 👩‍👩‍👧‍👦",
    ".",
    "..",
    "a/b",
    "/",
    "what?x=1",
    "#frag",
    "%2e%2e",
    "x" * MAX_ID_LENGTH,
]


@pytest.fixture
def store(configured: chatdebug.Configuration) -> Store:
    """The store chatdebug records into (the shared ``configured`` fixture)."""
    return configured.store


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    with TestClient(build_app(store), headers=AUTH) as client:
        yield client


def _ids(api: TestClient, **params: str) -> list[str]:
    response = api.get("/api/debug/runs", params=params)
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()["runs"]]


def test_search_chat_filter_and_model(
    api: TestClient, store: Store, fake_server: FakeServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    weather = record_tool_turn(fake_server, f"w-{tag}", user_id=f"u-{tag}")
    hello = record_simple_turn(
        fake_server, f"h-{tag}", text=f"Bonjour {tag}rep", user_text=f"salut {tag}q"
    )
    failed = record_error_turn(fake_server, f"w-{tag}")
    assert chatdebug.flush()

    assert _ids(api, q="Paris") == [str(weather)]  # the first message
    assert _ids(api, q="jacket") == [str(weather)]  # a streamed reply
    assert _ids(api, q="sunny") == [str(weather)]  # a tool result
    assert _ids(api, q=f"{tag}rep") == [str(hello)]  # a reply
    assert _ids(api, q=f"{tag}q") == [str(hello)]
    assert _ids(api, q="weather", chat_id=f"h-{tag}") == []
    assert _ids(api, chat_id=f"w-{tag}") == [str(failed), str(weather)]
    assert _ids(api, chat_id=f"w-{tag}", q="paris", user_id=f"u-{tag}") == [str(weather)]
    assert _ids(api, chat_id=f"w-{tag}", status="error") == [str(failed)]
    # requested "gpt-4o", answered "gpt-4o-2024-08-06": both find the run
    assert str(hello) in _ids(api, model="gpt-4o")
    assert str(hello) in _ids(api, model="gpt-4o-2024-08-06")
    run = store.get_run(hello)
    assert run is not None and run.model == "gpt-4o-2024-08-06"

    page = api.get("/api/debug/runs", params={"chat_id": f"w-{tag}", "limit": "1"}).json()
    assert page["next_cursor"] is not None
    rest = _ids(api, chat_id=f"w-{tag}", limit="1", cursor=page["next_cursor"])
    assert rest == [str(weather)]

    summary = api.get("/api/debug/runs").json()["runs"]
    by_id = {entry["id"]: entry for entry in summary}
    assert by_id[str(weather)]["user_id"] == f"u-{tag}"
    error = by_id[str(failed)]["summary"]["error"]
    assert error["step_number"] == 1 and error["message"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "!!"}, "q: a search needs at least one word"),
        ({"q": "a b c d e f g h i"}, "q: a search may have at most 8 words"),
        ({"q": ""}, "q must be 1 to 256 characters"),
        ({"chat_id": ""}, "chat_id must not be empty"),
        ({"chat_id": "x" * (MAX_ID_LENGTH + 1)}, "chat_id is 257 characters long"),
        ({"chat_id": "a\x00b"}, "chat_id contains a NUL character"),
    ],
)
def test_bad_search_and_chat_id_are_400(
    api: TestClient, params: dict[str, str], message: str
) -> None:
    response = api.get("/api/debug/runs", params=params)
    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def test_odd_chat_ids_round_trip(api: TestClient, fake_server: FakeServer) -> None:
    recorded = {chat_id: record_simple_turn(fake_server, chat_id) for chat_id in ODD_CHAT_IDS}
    assert chatdebug.flush()
    for chat_id, run_id in recorded.items():
        assert _ids(api, chat_id=chat_id) == [str(run_id)], chat_id
        if "%" not in chat_id:  # Starlette's test client decodes a path twice
            # "." and ".." must be sent as %2E: clients remove dot segments from paths.
            path = quote(chat_id, safe="").replace(".", "%2E")
            listed = api.get(f"/api/chats/{path}/debug/runs")
            assert listed.status_code == 200, (chat_id, listed.text)
            assert [r["id"] for r in listed.json()] == [str(run_id)], chat_id
        one = api.get(f"/api/debug/runs/{run_id}")
        assert one.status_code == 200 and one.json()["chat_id"] == chat_id
        totals = api.get("/api/debug/chat", params={"chat_id": chat_id}).json()
        assert totals["chat_id"] == chat_id and totals["run_count"] == 1


def test_too_long_chat_id_is_refused_at_record_time(
    store: Store, fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    before = internal_error_counts().get("run", 0)
    unique = uuid.uuid4().hex  # the log is rate-limited per message
    with chatdebug.run(unique + "y" * (MAX_ID_LENGTH + 1 - len(unique))) as run:
        pass
    assert run.id is None and not run.recording
    assert internal_error_counts().get("run", 0) == before + 1
    assert f"run not recorded: chat id '{unique}yyy" in caplog.text
    assert "the limit is 256" in caplog.text


def test_chat_totals(api: TestClient, fake_server: FakeServer) -> None:
    chat = f"t-{uuid.uuid4().hex[:8]}"
    record_tool_turn(fake_server, chat, user_id="u-a")
    record_error_turn(fake_server, chat, user_id="u-b")
    assert chatdebug.flush()
    totals: dict[str, Any] = api.get("/api/debug/chat", params={"chat_id": chat}).json()
    assert totals["run_count"] == 2
    assert totals["error_run_count"] == 1
    assert totals["total_input_tokens"] > 0 and totals["total_output_tokens"] > 0
    assert totals["user_ids"] == ["u-a", "u-b"]
    assert totals["complete"] is True
    assert api.get("/api/debug/chat").status_code == 400
    assert api.get("/api/debug/runs/" + str(uuid.uuid4())).status_code == 404
    assert api.get("/api/debug/runs/not-a-uuid").status_code == 400


def test_duplicated_json_key_is_400(store: Store) -> None:
    from tests.server._api_support import ADMIN_TOKEN

    with TestClient(build_app(store)) as client:
        response = client.put(
            "/api/chats/config/debug-retention-days",
            content=b'{"debug_retention_days": 7, "debug_retention_days": 9000}',
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert store.get_retention_days() != 9000


def _paged_ids(api: TestClient, limit: int, **params: str) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        body = api.get("/api/debug/runs", params=query).json()
        seen += [run["id"] for run in body["runs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_search_words_prefixes_filters_and_pages(api: TestClient, fake_server: FakeServer) -> None:
    # Words of a run may be in its first message and in its reply; a word matches the
    # words it begins; every filter combines with the search and with the cursor.
    tag = uuid.uuid4().hex[:8]
    recorded: list[tuple[str, str, str, str]] = []  # run id, chat, user, words
    for i in range(10):
        chat, user = f"s-{tag}-{i % 2}", f"u-{tag}-{i % 3}"
        question = f"{tag}ask" + (f" {tag}parcel" if i % 2 else "")
        reply = f"{tag}answer" + (f" {tag}refunded" if i % 3 else "")
        run_id = record_simple_turn(fake_server, chat, text=reply, user_text=question, user_id=user)
        recorded.append((str(run_id), chat, user, f"{question} {reply}"))
    assert chatdebug.flush()
    newest = [r for r in reversed(recorded)]

    def expected(words: list[str], chat: str | None = None, user: str | None = None) -> list[str]:
        return [
            run_id
            for run_id, run_chat, run_user, text in newest
            if all(any(w.startswith(word) for w in text.split()) for word in words)
            and chat in (None, run_chat)
            and user in (None, run_user)
        ]

    both = expected([f"{tag}parcel", f"{tag}refund"])
    assert len(both) == 3
    assert _paged_ids(api, 2, q=f"{tag}parcel {tag}refund") == both
    assert _paged_ids(api, 1, q=f"{tag}ref {tag}ask") == expected([f"{tag}ref"])
    chat, user = f"s-{tag}-1", f"u-{tag}-2"
    assert _paged_ids(api, 2, q=f"{tag}refund", chat_id=chat) == expected(
        [f"{tag}refund"], chat=chat
    )
    assert _paged_ids(api, 1, q=f"{tag}answer {tag}par", user_id=user) == expected(
        [f"{tag}answer", f"{tag}par"], user=user
    )
    assert _paged_ids(api, 3, q=f"{tag}ask", chat_id=chat, user_id=user, status="completed") == (
        expected([f"{tag}ask"], chat=chat, user=user)
    )
    assert _paged_ids(api, 5, q=f"{tag}answer {tag}nothing") == []
