"""JSON payloads: writes that never fail on odd values, reads that never fail on odd rows."""

from __future__ import annotations

import base64
import uuid

from chatdebug.store import EncodedJSON, Store, encode_json
from tests.store.support import is_sqlite, make_run, make_step, raw


def test_unicode_round_trips_unchanged(store: Store) -> None:
    text = 'héllo ✓ 🙂 \u2028 "quoted" \\ back\\slash \t tab'
    run = make_run(store, summary={"first_message": text, "ключ": text})
    assert run.summary == {"first_message": text, "ключ": text}
    assert store.get_run(run.id) == run


def test_non_finite_floats_become_null(store: Store) -> None:
    run = make_run(
        store,
        summary={"nan": float("nan"), "inf": float("inf"), "ninf": -float("inf"), "ok": 1.5},
    )
    assert run.summary == {"nan": None, "inf": None, "ninf": None, "ok": 1.5}


def test_unstorable_characters_are_replaced(store: Store) -> None:
    run = make_run(store)
    step = make_step(
        store,
        run,
        normalized_request={"text": "a\x00b", "lone": "x\ud800y", "k\x00": ["\x00"]},
    )
    assert step.normalized_request == {
        "text": "a\ufffdb",
        "lone": "x\ufffdy",
        "k\ufffd": ["\ufffd"],
    }


def test_payloads_encoded_ahead_are_stored_like_objects(store: Store) -> None:
    odd = {"text": "a\x00b", "lone": "x\ud800y", "when": uuid.UUID(int=7), "n": float("nan")}
    encoded = encode_json(odd)
    assert type(encoded) is EncodedJSON and encode_json(encoded) is encoded
    run = make_run(store)
    as_object = make_step(store, run, normalized_request=odd, attempts=[odd])
    ahead = make_step(store, run, normalized_request=encoded, attempts=encode_json([odd]))
    assert ahead.normalized_request == as_object.normalized_request
    assert ahead.normalized_request == {
        "text": "a\ufffdb",
        "lone": "x\ufffdy",
        "when": str(uuid.UUID(int=7)),
        "n": None,
    }
    assert ahead.attempts == as_object.attempts


def test_values_json_does_not_know_are_converted(store: Store) -> None:
    run = make_run(store)
    marker = uuid.uuid4()
    step = make_step(
        store,
        run,
        attempts=[{"number": 1, "request_body": b"\x00\xffbody", "id": marker, "tags": ("a",)}],
    )
    (attempt,) = step.attempts
    assert attempt["request_body"] == base64.b64encode(b"\x00\xffbody").decode()
    assert attempt["id"] == str(marker)
    assert attempt["tags"] == ["a"]


def test_json_null_in_columns_reads_as_empty(store: Store, database_url: str) -> None:
    run = make_run(store, summary={"a": 1})
    step = make_step(store, run, usage={"input_tokens": 1}, attempts=[{"number": 1}])
    cast = "" if is_sqlite(database_url) else "::jsonb"
    raw(database_url, f"UPDATE chat_debug_runs SET summary = 'null'{cast}")
    raw(
        database_url,
        f"UPDATE chat_debug_steps SET attempts = 'null'{cast}, usage = 'null'{cast}, "
        f"metadata = 'null'{cast}, normalized_request = 'null'{cast}",
    )
    reread = store.get_run(run.id)
    assert reread is not None and reread.summary == {}
    (step,) = store.list_steps(run.id)
    assert step.attempts == [] and step.metadata == {} and step.normalized_request == {}
    assert step.usage is None


def test_wrong_json_shapes_read_as_diagnostics(store: Store, database_url: str) -> None:
    run = make_run(store)
    make_step(store, run)
    cast = "" if is_sqlite(database_url) else "::jsonb"
    raw(database_url, f"UPDATE chat_debug_runs SET summary = '[1, 2]'{cast}")
    raw(
        database_url,
        f"UPDATE chat_debug_steps SET attempts = '{{\"number\": 1}}'{cast}, "
        f"error = '\"plain string\"'{cast}",
    )
    reread = store.get_run(run.id)
    assert reread is not None
    assert reread.summary["error"] == "malformed debug payload"
    assert reread.summary["parse_error"] == "expected a JSON object"
    assert reread.summary["raw"].replace(" ", "") == "[1,2]"
    (step,) = store.list_steps(run.id)
    assert len(step.attempts) == 1
    assert step.attempts[0]["error"] == "malformed attempts payload"
    assert step.error is not None and step.error["error"] == "malformed debug payload"


def test_malformed_json_text_reads_as_diagnostics(sqlite_store: Store, sqlite_url: str) -> None:
    # Only SQLite can hold text that is not JSON (PostgreSQL's JSONB rejects it).
    run = make_run(sqlite_store)
    make_step(sqlite_store, run)
    raw(sqlite_url, "UPDATE chat_debug_runs SET summary = '{\"truncated\": '")
    raw(sqlite_url, "UPDATE chat_debug_steps SET attempts = '[{]', normalized_response = 'nope'")

    reread = sqlite_store.get_run(run.id)
    assert reread is not None
    assert reread.summary["error"] == "malformed debug payload"
    assert reread.summary["raw"] == '{"truncated": '
    assert reread.summary["parse_error"]
    (step,) = sqlite_store.list_steps(run.id)
    assert step.attempts == [
        {
            "error": "malformed attempts payload",
            "parse_error": step.attempts[0]["parse_error"],
            "raw": "[{]",
        }
    ]
    assert step.normalized_response is not None
    assert step.normalized_response["raw"] == "nope"
