"""Text search, the chat filter and the model filter of the cross-chat listing: the
index the database keeps on every write, on both stores."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from chatdebug.store import (
    BulkWrites,
    NewStep,
    Run,
    RunFilter,
    RunUpdate,
    StepUpdate,
    Store,
    bulk_writer,
    search_terms,
)
from tests.store.support import T0, make_run, make_step


def _ids(runs: list[Run]) -> set[uuid.UUID]:
    return {run.id for run in runs}


def _request(*texts: str, model: str | None = None) -> dict[str, object]:
    request: dict[str, object] = {
        "messages": [{"role": "user", "parts": [{"type": "text", "text": t}]} for t in texts]
    }
    if model is not None:
        request["model"] = model
    return request


def _search(store: Store, text: str, **filters: object) -> set[uuid.UUID]:
    return _ids(store.list_recent_runs(RunFilter(text=text, **filters)))  # type: ignore[arg-type]


def test_finds_first_message_request_and_reply_words(store: Store) -> None:
    by_first = make_run(store, "c-1", summary={"first_message": "Where is my parcel?"})
    by_request = make_run(store, "c-2")
    make_step(store, by_request, normalized_request=_request("Please cancel subscription 4411"))
    by_reply = make_run(store, "c-3")
    step = make_step(store, by_reply, normalized_request=_request("hello"))
    store.update_step(
        StepUpdate(
            id=step.id,
            chat_id="c-3",
            status="completed",
            normalized_response={
                "content": [
                    {"type": "text", "text": "Your refund was issued"},
                    {"type": "tool-call", "tool_name": "lookup", "arguments": '{"order": "A77"}'},
                ]
            },
        )
    )
    make_run(store, "c-4", summary={"first_message": "unrelated words"})

    assert _search(store, "parcel") == {by_first.id}
    assert _search(store, "PARCEL?") == {by_first.id}  # case and punctuation ignored
    assert _search(store, "subscription 4411") == {by_request.id}
    assert _search(store, "refund") == {by_reply.id}
    assert _search(store, "refu") == {by_reply.id}  # a word matches the words it begins
    assert _search(store, "a77") == {by_reply.id}  # tool arguments are searched
    assert _search(store, "nothing-like-this") == set()
    # every word must be found in the run, not necessarily in one message
    assert _search(store, "hello refund") == {by_reply.id}
    assert _search(store, "hello parcel") == set()


def test_search_combines_with_filters_and_cursor(store: Store) -> None:
    runs = [
        make_run(
            store,
            f"c-{i % 2}",
            user_id=f"u-{i % 3}",
            summary={"first_message": f"invoice question number {i}"},
            started_at=T0 - timedelta(minutes=i),
        )
        for i in range(7)
    ]
    make_run(store, "c-0", summary={"first_message": "something else"})
    found = store.list_recent_runs(RunFilter(text="invoice", chat_id="c-0"))
    assert [r.id for r in found] == [runs[i].id for i in (0, 2, 4, 6)]
    assert _search(store, "invoice", user_id="u-1") == {runs[1].id, runs[4].id}
    first = store.list_recent_runs(RunFilter(text="invoice"), limit=3)
    from chatdebug.store import RunPosition

    rest = store.list_recent_runs(
        RunFilter(text="invoice"),
        after=RunPosition(first[-1].started_at, first[-1].id),
        limit=10,
    )
    assert [r.id for r in first + rest] == [r.id for r in runs]


def test_reindexes_changed_text_and_forgets_deleted_runs(store: Store) -> None:
    run = make_run(store, "c-1")
    step = make_step(store, run, normalized_request=_request("first draft"))
    assert _search(store, "draft") == {run.id}
    store.update_step(
        StepUpdate(id=step.id, chat_id="c-1", normalized_request=_request("second version"))
    )
    assert _search(store, "draft") == set()
    assert _search(store, "version") == {run.id}
    assert store.delete_by_chat("c-1", T0 + timedelta(days=1)) == 1
    assert _search(store, "version") == set()


def test_keeps_the_newest_text_of_a_long_history(store: Store) -> None:
    run = make_run(store, "c-1")
    filler = "padding " * 3000  # 24,000 characters before the newest message
    make_step(store, run, normalized_request=_request("oldestword " + filler, "newestword"))
    assert _search(store, "newestword") == {run.id}
    assert _search(store, "oldestword") == set()


def test_malformed_payloads_are_not_indexed_and_do_not_fail_writes(store: Store) -> None:
    run = make_run(store, "c-1", summary={"first_message": ["not", "text"]})
    make_step(store, run, normalized_request={"messages": "not a list"})
    make_step(store, run, normalized_request={"messages": [{"parts": [{"text": 42}]}]})
    assert _search(store, "not") == set()


def test_bulk_writes_are_indexed(store: Store) -> None:
    writer = bulk_writer(store)
    assert writer is not None
    run = make_run(store, "c-1")
    step = NewStep(
        run_id=run.id,
        chat_id="c-1",
        operation="generate",
        step_number=1,
        normalized_request=_request("bulkword", model="gpt-4o"),
        model="gpt-4o",
    )
    with store.batch():
        assert writer.write_bulk(BulkWrites(new_steps=[step]))
    assert _search(store, "bulkword") == {run.id}
    assert _ids(store.list_recent_runs(RunFilter(model="gpt-4o"))) == {run.id}


def test_model_filter_matches_requested_and_answering_model(store: Store) -> None:
    answered = make_run(store, "c-1")
    step = make_step(
        store, answered, normalized_request=_request("hi", model="gpt-4o"), model="gpt-4o"
    )
    store.update_step(
        StepUpdate(id=step.id, chat_id="c-1", status="completed", model="gpt-4o-2024-08-06")
    )
    store.update_run(RunUpdate(id=answered.id, chat_id="c-1", status="completed"))
    assert store.get_run(answered.id).model == "gpt-4o-2024-08-06"  # type: ignore[union-attr]
    own = make_run(store, "c-2", model="claude-x")
    make_run(store, "c-3", model="other")

    assert _ids(store.list_recent_runs(RunFilter(model="gpt-4o"))) == {answered.id}
    assert _ids(store.list_recent_runs(RunFilter(model="gpt-4o-2024-08-06"))) == {answered.id}
    assert _ids(store.list_recent_runs(RunFilter(model="claude-x"))) == {own.id}
    assert _ids(store.list_recent_runs(RunFilter(model="gpt"))) == set()  # exact names


def test_chat_filter_is_exact(store: Store) -> None:
    odd = "tab\there/..?#\u00a0👩‍👩‍👧"
    hit = make_run(store, odd)
    make_run(store, odd + "x")
    make_run(store, "TAB\there/..?#\u00a0👩‍👩‍👧")
    assert _ids(store.list_recent_runs(RunFilter(chat_id=odd))) == {hit.id}


def test_search_terms() -> None:
    assert search_terms("Gpt-4o, REFUND refund!") == ["gpt", "4o", "refund"]
    assert search_terms("snake_case") == ["snake", "case"]
    with pytest.raises(ValueError, match="at least one word"):
        search_terms(" -- !! ")
    with pytest.raises(ValueError, match="at most"):
        search_terms("a b c d e f g h i")


@pytest.mark.parametrize("window", [1, 3, 2000])
def test_search_pages_are_exact_whatever_the_window(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    # SQLite reads a word's matches newest first in growing windows: every window size
    # gives the same pages as the plain definition (ties on started_at included).
    monkeypatch.setattr("chatdebug.store._sqlite_recent._SEARCH_WINDOW", window)
    store = sqlite_store
    expected: list[Run] = []
    for i in range(40):
        words = ["common"] + (["rare"] if i % 7 == 0 else []) + (["other"] if i % 2 else [])
        moment = T0 - timedelta(seconds=i // 3)  # three runs share each moment
        run = make_run(store, f"c-{i % 4}", started_at=moment)
        make_step(store, run, normalized_request=_request(" ".join(words)))
        if i % 5:
            run = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="error"))
        expected.append(run)
    newest = sorted(expected, key=lambda r: (r.started_at, r.id), reverse=True)

    def pages(filters: RunFilter, size: int) -> list[uuid.UUID]:
        from chatdebug.store import RunPosition

        seen: list[uuid.UUID] = []
        after = None
        while True:
            page = store.list_recent_runs(filters, after=after, limit=size)
            seen += [r.id for r in page]
            if len(page) < size:
                return seen
            after = RunPosition(page[-1].started_at, page[-1].id)

    def ids(
        *, words: set[str], status: str | None = None, chat: str | None = None
    ) -> list[uuid.UUID]:
        out = []
        for i, run in enumerate(expected):
            have = (
                {"common"} | ({"rare"} if i % 7 == 0 else set()) | ({"other"} if i % 2 else set())
            )
            if words <= have and (status is None or run.status == status):
                if chat is None or run.chat_id == chat:
                    out.append(run.id)
        return [r.id for r in newest if r.id in set(out)]

    for size in (1, 4, 7, 100):
        assert pages(RunFilter(text="common"), size) == ids(words={"common"})
        assert pages(RunFilter(text="rare"), size) == ids(words={"rare"})
        assert pages(RunFilter(text="other common"), size) == ids(words={"other", "common"})
        assert pages(RunFilter(text="rare other"), size) == ids(words={"rare", "other"})
        assert pages(RunFilter(text="common", status="in_progress"), size) == ids(
            words={"common"}, status="in_progress"
        )
        assert pages(RunFilter(text="common", chat_id="c-1"), size) == ids(
            words={"common"}, chat="c-1"
        )
