"""Redaction by name: headers, URL query parameters, JSON keys, NDJSON, content types.

Ports the reference's ``TestRedactHeaders``, ``TestRedactJSONSecrets`` and
``TestRedactNDJSONSecrets`` subtests (same names as parametrize ids) and the pure parts
of its transport tests.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from chatdebug.instrument.redact._redactor import (
    DEFAULT_REDACTOR,
    EXTRA_VALUES_DIAGNOSTIC,
    NOT_JSON_DIAGNOSTIC,
    REDACTED,
    REDACTED_URL,
)

R = DEFAULT_REDACTOR


def assert_json_eq(actual: bytes | str, expected: str) -> None:
    assert json.loads(actual) == json.loads(expected)


# -- headers ---------------------------------------------------------------------------

RATE_LIMIT_HEADERS = {
    "Anthropic-Ratelimit-Tokens-Limit": "1000000",
    "Anthropic-Ratelimit-Tokens-Remaining": "999000",
    "Anthropic-Ratelimit-Tokens-Reset": "2026-03-31T08:55:26Z",
    "Anthropic-Ratelimit-Input-Tokens-Limit": "200000",
    "Anthropic-Ratelimit-Input-Tokens-Remaining": "199000",
    "Anthropic-Ratelimit-Input-Tokens-Reset": "2026-03-31T08:55:26Z",
    "Anthropic-Ratelimit-Output-Tokens-Limit": "80000",
    "Anthropic-Ratelimit-Output-Tokens-Remaining": "79500",
    "Anthropic-Ratelimit-Output-Tokens-Reset": "2026-03-31T08:55:26Z",
    "Anthropic-Priority-Input-Tokens-Limit": "10000",
    "Anthropic-Priority-Input-Tokens-Remaining": "9618",
    "Anthropic-Priority-Input-Tokens-Reset": "2026-03-31T08:55:26Z",
    "Anthropic-Priority-Output-Tokens-Limit": "10000",
    "Anthropic-Priority-Output-Tokens-Remaining": "6000",
    "Anthropic-Priority-Output-Tokens-Reset": "2026-03-31T08:55:26Z",
    "Anthropic-Fast-Input-Tokens-Limit": "50000",
    "Anthropic-Fast-Input-Tokens-Remaining": "49000",
    "Anthropic-Fast-Input-Tokens-Reset": "2026-03-31T08:55:26Z",
    "Anthropic-Fast-Output-Tokens-Limit": "25000",
    "Anthropic-Fast-Output-Tokens-Remaining": "24000",
    "Anthropic-Fast-Output-Tokens-Reset": "2026-03-31T08:55:26Z",
    "Anthropic-Ratelimit-Requests-Limit": "4000",
    "Anthropic-Ratelimit-Requests-Remaining": "3999",
    "Anthropic-Ratelimit-Requests-Reset": "2026-03-31T08:55:26Z",
    "X-RateLimit-Limit-Tokens": "120000",
    "X-RateLimit-Remaining-Tokens": "119500",
    "X-RateLimit-Reset-Tokens": "12ms",
    "X-RateLimit-Limit-Requests": "500",
    "X-RateLimit-Remaining-Requests": "499",
    "X-RateLimit-Reset-Requests": "120ms",
}

HEADER_CASES = [
    pytest.param(None, None, id="nil input"),
    pytest.param({}, {}, id="empty header"),
    pytest.param(
        {"Authorization": "Bearer secret-token", "Accept": "application/json"},
        {"Authorization": REDACTED, "Accept": "application/json"},
        id="authorization redacted and others preserved",
    ),
    pytest.param(
        [("Accept", "application/json"), ("Accept", "text/plain")],
        {"Accept": "application/json, text/plain"},
        id="multi-value headers are flattened",
    ),
    pytest.param(
        [("authorization", "lower"), ("AUTHORIZATION", "upper"), ("X-API-KEY", "k")],
        {"authorization": REDACTED, "X-API-KEY": REDACTED},
        id="header name matching is case insensitive",
    ),
    pytest.param(
        {
            "X-Auth-Token": "abc",
            "X-Custom-Secret": "def",
            "X-Bearer": "ghi",
            "X-Trace-ID": "trace",
        },
        {
            "X-Auth-Token": REDACTED,
            "X-Custom-Secret": REDACTED,
            "X-Bearer": REDACTED,
            "X-Trace-ID": "trace",
        },
        id="token and secret substrings are redacted",
    ),
    pytest.param(
        RATE_LIMIT_HEADERS,
        RATE_LIMIT_HEADERS,
        id="known safe rate limit headers containing token are not redacted",
    ),
    pytest.param(
        {
            "X-Custom-Api-Key": "secret-key",
            "X-Custom-Secret": "secret-val",
            "X-Custom-Session-Token": "session-id",
        },
        {
            "X-Custom-Api-Key": REDACTED,
            "X-Custom-Secret": REDACTED,
            "X-Custom-Session-Token": REDACTED,
        },
        id="non-standard headers with api-key pattern are redacted",
    ),
    pytest.param(
        {"X-Ratelimit-Limit-Tokens": "1000000", "X-Ratelimit-Remaining-Tokens": "999000"},
        {"X-Ratelimit-Limit-Tokens": "1000000", "X-Ratelimit-Remaining-Tokens": "999000"},
        id="rate limit headers with token in name are preserved",
    ),
    pytest.param(
        {"Authorization": "Bearer keep-me", "X-Test": "value"},
        {"Authorization": REDACTED, "X-Test": "value"},
        id="original header is not modified",
    ),
    pytest.param(
        {"X-Goog-Api-Key": "secret", "X-Api_Key": "other-secret", "X-Safe": "ok"},
        {"X-Goog-Api-Key": REDACTED, "X-Api_Key": REDACTED, "X-Safe": "ok"},
        id="api-key header variants are redacted",
    ),
    pytest.param(
        {"Token": "my-secret-token", "X-Token": "another-secret", "X-Safe": "ok"},
        {"Token": REDACTED, "X-Token": REDACTED, "X-Safe": "ok"},
        id="plain token headers are redacted",
    ),
]


@pytest.mark.parametrize(("headers", "expected"), HEADER_CASES)
def test_redact_headers(headers: Any, expected: dict[str, str] | None) -> None:
    before = copy.deepcopy(headers)
    result = R.redact_headers(headers)
    assert result == expected
    assert headers == before
    if result:
        # The output is a new dict: changing it leaves the input alone.
        for name in result:
            result[name] = "changed"
        assert headers == before


@pytest.mark.parametrize(
    "name",
    ["Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "x-api-key", "api-key"],
)
def test_redact_headers_exact_names(name: str) -> None:
    assert R.redact_headers({name: "s3cr3t-value"}) == {name: REDACTED}


def test_redact_headers_multi_value_secret_is_one_placeholder() -> None:
    result = R.redact_headers([("Set-Cookie", "a=s3cr3t1"), ("set-cookie", "b=s3cr3t2")])
    assert result == {"Set-Cookie": REDACTED}


def test_redact_headers_httpx_headers_keep_spelling() -> None:
    headers = httpx.Headers(
        [
            ("X-Api-Key", "s3cr3t"),
            ("Content-Type", "application/json"),
            ("accept", "a"),
            ("Accept", "b"),
        ]
    )
    assert R.redact_headers(headers) == {
        "X-Api-Key": REDACTED,
        "Content-Type": "application/json",
        "accept": "a, b",
    }
    assert R.redact_headers(headers.raw) == R.redact_headers(headers)
    assert R.redact_headers(headers.multi_items()) == {
        "x-api-key": REDACTED,
        "content-type": "application/json",
        "accept": "a, b",
    }


def test_redact_headers_bytes_pairs_are_decoded() -> None:
    raw = [(b"X-Note", "caf\u00e9".encode()), (b"X-Latin", b"\xe9t\xe9"), (b"Cookie", b"s=1")]
    assert R.redact_headers(raw) == {
        "X-Note": "caf\u00e9",
        "X-Latin": "\u00e9t\u00e9",
        "Cookie": REDACTED,
    }


# -- JSON bodies ---------------------------------------------------------------------

USAGE = (
    b'{"input_tokens":100,"output_tokens":50,"prompt_tokens":80,"completion_tokens":20,'
    b'"reasoning_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":3,'
    b'"total_tokens":150,"max_tokens":4096,"max_output_tokens":2048}'
)

JSON_CASES = [
    pytest.param(
        b'{"api_key":"abc","token":"def","password":"ghi","safe":"ok"}',
        '{"api_key":"[REDACTED]","token":"[REDACTED]","password":"[REDACTED]","safe":"ok"}',
        id="redacts top level secret fields",
    ),
    pytest.param(
        b'{"security_token":"s3cret","securityToken":"tok","safe":"ok"}',
        '{"security_token":"[REDACTED]","securityToken":"[REDACTED]","safe":"ok"}',
        id="redacts security_token exact key",
    ),
    pytest.param(USAGE, USAGE, id="preserves LLM token usage fields"),
    pytest.param(
        b'{"outer":{"nested_secret":"abc","safe":1},"keep":true}',
        '{"outer":{"nested_secret":"[REDACTED]","safe":1},"keep":true}',
        id="redacts nested objects",
    ),
    pytest.param(
        b'[{"token":"abc"},{"value":1,"credentials":{"access_key":"def"}}]',
        '[{"token":"[REDACTED]"},{"value":1,"credentials":"[REDACTED]"}]',
        id="redacts arrays of objects",
    ),
    pytest.param(
        b'{"token":"abc"}{"safe":"ok"}',
        EXTRA_VALUES_DIAGNOSTIC,
        id="concatenated JSON is replaced with diagnostic",
    ),
    pytest.param(b"not json", NOT_JSON_DIAGNOSTIC, id="non JSON input is replaced with diagnostic"),
    pytest.param(b"", b"", id="empty input is unchanged"),
    pytest.param(
        b'{"safe":"ok","nested":{"value":1}}',
        b'{"safe":"ok","nested":{"value":1}}',
        id="JSON without sensitive keys is unchanged",
    ),
    pytest.param(
        b'{"API_KEY":"abc","Token":"def","PASSWORD":"ghi"}',
        '{"API_KEY":"[REDACTED]","Token":"[REDACTED]","PASSWORD":"[REDACTED]"}',
        id="key matching is case insensitive",
    ),
    pytest.param(
        b'{"accessToken":"abc","refreshToken":"def","authToken":"ghi",'
        b'"input_tokens":100,"output_tokens":50}',
        '{"accessToken":"[REDACTED]","refreshToken":"[REDACTED]","authToken":"[REDACTED]",'
        '"input_tokens":100,"output_tokens":50}',
        id="camelCase token field names are redacted",
    ),
]


@pytest.mark.parametrize("values", [True, False], ids=["with values", "keys only"])
@pytest.mark.parametrize(("body", "expected"), JSON_CASES)
def test_redact_json_secrets(body: bytes, expected: bytes | str, values: bool) -> None:
    result = R.redact_json(body, values=values)
    if isinstance(expected, bytes):
        assert result == expected
        if expected == body:
            assert result is body
    else:
        assert_json_eq(result, expected)
        for secret in (b'"abc"', b'"def"', b'"ghi"', b"s3cret", b'"tok"'):
            assert secret not in result


@pytest.mark.parametrize(
    "key",
    sorted(
        [
            "token",
            "access_token",
            "accesstoken",
            "refresh_token",
            "refreshtoken",
            "id_token",
            "idtoken",
            "api_token",
            "apitoken",
            "api_key",
            "apikey",
            "api-key",
            "x-api-key",
            "auth_token",
            "authtoken",
            "bearer_token",
            "bearertoken",
            "session_token",
            "sessiontoken",
            "security_token",
            "securitytoken",
            "private_key",
            "privatekey",
            "signing_key",
            "signingkey",
            "secret_key",
            "secretkey",
            "client_secret",
            "db_password",
            "proxyAuthorization",
            "aws_credentials",
        ]
    ),
)
def test_redact_json_sensitive_keys(key: str) -> None:
    body = json.dumps({key: {"nested": ["s3cr3t-value"]}, "n": 1}).encode()
    result = R.redact_json(body, values=False)
    assert json.loads(result) == {key: REDACTED, "n": 1}


@pytest.mark.parametrize(
    "key", ["tokens", "input_tokens", "max_tokens", "cache_read_input_tokens", "key", "keys", "id"]
)
def test_redact_json_keeps_non_sensitive_keys(key: str) -> None:
    body = json.dumps({key: "visible"}).encode()
    assert R.redact_json(body) is body


def test_redact_json_already_redacted_counts_as_unchanged() -> None:
    body = b'{ "password" : "[REDACTED]" }'
    assert R.redact_json(body) is body


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"a":1',
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"   ",
        b"\xef\xbb\xbf{}",
        b'{"a":"\xff\xfe"}',
        b"{'a': 1}",
    ],
)
def test_redact_json_not_valid_json(body: bytes) -> None:
    assert R.redact_json(body) == NOT_JSON_DIAGNOSTIC


@pytest.mark.parametrize("body", [b"1 2", b'{"a":1} x', b"[] []", b'{"a":1}}'])
def test_redact_json_extra_values(body: bytes) -> None:
    assert R.redact_json(body) == EXTRA_VALUES_DIAGNOSTIC


def test_redact_json_diagnostics_are_exact() -> None:
    assert NOT_JSON_DIAGNOSTIC == (
        b'{"error":"chatdebug: body is not valid JSON, redacted for safety"}'
    )
    assert EXTRA_VALUES_DIAGNOSTIC == (
        b'{"error":"chatdebug: body contains extra JSON values, redacted for safety"}'
    )


# -- NDJSON ----------------------------------------------------------------------------


def test_redact_ndjson_secrets_empty_input() -> None:
    assert R.redact_ndjson(b"") == b""


@pytest.mark.parametrize(
    ("body", "expected_lines"),
    [
        pytest.param(
            b'{"api_key":"sk-123","safe":"ok"}\n{"token":"tok-456","data":"value"}\n',
            ['{"api_key":"[REDACTED]","safe":"ok"}', '{"token":"[REDACTED]","data":"value"}', None],
            id="redacts secrets in each line",
        ),
        pytest.param(
            b'{"safe":"ok"}\nnot-json\n{"token":"secret"}\n',
            ['{"safe":"ok"}', NOT_JSON_DIAGNOSTIC.decode(), '{"token":"[REDACTED]"}', None],
            id="handles malformed lines with fail-closed",
        ),
        pytest.param(
            b'{"api_key":"secret","value":"ok"}',
            ['{"api_key":"[REDACTED]","value":"ok"}'],
            id="handles single line without trailing newline",
        ),
        pytest.param(
            b'{"a":1}\n\n  \n{"password":"p4ss"}\r\n{"b":2}',
            ['{"a":1}', None, None, '{"password":"[REDACTED]"}', '{"b":2}'],
            id="blank lines are preserved",
        ),
    ],
)
def test_redact_ndjson_secrets(body: bytes, expected_lines: list[str | None]) -> None:
    result = R.redact_ndjson(body)
    lines = result.split(b"\n")
    assert len(lines) == len(expected_lines)
    for line, expected in zip(lines, expected_lines, strict=True):
        if expected is None:
            assert not line.strip()
        else:
            assert_json_eq(line, expected)
    for secret in (b"sk-123", b"tok-456", b'"secret"', b"p4ss"):
        assert secret not in result


def test_redact_ndjson_secrets_preserves_lines_without_secrets() -> None:
    body = b'{"safe":"ok"}\n{"data":"value"}\n'
    assert R.redact_ndjson(body) is body


def test_redact_ndjson_unchanged_lines_keep_their_bytes() -> None:
    body = b'{ "a" : 1 }\r\n{"token":"x"}\n'
    assert R.redact_ndjson(body) == b'{ "a" : 1 }\r\n{"token":"[REDACTED]"}\n'


# -- URLs ------------------------------------------------------------------------------

GOOGLE_KEY = "AIzaSy" + "D" * 29 + "x_-1"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "https://api.example.com/v1?api_key=s3cr3tvalue&safe=ok",
            "https://api.example.com/v1?api_key=%5BREDACTED%5D&safe=ok",
            id="api_key",
        ),
        pytest.param(
            "https://h/p?key=s3cr3tvalue&alt=sse",
            "https://h/p?key=%5BREDACTED%5D&alt=sse",
            id="key",
        ),
        pytest.param(
            "https://h/p?safe=ok&token=s3cr3tvalue",
            "https://h/p?safe=ok&token=%5BREDACTED%5D",
            id="token",
        ),
        pytest.param(
            "https://h/p?access_token=s3cr3tvalue",
            "https://h/p?access_token=%5BREDACTED%5D",
            id="access_token",
        ),
        pytest.param(
            "https://h/p?client_secret=s3cr3tvalue&client_id=app",
            "https://h/p?client_secret=%5BREDACTED%5D&client_id=app",
            id="client_secret",
        ),
        pytest.param(
            f"https://generativelanguage.googleapis.com/v1beta/models/gemini:streamGenerateContent"
            f"?alt=sse&key={GOOGLE_KEY}",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini:streamGenerateContent"
            "?alt=sse&key=%5BREDACTED%5D",
            id="gemini key",
        ),
        pytest.param(
            "https://h/p?token=a&token=b&Token=c",
            "https://h/p?token=%5BREDACTED%5D&token=%5BREDACTED%5D&Token=%5BREDACTED%5D",
            id="every value of a repeated parameter",
        ),
        pytest.param(
            "https://h/p?api%5Fkey=s3cr3tvalue&x-goog-api-key=s3cr3tvalue",
            "https://h/p?api%5Fkey=%5BREDACTED%5D&x-goog-api-key=%5BREDACTED%5D",
            id="encoded and header-style names",
        ),
        pytest.param(
            "https://h/p?a=1;password=s3cr3tvalue",
            "https://h/p?a=1;password=%5BREDACTED%5D",
            id="semicolon separated",
        ),
        pytest.param(
            "https://h/cb#access_token=s3cr3tvalue&state=xyz",
            "https://h/cb#access_token=%5BREDACTED%5D&state=xyz",
            id="fragment parameters",
        ),
        pytest.param(
            "https://h/p?X-Amz-Signature=s3cr3tvalue&X-Amz-Credential=s3cr3tvalue&X-Amz-Date=20260101",
            "https://h/p?X-Amz-Signature=%5BREDACTED%5D&X-Amz-Credential=%5BREDACTED%5D"
            "&X-Amz-Date=20260101",
            id="presigned url",
        ),
        pytest.param(
            "https://h/p?x-ratelimit-remaining-tokens=5&max_tokens=10&model=m",
            "https://h/p?x-ratelimit-remaining-tokens=5&max_tokens=%5BREDACTED%5D&model=m",
            id="header rules apply: allow-list kept, token substring redacted",
        ),
    ],
)
def test_redacts_sensitive_query_parameters(url: str, expected: str) -> None:
    result = R.redact_url(url)
    assert result == expected
    assert "s3cr3tvalue" not in result
    assert GOOGLE_KEY not in result


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1/chat/completions",
        "https://h/p?b=2&a=1&a=%2F+x&empty=&flag#frag",
        "https://h/p?q=caf%C3%A9&n=%20",
        "http://[::1]:8080/x?y=1",
        "",
    ],
)
def test_redact_url_unchanged_is_identical(url: str) -> None:
    assert R.redact_url(url) is url


def test_strips_url_userinfo() -> None:
    result = R.redact_url("http://user:secret@127.0.0.1:8080/v1/x?api_key=secret")
    assert result == "http://127.0.0.1:8080/v1/x?api_key=%5BREDACTED%5D"
    assert "user:secret" not in result
    assert R.redact_url("https://token@h/p") == "https://h/p"
    assert R.redact_url("https://a%40b:p%40ss@h/p") == "https://h/p"


@pytest.mark.parametrize(
    "url", ["http://[::1/x?token=abc", "http://h:port/x?token=abc", "https://[fe80::1%zz/p"]
)
def test_redact_url_unparsable(url: str) -> None:
    assert R.redact_url(url) == REDACTED_URL


def test_transport_error_sanitizes_url_credentials() -> None:
    message = "connection to http://admin:s3cret@api.example.com/v1?api_key=sk-1234 refused"
    result = R.sanitize_error_text(message)
    assert "s3cret" not in result
    assert "sk-1234" not in result
    assert "api_key=%5BREDACTED%5D" in result
    assert result == "connection to http://api.example.com/v1?api_key=%5BREDACTED%5D refused"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            "Client error '401 Unauthorized' for url 'https://h/v1?key=abc&x=1'",
            "Client error '401 Unauthorized' for url 'https://h/v1?key=%5BREDACTED%5D&x=1'",
            id="quoted url",
        ),
        pytest.param('Post "https://u:p4ss@h/v1": EOF', 'Post "https://h/v1": EOF', id="go style"),
        pytest.param(
            "dial redis://u:p4ss@cache:6379 and wss://h/s?token=t0k failed",
            "dial redis://cache:6379 and wss://h/s?token=%5BREDACTED%5D failed",
            id="other schemes",
        ),
        pytest.param(
            "bad url http://[::1/x?token=t0k here", "bad url [REDACTED_URL] here", id="unparsable"
        ),
        pytest.param("plain message", "plain message", id="no url"),
    ],
)
def test_sanitize_error_text(message: str, expected: str) -> None:
    assert R.sanitize_error_text(message) == expected


# -- bodies by content type ------------------------------------------------------------


def test_text_plain_preserved_not_redacted() -> None:
    body = b"This is plain text, not JSON. password=hunter2 token: abc"
    assert R.redact_body(body, "text/plain") is body
    assert R.redact_body(b"<html>token</html>", "text/html; charset=utf-8") == b"<html>token</html>"


def test_ndjson_redacted() -> None:
    body = b'{"api_key":"sk-123","safe":"ok"}\n{"token":"tok-456","data":"value"}\n'
    lines = R.redact_body(body, "application/x-ndjson").split(b"\n")
    assert_json_eq(lines[0], '{"api_key":"[REDACTED]","safe":"ok"}')
    assert_json_eq(lines[1], '{"token":"[REDACTED]","data":"value"}')


def test_plus_json_suffix_redacted() -> None:
    body = b'{"token":"secret","safe":"ok"}'
    for content_type in ("application/vnd.api+json", "application/problem+json; charset=utf-8"):
        assert_json_eq(R.redact_body(body, content_type), '{"token":"[REDACTED]","safe":"ok"}')


@pytest.mark.parametrize("content_type", [None, "", "  ", "APPLICATION/JSON; charset=UTF-8"])
def test_unrecognized_content_type_defaults_to_json_redaction(content_type: str | None) -> None:
    body = b'{"token":"secret","safe":"ok"}'
    assert_json_eq(R.redact_body(body, content_type), '{"token":"[REDACTED]","safe":"ok"}')


def test_non_json_body_fail_closed_redaction() -> None:
    html = b"<html><body>502 Bad Gateway</body></html>"
    assert R.redact_body(html, None) == NOT_JSON_DIAGNOSTIC
    assert R.redact_body(html, "application/json") == NOT_JSON_DIAGNOSTIC


def test_sse_kept_raw_by_name_rules() -> None:
    body = b'event: message_start\ndata: {"type":"message_start","input_tokens":3}\n\n'
    assert R.redact_body(body, "text/event-stream") is body


def test_empty_body_unchanged_for_every_type() -> None:
    for content_type in (None, "application/json", "application/x-ndjson", "text/plain"):
        assert R.redact_body(b"", content_type) == b""
