"""No secret leaves the process through our spans.

Real requests (through our transport, streamed and not, and through the real
``openai`` SDK, sync and async) carry credentials everywhere a chat application can put them: auth
headers, a ``?key=`` query parameter, JSON body keys, the user's message text, the
model's answer (also streamed) and a provider error echoing the key. Afterwards every
attribute of every finished span — with the base64 attempt bodies decoded — is searched
for each secret and for every 12-character slice of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import string
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan

import chatdebug
from chatdebug import _spans as attr
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply
from tests.fakes.wire import openai_completion, openai_stream_chunks
from tests.instrument.capture.support import (
    CHAT_PATH,
    ONE_FLAVOUR,
    Client,
    Flavour,
    drive,
    flavours,
)
from tests.instrument.support import Spans

_rng = random.Random(20240611)
_ALNUM = string.ascii_letters + string.digits


def _random(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


OPENAI_KEY = "sk-proj-" + _random(48)
ANTHROPIC_KEY = "sk-ant-api03-" + _random(80, _ALNUM + "-_") + "AA"
GOOGLE_HEADER_KEY = "AIza" + _random(35)
GOOGLE_QUERY_KEY = "AIza" + _random(35)
AWS_KEY_ID = "AKIA" + _random(16, string.ascii_uppercase + string.digits)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    + base64.urlsafe_b64encode(b'{"sub":"u-7","name":"' + _random(20).encode() + b'"}')
    .decode()
    .rstrip("=")
    + "."
    + _random(43, _ALNUM + "-_")
)
PEM_LINES = [_random(64, _ALNUM + "+/") for _ in range(4)]
PEM = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(PEM_LINES) + "\n-----END PRIVATE KEY-----"
BODY_API_KEY = "ak_" + _random(40)
PASSWORD = "pw-" + _random(30)
COOKIE = "sid-" + _random(40)
ECHOED_KEY = "sk-proj-" + _random(48)
STREAMED_KEY = "sk-ant-api03-" + _random(60) + "AA"

SECRETS = {
    "openai key": OPENAI_KEY,
    "anthropic key": ANTHROPIC_KEY,
    "google header key": GOOGLE_HEADER_KEY,
    "google query key": GOOGLE_QUERY_KEY,
    "aws key id": AWS_KEY_ID,
    "jwt": JWT,
    **{f"pem line {i}": line for i, line in enumerate(PEM_LINES)},
    "body api_key": BODY_API_KEY,
    "password": PASSWORD,
    "cookie": COOKIE,
    "echoed key": ECHOED_KEY,
    "streamed key": STREAMED_KEY,
}

USER_TEXT = (
    f"Here are my credentials: {ANTHROPIC_KEY} and {OPENAI_KEY}; "
    f"AWS {AWS_KEY_ID}; token {JWT}\n{PEM}\nPlease keep them safe."
)
ANSWER = f"I saw {ANTHROPIC_KEY} and {AWS_KEY_ID} and {JWT}; never share {STREAMED_KEY}."


def _token_pieces(text: str, size: int = 4) -> list[str]:
    """The answer as a model streams it: a few characters per delta."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def _answer_replies(stream: bool) -> Reply:
    headers = {"Set-Cookie": f"session={COOKIE}; HttpOnly"}
    if stream:
        # One delta carrying whole secrets, then the same text token by token.
        chunks = openai_stream_chunks([ANSWER, " ", *_token_pieces(ANSWER)])
        return Reply(chunks=chunks, headers={**SSE_HEADERS, **headers})
    body = json.dumps(openai_completion(ANSWER)).encode()
    return Reply(body=body, headers={**JSON_HEADERS, **headers})


def _haystack(spans: list[ReadableSpan]) -> str:
    """Every attribute, status text and event of ``spans``, with the base64 attempt
    bodies decoded."""
    parts: list[str] = []
    for span in spans:
        parts.append(span.name)
        if span.status.description:
            parts.append(span.status.description)
        for event in span.events:
            parts.append(event.name)
            parts.append(json.dumps(dict(event.attributes or {}), default=str))
        for key, value in (span.attributes or {}).items():
            parts.append(key)
            parts.append(value if isinstance(value, str) else json.dumps(value, default=str))
            if key == attr.STEP_ATTEMPTS:
                for attempt in json.loads(str(value)):
                    for body_key in ("request_body", "response_body"):
                        if body_key in attempt:
                            parts.append(
                                base64.b64decode(attempt[body_key]).decode("utf-8", "replace")
                            )
    return "\n".join(parts)


def assert_no_secret(spans: Spans) -> None:
    finished = spans.all()
    assert any(s.name == attr.STEP_SPAN for s in finished)
    haystack = _haystack(finished)
    # Unescape JSON-in-JSON so that an escaped secret cannot hide from the search.
    haystack += "\n" + haystack.replace("\\/", "/").replace('\\"', '"')
    leaks = []
    for name, secret in SECRETS.items():
        for start in range(len(secret) - 11):
            window = secret[start : start + 12]
            if window in haystack:
                leaks.append(f"{name}: {window!r}")
                break
    assert leaks == []


def _request_kwargs(stream: bool) -> dict[str, Any]:
    return {
        "params": {"key": GOOGLE_QUERY_KEY, "api-version": "2024-10-21"},
        "headers": {
            "Authorization": f"Bearer {OPENAI_KEY}",
            "x-api-key": ANTHROPIC_KEY,
            "x-goog-api-key": GOOGLE_HEADER_KEY,
            "Cookie": f"session={COOKIE}",
        },
        "json": {
            "model": "gpt-4o",
            "stream": stream,
            "api_key": BODY_API_KEY,
            "password": PASSWORD,
            "messages": [{"role": "user", "content": USER_TEXT}],
        },
    }


