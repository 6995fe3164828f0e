"""Redaction by value (secret formats anywhere), JSON fidelity, user rules, payloads."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest

from chatdebug.instrument.redact._patterns import DEFAULT_PATTERNS
from chatdebug.instrument.redact._redactor import (
    DEFAULT_REDACTOR,
    NESTING_DIAGNOSTIC,
    NOT_JSON_DIAGNOSTIC,
    REDACTED,
    Redactor,
)

R = DEFAULT_REDACTOR

# Fake credentials in the real formats, assembled so no scanner mistakes them for live.
OPENAI_LEGACY = "sk-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6l"
OPENAI_PROJECT = "sk-proj-" + "x1Y2z3" * 12 + "_-Q9"
OPENAI_SERVICE = "sk-svcacct-" + "Q7w8E9r0" * 6
ANTHROPIC = "sk-ant-api03-" + "aB3_cD4-eF5" * 8 + "AA"
GOOGLE = "AIzaSy" + "D" * 29 + "x_-1"
AWS_LONG_TERM = "AKIAIOSFODNN7EXAMPLE"
AWS_TEMPORARY = "ASIA" + "Z2XAMPLE7ABCDEFG"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
OPAQUE_BEARER = "ya29.a0AfH6SMBx3k9Q-opaque_token/with+chars=="
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" * 3
PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----"
PEM_RSA_ENCRYPTED = (
    "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
    f"DEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
)
PEM_OPENSSH = (
    f"-----BEGIN OPENSSH PRIVATE KEY-----\r\n{PEM_BODY}\r\n-----END OPENSSH PRIVATE KEY-----"
)
PEM_PGP = (
    f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{PEM_BODY}\n-----END PGP PRIVATE KEY BLOCK-----"
)

SECRETS = {
    "openai legacy": OPENAI_LEGACY,
    "openai project": OPENAI_PROJECT,
    "openai service account": OPENAI_SERVICE,
    "anthropic": ANTHROPIC,
    "google": GOOGLE,
    "aws access key id": AWS_LONG_TERM,
    "aws temporary key id": AWS_TEMPORARY,
    "jwt": JWT,
    "pem": PEM,
    "pem rsa encrypted": PEM_RSA_ENCRYPTED,
    "pem openssh": PEM_OPENSSH,
    "pem pgp": PEM_PGP,
}
SECRET_PARAMS = [pytest.param(value, id=name) for name, value in SECRETS.items()]


def assert_no_secret(output: str | bytes, secret: str) -> None:
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    # Check a distinctive inner slice too, so a partially redacted secret also fails.
    assert secret not in text
    assert secret[8:28] not in text


# -- value patterns ----------------------------------------------------------------------


@pytest.mark.parametrize("secret", SECRET_PARAMS)
def test_value_pattern_in_message_text(secret: str) -> None:
    result = R.redact_text(f"please use {secret} for this.")
    assert result == f"please use {REDACTED} for this."


@pytest.mark.parametrize("secret", SECRET_PARAMS)
def test_value_pattern_in_json_body(secret: str) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": f"key: {secret}"}]}).encode()
    result = R.redact_body(body, "application/json")
    assert_no_secret(result, secret)
    assert json.loads(result) == {"messages": [{"role": "user", "content": f"key: {REDACTED}"}]}


@pytest.mark.parametrize("secret", SECRET_PARAMS)
def test_value_pattern_in_sse_text(secret: str) -> None:
    chunk = json.dumps({"delta": {"text": f"here: {secret}"}})
    body = f"event: content_block_delta\ndata: {chunk}\n\n".encode()
    result = R.redact_body(body, "text/event-stream")
    assert_no_secret(result, secret)
    expected = json.dumps({"delta": {"text": f"here: {REDACTED}"}})
    assert result == f"event: content_block_delta\ndata: {expected}\n\n".encode()


@pytest.mark.parametrize("secret", SECRET_PARAMS)
def test_value_pattern_in_header_value(secret: str) -> None:
    result = R.redact_headers({"X-Custom": f"{secret}", "X-Forwarded": "plain"})
    assert result == {"X-Custom": REDACTED, "X-Forwarded": "plain"}


@pytest.mark.parametrize("secret", SECRET_PARAMS)
def test_value_pattern_in_error_text(secret: str) -> None:
    assert_no_secret(R.sanitize_error_text(f"upstream said: invalid key {secret}"), secret)


def test_value_pattern_in_url_path_and_plain_parameter() -> None:
    url = f"https://h/keys/{OPENAI_PROJECT}/usage?q=use+{GOOGLE}+now&model=m"
    result = R.redact_url(url)
    assert result == "https://h/keys/%5BREDACTED%5D/usage?q=use+%5BREDACTED%5D+now&model=m"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"Authorization: Bearer {OPAQUE_BEARER}", "Authorization: Bearer [REDACTED]"),
        pytest.param("bearer   abcdefghijklmnopqrstuvwxyzABCD", "bearer   [REDACTED]"),
        pytest.param(f"Bearer {JWT}", "Bearer [REDACTED]"),
        pytest.param(f"Bearer {ANTHROPIC}", "Bearer [REDACTED]"),
    ],
)
def test_bearer_keeps_scheme(text: str, expected: str) -> None:
    assert R.redact_text(text) == expected


def test_unterminated_pem_block_is_redacted() -> None:
    text = f'{{"key": "-----BEGIN EC PRIVATE KEY-----\\n{PEM_BODY}\\n", "n": 1}}'
    result = R.redact_text(text)
    assert PEM_BODY[:30] not in result
    assert result == '{"key": "[REDACTED]", "n": 1}'


def test_pem_block_inside_json_string_keeps_json_valid() -> None:
    body = json.dumps({"files": [{"content": PEM}], "n": 1}).encode()
    result = R.redact_body(body, None)
    assert json.loads(result) == {"files": [{"content": REDACTED}], "n": 1}


@pytest.mark.parametrize(
    "text",
    [
        "task-list",
        "desk-lamp and risk-free, sk-learn is a library",
        "sk-short",
        "sk-" + "abcdefghij" * 3,
        "the AKIA prefix and ASIANCOUNTRIES list",
        "AKIAIOSFODNN7EXAMPLE2",
        "AIza is short",
        "eyJ alone, eyJhbGci.only-two",
        "Bearer authentication is required",
        "bearer token",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYI\n-----END PUBLIC KEY-----",
        "max_tokens=4096 input_tokens cache_read_input_tokens",
        "",
    ],
)
def test_value_patterns_leave_ordinary_text_alone(text: str) -> None:
    assert R.redact_text(text) is text


def test_redacted_output_is_stable() -> None:
    once = R.redact_text(f"{OPENAI_LEGACY} Bearer {OPAQUE_BEARER} {PEM}")
    assert R.redact_text(once) is once


ADVERSARIAL = {
    "sk repeated": "sk-" * 333_334,
    "sk long digitless tail": " sk-" + "a" * 1_000_000,
    "google prefix repeated": "AIza" * 250_000,
    "aws prefix repeated": "AKIA" * 250_000,
    "jwt prefix repeated": "eyJ-" * 250_000,
    "jwt without third dot": " eyJaaaaa.aaaaa" * 66_667,
    "bearer repeated": "Bearer " * 142_858,
    "bearer huge token": "Bearer " + "a" * 1_000_000,
    "pem begin repeated": "-----BEGIN RSA PRIVATE KEY-----" * 32_259,
    "dashes": "-" * 1_000_000,
    "pem begin then spaces": "-----BEGIN " + " " * 1_000_000,
    "url schemes": "http://" * 142_858,
    "scheme chars": "a+" * 500_000 + "://",
    "mixed prefixes": "sk-ant-eyJ.AKIABearer -----BEGIN AIza " * 27_000,
}


@pytest.mark.parametrize("text", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_adversarial_megabyte_input_completes(text: str) -> None:
    # Catastrophic backtracking would take hours here; linear patterns take well under
    # a second. No timing assertion: finishing at all is the test.
    assert len(text) >= 1_000_000
    R.redact_text(text)
    R.sanitize_error_text(text)
    R.redact_body(text.encode(), "text/event-stream")


# -- bytes and JSON fidelity -------------------------------------------------------------


def test_an_unterminated_pem_block_stops_at_the_next_begin_marker() -> None:
    # Each search restarts just after the previous match's start; a match that ran to
    # the end of the input from every BEGIN marker made a run of markers quadratic.
    pem = DEFAULT_PATTERNS[0]
    marker = "-----BEGIN RSA PRIVATE KEY-----"
    text = marker + "MIIEkey/material+=\n" + marker + "more"
    first = pem.search(text)
    assert first is not None and first.end() == text.index(marker, 1)
    assert R.redact_text(text) == "[REDACTED][REDACTED]"
    # The key material up to the next marker is still removed, whatever dashes it holds.
    assert R.redact_text(marker + "ab-cd--ef\n-----END PUBLIC KEY-----tail") == "[REDACTED]"


def test_sse_invalid_utf8_is_preserved_around_matches() -> None:
    body = b"data: \xff\xfe caf\xc3\xa9 " + OPENAI_LEGACY.encode() + b" \xed\xa0\x80 end\n\n"
    result = R.redact_body(body, "text/event-stream")
    assert result == b"data: \xff\xfe caf\xc3\xa9 [REDACTED] \xed\xa0\x80 end\n\n"
    untouched = b"data: \xff\xfe no secret \x80\n\n"
    assert R.redact_body(untouched, "text/event-stream") is untouched


def test_big_numbers_are_preserved() -> None:
    body = b'{"n": 12345678901234567890.123456789, "api_key": "x", "e": 1E+400, "i": -0, "f": 1.10}'
    result = R.redact_json(body)
    assert result == (
        b'{"n":12345678901234567890.123456789,"api_key":"[REDACTED]","e":1E+400,"i":-0,"f":1.10}'
    )
    huge = b'{"big": ' + b"9" * 5000 + b', "password": "p"}'
    assert R.redact_json(huge) == b'{"big":' + b"9" * 5000 + b',"password":"[REDACTED]"}'


@pytest.mark.parametrize(
    "body",
    [
        b'{ "z" :1 ,\n\t"a":[ 1.0 , 2e3 ,"x" ], "m": {"k": null}}',
        b'\n  {"b": 1, "a": 2}  \r\n',
        b'{"text": "caf\\u00e9 \\ud83d\\ude00 \\"quoted\\" \\/ \xc3\xa9"}',
        b'{"model":"gpt","usage":{"input_tokens":5,"max_tokens":10}}',
        b"[]",
        b"0",
        b'"just a string"',
        b'{"a":1,"a":2}',
    ],
)
def test_json_unchanged_is_byte_identical(body: bytes) -> None:
    assert R.redact_json(body) is body
    assert R.redact_body(body, "application/json") is body


def test_json_key_order_and_unicode_kept_when_redacting() -> None:
    body = '{"zeta": "ü", "password": "p", "alpha": ["é", {"b": 2, "a": 1}]}'.encode()
    assert R.redact_json(body) == (
        '{"zeta":"ü","password":"[REDACTED]","alpha":["é",{"b":2,"a":1}]}'.encode()
    )


def test_json_lone_surrogate_escape_survives_reserialisation() -> None:
    result = R.redact_json(b'{"t": "\\ud800", "secret": "s"}')
    assert json.loads(result) == {"t": "\ud800", "secret": REDACTED}


def test_json_invalid_utf8_is_not_valid_json() -> None:
    assert R.redact_json(b'{"password": "\xff"}') == NOT_JSON_DIAGNOSTIC
    assert R.redact_body(b'{"a": "\xc3"}', None) == NOT_JSON_DIAGNOSTIC


def test_json_deep_nesting_fails_closed() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert R.redact_json(deep) == NESTING_DIAGNOSTIC
    assert R.redact_ndjson(b'{"a":1}\n' + deep) == b'{"a":1}\n' + NESTING_DIAGNOSTIC


def test_json_moderate_nesting_hides_only_the_deep_part() -> None:
    body = b'{"password": "p", "tree": ' + b"[" * 400 + b'"leaf"' + b"]" * 400 + b"}"
    result = R.redact_json(body)
    parsed = json.loads(result)
    assert parsed["password"] == REDACTED
    node = parsed["tree"]
    while isinstance(node, list):
        node = node[0]
    assert node == REDACTED


def test_nested_json_string_in_body_is_redacted() -> None:
    arguments = json.dumps({"password": "hunter2", "user": "bob"})
    body = json.dumps({"tool_calls": [{"function": {"arguments": arguments}}]}).encode()
    result = R.redact_json(body)
    assert b"hunter2" not in result
    inner = json.loads(json.loads(result)["tool_calls"][0]["function"]["arguments"])
    assert inner == {"password": REDACTED, "user": "bob"}
    assert R.redact_json(body, values=False) is body


# -- user rules --------------------------------------------------------------------------


def test_extra_keys_headers_and_patterns() -> None:
    redactor = Redactor(
        extra_keys=["Customer_ID"],
        extra_header_names=["X-Tenant"],
        extra_patterns=[r"ACME-[0-9]{6}", re.compile(r"pin=(?P<secret>\d{4})")],
    )
    body = b'{"customer_id": "c-1", "note": "ticket ACME-123456, pin=1234"}'
    assert json.loads(redactor.redact_json(body)) == {
        "customer_id": REDACTED,
        "note": f"ticket {REDACTED}, pin={REDACTED}",
    }
    assert redactor.redact_headers({"x-tenant": "t-9", "X-Other": "ACME-000001"}) == {
        "x-tenant": REDACTED,
        "X-Other": REDACTED,
    }
    assert redactor.redact_url("https://h/?x-tenant=t&customer_id=c&a=b") == (
        "https://h/?x-tenant=%5BREDACTED%5D&customer_id=%5BREDACTED%5D&a=b"
    )
    # Defaults still apply, and the shared default instance is not affected.
    assert redactor.redact_text(OPENAI_LEGACY) == REDACTED
    assert R.redact_json(body) is body
    assert R.redact_headers({"x-tenant": "t-9"}) == {"x-tenant": "t-9"}


def test_extra_rules_accept_single_strings() -> None:
    redactor = Redactor(extra_keys="ssn", extra_patterns=r"\b\d{3}-\d{2}-\d{4}\b")
    assert redactor.redact_json(b'{"SSN": 1}') == b'{"SSN":"[REDACTED]"}'
    assert redactor.redact_text("id 123-45-6789") == f"id {REDACTED}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extra_patterns": ["(unclosed"]}, "invalid redaction pattern"),
        ({"extra_patterns": ["a*"]}, "matches the empty string"),
        ({"extra_patterns": [re.compile(b"raw")]}, "must be a text pattern"),
        ({"extra_patterns": [42]}, "must be a str or a compiled regex"),
        ({"extra_keys": [""]}, "non-empty strings"),
        ({"extra_header_names": [None]}, "non-empty strings"),
    ],
)
def test_invalid_extras_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Redactor(**kwargs)


def test_redactor_is_immutable() -> None:
    with pytest.raises(AttributeError):
        R._patterns = ()
    with pytest.raises(AttributeError):
        del R._extra_keys
    assert "extra_patterns=0" in repr(R)


def test_redactor_is_safe_to_share_between_threads() -> None:
    body = json.dumps({"api_key": "k", "text": OPENAI_LEGACY, "n": 1}).encode()
    expected = R.redact_json(body)
    results: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        local = [R.redact_json(body) for _ in range(200)]
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 1600
    assert all(result == expected for result in results)


# -- normalized payloads -----------------------------------------------------------------


def test_redact_payload_realistic() -> None:
    anthropic_key = "sk-ant-api03-" + "Zz9_" * 20
    payload = {
        "model": "claude-sonnet",
        "messages": [
            {
                "role": "user",
                "parts": [{"type": "text", "text": f"my key is {anthropic_key}, keep it safe"}],
            },
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool-call",
                        "tool_call_id": "call_1",
                        "tool_name": "login",
                        "arguments": '{"username": "bob", "password": "hunter2", "n": 1.50}',
                    }
                ],
            },
        ],
        "tools": [{"name": "login", "description": "Log in", "input_schema": {"type": "object"}}],
        "options": {"max_output_tokens": 1024, "temperature": 0.7, "api_key": "sk-local"},
        "headers": ("x", f"Bearer {OPAQUE_BEARER}"),
        "usage": {"input_tokens": 12, "cache_read_input_tokens": 3},
    }
    original = json.loads(json.dumps(payload))
    result = R.redact_payload(payload)
    rendered = json.dumps(result)
    for secret in (anthropic_key, "hunter2", "sk-local", OPAQUE_BEARER):
        assert secret not in rendered
    assert result["messages"][0]["parts"][0]["text"] == f"my key is {REDACTED}, keep it safe"
    arguments = result["messages"][1]["parts"][0]["arguments"]
    assert arguments == '{"username":"bob","password":"[REDACTED]","n":1.50}'
    assert result["options"] == {"max_output_tokens": 1024, "temperature": 0.7, "api_key": REDACTED}
    assert result["headers"] == ("x", f"Bearer {REDACTED}")
    assert result["usage"] == {"input_tokens": 12, "cache_read_input_tokens": 3}
    # Unchanged branches are shared, the input is untouched.
    assert result["tools"] is payload["tools"]
    assert json.loads(json.dumps(payload)) == original


def test_redact_payload_unchanged_is_identity() -> None:
    payload = {"messages": [{"role": "user", "text": "hello", "n": 3}], "args": '{"a": [1, 2]}'}
    assert R.redact_payload(payload) is payload
    for scalar in (None, 1, 2.5, True, "text"):
        assert R.redact_payload(scalar) is scalar


def test_redact_payload_json_string_variants() -> None:
    assert R.redact_payload('[{"token": "t"}]') == '[{"token":"[REDACTED]"}]'
    assert R.redact_payload(f'{{"note": "{OPENAI_LEGACY}"}}') == '{"note":"[REDACTED]"}'
    broken = f'{{"password": "hunter2", {OPENAI_LEGACY}'
    assert R.redact_payload(broken) == '{"password": "hunter2", [REDACTED]'
    assert R.redact_payload({"raw": OPENAI_LEGACY.encode()}) == {"raw": REDACTED.encode()}


def test_redact_payload_deep_nesting_fails_closed() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    result = R.redact_payload({"tree": deep})
    node = result["tree"]
    while isinstance(node, list):
        node = node[0]
    assert node == REDACTED
    deep_string = "[" * 100_000 + "]" * 100_000
    assert R.redact_payload({"s": deep_string}) == {"s": REDACTED}
