"""Redaction fuzzing: generated requests and responses full of secrets go through the
real transport to a loopback server and into a real store; afterwards no secret may be
found in any stored column or span attribute.

Secrets (provider keys, bearer tokens and JWTs, PEM private keys, values matching the
user's own patterns, and random values sent under sensitive header, parameter and JSON
key names) ride in request headers, URL paths and query parameters, JSON bodies at
random depths (also JSON inside strings, and once in a while deeper than the redactor
walks), response bodies whole or streamed as SSE cut at random points or at every
byte, gzip-compressed or not. A leak is a piece of a secret (12-character windows, 8
apart) found in the stored rows (JSON decoded, base64 bodies decoded, URLs unquoted) or
in span attributes.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import os
import random
import re
import sqlite3
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.instrument.capture._reaper import drain
from chatdebug.metrics import Metrics
from tests.fakes import wire
from tests.fakes.server import JSON_HEADERS, SSE_HEADERS, FakeServer, Reply

from ._driver import figure
from ._secrets import (
    PLAIN_KEYS,
    SENSITIVE_HEADERS,
    SENSITIVE_PARAMS,
    USER_HEADERS,
    USER_KEYS,
    USER_PATTERNS,
    WORD_KINDS,
    Forger,
)

EXCHANGES_PER_EXAMPLE = 4
_SEQUENCE = itertools.count()
EXAMPLES = 2_200  # with the every-byte test's 1,314: over 10,000 exchanges
WINDOW = 12


@dataclass
class Exchange:
    """One generated request and the reply the loopback server gives it."""

    method: str
    path: str
    params: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    reply: Reply
    found: list[str] = field(default_factory=list)


def _positions(draw: st.DrawFn, size: int, most: int) -> list[int]:
    """Up to ``most`` distinct cut points inside ``size`` items, sorted. Drawn as
    fractions, so what Hypothesis draws does not depend on the (seeded) content."""
    fractions = draw(st.lists(st.floats(0, 1), max_size=most))
    return sorted({min(size - 1, max(1, int(f * size))) for f in fractions}) if size > 1 else []


def _cut(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """The body as the network delivers it: whole, one byte at a time, or cut at
    random points."""
    mode = draw(st.sampled_from(["whole", "bytes", "random"]))
    cuts = _positions(draw, len(data), 12)
    if mode == "whole" or len(data) < 2:
        return [data]
    if mode == "bytes" and len(data) <= 1024:  # longer ones: the every-byte test below
        return [data[i : i + 1] for i in range(len(data))]
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _pieces(draw: st.DrawFn, text: str) -> list[str]:
    """Text as a model streams it: deltas cut at random points, even inside a secret."""
    cuts = _positions(draw, len(text), 8)
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


# The reply formats each endpoint gets: its provider's own (whose streams the capture
# assembles, so a secret cut across stream events is still recognised), else formats
# a generic endpoint may answer in, with every secret whole within one stream event.
FORMATS = {
    "/v1/chat/completions": ["openai_json", "openai_sse", "error", "text"],
    "/v1/messages": ["anthropic_json", "anthropic_sse", "error", "text"],
}
GENERIC_FORMATS = ["openai_json", "error", "text", "ndjson", "generic_sse"]
PATHS = ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings",
         "/api/generate", "/v1/files/{}"]  # fmt: skip


@st.composite
def reply(draw: st.DrawFn, forge: Forger, path: str) -> Reply:
    kind = draw(st.sampled_from(FORMATS.get(path, GENERIC_FORMATS)))
    text = forge.text()
    headers = {
        "Set-Cookie": f"session={forge.named_secret()}; HttpOnly",
        "x-request-note": forge.text(header_safe=True).strip(),
        "x-ratelimit-remaining-tokens": "99",
    }
    status = 200
    if kind == "openai_json":
        document: Any = wire.openai_completion(text)
        document["x_extra"] = forge.json_value()
        body = json.dumps(document).encode()
        headers.update(JSON_HEADERS)
    elif kind == "anthropic_json":
        body = json.dumps(wire.anthropic_message(text)).encode()
        headers.update(JSON_HEADERS)
    elif kind == "error":
        status = draw(st.sampled_from([400, 401, 403, 429, 500]))
        message = {"message": f"Incorrect API key provided: {text}", "type": "invalid_request"}
        body = json.dumps({"error": message, "detail": forge.json_value()}).encode()
        headers.update(JSON_HEADERS)
    elif kind == "openai_sse":
        events = wire.openai_stream_chunks(_pieces(draw, text))
        extra = json.dumps({"id": "c", "choices": [], "x_meta": forge.json_value(names=False)})
        events.insert(1, f"data: {extra}\n\n".encode())
        body = b"".join(events)
        headers.update(SSE_HEADERS)
    elif kind == "anthropic_sse":
        body = b"".join(wire.anthropic_stream_chunks(_pieces(draw, text)))
        headers.update(SSE_HEADERS)
    elif kind == "generic_sse":
        events = [
            json.dumps({"delta": forge.text(), "meta": forge.json_value(names=False)})
            for _ in range(draw(st.integers(1, 4)))
        ]
        body = b"".join(f"data: {event}\n\n".encode() for event in events)
        headers.update(SSE_HEADERS)
    elif kind == "text":
        body = text.encode()
        headers["Content-Type"] = "text/plain; charset=utf-8"
    else:
        lines = [json.dumps(forge.json_value()) for _ in range(draw(st.integers(1, 3)))]
        body = "\n".join(lines).encode()
        headers["Content-Type"] = "application/x-ndjson"
    encoding = draw(st.sampled_from([None, None, "gzip"]))
    chunks = _cut(draw, body)
    if len(chunks) == 1:
        return Reply(status=status, headers=headers, body=body, encoding=encoding)
    return Reply(status=status, headers=headers, chunks=chunks, encoding=encoding)


@st.composite
def exchange(draw: st.DrawFn) -> Exchange:
    found: list[str] = []
    # Hypothesis repeats its draws a lot (five in six seeds it draws recur within a few
    # hundred examples): a running number keeps the content of every exchange new, and
    # the whole run still the same from one test run to the next (derandomize).
    seed = draw(st.integers(0, 2**32))
    forge = Forger(random.Random(f"{seed}:{next(_SEQUENCE)}"), found)
    rnd = forge.rnd
    path = draw(st.sampled_from(PATHS))
    if "{}" in path:
        path = path.format(forge.pattern_secret(WORD_KINDS))
    params = []
    for _ in range(rnd.randint(0, 3)):
        if rnd.randrange(2):
            params.append((rnd.choice(SENSITIVE_PARAMS), forge.named_secret()))
        else:
            name = rnd.choice(["q", "page", "alt", "filter"])
            params.append((name, forge.text(header_safe=True)))
    headers = [("content-type", "application/json")]
    for _ in range(rnd.randint(0, 3)):
        name = rnd.choice(SENSITIVE_HEADERS)
        value = forge.named_secret()
        headers.append((name, f"Bearer {value}" if name == "Authorization" else value))
    for _ in range(rnd.randint(0, 2)):
        name = rnd.choice(["x-note", "x-trace-context", "x-user-label"])
        # h11 refuses a header value with spaces around it.
        headers.append((name, forge.text(header_safe=True).strip()))
    if path in ("/v1/chat/completions", "/v1/messages"):
        document: Any = {
            "model": rnd.choice(["gpt-4o", "claude-opus-4-6"]),
            "messages": [
                {"role": rnd.choice(["system", "user", "assistant"]), "content": forge.text()}
                for _ in range(rnd.randint(1, 3))
            ],
            "stream": draw(st.booleans()),
        }
        for _ in range(rnd.randint(0, 2)):
            document[rnd.choice(PLAIN_KEYS)] = forge.json_value()
    else:
        document = forge.json_value()
    body = json.dumps(document, ensure_ascii=draw(st.booleans())).encode()
    form = draw(st.integers(0, 19))
    if form == 0:  # a compressed upload
        body = gzip.compress(body)
        headers.append(("content-encoding", "gzip"))
    elif form == 1:  # not JSON at all
        body = forge.text().encode()
        headers[0] = ("content-type", "text/plain")
    return Exchange("POST", path, params, headers, body, draw(reply(forge, path)), found)


def _leaks(found: list[str], haystack: str) -> list[str]:
    leaks = []
    for secret in found:
        # Windows 8 apart: any stored piece of 19 characters or more contains one.
        starts = [*range(0, len(secret) - WINDOW, 8), len(secret) - WINDOW]
        for start in starts:
            at = haystack.find(secret[start : start + WINDOW])
            if at >= 0:
                leaks.append(f"{secret!r} in …{haystack[max(0, at - 90) : at + 30]!r}…")
                break
    return leaks


def _where(leak: str) -> str:
    """A rough class of a leak, from its context, for the figure: in an attempt's URL
    path (or the run's endpoint label made from it), right after a JSON escape sequence
    (text the redactor saw still escaped), or elsewhere."""
    context = leak.partition(" in …")[2]
    secret = leak.partition(" in …")[0].strip("'")
    before = context.partition(secret[:WINDOW])[0]
    if '"path":' in context or "endpoint_label" in context or "/v1/files/" in before:
        return "url_path"
    if re.search(r"\\\\(?:[ntr/]|u[0-9a-fA-F]{4})[A-Za-z0-9 ._-]{0,120}$", before):
        return "after_json_escape"
    return "other"


def _strings(value: Any, out: list[str]) -> None:
    """Every string in a decoded JSON value; attempt bodies decoded from base64."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, child in value.items():
            out.append(str(key))
            if key in ("request_body", "response_body") and isinstance(child, str):
                try:
                    raw = base64.b64decode(child)
                except ValueError:
                    raw = child.encode()
                if raw[:2] == b"\x1f\x8b":
                    raw = gzip.decompress(raw)
                out.append(raw.decode("utf-8", "replace"))
            _strings(child, out)
    elif isinstance(value, list):
        for child in value:
            _strings(child, out)


def _haystack(values: list[Any]) -> str:
    out: list[str] = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
            try:
                _strings(json.loads(value), out)
            except ValueError:
                pass
        elif value is not None:
            out.append(str(value))
    text = "\n".join(out)
    return text + "\n" + urllib.parse.unquote_plus(text)


def _span_values(spans: list[ReadableSpan]) -> list[Any]:
    values: list[Any] = []
    for span in spans:
        values += [span.name, span.status.description]
        for key, value in (span.attributes or {}).items():
            values += [key, value if isinstance(value, str) else json.dumps(value, default=str)]
        for event in span.events:
            values += [event.name, json.dumps(dict(event.attributes or {}), default=str)]
    return values


@dataclass
class FuzzSetup:
    server: FakeServer
    spans: InMemorySpanExporter
    db_path: Path
    clients: list[Any]


@pytest.fixture
def fuzz(tmp_path: Path) -> Iterator[FuzzSetup]:
    import httpx2

    server = FakeServer()
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    db_path = tmp_path / "fuzz.db"
    chatdebug.configure(
        f"sqlite:///{db_path}",
        enabled=True,
        tracer_provider=provider,
        metrics=Metrics(CollectorRegistry()),
        redact_patterns=USER_PATTERNS,
        redact_keys=USER_KEYS,
        redact_headers=USER_HEADERS,
    )
    clients = [
        chatdebug.httpx_client(base_url=server.url, timeout=30),
        chatdebug.httpx2_client(base_url=server.url, timeout=30),
    ]
    assert isinstance(clients[1], httpx2.Client)
    try:
        yield FuzzSetup(server, spans, db_path, clients)
    finally:
        for client in clients:
            client.close()
        chatdebug.shutdown()
        provider.shutdown()
        server.close()


def _send(setup: FuzzSetup, client: Any, item: Exchange) -> None:
    setup.server.enqueue(item.reply)
    response = client.request(
        item.method, item.path, params=item.params, headers=item.headers, content=item.body
    )
    response.read()


def _stored(db_path: Path) -> tuple[dict[str, list[Any]], dict[str, int]]:
    """Every column of every run's rows, by run id; and each run's number of steps."""
    conn = sqlite3.connect(db_path)
    try:
        stored: dict[str, list[Any]] = {}
        steps: dict[str, int] = {}
        for table, column in (("chat_debug_runs", "id"), ("chat_debug_steps", "run_id")):
            cursor = conn.execute(f"SELECT * FROM {table}")
            index = [d[0] for d in cursor.description].index(column)
            for row in cursor:
                stored.setdefault(row[index], []).extend(row)
                if table == "chat_debug_steps":
                    steps[row[index]] = steps.get(row[index], 0) + 1
        return stored, steps
    finally:
        conn.close()


@pytest.mark.slow
def test_no_secret_in_any_stored_column_or_span_attribute(
    fuzz: FuzzSetup, record_property: Callable[[str, object], None]
) -> None:
    recorded: list[tuple[str, list[str]]] = []  # run id, the secrets its calls carried
    counts = {"exchanges": 0, "secrets": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(exchange(), min_size=EXCHANGES_PER_EXAMPLE, max_size=EXCHANGES_PER_EXAMPLE),
           st.booleans())  # fmt: skip
    def one_run(items: list[Exchange], use_httpx2: bool) -> None:
        client = fuzz.clients[int(use_httpx2)]
        fuzz.spans.clear()
        # Hypothesis seeds the global PRNG alike for every example; run and step ids
        # must differ between examples all the same (see test_run_ids.py).
        random.seed(os.urandom(16))
        with chatdebug.run(f"fuzz-{len(recorded)}") as run:
            for item in items:
                _send(fuzz, client, item)
        drain()
        found = [secret for item in items for secret in item.found]
        leaks = _leaks(found, _haystack(_span_values(list(fuzz.spans.get_finished_spans()))))
        assert leaks == [], f"in span attributes: {leaks}"
        recorded.append((str(run.id), found))
        counts["exchanges"] += len(items)
        counts["secrets"] += len(found)

    one_run()
    assert chatdebug.flush(60)
    stored, steps = _stored(fuzz.db_path)
    assert len({run_id for run_id, _ in recorded}) == len(recorded)
    leaks = []
    for run_id, found in recorded:
        assert steps.get(run_id) == EXCHANGES_PER_EXAMPLE, f"run {run_id} was not stored whole"
        leaks += _leaks(found, _haystack(stored[run_id]))
    where = Counter(_where(leak) for leak in leaks)
    distinct = len({secret for _, found in recorded for secret in found})
    figure(record_property, "redaction_fuzz", runs=len(recorded), **counts,
           distinct_secrets=distinct, leaks=len(leaks), leaks_by_place=dict(where))  # fmt: skip
    assert leaks == [], f"{len(leaks)} secrets in stored columns, e.g.:\n" + "\n".join(leaks[:12])
    assert counts["exchanges"] >= EXAMPLES * EXCHANGES_PER_EXAMPLE


@pytest.mark.slow
def test_no_secret_when_an_sse_stream_is_cut_at_every_byte(
    fuzz: FuzzSetup, record_property: Callable[[str, object], None]
) -> None:
    """One stream carrying a secret of every kind, delivered in two pieces cut at each
    byte offset in turn (plus once one byte at a time)."""
    found: list[str] = []
    forge = Forger(random.Random(13), found)
    kinds = ("openai", "anthropic", "google", "aws", "jwt", "bearer", "pem", "acct", "ref")
    text = " ".join(forge.pattern_secret((kind,)) for kind in kinds)
    events = wire.openai_stream_chunks([text[:40], text[40:]], usage=False)
    body = b"".join(events)
    cuts = [[body[:k], body[k:]] for k in range(1, len(body))]
    cuts.append([body[i : i + 1] for i in range(len(body))])
    client = fuzz.clients[0]
    with chatdebug.run("every-byte") as run:
        for chunks in cuts:
            fuzz.server.enqueue(Reply(chunks=chunks, headers=SSE_HEADERS))
            response = client.post("/v1/chat/completions", json={"model": "gpt-4o",
                                    "messages": [{"role": "user", "content": "go"}],
                                    "stream": True})  # fmt: skip
            assert response.content == body  # the caller gets every byte
    assert chatdebug.flush(60)
    stored, steps = _stored(fuzz.db_path)
    span_leaks = _leaks(found, _haystack(_span_values(list(fuzz.spans.get_finished_spans()))))
    leaks = _leaks(found, _haystack(stored[str(run.id)]))
    figure(record_property, "redaction_every_byte", exchanges=len(cuts), body_bytes=len(body),
           leaks=len(leaks) + len(span_leaks))  # fmt: skip
    assert steps[str(run.id)] == len(cuts)
    assert span_leaks == [] and leaks == [], (span_leaks + leaks)[:12]
