"""Text search, the chat filter and the model filter of the cross-chat listing: the
index the database keeps on every write, on both stores."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from chatdebug.store import (
    BulkWrites,
    NewRun,
    NewStep,
    Run,
    RunFilter,
    RunPosition,
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


def test_reindexes_a_changed_first_message_only(store: Store) -> None:
    run = make_run(store, "c-1", summary={"first_message": "alpha question"})
    make_step(store, run, normalized_request=_request("gamma detail"))
    store.update_run(
        RunUpdate(id=run.id, chat_id="c-1", summary={"first_message": "alpha question", "n": 1})
    )
    assert _search(store, "alpha gamma") == {run.id}
    store.update_run(RunUpdate(id=run.id, chat_id="c-1", summary={"first_message": "beta"}))
    assert _search(store, "alpha") == set()
    assert _search(store, "beta gamma") == {run.id}


def test_a_word_the_database_splits_matches_where_it_is_whole(store: Store) -> None:
    # One word for FTS5; PostgreSQL's parser reads a number and a word in it (a phrase),
    # which must then follow each other in one text, as the word itself does.
    whole = make_run(store, "c-1", summary={"first_message": "ticket 5e123456parcel"})
    apart = make_run(store, "c-2", summary={"first_message": "5e123456 ticket"})
    make_step(store, apart, normalized_request=_request("parcel"))
    assert _search(store, "5e123456parcel") == {whole.id}
    assert _search(store, "ticket 5e123456parc") == {whole.id}
    assert _search(store, "5e123456") == {whole.id, apart.id}


def test_keeps_the_newest_text_of_a_long_history(store: Store) -> None:
    run = make_run(store, "c-1")
    filler = "padding " * 3000  # 24,000 characters before the newest message
    make_step(store, run, normalized_request=_request("oldestword " + filler, "newestword"))
    assert _search(store, "newestword") == {run.id}
    assert _search(store, "oldestword") == set()


def test_a_step_leaves_out_the_messages_its_run_already_sent(store: Store) -> None:
    # request_history_sent: the leading messages the run's previous step sent; they are
    # in that step's text, so the run still has every word.
    run = make_run(store, "c-1")
    make_step(store, run, normalized_request=_request("alpha first"))
    second = make_step(
        store,
        run,
        normalized_request=_request("alpha first", "beta second"),
        request_history_sent=1,
    )
    other = make_run(store, "c-2")
    make_step(
        store, other, normalized_request=_request("alpha first", "gamma"), request_history_sent=1
    )
    assert _search(store, "alpha") == {run.id}  # left out of c-2's only step
    assert _search(store, "alpha beta") == {run.id}
    assert _search(store, "gamma") == {other.id}
    assert _search(store, "first gamma") == set()
    # A request given again without a count is indexed whole; the count goes with it.
    store.update_step(
        StepUpdate(id=second.id, chat_id="c-1", normalized_request=_request("delta", "epsilon"))
    )
    assert _search(store, "delta epsilon") == {run.id}
    assert _search(store, "beta") == set()
    # More than the request holds leaves nothing of it, and fails nothing.
    third = make_run(store, "c-3")
    make_step(store, third, normalized_request=_request("zeta"), request_history_sent=5)
    assert _search(store, "zeta") == set()


def test_a_bulk_step_leaves_out_the_messages_its_run_already_sent(store: Store) -> None:
    writer = bulk_writer(store)
    assert writer is not None
    run = make_run(store, "c-1")
    steps = [
        NewStep(
            run_id=run.id,
            chat_id="c-1",
            operation="generate",
            step_number=number,
            normalized_request=_request(*texts),
            request_history_sent=sent,
        )
        for number, texts, sent in ((1, ["omega"], None), (2, ["omega", "sigma"], 1))
    ]
    with store.batch():
        assert writer.write_bulk(BulkWrites(new_steps=steps))
    update = StepUpdate(
        id=steps[1].id,
        chat_id="c-1",
        normalized_request=_request("omega", "tau"),
        request_history_sent=1,
    )
    with store.batch():
        assert writer.write_bulk(BulkWrites(step_updates=[update]))
    assert _search(store, "omega tau") == {run.id}
    assert _search(store, "sigma") == set()


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


# Each search strategy, forced. SQLite: the words' walks read one row at a time or a
# few; the runs a filter keeps read in windows of a page (handing over to walking after
# the first) or of a few pages (never handing over). PostgreSQL: a first window of one
# run or a few, then the rest read newest first or looked up in the words' index.
STRATEGIES = {
    "as shipped": ({}, {}),
    "step by step": (
        {"_FIRST_READ": 1, "_MAX_READ": 1, "_WINDOW_PAGES": 1, "_DENSE": 10**9},
        {"WINDOW": 1, "LOOKUP_LIMIT": 0},
    ),
    "few at a time": (
        {"_FIRST_READ": 2, "_MAX_READ": 5, "_WINDOW_PAGES": 2, "_DENSE": 1},
        {"WINDOW": 3, "LOOKUP_LIMIT": 10**9},
    ),
}


@pytest.fixture(params=sorted(STRATEGIES))
def strategy(request: pytest.FixtureRequest, store: Store, monkeypatch: pytest.MonkeyPatch) -> str:
    sqlite_patch, postgres_patch = STRATEGIES[request.param]
    if store.backend == "sqlite":
        module, patch = "chatdebug.store._sqlite_search", sqlite_patch
    else:
        module, patch = "chatdebug.store._postgres_search", postgres_patch
    for name, value in patch.items():
        monkeypatch.setattr(f"{module}.{name}", value)
    return str(request.param)


def _pages(store: Store, filters: RunFilter, size: int) -> list[uuid.UUID]:
    seen: list[uuid.UUID] = []
    after = None
    while True:
        page = store.list_recent_runs(filters, after=after, limit=size)
        seen += [r.id for r in page]
        if len(page) < size:
            return seen
        after = RunPosition(page[-1].started_at, page[-1].id)


@dataclass
class _Recorded:
    run: Run
    words: set[str]
    model: str


def _record_history(store: Store) -> list[_Recorded]:
    """48 runs: words spread over first messages, requests and replies; several runs
    per moment and per millisecond; four chats, three users, two statuses, two models."""
    recorded = []
    for i in range(48):
        first = ["common"] + (["rare"] if i % 7 == 0 else []) + (["7e1box"] if i % 4 == 0 else [])
        request = (["other"] if i % 2 else []) + (["refunded"] if i % 5 == 0 else [])
        reply = ["refunds"] if i % 3 == 0 else []
        # Runs 3k, 3k+1 and 3k+2 share a millisecond; pairs of them share a moment.
        moment = T0 - timedelta(milliseconds=i // 3, microseconds=(i % 3) // 2)
        run = make_run(
            store,
            f"c-{i % 4}",
            user_id=f"u-{i % 3}",
            started_at=moment,
            summary={"first_message": " ".join(first)},
        )
        model = "m-small" if i % 4 == 1 else "m-large"
        step = make_step(store, run, normalized_request=_request(" ".join(request), model=model))
        if reply:
            store.update_step(
                StepUpdate(
                    id=step.id,
                    chat_id=run.chat_id,
                    normalized_response={"content": [{"type": "text", "text": reply[0]}]},
                )
            )
        if i % 5:
            run = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="error"))
        recorded.append(_Recorded(run, {*first, *request, *reply}, model))
    return recorded


SEARCHES: list[dict[str, Any]] = [
    {"text": "common"},
    {"text": "rare"},
    {"text": "refund"},  # a prefix of the words of two different texts
    {"text": "other common"},
    {"text": "rare other"},
    {"text": "rare refund other"},
    {"text": "refunded refunds"},  # the first message, the request and the reply
    {"text": "common", "status": "in_progress"},
    {"text": "other", "status": "error", "user_id": "u-1"},
    {"text": "common", "chat_id": "c-1"},
    {"text": "refund common", "chat_id": "c-2", "status": "error"},
    {"text": "common", "model": "m-small"},
    {"text": "other", "model": "m-large", "user_id": "u-0"},
    {
        "text": "common",
        "since": T0 - timedelta(milliseconds=9),
        "until": T0 - timedelta(milliseconds=3),
    },
    {"text": "other", "since": T0 - timedelta(milliseconds=9, microseconds=1)},
    {"text": "7e1bo"},  # a phrase to PostgreSQL's parser
    {"text": "7e1box other", "status": "error"},
    {"text": "nothingmatches"},
]


@pytest.mark.parametrize("size", [1, 5, 100])
def test_search_pages_are_exact_whatever_the_strategy(
    store: Store, strategy: str, size: int
) -> None:
    recorded = _record_history(store)
    newest = sorted(recorded, key=lambda r: (r.run.started_at, r.run.id), reverse=True)

    def expected(search: dict[str, Any]) -> list[uuid.UUID]:
        terms = search_terms(search["text"])
        out = []
        for r in newest:
            run = r.run
            if not all(any(word.startswith(t) for word in r.words) for t in terms):
                continue
            if any(
                getattr(run, name) != search[name]
                for name in ("status", "chat_id", "user_id")
                if name in search
            ):
                continue
            if "model" in search and r.model != search["model"]:
                continue
            if "since" in search and run.started_at < search["since"]:
                continue
            if "until" in search and run.started_at >= search["until"]:
                continue
            out.append(run.id)
        return out

    for search in SEARCHES:
        want = expected(search)
        assert _pages(store, RunFilter(**search), size) == want, (strategy, search)
    assert expected({"text": "rare refund other"})  # the searches find something


def test_paging_through_a_common_word_has_no_gap_or_repeat(store: Store) -> None:
    writer = bulk_writer(store)
    assert writer is not None
    writes = BulkWrites()
    for i in range(600):
        run = NewRun(
            chat_id=f"c-{i % 9}",
            started_at=T0 - timedelta(milliseconds=i // 4),
            summary={"first_message": f"common word {i}"},
        )
        writes.new_runs.append(run)
    with store.batch():
        assert writer.write_bulk(writes)
    want = [r.id for r in sorted(writes.new_runs, key=lambda r: (r.started_at, r.id), reverse=True)]
    seen = _pages(store, RunFilter(text="common"), 37)
    assert seen == want
    assert len(set(seen)) == 600