@flavours
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_no_secret_in_any_span(
    flavour: Flavour, spans: Spans, fake_server: FakeServer, stream: bool
) -> None:
    fake_server.enqueue(_answer_replies(stream))
    url = fake_server.url + CHAT_PATH

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1", first_message=USER_TEXT):
            resp = await client.call("POST", url, **_request_kwargs(stream))
            return resp.content

    content = drive(flavour, scenario)
    assert ANTHROPIC_KEY in content.decode()  # the caller gets the real answer
    received = fake_server.requests[-1]
    assert received.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert GOOGLE_QUERY_KEY in received.path and PASSWORD.encode() in received.body
    assert_no_secret(spans)


@flavours
def test_no_secret_from_a_streaming_upload(
    flavour: Flavour, spans: Spans, fake_server: FakeServer
) -> None:
    """A body we cannot replay is not captured at all; headers and URL still are."""
    fake_server.enqueue(_answer_replies(False))
    kwargs = _request_kwargs(False)
    payload = json.dumps(kwargs.pop("json")).encode()

    async def scenario(client: Client) -> None:
        with chatdebug.run("chat-1"):
            body = flavour.body([payload[:100], payload[100:]])
            await client.call("POST", fake_server.url + CHAT_PATH, content=body, **kwargs)

    drive(flavour, scenario)
    assert fake_server.requests[-1].body == payload
    assert_no_secret(spans)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("outcome", ["whole", "streamed", "auth_error"])
def test_no_secret_through_the_openai_sdk(
    spans: Spans, fake_server: FakeServer, is_async: bool, outcome: str
) -> None:
    if outcome == "auth_error":
        message = f"Incorrect API key provided: {ECHOED_KEY}. You can find your API key..."
        error = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
        fake_server.enqueue(
            Reply(status=401, body=json.dumps(error).encode(), headers=JSON_HEADERS)
        )
    else:
        fake_server.enqueue(_answer_replies(outcome == "streamed"))
    options: dict[str, Any] = {
        "api_key": OPENAI_KEY,
        "base_url": fake_server.url + "/v1",
        "default_headers": {"x-goog-api-key": GOOGLE_HEADER_KEY},
        "default_query": {"key": GOOGLE_QUERY_KEY},
        "max_retries": 0,
    }
    create: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": USER_TEXT}],
        "extra_body": {"api_key": BODY_API_KEY, "password": PASSWORD},
    }

    def consume(result: Any) -> str:
        if outcome == "streamed":
            return "".join(c.choices[0].delta.content or "" for c in result if c.choices)
        return str(result.choices[0].message.content)

    if is_async:

        async def main() -> str:
            http = chatdebug.async_httpx2_client(verify=False)
            client = openai.AsyncOpenAI(http_client=http, **options)
            try:
                with chatdebug.run("chat-1", first_message=USER_TEXT):
                    result = await client.chat.completions.create(
                        stream=outcome == "streamed", **create
                    )
                    if outcome == "streamed":
                        return "".join(
                            [c.choices[0].delta.content or "" async for c in result if c.choices]
                        )
                    return consume(result)
            finally:
                await client.close()

        run_call = lambda: asyncio.run(main())  # noqa: E731
    else:

        def run_call() -> str:
            client = openai.OpenAI(http_client=chatdebug.httpx2_client(verify=False), **options)
            try:
                with chatdebug.run("chat-1", first_message=USER_TEXT):
                    result = client.chat.completions.create(stream=outcome == "streamed", **create)
                    return consume(result)
            finally:
                client.close()

    if outcome == "auth_error":
        with pytest.raises(openai.AuthenticationError):
            run_call()
        step = next(s for s in spans.all() if s.name == attr.STEP_SPAN)
        assert step.attributes[attr.STEP_STATUS] == "error"
    else:
        assert ANTHROPIC_KEY in run_call()
    assert fake_server.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert_no_secret(spans)


def test_no_secret_when_a_key_is_split_across_stream_events(
    spans: Spans, fake_server: FakeServer
) -> None:
    answer = f"Your key is {STREAMED_KEY} - keep it safe."
    cut = answer.index(STREAMED_KEY) + 30
    chunks = openai_stream_chunks([answer[:cut], answer[cut:]])
    fake_server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
    flavour = ONE_FLAVOUR

    async def scenario(client: Client) -> bytes:
        with chatdebug.run("chat-1"):
            resp = await client.call("POST", fake_server.url + CHAT_PATH, json={"stream": True})
            return resp.content

    assert drive(flavour, scenario) == b"".join(chunks)
    normalized = next(s for s in spans.all() if s.name == attr.STEP_SPAN).attributes[
        attr.STEP_NORMALIZED_RESPONSE
    ]
    assert STREAMED_KEY[30:42] not in str(normalized)  # the assembled text is clean
    assert_no_secret(spans)  # and the raw body, where the key was split, is withheld
    step = next(s for s in spans.all() if s.name == attr.STEP_SPAN)
    (attempt,) = json.loads(str(step.attributes[attr.STEP_ATTEMPTS]))
    assert b"raw body withheld" in base64.b64decode(attempt["response_body"])
