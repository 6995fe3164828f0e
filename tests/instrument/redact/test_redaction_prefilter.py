"""The redactor's prefilter may only skip work that would change nothing: whenever it
calls a JSON text clean, the full walk must agree. Checked over generated documents that
mix sensitive keys, near misses, value-pattern lookalikes and JSON nested in strings."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from chatdebug.instrument.redact._patterns import parse_json
from chatdebug.instrument.redact._redactor import DEFAULT_REDACTOR, Redactor

KEYS = [
    "role",
    "content",
    "max_tokens",
    "prompt_tokens",
    "token",
    "Token",
    "API_KEY",
    "apikey",
    "x-api-key",
    "keys",
    "monkey",
    "session_token",
    "tokens",
    "client_secret",
    "Password2",
    "authorization_code",
    "credentials",
    "private_key",
    "key",
    "ssn",
]
VALUES = [
    "hello",
    "sk-short",
    "sk-proj-" + "a1" * 15,
    "Asia trip",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.sig",
    "bearer of news",
    "Bearer abcdefghijklmnop1234",
    "AKIA" + "A" * 16,
    "plain text",
    "",
]


def document(rng: random.Random, depth: int = 0) -> Any:
    if depth > 3 or rng.random() < 0.3:
        return rng.choice([*VALUES, 1, 2.5, None, True])
    if rng.random() < 0.15:
        return json.dumps(document(rng, depth + 1))  # JSON nested in a string
    if rng.random() < 0.5:
        return [document(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(KEYS): document(rng, depth + 1) for _ in range(rng.randint(0, 4))}


@pytest.mark.parametrize(
    "redactor", [DEFAULT_REDACTOR, Redactor(extra_keys=["ssn"])], ids=["default", "extra-key"]
)
def test_prefilter_never_skips_a_change(redactor: Redactor) -> None:
    rng = random.Random(20261122)
    skipped = walked = 0
    for _ in range(3000):
        text = json.dumps(document(rng))
        changed = redactor._walk(parse_json(text), 0, True)[1]
        if redactor._clean(text):
            skipped += 1
            assert not changed, text
        else:
            walked += 1
    assert skipped > 100 and walked > 100  # both paths were exercised


def test_json_nested_twice_is_still_redacted() -> None:
    inner = json.dumps({"api_key": "sekrit-value"})
    outer = json.dumps({"a": json.dumps({"b": inner})}).encode()
    assert b"sekrit-value" not in DEFAULT_REDACTOR.redact_json(outer)
    payload = {"arguments": json.dumps({"b": inner})}
    assert "sekrit-value" not in json.dumps(DEFAULT_REDACTOR.redact_payload(payload))
